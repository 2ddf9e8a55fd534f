//! `ferrocorn._native`: the extension module of the Python package.
//!
//! `pip install` builds it for the interpreter that runs pip; the
//! `ferrocorn` console script (`ferrocorn/__init__.py`) calls [`run`] with
//! `sys.argv`, and the whole `ferrocorn` command (supervisor, workers,
//! `ferrocorn ctl`) runs inside that python: the app's own interpreter,
//! `sys.prefix` and site-packages, no libpython of ours.

use std::ffi::OsString;
use std::path::PathBuf;

use pyo3::prelude::*;

/// Runs the `ferrocorn` command with `argv` (`sys.argv`: the program
/// first) and returns its exit code. Workers never return here: they exit
/// from inside, after Python's exit steps (threads joined, atexit).
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<OsString>) -> PyResult<u8> {
    let sys = py.import("sys")?;
    let version_info = sys.getattr("version_info")?;
    let python = ferrocorn::RunningPython {
        executable: sys.getattr("executable")?.extract::<PathBuf>()?,
        prefix: sys.getattr("prefix")?.extract::<PathBuf>()?,
        version: ferrocorn::PythonVersion {
            major: version_info.getattr("major")?.extract()?,
            minor: version_info.getattr("minor")?.extract()?,
        },
    };
    Ok(ferrocorn::run_in_python(py, argv, python))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
