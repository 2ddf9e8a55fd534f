//! `wsgi.input`: the request body as a binary file-like object, streamed
//! from the connection (body frames are read when the app asks for more,
//! with the GIL released while waiting, or throughout with threads). After
//! the body ends, reads return `b""` (`wsgi.input_terminated`). A `read`
//! whose size the head announced fills a new `bytes` object in place (see
//! [`read_known`]).

use std::mem::MaybeUninit;
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyOverflowError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::exchange::{Exchange, ExchangeState, IoGil};
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

/// A read whose size `n` the head announced: into a new `bytes` object
/// created without initializing its bytes (they are all written before
/// Python sees it), the socket reading straight into it for large frames.
/// `all`: the app asked for everything, so a peer that sends more than it
/// announced still has all of it returned. `state` is `exchange`'s,
/// locked.
fn read_known<'py>(
    py: Python<'py>,
    exchange: &Exchange,
    state: &mut ExchangeState,
    n: usize,
    all: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let conn = state.conn.as_mut().expect("checked by the caller");
    let len = ffi::Py_ssize_t::try_from(n).map_err(|_| PyOverflowError::new_err("read size"))?;
    // SAFETY: a NULL source asks CPython for a new bytes object of `len`
    // uninitialized bytes; the result is a new reference or NULL with an
    // exception set, which `from_owned_ptr_or_err` turns into an error.
    let bytes = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
            .cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: the object is a bytes object of `n` bytes that nobody else
    // holds yet; its buffer stays valid while `bytes` lives, and is only
    // written through `buf` (as possibly uninitialized memory) below. With
    // threads that write runs without the GIL: no other thread can reach
    // the object (not returned yet, and bytes are never tracked by the GC),
    // and our reference keeps it alive.
    let buf = unsafe {
        std::slice::from_raw_parts_mut(
            ffi::PyBytes_AsString(bytes.as_ptr()).cast::<MaybeUninit<u8>>(),
            n,
        )
    };
    let got = match exchange.io(py, |b| conn.read_body_into(&mut *buf, b)) {
        Ok(got) => got,
        Err(e) => return Err(state.broke("cannot read the request body", e)),
    };
    if got < n {
        // The body ended early: only what was read, initialized.
        // SAFETY: read_body_into initialized the first `got` bytes.
        let read = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), got) };
        return Ok(PyBytes::new(py, read));
    }
    if !all {
        return Ok(bytes);
    }
    match exchange.io(py, |b| conn.read_body(None, b)) {
        Ok(more) if more.is_empty() => Ok(bytes),
        Ok(more) => PyBytes::new_with(py, n + more.len(), |out| {
            out[..n].copy_from_slice(bytes.as_bytes());
            more.copy_to(&mut out[n..]);
            Ok(())
        }),
        Err(e) => Err(state.broke("cannot read the request body", e)),
    }
}

#[pymethods]
impl Input {
    /// Reads `size` bytes (fewer only at the end), or all the rest.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = limit(size);
        {
            let mut state = self.exchange.lock()?;
            let known = match (&state.broken, state.conn.as_ref()) {
                (None, Some(conn)) => conn.body_read_size(limit),
                _ => None,
            };
            if let Some(n) = known {
                return read_known(py, &self.exchange, &mut state, n, limit.is_none());
            }
        }
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
