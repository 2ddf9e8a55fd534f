//! USR2: zero-downtime binary upgrade, as Gunicorn's `reexec`.
//!
//! 1. USR2 to the master: it renames its pidfile to `<pidfile>.oldbin`,
//!    forks, and the child `exec`s the binary at the path the master was
//!    started from (a new build installed there) with the same arguments
//!    and directory. The listening sockets are inherited (they are not
//!    close-on-exec); their numbers are in `FERROCORN_FD` (comma
//!    separated; `GUNICORN_FD` is read too), the old master's pid in
//!    `FERROCORN_OLD_MASTER`.
//! 2. The new master [`adopt`](super::listener::Listener::adopt)s those
//!    sockets instead of binding, writes the pidfile and forks its
//!    workers: both generations now accept on the same sockets.
//! 3. WINCH to the old master: its workers stop gracefully.
//! 4. TERM to the old master: it exits without removing the socket files
//!    the new master serves. (Or, to roll back: HUP to the old master
//!    brings its workers back, TERM to the new one.)

use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::unistd::{ForkResult, Pid};

use crate::signals;

/// Variables naming inherited listening fds, ours first.
const FD_VARS: [&str; 2] = ["FERROCORN_FD", "GUNICORN_FD"];
/// The old master's pid, in a new master started by USR2.
const OLD_MASTER_VAR: &str = "FERROCORN_OLD_MASTER";

/// How this master was started, to start the next one the same way.
pub struct StartContext {
    /// `argv[0]` made absolute against the start directory (not
    /// `/proc/self/exe`: that is the old, maybe deleted, binary).
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
}

impl StartContext {
    /// Captured at start, before `--chdir`. The Python package's master is
    /// a `python` running the `ferrocorn` script (or `-m ferrocorn`): its
    /// process arguments are python's own, and the program is
    /// `sys.executable`, the venv's python (the file it links to would
    /// lose the venv).
    pub fn capture() -> StartContext {
        let mut argv = std::env::args_os();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let arg0 = PathBuf::from(argv.next().unwrap_or_else(|| "ferrocorn".into()));
        let arg0 = match crate::python::host::running() {
            Some(python) => python.executable.clone(),
            None => arg0,
        };
        // A bare name is looked up in PATH at exec, as the shell did.
        let program = if arg0.components().count() > 1 {
            cwd.join(arg0)
        } else {
            arg0
        };
        StartContext {
            program,
            args: argv.collect(),
            cwd,
        }
    }
}

/// What a new master finds in its environment (the variables are removed,
/// so its own workers and upgrades do not see them).
pub struct Inherited {
    pub fds: Vec<OwnedFd>,
    /// The master that started this one by USR2, while it lives.
    pub old_master: Option<Pid>,
}

/// Whether this master was started by another one's USR2 (it inherits
/// the sockets, and is detached already if the old one was).
pub fn is_upgrade_child() -> bool {
    FD_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// Takes the inherited listening fds and the old master's pid.
pub fn take_inherited() -> Result<Inherited, String> {
    let mut fds = Vec::new();
    if let Some((var, value)) = FD_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().map(|value| (*v, value)))
    {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let fd: RawFd = part
                .parse()
                .ok()
                .filter(|fd| *fd > 2)
                .ok_or_else(|| format!("invalid fd {part:?} in {var}={value:?}"))?;
            if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
                return Err(format!("{var} names fd {fd}, which is not open"));
            }
            // SAFETY: the fd is open (checked above), was handed to this
            // process for it to own, and is taken once (the variable is
            // removed below).
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    let old_master = std::env::var(OLD_MASTER_VAR)
        .ok()
        .and_then(|p| p.parse().ok())
        .map(Pid::from_raw);
    for var in FD_VARS.iter().chain([&OLD_MASTER_VAR]) {
        // The master is single-threaded: nothing reads the environment
        // concurrently.
        std::env::remove_var(var);
    }
    Ok(Inherited { fds, old_master })
}

/// Forks and execs a new master that inherits `fds`. Returns its pid.
pub fn spawn_new_master(ctx: &StartContext, fds: &[RawFd], me: Pid) -> Result<Pid, String> {
    let c =
        |bytes: Vec<u8>| CString::new(bytes).map_err(|_| "a NUL byte in an argument".to_owned());
    let program = c(ctx.program.clone().into_os_string().into_vec())?;
    let mut argv = vec![program.clone()];
    for a in &ctx.args {
        argv.push(c(a.clone().into_vec())?);
    }
    let list: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
    let mut envp = Vec::new();
    for (k, v) in std::env::vars_os() {
        if FD_VARS.iter().chain([&OLD_MASTER_VAR]).any(|var| k == *var) {
            continue;
        }
        let mut entry = k.into_vec();
        entry.push(b'=');
        entry.extend(v.into_vec());
        envp.push(c(entry)?);
    }
    envp.push(c(format!("FERROCORN_FD={}", list.join(",")).into_bytes())?);
    envp.push(c(format!("{OLD_MASTER_VAR}={me}").into_bytes())?);
    let cwd = c(ctx.cwd.clone().into_os_string().into_vec())?;

    let mask = signals::block_all().map_err(|e| format!("cannot block signals: {e}"))?;
    // SAFETY: the child only calls async-signal-safe functions
    // (sigprocmask, chdir, execvpe, _exit) on data prepared before the
    // fork, so the state of locks in the parent does not matter (with
    // --preload the master runs Python threads' locks; none is touched).
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: see above; every pointer comes from the CStrings
            // built before the fork, NULL-terminated arrays below.
            unsafe {
                let empty: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::chdir(cwd.as_ptr());
                let mut args: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
                args.push(std::ptr::null());
                let mut env: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
                env.push(std::ptr::null());
                libc::execvpe(program.as_ptr(), args.as_ptr(), env.as_ptr());
                libc::_exit(127)
            }
        }
        Ok(ForkResult::Parent { child }) => {
            signals::restore_mask(mask);
            Ok(child)
        }
        Err(e) => {
            signals::restore_mask(mask);
            Err(format!("cannot fork: {e}"))
        }
    }
}
