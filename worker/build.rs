//! Records the Python interpreter the worker links against, so workers
//! start CPython as that `python` (its `sys.executable` and prefix) when no
//! virtualenv is given, and config files are evaluated by it.
//!
//! `FERROCORN_EMBED_PYTHON=/usr/bin/python3.13` records that path instead:
//! for a binary built against one CPython (pyenv's 3.13, with the same
//! `libpython3.13.so.1.0`) that runs on a system whose own interpreter of
//! the same version lives elsewhere (a Debian 13 package built on Debian 12).

fn main() {
    println!("cargo:rerun-if-env-changed=FERROCORN_EMBED_PYTHON");
    let recorded = match std::env::var("FERROCORN_EMBED_PYTHON") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => pyo3_build_config::get()
            .executable()
            .map(ToString::to_string),
    };
    if let Some(executable) = recorded {
        println!("cargo:rustc-env=FERROCORN_BUILD_PYTHON={executable}");
    }
}
