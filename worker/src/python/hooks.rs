//! Gunicorn's worker-side server hooks, read by the worker from the `-c`
//! config file (the master only learned their names: the file runs in a
//! subprocess there). The worker `exec`s the file in its own interpreter
//! after fork and calls, with small stand-ins for Gunicorn's objects
//! (`worker.pid`, `worker.age`, `worker.log`, `req.method`/`path`/`uri`/
//! `headers`, `resp.status`/`headers`):
//!
//! - `post_fork(server, worker)`: Python started, before the app loads
//!   (with `--preload`, after the fork from the app-holding master);
//! - `post_worker_init(worker)`: after the app loaded;
//! - `pre_request(worker, req)`: before the app is called (raising makes
//!   the request a 500, as in Gunicorn);
//! - `post_request(worker, req, environ, resp)`: after the response
//!   (raising is logged);
//! - `worker_int(worker)`: on SIGINT/SIGQUIT, before the worker quits,
//!   and when `--reload` restarts it (as Gunicorn's reloader calls it);
//! - `worker_abort(worker)`: past `--timeout`, when the interpreter gets
//!   control: the master sends a real-time signal first
//!   ([`crate::signals::worker_abort_signal`]) whose Python-level handler
//!   (CPython runs it between bytecodes of the main thread, so app code
//!   stuck in a Python loop or a sleep gets interrupted) calls the hook,
//!   then aborts: the usual SIGABRT dump and 504 follow. Stuck in C code
//!   holding the GIL, the handler never runs; the master sends SIGABRT a
//!   tick later regardless;
//! - `worker_exit(server, worker)`: when the worker leaves its loop.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use super::traceback;
use crate::logging::{self, Level};

/// The stand-ins and the glue, as Python (after the stand-ins shared with
/// the master's hook runner).
const HELPERS: &str = concat!(
    include_str!("hook_stand_ins.py"),
    r#"
import os, sys, time, traceback, types

class Server:
    """The master (Gunicorn's arbiter) as worker hooks see it."""
    def __init__(self, pid, log, cfg):
        self.pid, self.log, self.cfg = pid, log, cfg

class Worker:
    """This worker: pid, ppid, age (spawn order in the master), log, booted, nr (requests)."""
    def __init__(self, age, ppid, log, cfg):
        self.age, self.ppid, self.log, self.cfg = age, ppid, log, cfg
        self.pid = os.getpid()
        self.booted = False
        self.alive = True
        self.nr = 0
        self.started = time.time()

class Request:
    """What Gunicorn's req offers hooks, from the environ."""
    def __init__(self, environ):
        self.method = environ.get("REQUEST_METHOD", "")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.uri = environ.get("REQUEST_URI") or (self.path + ("?" + self.query if self.query else ""))
        proto = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        try:
            self.version = tuple(int(n) for n in proto.split("/", 1)[1].split("."))
        except (IndexError, ValueError):
            self.version = (1, 1)
        self.scheme = environ.get("wsgi.url_scheme", "http")
        self.remote_addr = environ.get("REMOTE_ADDR")
        headers = []
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers.append((key[5:].replace("_", "-"), value))
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                headers.append((key.replace("_", "-"), value))
        self.headers = headers

class Response:
    """What the app passed to start_response."""
    def __init__(self):
        self.status = None
        self.status_code = None
        self.headers = []

def install_worker_abort(signum, worker_abort, worker, timeout, silent_for):
    import signal
    def on_timeout(sig, frame):
        if silent_for() <= timeout:
            # Late: the request ended and the worker beat since; the master
            # saw that too and will not abort it.
            worker.log.debug("worker_abort: the worker is no longer stuck")
            return
        worker.alive = False
        try:
            worker_abort(worker)
        except BaseException:
            worker.log.error("Exception in worker_abort hook\n%s", traceback.format_exc().rstrip())
        os.abort()
    signal.signal(signum, on_timeout)

def load(path, settings):
    ns = {"__file__": path, "__name__": "__config__"}
    with open(path, "rb") as f:
        exec(compile(f.read(), path, "exec"), ns)
    cfg = types.SimpleNamespace(**{k: v for k, v in ns.items()
                                   if not k.startswith("_") and not callable(v)
                                   and not isinstance(v, types.ModuleType)})
    # Every setting, from whichever source gave it (as in the master's hooks).
    for name, repeatable, values in settings:
        setattr(cfg, name, [_value(v) for v in values] if repeatable
                else _value(values[0]) if values else None)
    return ns, cfg

def before(pre_request, worker, environ, start_response):
    req = Request(environ)
    resp = Response()
    def recording_start_response(status, headers, exc_info=None):
        resp.status = status
        try:
            resp.status_code = int(str(status).split(None, 1)[0])
        except ValueError:
            pass
        resp.headers = list(headers)
        return start_response(status, headers, exc_info)
    worker.nr += 1
    if pre_request is not None:
        pre_request(worker, req)
    return req, resp, recording_start_response
"#
);

/// Writes a hook's `log.*` line to the error log.
#[pyfunction]
fn emit(level: &str, message: &str) {
    logging::log(
        Level::parse(level).unwrap_or(Level::Info),
        format_args!("{message}"),
    );
}

/// Seconds since this worker's last heartbeat (for `worker_abort`).
#[pyfunction]
fn silent_for() -> f64 {
    crate::supervisor::heartbeat::silent_for().map_or(0.0, |d| d.as_secs_f64())
}

/// The hooks the config file defines, and what they are called with.
pub struct Hooks {
    helpers: Py<PyModule>,
    server: Py<PyAny>,
    worker: Py<PyAny>,
    post_fork: Option<Py<PyAny>>,
    post_worker_init: Option<Py<PyAny>>,
    pre_request: Option<Py<PyAny>>,
    post_request: Option<Py<PyAny>>,
    worker_int: Option<Py<PyAny>>,
    worker_exit: Option<Py<PyAny>>,
}

/// A request seen by `pre_request`, for `post_request`.
pub struct RequestHooks {
    req: Py<PyAny>,
    resp: Py<PyAny>,
}

impl Hooks {
    /// Runs the config file and picks the hooks it defines. `master`: the
    /// master's pid; `age`: this worker's spawn number.
    pub fn load(
        py: Python<'_>,
        settings: &crate::settings::Settings,
        master: i32,
        age: u64,
    ) -> PyResult<Hooks> {
        let file = settings
            .config
            .as_deref()
            .expect("hooks come from a config file");
        let (names, timeout) = (&settings.hooks, settings.timeout);
        let helpers = PyModule::from_code(
            py,
            &CString::new(HELPERS).expect("no NUL in the helpers"),
            c"ferrocorn_hooks.py",
            c"ferrocorn_hooks",
        )?;
        let (ns, cfg): (Bound<'_, PyDict>, Bound<'_, PyAny>) = helpers
            .getattr("load")?
            .call1((file.to_string_lossy().into_owned(), settings.for_hooks()))?
            .extract()?;
        let log = helpers
            .getattr("Log")?
            .call1((wrap_pyfunction!(emit, &helpers)?,))?;
        let server = helpers.getattr("Server")?.call1((master, &log, &cfg))?;
        let ppid = nix::unistd::getppid().as_raw();
        let worker = helpers.getattr("Worker")?.call1((age, ppid, &log, &cfg))?;
        let pick = |name: &str| -> PyResult<Option<Py<PyAny>>> {
            if !names.iter().any(|n| n == name) {
                return Ok(None);
            }
            Ok(ns
                .get_item(name)?
                .filter(|f| f.is_callable())
                .map(Bound::unbind))
        };
        if let Some(worker_abort) = pick("worker_abort")? {
            helpers.getattr("install_worker_abort")?.call1((
                crate::signals::worker_abort_signal(),
                worker_abort,
                &worker,
                timeout,
                wrap_pyfunction!(silent_for, &helpers)?,
            ))?;
        }
        Ok(Hooks {
            post_fork: pick("post_fork")?,
            post_worker_init: pick("post_worker_init")?,
            pre_request: pick("pre_request")?,
            post_request: pick("post_request")?,
            worker_int: pick("worker_int")?,
            worker_exit: pick("worker_exit")?,
            helpers: helpers.unbind(),
            server: server.unbind(),
            worker: worker.unbind(),
        })
    }

    /// `post_fork(server, worker)`; an exception fails the boot.
    pub fn post_fork(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(f) = &self.post_fork {
            f.call1(py, (&self.server, &self.worker))?;
        }
        Ok(())
    }

    /// `post_worker_init(worker)`; an exception fails the boot.
    pub fn post_worker_init(&self, py: Python<'_>) -> PyResult<()> {
        self.worker.setattr(py, "booted", true)?;
        if let Some(f) = &self.post_worker_init {
            f.call1(py, (&self.worker,))?;
        }
        Ok(())
    }

    /// Whether requests go through hooks.
    pub fn on_requests(&self) -> bool {
        self.pre_request.is_some() || self.post_request.is_some()
    }

    /// Calls `pre_request(worker, req)` and returns the `start_response`
    /// to give the app (it records the status for `post_request`).
    pub fn before_request<'py>(
        &self,
        py: Python<'py>,
        environ: &Bound<'py, PyAny>,
        start_response: Bound<'py, PyAny>,
    ) -> PyResult<(RequestHooks, Bound<'py, PyAny>)> {
        let (req, resp, start_response): (Py<PyAny>, Py<PyAny>, Bound<'py, PyAny>) = self
            .helpers
            .bind(py)
            .getattr("before")?
            .call1((
                self.pre_request.as_ref().map(|f| f.bind(py)),
                &self.worker,
                environ,
                start_response,
            ))?
            .extract()?;
        Ok((RequestHooks { req, resp }, start_response))
    }

    /// `post_request(worker, req, environ, resp)`; an exception is logged.
    pub fn after_request(&self, py: Python<'_>, seen: RequestHooks, environ: &Bound<'_, PyAny>) {
        if let Some(f) = &self.post_request {
            let called = f.call1(py, (&self.worker, seen.req, environ, seen.resp));
            log_failure(py, "post_request", called);
        }
    }

    /// `worker_int(worker)`, before a quick exit; an exception is logged.
    pub fn worker_int(&self, py: Python<'_>) {
        if let Some(f) = &self.worker_int {
            log_failure(py, "worker_int", f.call1(py, (&self.worker,)));
        }
    }

    /// Whether `worker_int` is defined (INT/QUIT then wait for it).
    pub fn has_worker_int(&self) -> bool {
        self.worker_int.is_some()
    }

    /// `worker_exit(server, worker)`; an exception is logged.
    pub fn worker_exit(&self, py: Python<'_>) {
        let _ = self.worker.setattr(py, "alive", false);
        if let Some(f) = &self.worker_exit {
            let called = f.call1(py, (&self.server, &self.worker));
            log_failure(py, "worker_exit", called);
        }
    }
}

fn log_failure(py: Python<'_>, hook: &str, called: PyResult<Py<PyAny>>) {
    if let Err(e) = called {
        let text = traceback::traceback(py, &e).unwrap_or_else(|| traceback::describe(py, &e));
        error!("Exception in {hook} hook\n{}", text.trim_end());
    }
}
