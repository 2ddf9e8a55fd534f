//! Records the Python interpreter the worker links against, so workers
//! start CPython as that `python` (its `sys.executable` and prefix) when no
//! virtualenv is given.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(executable) = config.executable() {
        println!("cargo:rustc-env=FERROCORN_BUILD_PYTHON={executable}");
    }
}
