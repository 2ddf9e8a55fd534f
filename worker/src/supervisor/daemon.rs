//! `--daemon`: the master detaches itself, as Gunicorn's `util.daemonize`
//! does: fork (the command returns), `setsid`, fork again (no controlling
//! terminal can come back), standard streams to `/dev/null`. The working
//! directory stays (relative paths in the settings keep their meaning).
//! A master started by a USR2 upgrade is already detached: it skips this.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, setsid, ForkResult};

/// Detaches; returns in the grandchild only. Must run while the process
/// has a single thread.
pub fn daemonize() -> Result<(), String> {
    for step in ["first", "second"] {
        // SAFETY: called at the start of the master, before any thread,
        // signal handler state or child process exists; the parent leaves
        // at once with `_exit`, running nothing else. (The Python package's
        // master runs Python: fork_process forks as os.fork does then.)
        let raw_fork = || unsafe { nix::unistd::fork() };
        match crate::python::fork_process(raw_fork) {
            Ok(ForkResult::Parent { .. }) => {
                // SAFETY: ends the parent without running atexit handlers
                // or destructors that the child still relies on.
                unsafe { libc::_exit(0) }
            }
            Ok(ForkResult::Child) => {}
            Err(e) => return Err(format!("--daemon: {step} fork failed: {e}")),
        }
        if step == "first" {
            setsid().map_err(|e| format!("--daemon: setsid failed: {e}"))?;
        }
    }
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty())
        .map_err(|e| format!("--daemon: cannot open /dev/null: {e}"))?;
    dup2_stdin(&null)
        .and_then(|()| dup2_stdout(&null))
        .and_then(|()| dup2_stderr(&null))
        .map_err(|e| format!("--daemon: cannot point the standard streams at /dev/null: {e}"))
}
