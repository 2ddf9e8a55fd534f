//! `--reload` (development): notices that a Python file of a loaded module
//! (`sys.modules`' `__file__`s) or a `--reload-extra-file` changed, with
//! inotify watches on their directories ([`FileWatch`]) or by comparing
//! modification times (`--reload-engine poll`, or where inotify cannot be
//! had). The serving loop asks between requests,
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::settings::ReloadEngine;
use crate::worker::file_watch::FileWatch;

const HELPERS: &str = r#"
import os, sys

class Reloader:
    def __init__(self, extra, since_ns):
        self.extra = list(extra)
        self.mtimes = {}
        self.changed()
        # A file written after since_ns (the import's start) may have been
        # imported in its old state.
        self.newer = None
        if since_ns is not None:
            self.newer = next((n for n, t in self.mtimes.items() if t > since_ns), None)

    def module_count(self):
        return len(sys.modules)

    def file_list(self):
        return list(self.files())

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
    /// Lists the files, and compares their modification times when there
    /// is no inotify watch.
    scanner: Py<PyAny>,
    watch: Option<Watching>,
    /// A file modified after the import started, reported at the first
    /// look: the change came before either engine watched.
    newer: Option<String>,
}

/// How much a file's modification time may lag the clock (file systems
/// stamp with the kernel's coarse clock, a tick behind at most): a file
/// stamped this long before the import started counts as changed during
/// it. Too early at worst costs one more restart.
const MTIME_LAG: Duration = Duration::from_millis(50);

/// The inotify engine's state.
struct Watching {
    files: FileWatch,
    /// `len(sys.modules)` when the files were last listed: a module
    /// imported since (a lazy import) gets its file watched too.
    modules: usize,
}

impl Reloader {
    /// Takes the current modification times of the loaded modules' files,
    /// `extra` files and `also` (what a failed import pointed at), and
    /// watches them with inotify unless `engine` says `poll`. A file
    /// modified after `import_started` (given when the app failed to
    /// import) counts as changed already.
    pub fn new(
        py: Python<'_>,
        extra: &[PathBuf],
        also: Vec<String>,
        engine: ReloadEngine,
        import_started: Option<SystemTime>,
    ) -> PyResult<Reloader> {
        let mut files: Vec<String> = extra
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.extend(also);
        let since_ns = import_started
            .and_then(|t| t.checked_sub(MTIME_LAG))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos());
        let scanner = helpers(py)?.getattr("Reloader")?.call1((files, since_ns))?;
        let newer = scanner.getattr("newer")?.extract()?;
        let mut reloader = Reloader {
            scanner: scanner.unbind(),
            watch: None,
            newer,
        };
        if engine != ReloadEngine::Poll {
            match FileWatch::new() {
                Ok(files) => {
                    reloader.watch = Some(Watching { files, modules: 0 });
                    match reloader.watch_new_modules(py) {
                        Ok(()) => debug!(
                            "reloader: inotify watches {} files",
                            reloader.watch.as_ref().map_or(0, |w| w.files.watched())
                        ),
                        Err(e) => {
                            reloader.watch = None;
                            let why = format!(
                                "reloader: cannot watch with inotify ({e}): polling instead"
                            );
                            if engine == ReloadEngine::Inotify {
                                warning!("{why}");
                            } else {
                                info!("{why}");
                            }
                        }
                    }
                }
                Err(e) => warning!("reloader: no inotify instance ({e}): polling instead"),
            }
        }
        Ok(reloader)
    }

    /// With inotify: watches the files of modules imported since the last
    /// look (all of them the first time).
    fn watch_new_modules(&mut self, py: Python<'_>) -> Result<(), String> {
        let Some(watch) = self.watch.as_mut() else {
            return Ok(());
        };
        let scanner = self.scanner.bind(py);
        let count = |name: &str| -> PyResult<usize> { scanner.call_method0(name)?.extract() };
        let modules = count("module_count").map_err(|e| e.to_string())?;
        if modules == watch.modules {
            return Ok(());
        }
        let files: Vec<String> = scanner
            .call_method0("file_list")
            .and_then(|l| l.extract())
            .map_err(|e| e.to_string())?;
        for file in &files {
            watch.files.add(file).map_err(|e| e.to_string())?;
        }
        watch.modules = modules;
        Ok(())
    }

    /// The first file that changed, if any.
    pub fn changed(&mut self, py: Python<'_>) -> Option<String> {
        if let Some(file) = self.newer.take() {
            return Some(file);
        }
        if self.watch.is_some() {
            if let Err(e) = self.watch_new_modules(py) {
                warning!("reloader: cannot watch a newly imported module's file: {e}");
            }
            if let Some(watch) = self.watch.as_mut() {
                return watch.files.changed();
            }
        }
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
