//! `--reload` (development): notices that a Python file of a loaded module
//! (`sys.modules`' `__file__`s) or a `--reload-extra-file` changed, by
//! comparing modification times. The serving loop asks between requests,
//! at most once a second ([`crate::worker::Handler::restart_reason`]); on a
//! change the worker leaves its loop like a recycled worker and the master
//! starts a fresh one, which imports the new code (Gunicorn's reloader
//! does the same from a thread).
//!
//! An app that no longer imports (a syntax error being typed) does not
//! stop the server: the worker serves 500s with the traceback (Gunicorn's
//! "fail app") and watches the files of the traceback, so fixing the file
//! brings the app back.

use std::ffi::CString;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyModule;

const HELPERS: &str = r#"
import os, sys

class Reloader:
    def __init__(self, extra):
        self.extra = list(extra)
        self.mtimes = {}
        self.changed()

    def files(self):
        for module in list(sys.modules.values()):
            name = getattr(module, "__file__", None)
            if isinstance(name, str):
                yield name[:-1] if name.endswith((".pyc", ".pyo")) else name
        yield from self.extra

    def changed(self):
        for name in self.files():
            try:
                mtime = os.stat(name).st_mtime_ns
            except OSError:
                continue
            if self.mtimes.setdefault(name, mtime) != mtime:
                return name
        return None

def files_of(exc, tb):
    """The files an import failure points at: a SyntaxError's file, and
    every file of the traceback."""
    files = []
    if isinstance(exc, SyntaxError) and exc.filename:
        files.append(exc.filename)
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return [f for f in files if os.path.isfile(f)]

def fail_app(text):
    body = text.encode("utf-8", "replace")
    def app(environ, start_response):
        start_response("500 Internal Server Error", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ])
        return [body]
    return app
"#;

fn helpers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    PyModule::from_code(
        py,
        &CString::new(HELPERS).expect("no NUL in the helpers"),
        c"ferrocorn_reloader.py",
        c"ferrocorn_reloader",
    )
}

/// Watches the files; [`Reloader::changed`] names the first changed one.
pub struct Reloader {
    scanner: Py<PyAny>,
}

impl Reloader {
    /// Takes the current modification times of the loaded modules' files,
    /// `extra` files and `also` (what a failed import pointed at).
    pub fn new(py: Python<'_>, extra: &[PathBuf], also: Vec<String>) -> PyResult<Reloader> {
        let mut files: Vec<String> = extra
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.extend(also);
        let scanner = helpers(py)?.getattr("Reloader")?.call1((files,))?;
        Ok(Reloader {
            scanner: scanner.unbind(),
        })
    }

    /// The first file whose modification time changed, if any.
    pub fn changed(&self, py: Python<'_>) -> Option<String> {
        match self.scanner.call_method0(py, "changed") {
            Ok(name) => name.extract::<Option<String>>(py).ok().flatten(),
            Err(e) => {
                warning!("reloader: {e}");
                None
            }
        }
    }
}

/// With `--reload`, what a worker serves when the app does not import:
/// 500 with `text` (the traceback), and the files to watch for the fix.
pub fn fail_app(
    py: Python<'_>,
    text: &str,
    err: Option<&PyErr>,
) -> PyResult<(Py<PyAny>, Vec<String>)> {
    let helpers = helpers(py)?;
    let app = helpers.getattr("fail_app")?.call1((text,))?.unbind();
    let files = match err {
        Some(e) => helpers
            .getattr("files_of")?
            .call1((e.value(py), e.traceback(py)))?
            .extract()?,
        None => Vec::new(),
    };
    Ok((app, files))
}
