//! `ferrocorn`: a pre-fork WSGI server for nginx. A master process (no
//! Python in it) binds the sockets and supervises worker processes; each
//! worker embeds CPython, imports the app, and serves requests that
//! nginx's ferrocorn module sends over the Ferrocorn protocol.
//!
//! # Layout
//!
//! - `main.rs`: calls [`cli`]; `lib.rs` (this file): parse the command
//!   line, call [`supervisor::run`] (or [`ctl::client`] for `ferrocorn
//!   ctl`), exit. A library so that `cargo bench -p ferrocorn` can drive
//!   [`hot_path`].
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
//! - [`python`]: the embedded interpreter: `interpreter` (start/stop),
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

use std::process::ExitCode;

use settings::Command;

/// The `ferrocorn` command: parses arguments, environment and config file,
/// then runs the supervisor (or prints help or the version); `ferrocorn
/// ctl` (or the binary named `ferrocornctl`) is the control socket client.
pub fn cli() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().collect();
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
        Ok(Command::Run(settings)) => ExitCode::from(supervisor::run(*settings)),
        Ok(Command::Help) => {
            print!("{}", settings::help());
            ExitCode::SUCCESS
        }
        Ok(Command::Markdown) => {
            print!("{}", settings::markdown());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("ferrocorn {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(2)
        }
    }
}
