//! The Python side of `cargo bench -p ferrocorn` (see [`crate::hot_path`]):
//! the environ build and the bare app call, reached from outside this
//! module without making its parts public.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ferrocorn_protocol::request_head_view::RequestHeadView;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::environ::EnvironBuilder;
use super::exchange::Exchange;
use super::input::Input;
use super::{app, interpreter, WsgiApp};
use crate::worker::Connection;

/// Starts CPython with `pythonpath` in front of `sys.path` (once per
/// process) and loads `spec` as a worker would.
pub fn start(pythonpath: PathBuf, spec: &str) -> Result<(WsgiApp, Py<PyAny>), String> {
    if !interpreter::is_initialized() {
        interpreter::initialize(None, &[pythonpath])?;
    }
    Python::attach(|py| {
        let app = app::load(py, spec).map_err(|e| {
            e.log(py);
            format!("cannot load {spec}")
        })?;
        let wsgi = WsgiApp::new(py, app.clone_ref(py), spec, None).map_err(|e| e.to_string())?;
        Ok((wsgi, app))
    })
}

/// Builds environs as the worker does, with a `wsgi.input` on an idle
/// socket pair.
pub struct EnvironBench {
    builder: EnvironBuilder,
    input: Py<Input>,
    _peer: UnixStream,
}

impl EnvironBench {
    pub fn new() -> Result<EnvironBench, String> {
        let (ours, peer) = UnixStream::pair().map_err(|e| e.to_string())?;
        Python::attach(|py| {
            let errors = py.None().into_bound(py);
            let wrapper = py.None().into_bound(py);
            let builder =
                EnvironBuilder::new(py, errors, wrapper, false).map_err(|e| e.to_string())?;
            let conn = Connection::new(OwnedFd::from(ours), Some(Duration::from_secs(5)));
            let input = Py::new(py, Input::new(Exchange::new(conn, false, false)))
                .map_err(|e| e.to_string())?;
            Ok(EnvironBench {
                builder,
                input,
                _peer: peer,
            })
        })
    }

    /// One environ for `head`; returns its number of keys.
    pub fn build(&mut self, head: &RequestHeadView<'_>) -> usize {
        Python::attach(|py| {
            let input = self.input.bind(py).clone();
            self.builder
                .build(py, head, input)
                .expect("environ builds")
                .len()
        })
    }
}

/// Calls `app(environ, start_response)` with a copy of a fixed environ
/// and a no-op `start_response`, and walks the iterable: the Python call
/// alone, no framing, no socket.
pub struct CallBench {
    app: Py<PyAny>,
    environ: Py<PyDict>,
    start_response: Py<PyAny>,
}

impl CallBench {
    pub fn new(app: Py<PyAny>, mut environ: EnvironBench, head: &RequestHeadView<'_>) -> CallBench {
        Python::attach(|py| {
            let input = environ.input.bind(py).clone();
            let env = environ
                .builder
                .build(py, head, input)
                .expect("environ builds");
            let start_response = py
                .eval(c"lambda status, headers, exc_info=None: None", None, None)
                .expect("a lambda evaluates");
            CallBench {
                app,
                environ: env.unbind(),
                start_response: start_response.unbind(),
            }
        })
    }

    /// One call; returns the body length.
    pub fn call(&self) -> usize {
        Python::attach(|py| {
            let env = self.environ.bind(py).copy().expect("dict copy");
            let result = self
                .app
                .bind(py)
                .call1((env, self.start_response.bind(py)))
                .expect("the app answers");
            let mut len = 0;
            for item in result.try_iter().expect("an iterable") {
                len += item.expect("an item").len().expect("bytes");
            }
            if let Ok(close) = result.getattr("close") {
                close.call0().expect("close()");
            }
            len
        })
    }
}
