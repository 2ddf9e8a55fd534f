//! `ferrocorn`: a pre-fork WSGI server for nginx. A master process (no
//! app code in it) binds the sockets and supervises worker processes;
//! each worker runs CPython, imports the app, and serves requests that
//! nginx's ferrocorn module sends over the Ferrocorn protocol. Built two
//! ways: the `ferrocorn` binary (embedding libpython), and, through
//! `python-package/`, an extension module that runs the same command
//! inside the app's own `python` ([`run_in_python`]).
//!
//! # Layout
//!
//! - `main.rs`: calls [`cli`]; `lib.rs` (this file): parse the command
//!   line, call [`supervisor::run`] (or [`ctl::client`] for `ferrocorn
//!   ctl`), exit ([`main_with_args`], shared by both builds). A library so
//!   that `python-package/` can call it and `cargo bench -p ferrocorn` can
//!   drive [`hot_path`].
//! - [`ctl`]: `ferrocorn ctl`, the control socket's client and protocol.
//! - [`settings`]: every setting as data (flags, default, validator, doc);
//!   the parser and `--help` come from that table; `settings_guides` (a
//!   test) keeps the guides in `docs/` true to it.
//! - [`logging`]: the error log in Gunicorn's line format.
//! - [`access_log`]: one line per request in Gunicorn's
//!   `access_log_format`, written by workers.
//! - [`metrics`]: statsd (Gunicorn's names) and the master's Prometheus
//!   endpoint, from counters shared across fork.
//! - [`signals`]: every signal handler (master: self-pipe queue; worker:
//!   flags).
//! - [`supervisor`]: the master. `arbiter` (the loop and one handler per
//!   signal), `workers` (its decisions, tested without fork), `listener`
//!   (binding), `heartbeat` (liveness of workers), `spawn` (the fork
//!   boundary and a worker's life), `systemd` (`Type=notify`, socket
//!   activation), `hook_runner` (the config file's master-side server
//!   hooks, run in a python process of their own).
//! - [`worker`]: the protocol side of a worker, no Python: `connection`
//!   (framed, non-blocking socket I/O), `request_body` (the body as a
//!   stream), `response` and `response_head` (what goes back, and how it
//!   is encoded), `serve` (the poll loop with keep-alive).
//! - [`python`]: the interpreter: `host` (which CPython serves: the one
//!   the binary embeds, or the running one of the pip-installed package,
//!   and whether a virtualenv fits it), `interpreter` (start/stop),
//!   `app` (`MODULE:APP`), `environ`, `input`, `errors`, `start_response`,
//!   `file_wrapper`, `wsgi` (calls the app and sends its response),
//!   `exchange` (the request state shared with Python objects), `hooks`
//!   (the worker-side server hooks), `reloader` (`--reload`), `latin1`
//!   and `traceback` (conversions).

#[macro_use]
mod logging;
mod access_log;
mod config_file;
mod ctl;
mod metrics;
mod python;
mod settings;
mod settings_compat;
#[cfg(test)]
mod settings_guides;
mod signals;
mod supervisor;
mod worker;

#[doc(hidden)]
pub mod hot_path;

use std::ffi::OsString;
use std::process::ExitCode;

use settings::Command;

pub use python::host::{PythonVersion, RunningPython};

/// The `ferrocorn` binary's command line: see [`main_with_args`].
pub fn cli() -> ExitCode {
    ExitCode::from(main_with_args(std::env::args_os().collect()))
}

/// The Python package's `ferrocorn` (`ferrocorn._native.run`): the same
/// command, in the running `python` it is called from, with the GIL held
/// by the caller. `args` is `sys.argv`.
pub fn run_in_python(py: pyo3::Python<'_>, args: Vec<OsString>, python: RunningPython) -> u8 {
    python::run_in_running_python(py, python, || main_with_args(args))
}

/// The `ferrocorn` command (`args[0]` is the program): parses arguments,
/// environment and config file, then runs the supervisor (or prints help
/// or the version); `ferrocorn ctl` (or the program named
/// `ferrocornctl`) is the control socket client. Returns the exit code.
pub fn main_with_args(mut args: Vec<OsString>) -> u8 {
    let program = if args.is_empty() {
        Default::default()
    } else {
        args.remove(0)
    };
    // `ferrocorn ctl ...`, or the binary installed as `ferrocornctl`.
    if std::path::Path::new(&program).file_name() == Some("ferrocornctl".as_ref()) {
        return ctl::client::main(&args);
    }
    if args.first().is_some_and(|a| a == "ctl") {
        return ctl::client::main(&args[1..]);
    }
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let env = settings::Environment::from_vars(&vars);
    match settings::parse_all(&args, env, &config_file::evaluate) {
        Ok(Command::Run(mut settings)) => {
            if let Err(e) = python::settle_virtualenv(&mut settings) {
                eprintln!("Error: {e}");
                return 2;
            }
            supervisor::run(*settings)
        }
        Ok(Command::Help) => {
            print!("{}", settings::help());
            0
        }
        Ok(Command::Markdown) => {
            print!("{}", settings::markdown());
            0
        }
        Ok(Command::Version) => {
            println!(
                "ferrocorn {} ({})",
                env!("CARGO_PKG_VERSION"),
                python::host::describe()
            );
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            2
        }
    }
}
