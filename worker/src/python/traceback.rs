//! Python exceptions as text for the error log.

use pyo3::prelude::*;
use pyo3::types::PyString;

fn join(py: Python<'_>, function: &str, err: &PyErr) -> PyResult<String> {
    let lines = py
        .import("traceback")?
        .call_method1(function, (err.value(py),))?;
    let text = PyString::new(py, "").call_method1("join", (lines,))?;
    Ok(text.cast_into::<PyString>()?.to_string_lossy().into_owned())
}

/// `TypeError: message`, one line.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    join(py, "format_exception_only", err)
        .map(|s| s.trim_end().replace('\n', " "))
        .unwrap_or_else(|_| err.to_string())
}

/// The traceback, if the exception has one, as Python prints it.
pub fn traceback(py: Python<'_>, err: &PyErr) -> Option<String> {
    err.traceback(py)?;
    join(py, "format_exception", err).ok()
}

/// One log message: `<what>: TypeError: message`, then the traceback.
pub fn log_message(py: Python<'_>, what: &str, err: &PyErr) -> String {
    match traceback(py, err) {
        Some(tb) => format!("{what}: {}\n{}", describe(py, err), tb.trim_end()),
        None => format!("{what}: {}", describe(py, err)),
    }
}
