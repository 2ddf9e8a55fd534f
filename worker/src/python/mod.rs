//! The embedded CPython: its start and stop, the app, and the Python
//! objects of PEP 3333 (environ, `wsgi.input`, `wsgi.errors`,
//! `start_response`, `wsgi.file_wrapper`), driven by [`wsgi::WsgiApp`].

mod app;
#[doc(hidden)]
pub mod bench;
mod environ;
mod errors;
mod exchange;
mod file_wrapper;
mod fork;
mod hooks;
pub mod host;
mod input;
mod interpreter;
mod latin1;
mod reloader;
mod start_response;
mod traceback;
mod wsgi;

use pyo3::prelude::*;

use crate::settings::Settings;
pub use fork::{fork_process, Preloaded};
pub use wsgi::WsgiApp;

/// Why a worker could not start serving.
pub enum BootError {
    /// Python itself did not start (exit code 3).
    Interpreter(String),
    /// The app did not import or build; already logged (exit code 4).
    AppLoad,
}

/// Who this worker is, for the hooks' `server` and `worker` stand-ins.
pub struct WorkerInfo {
    /// The master's pid (`server.pid`).
    pub master: i32,
    /// Spawn number in the master (`worker.age`).
    pub age: u64,
}

/// Starts Python in this (freshly forked) worker and loads the app, or
/// takes the app the master preloaded (Python already runs then). Runs
/// the config file's `post_fork` and `post_worker_init` hooks around it.
pub fn boot(
    settings: &Settings,
    preloaded: Option<Preloaded>,
    me: WorkerInfo,
) -> Result<WsgiApp, BootError> {
    if preloaded.is_none() {
        interpreter::initialize(settings.virtualenv.as_deref(), &settings.pythonpath)
            .map_err(BootError::Interpreter)?;
    }
    Python::attach(|py| {
        enable_faulthandler(py);
        let hook_failed = |e: PyErr| {
            let text = traceback::traceback(py, &e).unwrap_or_else(|| traceback::describe(py, &e));
            BootError::Interpreter(format!("a server hook failed\n{}", text.trim_end()))
        };
        let hooks = match (&settings.config, settings.hooks.is_empty()) {
            (Some(_), false) => {
                let hooks =
                    hooks::Hooks::load(py, settings, me.master, me.age).map_err(hook_failed)?;
                hooks.post_fork(py).map_err(hook_failed)?;
                Some(hooks)
            }
            _ => None,
        };
        let mut watch_also = Vec::new();
        // An app that failed to import is served as 500s until its files
        // change: one fixed while it was being imported must count, or the
        // worker would wait for the next edit (the reloader's watch starts
        // after the import). Not for an app that imported: one that writes
        // its own modules while importing would then restart forever.
        let import_started = std::time::SystemTime::now();
        let app = match preloaded {
            Some(p) => p.app,
            None if settings.reload => {
                let (app, files) = load_app_or_fail_app(py, settings)?;
                watch_also = files;
                app
            }
            None => load_app(py, settings)?,
        };
        let mut app = WsgiApp::new(py, app, &settings.app, hooks)
            .map_err(|e| BootError::Interpreter(traceback::describe(py, &e)))?;
        if settings.reload {
            let failed_import_started = (!watch_also.is_empty()).then_some(import_started);
            let watcher = reloader::Reloader::new(
                py,
                &settings.reload_extra_files,
                watch_also,
                settings.reload_engine,
                failed_import_started,
            )
            .map_err(|e| BootError::Interpreter(traceback::describe(py, &e)))?;
            app.set_reloader(watcher);
        }
        if let Some(hooks) = app.hooks() {
            hooks.post_worker_init(py).map_err(hook_failed)?;
        }
        Ok(app)
    })
}

/// Runs `worker_int` (on SIGINT/SIGQUIT, or a `--reload` restart) if the
/// config file defines it;
/// false when it does not.
pub fn run_worker_int(app: &WsgiApp) -> bool {
    match app.hooks().filter(|h| h.has_worker_int()) {
        Some(hooks) => {
            Python::attach(|py| hooks.worker_int(py));
            true
        }
        None => false,
    }
}

/// Runs `worker_exit` if the config file defines it.
pub fn run_worker_exit(app: &WsgiApp) {
    if let Some(hooks) = app.hooks() {
        Python::attach(|py| hooks.worker_exit(py));
    }
}

/// Whether the config file defines `worker_int`: the worker then lets its
/// loop see SIGINT/SIGQUIT instead of exiting in the signal handler.
pub fn wants_worker_int(settings: &Settings) -> bool {
    settings.hooks.iter().any(|h| h == "worker_int")
}

/// `--preload`: starts Python in the master and imports the app there.
pub fn preload(settings: &Settings) -> Result<Preloaded, BootError> {
    interpreter::initialize(settings.virtualenv.as_deref(), &settings.pythonpath)
        .map_err(BootError::Interpreter)?;
    Python::attach(|py| {
        Ok(Preloaded {
            app: load_app(py, settings)?,
        })
    })
}

/// Whether this process runs Python (a preloading master, or any process
/// of the Python package).
pub fn is_running() -> bool {
    interpreter::is_initialized()
}

/// Whether Ferrocorn runs as the Python package (inside the app's own
/// `python`) rather than as the binary embedding one.
pub fn is_package() -> bool {
    host::running().is_some()
}

/// The Python package's entry point around the whole command: records the
/// running Python and releases the GIL while `command` runs (everything
/// past this point attaches when it needs Python, as in the binary).
pub fn run_in_running_python<R: Send>(
    py: Python<'_>,
    python: host::RunningPython,
    command: impl FnOnce() -> R + Send,
) -> R {
    host::set_running(python);
    py.detach(command)
}

/// Settles which virtualenv the app uses: `--virtualenv` or
/// `$VIRTUAL_ENV`, else one that the `--chdir` directory holds (`.venv`,
/// `venv`); refuses one made by another Python than the one serving. The
/// running Python's own venv needs nothing done.
pub fn settle_virtualenv(settings: &mut Settings) -> Result<(), String> {
    if settings.virtualenv.is_none() {
        if let Some(found) = settings.chdir.as_deref().and_then(host::venv_in) {
            settings.virtualenv = Some(found);
        }
    }
    let Some(venv) = settings.virtualenv.as_deref() else {
        return Ok(());
    };
    if host::is_running_prefix(venv) {
        settings.virtualenv = None;
        return Ok(());
    }
    host::check_virtualenv(venv)
}

/// `--reload`: an app that does not import is logged and replaced by one
/// answering 500 with the traceback, until a file it points at changes.
fn load_app_or_fail_app(
    py: Python<'_>,
    settings: &Settings,
) -> Result<(Py<PyAny>, Vec<String>), BootError> {
    let err = match app::load(py, &settings.app) {
        Ok(app) => return Ok((app, Vec::new())),
        Err(err) => err,
    };
    err.log(py);
    let (text, exception) = match &err {
        app::LoadError::Exception(e) => (
            traceback::traceback(py, e).unwrap_or_else(|| traceback::describe(py, e)),
            Some(e),
        ),
        app::LoadError::Message(m) => (m.clone(), None),
    };
    warning!("--reload: serving 500s until the app imports again");
    reloader::fail_app(py, &format!("The app failed to load:\n\n{text}"), exception)
        .map_err(|e| BootError::Interpreter(traceback::describe(py, &e)))
}

fn load_app(py: Python<'_>, settings: &Settings) -> Result<Py<PyAny>, BootError> {
    app::load(py, &settings.app).map_err(|e| {
        e.log(py);
        BootError::AppLoad
    })
}

/// Python's faulthandler on the error log, for every thread: a worker
/// aborted by `--timeout` (SIGABRT) or crashing (SIGSEGV...) writes where
/// each thread was, even when stuck in C code holding the GIL (the dump is
/// a C signal handler; it does not need the interpreter loop). It then
/// chains to the worker's own SIGABRT handler.
fn enable_faulthandler(py: Python<'_>) {
    let fd = crate::logging::raw_fd();
    let enabled = py
        .import("faulthandler")
        .and_then(|m| m.call_method1("enable", (fd, true)));
    if let Err(e) = enabled {
        warning!("cannot enable faulthandler: {e}");
    }
}

/// Shuts Python down (atexit handlers run); the worker exits right after.
pub fn finalize() {
    interpreter::finalize();
}

/// Python for unit tests: one interpreter per test process.
#[cfg(test)]
pub mod test_support {
    use pyo3::prelude::*;

    pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
        Python::initialize();
        Python::attach(f)
    }
}
