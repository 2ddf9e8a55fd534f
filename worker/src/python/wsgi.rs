//! Calls the WSGI app for one request and sends what it returns: the
//! [`Handler`] the serving loop drives.
//!
//! Order of events: build environ, call `app(environ, start_response)`,
//! send each body item (the head goes out with the first non-empty one),
//! always call the iterable's `close()`, then end the response. Failures:
//! before the head is sent, a 500 page; after, an `error` frame that makes
//! nginx cut the response. Either way the traceback goes to the error log
//! and the worker carries on.

use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::Bytes;
use ferrocorn_protocol::pb::RequestHead;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::environ::EnvironBuilder;
use super::errors::{type_name, Errors};
use super::exchange::{Exchange, ReleaseGil};
use super::file_wrapper::{self, FileWrapper};
use super::input::Input;
use super::start_response::StartResponse;
use super::traceback;
use crate::worker::{Connection, Direct, Handler, WriteError};

/// The loaded app and what this worker reuses for every request.
pub struct WsgiApp {
    app: Py<PyAny>,
    environ: EnvironBuilder,
}

/// Why a request did not complete normally.
enum Failure {
    /// The app (or its iterable, or `close()`) raised, or returned
    /// something that is not a WSGI response.
    App(PyErr),
    /// Writing the response failed.
    Write(WriteError),
}

impl WsgiApp {
    pub fn new(py: Python<'_>, app: Py<PyAny>) -> PyResult<WsgiApp> {
        let errors = Bound::new(py, Errors)?.into_any();
        let file_wrapper = py.get_type::<FileWrapper>().into_any();
        Ok(WsgiApp {
            app,
            environ: EnvironBuilder::new(py, errors, file_wrapper)?,
        })
    }

    fn serve(&mut self, py: Python<'_>, conn: Connection, head: RequestHead) -> Option<Connection> {
        let exchange = Exchange::new(conn, head.method.as_ref() == b"HEAD");
        let uri = head.uri.clone();
        let outcome = self.run(py, &exchange, &head);
        drop(head);
        conclude(py, &exchange, outcome, &uri)
    }

    fn run(
        &mut self,
        py: Python<'_>,
        exchange: &Arc<Exchange>,
        head: &RequestHead,
    ) -> Result<(), Failure> {
        let input = Bound::new(py, Input::new(exchange.clone())).map_err(Failure::App)?;
        let environ = self.environ.build(py, head, input).map_err(Failure::App)?;
        let start_response =
            Bound::new(py, StartResponse::new(exchange.clone())).map_err(Failure::App)?;
        let result = self
            .app
            .bind(py)
            .call1((environ, start_response))
            .map_err(Failure::App)?;
        let sent = send_iterable(py, exchange, &result);
        let closed = close_iterable(py, &result).map_err(Failure::App);
        sent.and(closed)
    }
}

impl Handler for WsgiApp {
    fn handle(&mut self, conn: Connection, head: RequestHead) -> Option<Connection> {
        Python::attach(|py| self.serve(py, conn, head))
    }
}

/// Sends every item of the app's iterable.
fn send_iterable(
    py: Python<'_>,
    exchange: &Exchange,
    result: &Bound<'_, PyAny>,
) -> Result<(), Failure> {
    // A list or tuple holds all its data already: coalesce, flush at the end.
    if let Ok(list) = result.cast_exact::<PyList>() {
        for item in list.iter() {
            if send_item(py, exchange, &item, false)? {
                break;
            }
        }
        return Ok(());
    }
    if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        for item in tuple.iter() {
            if send_item(py, exchange, &item, false)? {
                break;
            }
        }
        return Ok(());
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if send_file(py, exchange, wrapper.get())? {
            return Ok(());
        }
    }
    // Anything else may produce its items slowly: send each at once.
    for item in result.try_iter().map_err(Failure::App)? {
        if send_item(py, exchange, &item.map_err(Failure::App)?, true)? {
            break;
        }
    }
    Ok(())
}

/// Sends one body item. Returns true when the response has no body (HEAD,
/// 204...) and is complete: there is no point in producing more.
fn send_item(
    py: Python<'_>,
    exchange: &Exchange,
    item: &Bound<'_, PyAny>,
    flush: bool,
) -> Result<bool, Failure> {
    let data = item.cast::<PyBytes>().map_err(|_| {
        Failure::App(PyTypeError::new_err(format!(
            "response body item must be bytes, not {}",
            type_name(item)
        )))
    })?;
    let mut state = exchange.lock().map_err(Failure::App)?;
    let (conn, writer) = state.parts().map_err(Failure::App)?;
    writer
        .body(conn, data.as_bytes(), flush, &ReleaseGil(py))
        .map_err(Failure::Write)?;
    Ok(writer.is_complete() && writer.is_bodiless())
}

/// Sends a wrapped regular file with `sendfile`. False when the wrapper
/// holds something else, or the status is not known yet: then it is
/// iterated like any iterable.
fn send_file(py: Python<'_>, exchange: &Exchange, wrapper: &FileWrapper) -> Result<bool, Failure> {
    if !exchange.lock().map_err(Failure::App)?.response.has_status() {
        return Ok(false);
    }
    let Some(file) = file_wrapper::regular_file(py, wrapper) else {
        return Ok(false);
    };
    let mut state = exchange.lock().map_err(Failure::App)?;
    let (conn, writer) = state.parts().map_err(Failure::App)?;
    py.detach(|| writer.file(conn, file.fd.as_fd(), file.offset, file.len, &Direct))
        .map_err(Failure::Write)?;
    Ok(true)
}

/// Calls the iterable's `close()`, if it has one (PEP 3333: always).
fn close_iterable(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = result.getattr_opt(intern!(py, "close"))? {
        close.call0()?;
    }
    Ok(())
}

/// Ends the response according to `outcome`, logs what went wrong, and
/// returns the connection if it can carry another request.
fn conclude(
    py: Python<'_>,
    exchange: &Exchange,
    outcome: Result<(), Failure>,
    uri: &Bytes,
) -> Option<Connection> {
    let what = || format!("Error handling request {}", String::from_utf8_lossy(uri));
    let Ok(mut state) = exchange.lock() else {
        error!("{}: the request is still in use by another thread", what());
        return None;
    };
    if state.broken {
        debug!("{}: the connection failed", what());
        return None;
    }
    let b = ReleaseGil(py);
    let (conn, writer) = state.parts().ok()?;
    let failure = match outcome {
        Ok(()) => match writer.finish(conn, &b) {
            Ok(()) => None,
            Err(WriteError::Conn(e)) => {
                debug!("{}: client went away: {e}", what());
                return None;
            }
            Err(e) => {
                error!("{}: {e}", what());
                Some(e.to_string())
            }
        },
        Err(Failure::App(err)) => {
            error!("{}", traceback::log_message(py, &what(), &err));
            Some(traceback::describe(py, &err))
        }
        Err(Failure::Write(WriteError::Conn(e))) => {
            debug!("{}: client went away: {e}", what());
            return None;
        }
        Err(Failure::Write(e)) => {
            error!("{}: {e}", what());
            Some(e.to_string())
        }
    };
    if let Some(why) = failure {
        if writer.head_sent() {
            writer.fail(conn, format!("the application failed: {why}"), &b);
            return None;
        }
        if let Err(e) = writer.internal_error(conn, &b) {
            debug!("{}: cannot send the 500 response: {e}", what());
            return None;
        }
    }
    state.conn.take()
}
