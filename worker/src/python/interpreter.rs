//! Starting and stopping CPython inside a worker (in the master only
//! with `--preload`).
//!
//! The binary starts the CPython it links: configured like the `python`
//! of the virtualenv when one is given (its `bin/python` as `executable`,
//! so `site` finds its packages; else the `python` it was built against),
//! without Python's own signal handlers (the worker owns SIGINT/SIGTERM),
//! and with `sys.argv` set to the server's command line, as Gunicorn has it.
//!
//! The Python package runs inside a `python` that is already up (its
//! entry point releases the GIL, as [`initialize`] does, before running
//! the command): starting is then only the
//! `sys.path` part, and stopping runs what the interpreter's own exit
//! would (threads joined, atexit handlers, stdio flushed) without tearing
//! it down under the entry point's frame.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::host::{self, python_of};

/// The main thread's state, saved when the GIL is released after
/// initialization; restored to finalize.
static MAIN_THREAD: AtomicPtr<ffi::PyThreadState> = AtomicPtr::new(std::ptr::null_mut());

fn check(status: ffi::PyStatus) -> Result<(), String> {
    // SAFETY: `status` is a PyStatus returned by the C API; its strings,
    // when set, are static C strings.
    unsafe {
        if ffi::PyStatus_Exception(status) == 0 {
            return Ok(());
        }
        let text = |p: *const std::ffi::c_char| {
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        Err(match (text(status.func), text(status.err_msg)) {
            (Some(func), Some(msg)) => format!("Python initialization failed: {func}: {msg}"),
            (None, Some(msg)) => format!("Python initialization failed: {msg}"),
            _ => format!(
                "Python initialization failed (exit code {})",
                status.exitcode
            ),
        })
    }
}

fn c_string(bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes)
        .map_err(|_| format!("{:?} contains a NUL byte", String::from_utf8_lossy(bytes)))
}

/// Starts Python (unless it runs already: the Python package), then puts
/// `pythonpath` and the current directory in front of `sys.path`. Leaves
/// the GIL released.
pub fn initialize(virtualenv: Option<&Path>, pythonpath: &[PathBuf]) -> Result<(), String> {
    if let Some(running) = host::running() {
        // A venv here is another one of the same version (settle_virtualenv
        // dropped the running Python's own).
        return Python::attach(|py| {
            if let Some(venv) = virtualenv {
                add_site_dir(py, &host::site_packages(venv, running.version))?;
            }
            extend_sys_path(py, pythonpath)
        })
        .map_err(|e| format!("cannot set sys.path: {e}"));
    }
    let executable = match virtualenv {
        Some(venv) => Some(python_of(venv)),
        None => build_python(),
    };
    let executable = executable
        .map(|e| c_string(e.as_os_str().as_bytes()))
        .transpose()?;
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| c_string(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const std::ffi::c_char> = argv.iter().map(|a| a.as_ptr()).collect();

    let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
    let cfg = config.as_mut_ptr();
    // SAFETY: called once per process, before any other Python API. The
    // config is initialized by PyConfig_InitPythonConfig before its fields
    // are touched (through the raw pointer, as the C API expects) and
    // cleared after use; the strings and argv outlive the calls that copy
    // them.
    let result = unsafe {
        ffi::PyConfig_InitPythonConfig(cfg);
        (*cfg).install_signal_handlers = 0;
        (*cfg).parse_argv = 0;
        let result = (|| {
            if let Some(exe) = &executable {
                check(ffi::PyConfig_SetBytesString(
                    cfg,
                    &raw mut (*cfg).executable,
                    exe.as_ptr(),
                ))?;
            }
            check(ffi::PyConfig_SetBytesArgv(
                cfg,
                argv_ptrs.len() as ffi::Py_ssize_t,
                argv_ptrs.as_mut_ptr(),
            ))?;
            check(ffi::Py_InitializeFromConfig(cfg))
        })();
        ffi::PyConfig_Clear(cfg);
        if result.is_ok() {
            // Release the GIL; each request attaches again.
            MAIN_THREAD.store(ffi::PyEval_SaveThread(), Ordering::SeqCst);
        }
        result
    };
    result?;
    Python::attach(|py| extend_sys_path(py, pythonpath))
        .map_err(|e| format!("cannot set sys.path: {e}"))
}

/// A virtualenv of the same Python as the running one, other than its own
/// prefix: its packages load as `site` loads a venv's (`.pth` files too).
fn add_site_dir(py: Python<'_>, dir: &Path) -> PyResult<()> {
    py.import("site")?
        .call_method1("addsitedir", (dir.to_string_lossy().into_owned(),))?;
    Ok(())
}

/// The interpreter this binary was built against, when it is still there:
/// Python then has the same `sys.executable` and prefix as when run as that
/// `python`, instead of deriving them from the `ferrocorn` binary's path.
fn build_python() -> Option<PathBuf> {
    let python = PathBuf::from(option_env!("FERROCORN_BUILD_PYTHON")?);
    python.is_file().then_some(python)
}

/// `sys.path = [*pythonpath, cwd, *sys.path]`, skipping entries already there.
fn extend_sys_path(py: Python<'_>, pythonpath: &[PathBuf]) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let cwd = std::env::current_dir()?;
    let mut at = 0;
    for dir in pythonpath.iter().map(|d| cwd.join(d)).chain([cwd.clone()]) {
        let dir = dir.to_string_lossy().into_owned();
        if !path.contains(&dir)? {
            path.insert(at, dir)?;
            at += 1;
        }
    }
    Ok(())
}

/// Whether Python runs in this process: [`initialize`] succeeded (and no
/// finalize yet), or this is the Python package (always).
pub fn is_initialized() -> bool {
    host::running().is_some() || !MAIN_THREAD.load(Ordering::SeqCst).is_null()
}

/// Runs Python's shutdown (atexit handlers, joining non-daemon threads,
/// flushing stdio). The last Python call of the process.
pub fn finalize() {
    if host::running().is_some() {
        // A worker of the Python package: its process ends right after,
        // below the entry point's frame; Py_FinalizeEx would tear the
        // interpreter down under it. What the user's code can see of an
        // exit runs here instead, in the order Py_FinalizeEx runs it.
        Python::attach(run_exit_steps);
        return;
    }
    let main = MAIN_THREAD.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if main.is_null() {
        return;
    }
    // SAFETY: `main` is the state PyEval_SaveThread returned on this same
    // (only) thread, restored once; no Python object is used afterwards.
    unsafe {
        ffi::PyEval_RestoreThread(main);
        if ffi::Py_FinalizeEx() < 0 {
            warning!("Python finalization reported an error");
        }
    }
}

/// `threading._shutdown()` (non-daemon threads joined), the atexit
/// handlers, then stdout and stderr flushed.
fn run_exit_steps(py: Python<'_>) {
    // No thread can exist unless threading was imported.
    let threading_imported = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules")?.contains("threading"))
        .unwrap_or(false);
    let call = |module: &str, function: &str| {
        if let Err(e) = py.import(module).and_then(|m| m.call_method0(function)) {
            warning!("{module}.{function}() failed at worker exit: {e}");
        }
    };
    if threading_imported {
        call("threading", "_shutdown");
    }
    call("atexit", "_run_exitfuncs");
    super::fork::flush_stdio(py);
}
