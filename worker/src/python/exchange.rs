//! The state one request shares between the Rust driver and the Python
//! objects the app holds (`wsgi.input`, `start_response`, `write`): the
//! connection and the response writer, behind a mutex.
//!
//! The mutex is only ever tried, never waited for: waiting for it with the
//! GIL held while another thread holds it with the GIL released (blocked
//! on the socket) would deadlock. Using one request from two threads at
//! once is an app bug and raises `RuntimeError`.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;

use crate::worker::{Blocker, ConnError, Connection, ResponseWriter};

/// Where the GIL stands during the app's socket I/O (see [`Exchange::io`]).
pub enum IoGil<'py> {
    /// Held for the non-blocking calls, released around each wait.
    Held(Python<'py>),
    /// Released for the whole call.
    Released,
}

impl Blocker for IoGil<'_> {
    fn block<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        match self {
            IoGil::Held(py) => py.detach(f),
            IoGil::Released => f(),
        }
    }
}

/// One request's shared state.
pub struct Exchange {
    state: Mutex<ExchangeState>,
    /// The worker serves with threads (`--threads` > 1).
    threaded: bool,
}

pub struct ExchangeState {
    /// `None` once the request is over (the driver took it back).
    pub conn: Option<Connection>,
    pub response: ResponseWriter,
    /// Why the connection failed (peer gone, bad frame, timeout): it is
    /// closed after this request instead of being kept alive.
    pub broken: Option<ConnError>,
}

impl Exchange {
    pub fn new(conn: Connection, head_request: bool, threaded: bool) -> Arc<Exchange> {
        Arc::new(Exchange {
            state: Mutex::new(ExchangeState {
                conn: Some(conn),
                response: ResponseWriter::new(head_request),
                broken: None,
            }),
            threaded,
        })
    }

    /// Runs the app's socket I/O `f`. With threads, the whole call runs
    /// without the GIL, so other threads run Python meanwhile; a
    /// single-threaded worker keeps it for the non-blocking system calls
    /// and lets go only while waiting (nobody else wants it in between,
    /// and keeping it is cheaper).
    pub fn io<'py, T: Send>(
        &self,
        py: Python<'py>,
        f: impl for<'g> FnOnce(&'g IoGil<'py>) -> T + Send,
    ) -> T {
        if self.threaded {
            py.detach(|| f(&IoGil::Released))
        } else {
            f(&IoGil::Held(py))
        }
    }

    pub fn lock(&self) -> PyResult<MutexGuard<'_, ExchangeState>> {
        match self.state.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "the request is in use by another thread (wsgi.input, write() and \
                 start_response() must not be used from two threads at once)",
            )),
        }
    }
}

impl ExchangeState {
    /// The connection and the writer, or OSError once the connection is
    /// gone.
    pub fn parts(&mut self) -> PyResult<(&mut Connection, &mut ResponseWriter)> {
        match (&mut self.conn, &self.broken) {
            (Some(conn), None) => Ok((conn, &mut self.response)),
            _ => Err(PyOSError::new_err("the connection to nginx is closed")),
        }
    }

    /// Marks the connection broken and turns `e` into an OSError.
    pub fn broke(&mut self, doing: &str, e: ConnError) -> PyErr {
        let err = PyOSError::new_err(format!("{doing}: {e}"));
        self.broken = Some(e);
        err
    }
}
