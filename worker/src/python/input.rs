//! `wsgi.input`: the request body as a binary file-like object, streamed
//! from the connection (body frames are read when the app asks for more,
//! with the GIL released while waiting, or throughout with threads). After the body ends, reads return
//! `b""` (`wsgi.input_terminated`).

use std::sync::Arc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::exchange::{Exchange, IoGil};
use crate::worker::request_body::Pieces;
use crate::worker::{ConnError, Connection};

#[pyclass(frozen, module = "ferrocorn", name = "InputStream")]
pub struct Input {
    exchange: Arc<Exchange>,
}

/// A `size` argument: `None` or negative means "all".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

impl Input {
    pub fn new(exchange: Arc<Exchange>) -> Input {
        Input { exchange }
    }

    fn read_with<'py>(
        &self,
        py: Python<'py>,
        read: impl FnOnce(&mut Connection, &IoGil<'py>) -> Result<Pieces, ConnError> + Send,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut state = self.exchange.lock()?;
        if state.broken.is_some() {
            return Err(PyOSError::new_err("the connection to nginx is closed"));
        }
        // After the request, a kept reference reads as an ended body.
        let Some(conn) = state.conn.as_mut() else {
            return Ok(PyBytes::new(py, b""));
        };
        let result = self.exchange.io(py, |b| read(conn, b));
        match result {
            Ok(pieces) => PyBytes::new_with(py, pieces.len(), |out| {
                pieces.copy_to(out);
                Ok(())
            }),
            Err(e) => Err(state.broke("cannot read the request body", e)),
        }
    }
}

#[pymethods]
impl Input {
    /// Reads `size` bytes (fewer only at the end), or all the rest.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = limit(size);
        self.read_with(py, |conn, b| conn.read_body(limit, b))
    }

    /// Reads one line, newline included, at most `size` bytes.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = limit(size);
        self.read_with(py, |conn, b| conn.read_body_line(limit, b))
    }

    /// Reads lines until the end, or until about `hint` bytes were read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.readline(py, None)?;
            let n = line.as_bytes().len();
            if n == 0 {
                break;
            }
            lines.append(line)?;
            total += n;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}
