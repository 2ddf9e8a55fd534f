//! Python exceptions as text for the error log.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

/// Calls `traceback.<function>(*args)` and joins the lines it returns.
fn join(py: Python<'_>, function: &str, args: Bound<'_, PyTuple>) -> PyResult<String> {
    let lines = py.import("traceback")?.call_method1(function, args)?;
    let text = PyString::new(py, "").call_method1("join", (lines,))?;
    Ok(text.cast_into::<PyString>()?.to_string_lossy().into_owned())
}

/// `TypeError: message`, one line.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    PyTuple::new(
        py,
        [
            err.get_type(py).into_any(),
            err.value(py).clone().into_any(),
        ],
    )
    .and_then(|args| join(py, "format_exception_only", args))
    .map(|s| s.trim_end().replace('\n', " "))
    .unwrap_or_else(|_| err.to_string())
}

/// The traceback, if the exception has one, as Python prints it.
pub fn traceback(py: Python<'_>, err: &PyErr) -> Option<String> {
    // Type, value and traceback are passed apart: before Python 3.12 a
    // fetched error's value does not always carry its __traceback__.
    let tb = err.traceback(py)?;
    let args = PyTuple::new(
        py,
        [
            err.get_type(py).into_any(),
            err.value(py).clone().into_any(),
            tb.into_any(),
        ],
    )
    .ok()?;
    join(py, "format_exception", args).ok()
}

/// One log message: `<what>: TypeError: message`, then the traceback.
pub fn log_message(py: Python<'_>, what: &str, err: &PyErr) -> String {
    match traceback(py, err) {
        Some(tb) => format!("{what}: {}\n{}", describe(py, err), tb.trim_end()),
        None => format!("{what}: {}", describe(py, err)),
    }
}
