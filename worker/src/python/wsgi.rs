//! Calls the WSGI app for one request and sends what it returns: the
//! [`Handler`] the serving loop drives.
//!
//! Order of events: build environ, call `app(environ, start_response)`,
//! send each body item (the head goes out with the first non-empty one; a
//! bare `bytes` return value, which uWSGI and Unit send, is one item),
//! always call the iterable's `close()`, then end the response. Failures:
//! before the head is sent, a 500 page; after, an `error` frame that makes
//! nginx cut the response. Either way the traceback goes to the error log
//! and the worker carries on.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrocorn_protocol::request_head_view::RequestHeadView;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyMemoryView, PyString, PyTuple};

use super::environ::EnvironBuilder;
use super::errors::{type_name, Errors};
use super::exchange::Exchange;
use super::file_wrapper::{self, FileWrapper};
use super::hooks::Hooks;
use super::input::Input;
use super::reloader::Reloader;
use super::start_response::StartResponse;
use super::traceback;
use crate::access_log::{self, RequestFacts};
use crate::metrics;
use crate::worker::{ConnError, Connection, Direct, Handler, ThreadHandlers, WriteError};
use ferrocorn_protocol::pb::error::Kind as ErrorKind;

/// The loaded app and what this worker reuses for every request.
pub struct WsgiApp {
    app: LoadedApp,
    /// The single-threaded worker's environ builder (`wsgi.multithread`
    /// false); with threads, each thread has its own ([`ThreadApp`]).
    environ: EnvironBuilder,
    /// Server hooks from the config file (`pre_request`, `post_request`...).
    hooks: Option<Hooks>,
    /// `--reload`: watches the source files between requests (asked by the
    /// serving loop's thread only; locked since the app is shared with
    /// the pool threads).
    reloader: Option<Mutex<Reloader>>,
}

/// The app callable, and what the worker says about it once.
struct LoadedApp {
    callable: Py<PyAny>,
    /// `MODULE:APP` as given, naming the app in log lines.
    spec: String,
    /// The app returned a bare `bytes` object and this worker said so:
    /// one warning per worker, not one per request.
    warned_bare_bytes: AtomicBool,
}

impl LoadedApp {
    /// Says once per worker that the app returns a bare `bytes` object.
    fn warn_bare_bytes(&self) {
        if !self.warned_bare_bytes.load(Ordering::Relaxed)
            && !self.warned_bare_bytes.swap(true, Ordering::Relaxed)
        {
            warning!(
                "app '{}' returned a bytes object, not an iterable of bytes; sending it as \
                 the body (PEP 3333 wants an iterable: return [body]). Said once per worker.",
                self.spec
            );
        }
    }
}

/// One pool thread's handler (`--threads`): the shared app and hooks, and
/// its own environ builder (caches are per thread; `wsgi.multithread`
/// true).
pub struct ThreadApp<'a> {
    shared: &'a WsgiApp,
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

/// Makes the environ builder of a worker or of one of its threads.
fn environ_builder(py: Python<'_>, multithread: bool) -> PyResult<EnvironBuilder> {
    let errors = Bound::new(py, Errors)?.into_any();
    let file_wrapper = py.get_type::<FileWrapper>().into_any();
    EnvironBuilder::new(py, errors, file_wrapper, multithread)
}

impl WsgiApp {
    /// `app` is the callable `spec` (`MODULE:APP`) names.
    pub fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        spec: &str,
        hooks: Option<Hooks>,
    ) -> PyResult<WsgiApp> {
        Ok(WsgiApp {
            app: LoadedApp {
                callable: app,
                spec: spec.to_owned(),
                warned_bare_bytes: AtomicBool::new(false),
            },
            environ: environ_builder(py, false)?,
            hooks,
            reloader: None,
        })
    }

    /// `--reload`: restart when `reloader` sees a change.
    pub fn set_reloader(&mut self, reloader: Reloader) {
        self.reloader = Some(Mutex::new(reloader));
    }

    /// The config file's hooks, if any.
    pub fn hooks(&self) -> Option<&Hooks> {
        self.hooks.as_ref()
    }

    /// `--reload`: the file whose change calls for a restart, if one did.
    fn reload_reason(&self) -> Option<String> {
        let mut reloader = self.reloader.as_ref()?.lock().ok()?;
        let file = Python::attach(|py| reloader.changed(py))?;
        Some(format!("{file} modified"))
    }
}

/// What serving one request needs: the app, the hooks and an environ
/// builder, whether the worker's own or a thread's.
struct Request<'a> {
    app: &'a LoadedApp,
    hooks: Option<&'a Hooks>,
    environ: &'a mut EnvironBuilder,
    threaded: bool,
}

impl Request<'_> {
    fn serve(
        self,
        py: Python<'_>,
        conn: Connection,
        head: &RequestHeadView<'_>,
    ) -> Option<Connection> {
        let started = Instant::now();
        metrics::request_started(head.method, head.uri);
        let exchange = Exchange::new(conn, head.method == b"HEAD", self.threaded);
        let outcome = self.run(py, &exchange, head);
        let back = conclude(py, &exchange, outcome, head.uri);
        if let Ok(state) = exchange.lock() {
            let sent = state.response.sent_head();
            let facts = RequestFacts {
                head,
                status: sent.map(|(status, _)| status),
                sent: state.response.body_bytes(),
                response_head: sent.map(|(_, fields)| fields),
                duration: started.elapsed(),
            };
            access_log::write(&facts);
            metrics::request_done(&facts);
        }
        metrics::request_ended();
        back
    }

    fn run(
        self,
        py: Python<'_>,
        exchange: &Arc<Exchange>,
        head: &RequestHeadView<'_>,
    ) -> Result<(), Failure> {
        let input = Bound::new(py, Input::new(exchange.clone())).map_err(Failure::App)?;
        let environ = self.environ.build(py, head, input).map_err(Failure::App)?;
        let start_response = Bound::new(py, StartResponse::new(exchange.clone()))
            .map_err(Failure::App)?
            .into_any();
        let Some(hooks) = self.hooks.filter(|h| h.on_requests()) else {
            return call_app(py, exchange, self.app, environ.into_any(), start_response);
        };
        let environ = environ.into_any();
        let (seen, start_response) = hooks
            .before_request(py, &environ, start_response)
            .map_err(Failure::App)?;
        let outcome = call_app(py, exchange, self.app, environ.clone(), start_response);
        hooks.after_request(py, seen, &environ);
        outcome
    }
}

/// `app(environ, start_response)`, its items sent, its `close()` called.
fn call_app<'py>(
    py: Python<'py>,
    exchange: &Exchange,
    app: &LoadedApp,
    environ: Bound<'py, PyAny>,
    start_response: Bound<'py, PyAny>,
) -> Result<(), Failure> {
    let result = app
        .callable
        .bind(py)
        .call1((environ, start_response))
        .map_err(Failure::App)?;
    let sent = send_iterable(py, exchange, app, &result);
    let closed = close_iterable(py, &result).map_err(Failure::App);
    sent.and(closed)
}

impl Handler for WsgiApp {
    fn handle(&mut self, conn: Connection, head: &RequestHeadView<'_>) -> Option<Connection> {
        Python::attach(|py| {
            let request = Request {
                app: &self.app,
                hooks: self.hooks.as_ref(),
                environ: &mut self.environ,
                threaded: false,
            };
            request.serve(py, conn, head)
        })
    }

    fn restart_reason(&mut self) -> Option<String> {
        self.reload_reason()
    }
}

impl Handler for ThreadApp<'_> {
    fn handle(&mut self, conn: Connection, head: &RequestHeadView<'_>) -> Option<Connection> {
        Python::attach(|py| {
            let request = Request {
                app: &self.shared.app,
                hooks: self.shared.hooks.as_ref(),
                environ: &mut self.environ,
                threaded: true,
            };
            request.serve(py, conn, head)
        })
    }
}

impl ThreadHandlers for WsgiApp {
    type Handler<'a> = ThreadApp<'a>;

    /// The thread gets a Python thread state for its whole life (so
    /// `threading.local` data lasts from one request to the next, as on
    /// Gunicorn's threads), then runs its loop without the GIL; each request
    /// takes the GIL back for the app.
    fn run_thread<'s>(&'s self, serve: &mut (dyn FnMut(&mut ThreadApp<'s>) + Send)) {
        Python::attach(|py| {
            let environ = match environ_builder(py, true) {
                Ok(environ) => environ,
                Err(e) => {
                    error!(
                        "cannot start a serving thread: {}",
                        traceback::describe(py, &e)
                    );
                    return;
                }
            };
            let mut handler = ThreadApp {
                shared: self,
                environ,
            };
            py.detach(|| serve(&mut handler));
        });
    }

    fn restart_reason(&self) -> Option<String> {
        self.reload_reason()
    }

    /// Python runs signal handlers (the `worker_abort` hook's) on the main
    /// thread, between bytecodes; the threaded loop's main thread runs none,
    /// so it lets them run when a signal woke it.
    fn after_signal(&self) {
        if self.hooks.is_some() {
            Python::attach(|py| {
                if let Err(e) = py.check_signals() {
                    warning!("a signal handler raised: {e}");
                }
            });
        }
    }
}

/// Sends every item of the app's iterable.
fn send_iterable(
    py: Python<'_>,
    exchange: &Exchange,
    app: &LoadedApp,
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
    // A bare bytes object is no WSGI iterable, but uWSGI sends it as the
    // body and apps moving from it return one: send it as one item.
    if let Ok(body) = result.cast::<PyBytes>() {
        app.warn_bare_bytes();
        send_bytes(py, exchange, body, false)?;
        return Ok(());
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if send_file(py, exchange, wrapper.get())? {
            return Ok(());
        }
    }
    // Anything else may produce its items slowly: send each at once.
    for item in result.try_iter().map_err(Failure::App)? {
        let sent = send_item(py, exchange, &item.map_err(Failure::App)?, true);
        if sent.map_err(|f| bare_body_failure(result).unwrap_or(f))? {
            break;
        }
    }
    Ok(())
}

/// For an app that returned a `str`, `bytearray` or `memoryview` (whose
/// items are characters or ints): an error saying so, rather than one about
/// the first item. Only asked once sending an item failed.
fn bare_body_failure(result: &Bound<'_, PyAny>) -> Option<Failure> {
    let fix = if result.is_instance_of::<PyString>() {
        "encode it and return it in a list: [body.encode()]"
    } else if result.is_instance_of::<PyByteArray>() || result.is_instance_of::<PyMemoryView>() {
        "return [bytes(body)]"
    } else {
        return None;
    };
    Some(Failure::App(PyTypeError::new_err(format!(
        "the app returned a {}, not an iterable of bytes: {fix}",
        type_name(result)
    ))))
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
    send_bytes(py, exchange, data, flush)
}

/// Sends one bytes object as body data; returns as [`send_item`] does.
fn send_bytes(
    py: Python<'_>,
    exchange: &Exchange,
    data: &Bound<'_, PyBytes>,
    flush: bool,
) -> Result<bool, Failure> {
    let mut state = exchange.lock().map_err(Failure::App)?;
    let (conn, writer) = state.parts().map_err(Failure::App)?;
    let data = data.as_bytes();
    exchange
        .io(py, |b| writer.body(conn, data, flush, b))
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
    uri: &[u8],
) -> Option<Connection> {
    let what = || format!("Error handling request {}", String::from_utf8_lossy(uri));
    let Ok(mut state) = exchange.lock() else {
        error!("{}: the request is still in use by another thread", what());
        return None;
    };
    if let Some(cause) = state.broken.take() {
        if cause.is_peer_gone() {
            debug!("{}: {cause}", what());
        } else if let Some(mut conn) = state.conn.take() {
            // A bad or stalled request stream: say why, to the log and to
            // nginx (which logs the error frame), then close.
            warning!("{}: closing connection: {cause}", what());
            let kind = match cause {
                ConnError::Timeout => ErrorKind::Timeout,
                _ => ErrorKind::MalformedFrame,
            };
            conn.queue_error(kind, cause.to_string());
            let _ = exchange.io(py, |b| conn.flush(b));
            conn.close_after_error();
        }
        return None;
    }
    let (conn, writer) = state.parts().ok()?;
    let failure = match outcome {
        Ok(()) => match exchange.io(py, |b| writer.finish(conn, b)) {
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
            crate::metrics::exception();
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
        if writer.is_complete() {
            // The response was whole (Content-Length reached, or no body)
            // before the failure, e.g. in close(): deliver it as it is.
            if exchange.io(py, |b| writer.finish(conn, b)).is_err() {
                return None;
            }
        } else if writer.head_sent() {
            let why = format!("the application failed: {why}");
            exchange.io(py, |b| writer.fail(conn, why, b));
            if let Some(conn) = state.conn.take() {
                conn.close_after_error();
            }
            return None;
        } else if let Err(e) = exchange.io(py, |b| writer.internal_error(conn, b)) {
            debug!("{}: cannot send the 500 response: {e}", what());
            return None;
        }
    }
    state.conn.take()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::test_support::with_python;
    use crate::worker::connection::test_pair;
    use bytes::{Bytes, BytesMut};
    use ferrocorn_protocol::frame;
    use ferrocorn_protocol::pb::{self, frame::Kind, Frame, RequestHead};
    use prost::Message;
    use pyo3::types::PyModule;
    use std::ffi::CString;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the peer received, simplified.
    #[derive(Debug, PartialEq)]
    enum Got {
        Head(u32, Vec<(String, String)>),
        Body(Vec<u8>),
        End,
        Error(String),
    }

    struct Run {
        frames: Vec<Got>,
        kept_alive: bool,
        module: Py<PyModule>,
    }

    impl Run {
        fn body(&self) -> Vec<u8> {
            self.frames
                .iter()
                .flat_map(|f| match f {
                    Got::Body(b) => b.clone(),
                    _ => vec![],
                })
                .collect()
        }

        fn status(&self) -> u32 {
            match self.frames.first() {
                Some(Got::Head(s, _)) => *s,
                other => panic!("no head: {other:?}"),
            }
        }

        fn global(&self, name: &str) -> String {
            Python::attach(|py| {
                self.module
                    .bind(py)
                    .getattr(name)
                    .unwrap()
                    .str()
                    .unwrap()
                    .to_string()
            })
        }
    }

    /// Loads `code` as a fresh module and serves one request with its
    /// `app`, the request body sent as `chunks`.
    fn serve(code: &str, method: &str, chunks: &[&[u8]]) -> Run {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("ferrocorn_test_app_{}", N.fetch_add(1, Ordering::Relaxed));
        let (module, mut app) = with_python(|py| {
            let module = PyModule::from_code(
                py,
                &CString::new(code).unwrap(),
                &CString::new(format!("{name}.py")).unwrap(),
                &CString::new(name.clone()).unwrap(),
            )
            .unwrap();
            let app = WsgiApp::new(
                py,
                module.getattr("app").unwrap().unbind(),
                &format!("{name}:app"),
                None,
            )
            .unwrap();
            (module.unbind(), app)
        });
        let (conn, mut peer) = test_pair();
        let mut request = Vec::new();
        for c in chunks {
            request.extend(frame::encode_to_vec(&Frame {
                kind: Some(Kind::RequestBody(Bytes::copy_from_slice(c))),
            }));
        }
        request.extend(frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestEnd(pb::RequestEnd {})),
        }));
        let mut writer = peer.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(&request);
        });
        let head = RequestHead {
            protocol_version: 1,
            method: Bytes::copy_from_slice(method.as_bytes()),
            uri: Bytes::from_static(b"/t"),
            path: Bytes::from_static(b"/t"),
            content_length: -1,
            ..Default::default()
        };
        // Read while the app writes, as nginx does.
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A reset after the data is fine: the worker closed with the
            // request end unread (the serving loop, not the handler, drains).
            if let Err(e) = peer.read_to_end(&mut bytes) {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            }
            bytes
        });
        let mut conn = conn;
        conn.begin_body(-1);
        let message = head.encode_to_vec();
        let back = app.handle(conn, &RequestHeadView::decode(&message).unwrap());
        let kept_alive = back.is_some();
        drop(back);
        sender.join().unwrap();
        let bytes = reader.join().unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut frames = Vec::new();
        while let Some(f) = frame::decode(&mut buf).unwrap() {
            frames.push(match f.kind.unwrap() {
                Kind::ResponseHead(h) => Got::Head(
                    h.status,
                    h.headers
                        .iter()
                        .map(|h| {
                            (
                                String::from_utf8_lossy(&h.name).into_owned(),
                                String::from_utf8_lossy(&h.value).into_owned(),
                            )
                        })
                        .collect(),
                ),
                Kind::ResponseBody(b) => Got::Body(b.to_vec()),
                Kind::ResponseEnd(_) => Got::End,
                Kind::Error(e) => Got::Error(e.message),
                other => panic!("{other:?}"),
            });
        }
        Run {
            frames,
            kept_alive,
            module,
        }
    }

    #[test]
    fn list_response_is_head_body_end() {
        let run = serve(
            "def app(environ, start_response):\n\
             \x20   start_response('200 OK', [('Content-Type', 'text/plain'), ('Connection', 'close')])\n\
             \x20   return [b'Hello', b'', b' world']\n",
            "GET",
            &[],
        );
        assert_eq!(
            run.frames,
            vec![
                Got::Head(200, vec![("Content-Type".into(), "text/plain".into())]),
                Got::Body(b"Hello".to_vec()),
                Got::Body(b" world".to_vec()),
                Got::End
            ],
            "empty items send nothing; the hop-by-hop Connection header is dropped"
        );
        assert!(run.kept_alive);
    }

    #[test]
    fn input_streams_the_body_across_frames() {
        let run = serve(
            "def app(environ, start_response):\n\
             \x20   inp = environ['wsgi.input']\n\
             \x20   first = inp.readline()\n\
             \x20   five = inp.read(5)\n\
             \x20   rest = list(inp)\n\
             \x20   start_response('200 OK', [])\n\
             \x20   return [repr((first, five, rest, inp.read())).encode()]\n",
            "POST",
            &[b"line one", b"\nabc", b"de\nlast"],
        );
        assert_eq!(
            String::from_utf8(run.body()).unwrap(),
            "(b'line one\\n', b'abcde', [b'\\n', b'last'], b'')"
        );
    }

    #[test]
    fn exception_before_the_head_is_a_500() {
        let run = serve(
            "def app(environ, start_response):\n    raise KeyError('nope')\n",
            "GET",
            &[],
        );
        assert_eq!(run.status(), 500);
        assert!(String::from_utf8_lossy(&run.body()).contains("Internal Server Error"));
        assert_eq!(run.frames.last(), Some(&Got::End));
        assert!(run.kept_alive, "a 500 still ends cleanly");
    }

    #[test]
    fn exception_after_the_head_cuts_the_response_and_closes() {
        let run = serve(
            "closed = False\n\
             class Body:\n\
             \x20   def __iter__(self):\n\
             \x20       yield b'partial'\n\
             \x20       raise RuntimeError('boom')\n\
             \x20   def close(self):\n\
             \x20       global closed\n\
             \x20       closed = True\n\
             def app(environ, start_response):\n\
             \x20   start_response('200 OK', [])\n\
             \x20   return Body()\n",
            "GET",
            &[],
        );
        assert_eq!(run.frames[1], Got::Body(b"partial".to_vec()));
        assert_eq!(
            run.frames[2],
            Got::Error("the application failed: RuntimeError: boom".into())
        );
        assert!(!run.kept_alive);
        assert_eq!(run.global("closed"), "True", "close() is always called");
    }

    #[test]
    fn bad_responses_are_500s() {
        for code in [
            "def app(e, sr):\n    sr('200 OK', [])\n    return ['text']\n",
            "def app(e, sr):\n    sr('OK', [])\n    return [b'']\n",
            "def app(e, sr):\n    sr('200 OK', [('X-A', 'a\\nb')])\n    return [b'']\n",
            "def app(e, sr):\n    sr('200 OK', [('X-A', 1)])\n    return [b'']\n",
            "def app(e, sr):\n    sr('200 OK', {'X-A': 'b'})\n    return [b'']\n",
            "def app(e, sr):\n    sr('200 OK', [])\n    sr('500 Oops', [])\n    return [b'']\n",
            "def app(e, sr):\n    return [b'no start_response']\n",
            "def app(e, sr):\n    sr('200 OK', [])\n    return None\n",
        ] {
            let run = serve(code, "GET", &[]);
            assert_eq!(run.status(), 500, "{code}");
        }
    }

    #[test]
    fn a_bare_bytes_body_is_sent_as_its_one_item() {
        let code = "def app(e, sr):\n\
                    \x20   sr('200 OK', [('Content-Length', '5')])\n\
                    \x20   return b'hello'\n";
        let run = serve(code, "GET", &[]);
        assert_eq!(
            run.frames,
            vec![
                Got::Head(200, vec![("Content-Length".into(), "5".into())]),
                Got::Body(b"hello".to_vec()),
                Got::End
            ]
        );
        assert!(run.kept_alive);
        let run = serve(code, "HEAD", &[]);
        assert_eq!(
            run.frames,
            vec![
                Got::Head(200, vec![("Content-Length".into(), "5".into())]),
                Got::End
            ]
        );
    }

    #[test]
    fn a_bare_str_bytearray_or_memoryview_is_a_500() {
        for body in ["'text'", "bytearray(b'abc')", "memoryview(b'abc')"] {
            let code = format!("def app(e, sr):\n    sr('200 OK', [])\n    return {body}\n");
            let run = serve(&code, "GET", &[]);
            assert_eq!(run.status(), 500, "{body}");
            assert!(run.kept_alive);
        }
    }

    #[test]
    fn exc_info_replaces_a_pending_head_and_reraises_after_it_was_sent() {
        let run = serve(
            "import sys\n\
             def app(e, sr):\n\
             \x20   sr('200 OK', [('X-First', '1')])\n\
             \x20   try:\n\
             \x20       raise ValueError('x')\n\
             \x20   except ValueError:\n\
             \x20       sr('503 Unavailable', [('X-Second', '1')], sys.exc_info())\n\
             \x20   return [b'sorry']\n",
            "GET",
            &[],
        );
        assert_eq!(
            run.frames[0],
            Got::Head(503, vec![("X-Second".into(), "1".into())])
        );
        let run = serve(
            "import sys\n\
             def app(e, sr):\n\
             \x20   write = sr('200 OK', [])\n\
             \x20   write(b'sent')\n\
             \x20   try:\n\
             \x20       raise ValueError('late')\n\
             \x20   except ValueError:\n\
             \x20       sr('500 Oops', [], sys.exc_info())\n\
             \x20   return [b'never']\n",
            "GET",
            &[],
        );
        assert_eq!(run.frames[1], Got::Body(b"sent".to_vec()));
        assert_eq!(
            run.frames[2],
            Got::Error("the application failed: ValueError: late".into())
        );
    }

    #[test]
    fn head_requests_stop_the_body_early_and_still_close() {
        let run = serve(
            "pulled = 0\nclosed = False\n\
             def app(e, sr):\n\
             \x20   def gen():\n\
             \x20       global pulled, closed\n\
             \x20       sr('200 OK', [('Content-Length', '6')])\n\
             \x20       try:\n\
             \x20           for chunk in (b'abc', b'def'):\n\
             \x20               pulled += 1\n\
             \x20               yield chunk\n\
             \x20       finally:\n\
             \x20           closed = True\n\
             \x20   return gen()\n",
            "HEAD",
            &[],
        );
        assert_eq!(
            run.frames,
            vec![
                Got::Head(200, vec![("Content-Length".into(), "6".into())]),
                Got::End
            ]
        );
        assert_eq!(run.global("pulled"), "1");
        assert_eq!(run.global("closed"), "True");
    }

    #[test]
    fn a_failing_close_after_a_whole_response_does_not_cut_it() {
        let run = serve(
            "class Body:\n\
             \x20   def __iter__(self):\n\
             \x20       yield b'whole'\n\
             \x20   def close(self):\n\
             \x20       raise OSError('cleanup failed')\n\
             def app(environ, start_response):\n\
             \x20   start_response('200 OK', [('Content-Length', '5')])\n\
             \x20   return Body()\n",
            "GET",
            &[],
        );
        assert_eq!(run.body(), b"whole");
        assert_eq!(run.frames.last(), Some(&Got::End));
        assert!(run.kept_alive);
    }

    #[test]
    fn content_length_is_honoured() {
        let run = serve(
            "def app(e, sr):\n    sr('200 OK', [('Content-Length', '3')])\n    return [b'abcdef']\n",
            "GET",
            &[],
        );
        assert_eq!(run.body(), b"abc");
        assert_eq!(run.frames.last(), Some(&Got::End));
        let run = serve(
            "def app(e, sr):\n    sr('200 OK', [('Content-Length', '10')])\n    return iter([b'abc'])\n",
            "GET",
            &[],
        );
        assert!(
            matches!(run.frames.last(), Some(Got::Error(m)) if m.contains("3 of the 10 bytes"))
        );
        assert!(!run.kept_alive);
    }

    #[test]
    fn file_wrapper_sends_regular_files_and_iterates_others() {
        let path = std::env::temp_dir().join(format!("ferrocorn-fw-{}", std::process::id()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let code = format!(
            "import io\n\
             def app(e, sr):\n\
             \x20   sr('200 OK', [])\n\
             \x20   f = open({path:?}, 'rb')\n\
             \x20   f.read(10)\n\
             \x20   return e['wsgi.file_wrapper'](f)\n"
        );
        let run = serve(&code, "GET", &[]);
        let kinds: Vec<String> = run
            .frames
            .iter()
            .map(|f| match f {
                Got::Body(b) => format!("body {}", b.len()),
                other => format!("{other:?}"),
            })
            .collect();
        assert!(
            run.body() == data[10..],
            "from the file's position to its end: {kinds:?}"
        );
        let run = serve(
            "import io\n\
             def app(e, sr):\n\
             \x20   sr('200 OK', [])\n\
             \x20   return e['wsgi.file_wrapper'](io.BytesIO(b'x' * 20000), 4096)\n",
            "GET",
            &[],
        );
        assert!(run.body() == vec![b'x'; 20000]);
        std::fs::remove_file(path).unwrap();
    }
}
