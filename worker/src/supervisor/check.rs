//! `--check-config`: print the effective settings, then load the app once
//! in a forked child (the master itself stays free of Python), as
//! `gunicorn --check-config` does.

use nix::sys::wait::{waitpid, WaitStatus};

use super::spawn;
use super::workers::{EXIT_APP_LOAD_ERROR, EXIT_WORKER_BOOT_ERROR};
use crate::python::{self, BootError};
use crate::settings::Settings;

/// Returns the exit code: 0, 3 (Python did not start) or 4 (app load).
pub fn run(settings: &Settings) -> u8 {
    for (name, values) in &settings.effective {
        let shown = match values.as_slice() {
            [] => "None".to_owned(),
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        println!("{name:<22} = {shown}");
    }
    println!("{:<22} = {}", "app", settings.app);
    for w in &settings.warnings {
        println!("warning: {w}");
    }
    match spawn::fork() {
        Ok(Some(child)) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => {
                println!("app {} loads: configuration OK", settings.app);
                0
            }
            Ok(WaitStatus::Exited(_, code)) => {
                eprintln!("Error: app {} failed to load", settings.app);
                code as u8
            }
            other => {
                eprintln!("Error: the app check ended with {other:?}");
                EXIT_WORKER_BOOT_ERROR as u8
            }
        },
        Ok(None) => {
            crate::signals::restore_mask(nix::sys::signal::SigSet::empty());
            // Only the app: server hooks are not run by a check.
            let mut app_only = settings.clone();
            app_only.hooks.clear();
            let me = python::WorkerInfo {
                master: nix::unistd::getppid().as_raw(),
                age: 0,
            };
            let code = match python::boot(&app_only, None, me) {
                Ok(app) => {
                    drop(app);
                    python::finalize();
                    0
                }
                Err(BootError::Interpreter(why)) => {
                    error!("Python failed to start: {why}");
                    EXIT_WORKER_BOOT_ERROR
                }
                Err(BootError::AppLoad) => EXIT_APP_LOAD_ERROR,
            };
            std::process::exit(code)
        }
        Err(e) => {
            eprintln!("Error: cannot fork to check the app: {e}");
            1
        }
    }
}
