//! `wsgi.errors`: a text stream into the error log (the same destination
//! as the server's own lines, written as the app gives it).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::logging;

#[pyclass(frozen, module = "ferrocorn", name = "ErrorStream")]
pub struct Errors;

#[pymethods]
impl Errors {
    /// Writes `text` and returns its length in characters.
    fn write(&self, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        let text = text.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "wsgi.errors.write() argument must be str, not {}",
                type_name(text)
            ))
        })?;
        logging::write_raw(text.to_string_lossy().as_bytes());
        text.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    /// Lines are written immediately; nothing to flush.
    fn flush(&self) {}
}

/// The type name of `obj`, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}
