//! Records the Python interpreter the worker links against: its path, so
//! workers start CPython as that `python` (its `sys.executable` and
//! prefix) when no virtualenv is given and config files are evaluated by
//! it, and its version, which a virtualenv must match (`python::host`).
//!
//! `FERROCORN_EMBED_PYTHON=/usr/bin/python3.13` records that path instead:
//! for a binary built against one CPython (pyenv's 3.13, with the same
//! `libpython3.13.so.1.0`) that runs on a system whose own interpreter of
//! the same version lives elsewhere (a Debian 13 package built on Debian 12).
//!
//! Otherwise a libpython outside the system's library directories (a pyenv
//! or /opt build given as PYO3_PYTHON) is found at run time through the
//! binary's RUNPATH.

fn main() {
    println!("cargo:rerun-if-env-changed=FERROCORN_EMBED_PYTHON");
    let config = pyo3_build_config::get();
    let embed_for_another_system = std::env::var("FERROCORN_EMBED_PYTHON")
        .ok()
        .filter(|path| !path.is_empty());
    let recorded = embed_for_another_system
        .clone()
        .or_else(|| config.executable().map(ToString::to_string));
    if let Some(executable) = recorded {
        println!("cargo:rustc-env=FERROCORN_BUILD_PYTHON={executable}");
    }
    println!(
        "cargo:rustc-env=FERROCORN_EMBEDDED_PYTHON={}.{}",
        config.version().major,
        config.version().minor
    );
    if let (None, Some(lib_dir)) = (&embed_for_another_system, config.lib_dir()) {
        let system = ["/usr/lib", "/lib", "/usr/lib64", "/lib64"]
            .iter()
            .any(|d| lib_dir == *d || lib_dir.starts_with(&format!("{d}/")));
        if !system {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{lib_dir}");
        }
    }
}
