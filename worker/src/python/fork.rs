//! `--preload`: the master imports the app, then forks workers from a
//! process that runs Python. The fork follows CPython's own `os.fork`
//! protocol: with the GIL held, stdio flushed (or buffered output would be
//! written twice), `PyOS_BeforeFork` (takes the import lock and other
//! interpreter locks), fork, then `PyOS_AfterFork_Child`/`_Parent`.

use nix::unistd::ForkResult;
use pyo3::ffi;
use pyo3::prelude::*;

/// The app imported by the master, handed to each worker at fork.
pub struct Preloaded {
    pub(super) app: Py<PyAny>,
}

/// Forks with `raw_fork` (which does only the fork itself), through
/// [`fork_with_python`] when this process runs Python.
pub fn fork_process(raw_fork: impl FnOnce() -> nix::Result<ForkResult>) -> nix::Result<ForkResult> {
    if super::is_running() {
        fork_with_python(raw_fork)
    } else {
        raw_fork()
    }
}

/// Forks with `raw_fork` (which does only the fork itself) while this
/// process runs Python.
pub fn fork_with_python(
    raw_fork: impl FnOnce() -> nix::Result<ForkResult>,
) -> nix::Result<ForkResult> {
    Python::attach(|py| {
        flush_stdio(py);
        warn_about_threads();
        // SAFETY: the GIL is held (attach); Before/AfterFork are paired on
        // every path, AfterFork_Child only in the child, as os.fork does.
        unsafe { ffi::PyOS_BeforeFork() };
        let result = raw_fork();
        match result {
            // SAFETY: see above; this is the child, GIL still held.
            Ok(ForkResult::Child) => unsafe { ffi::PyOS_AfterFork_Child() },
            // SAFETY: see above; the parent (or no fork at all).
            _ => unsafe { ffi::PyOS_AfterFork_Parent() },
        }
        result
    })
}

/// Flushes `sys.stdout` and `sys.stderr` (before a fork or an exit).
pub(super) fn flush_stdio(py: Python<'_>) {
    let Ok(sys) = py.import("sys") else { return };
    for name in ["stdout", "stderr"] {
        if let Ok(stream) = sys.getattr(name) {
            let _ = stream.call_method0("flush");
        }
    }
}

/// Only the forking thread exists in the child: threads the app started
/// at import (in the master) are gone in every worker. Say so once.
fn warn_about_threads() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        WARNED.call_once(|| {
            warning!(
                "the app started {} threads while preloaded in the master; \
                 workers are forked without them (start threads in post_fork or lazily)",
                threads - 1
            )
        });
    }
}
