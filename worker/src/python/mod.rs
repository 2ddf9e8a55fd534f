//! The embedded CPython: its start and stop, the app, and the Python
//! objects of PEP 3333 (environ, `wsgi.input`, `wsgi.errors`,
//! `start_response`, `wsgi.file_wrapper`), driven by [`wsgi::WsgiApp`].

mod app;
mod environ;
mod errors;
mod exchange;
mod file_wrapper;
mod input;
mod interpreter;
mod latin1;
mod start_response;
mod traceback;
mod wsgi;

use pyo3::prelude::*;

use crate::settings::Settings;
pub use wsgi::WsgiApp;

/// Why a worker could not start serving.
pub enum BootError {
    /// Python itself did not start (exit code 3).
    Interpreter(String),
    /// The app did not import or build; already logged (exit code 4).
    AppLoad,
}

/// Starts Python in this (freshly forked) worker and loads the app.
pub fn boot(settings: &Settings) -> Result<WsgiApp, BootError> {
    interpreter::initialize(settings.virtualenv.as_deref(), &settings.pythonpath)
        .map_err(BootError::Interpreter)?;
    Python::attach(|py| {
        enable_faulthandler(py);
        let app = app::load(py, &settings.app).map_err(|e| {
            e.log(py);
            BootError::AppLoad
        })?;
        WsgiApp::new(py, app).map_err(|e| BootError::Interpreter(traceback::describe(py, &e)))
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
