//! Records the Python interpreter the worker links against: its path, so
//! workers start CPython as that `python` (its `sys.executable` and
//! prefix) when no virtualenv is given, and its version, which a
//! virtualenv must match (`python::host`). A libpython outside the
//! system's library directories (a pyenv or /opt build given as
//! PYO3_PYTHON) is found at run time through the binary's RUNPATH.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(executable) = config.executable() {
        println!("cargo:rustc-env=FERROCORN_BUILD_PYTHON={executable}");
    }
    println!(
        "cargo:rustc-env=FERROCORN_EMBEDDED_PYTHON={}.{}",
        config.version().major,
        config.version().minor
    );
    if let Some(lib_dir) = config.lib_dir() {
        let system = ["/usr/lib", "/lib", "/usr/lib64", "/lib64"]
            .iter()
            .any(|d| lib_dir == *d || lib_dir.starts_with(&format!("{d}/")));
        if !system {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{lib_dir}");
        }
    }
}
