//! Signal handling for both process kinds. This file holds every signal
//! handler and every `sigaction` call.
//!
//! - The master's handlers only enqueue: they write the signal number into
//!   a non-blocking self-pipe, which [`SignalQueue::wait`] polls together
//!   with the 1 s tick.
//! - A worker's handlers only set flags, read by the serving loop between
//!   requests, except INT/QUIT, which end the worker at once (Gunicorn's
//!   "quick" shutdown).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
pub use nix::poll::PollFlags;
use nix::poll::{poll, PollFd, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Signals the master handles, each with one `handle_*` in the arbiter.
pub const MASTER_SIGNALS: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCHLD,
    Signal::SIGWINCH,
];

/// Write end of the master's self-pipe, for the handler; -1 when none.
static QUEUE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn enqueue(signo: libc::c_int) {
    let fd = QUEUE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let saved = Errno::last_raw();
    let byte = signo as u8;
    // SAFETY: write(2) is async-signal-safe; `byte` lives for the call. A
    // full pipe drops the byte, which is fine: the queue then already holds
    // enough wake-ups, and SIGCHLD reaping happens every tick anyway.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    Errno::set_raw(saved);
}

/// The master's queue of received signals.
pub struct SignalQueue {
    read: OwnedFd,
    write: OwnedFd,
}

impl SignalQueue {
    /// Creates the self-pipe and routes [`MASTER_SIGNALS`] into it.
    pub fn install() -> nix::Result<SignalQueue> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        QUEUE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(enqueue),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        for sig in MASTER_SIGNALS {
            // SAFETY: `enqueue` only calls async-signal-safe functions.
            unsafe { sigaction(sig, &action) }?;
        }
        Ok(SignalQueue { read, write })
    }

    /// Waits up to `timeout` for signals; returns them in arrival order
    /// (two TTIN are two more workers), a burst of SIGCHLD as one.
    pub fn wait(&self, timeout: Duration) -> Vec<Signal> {
        self.wait_with(timeout, &[]).0
    }

    /// Like [`Self::wait`], also waking up when one of `others` (the
    /// master's own sockets: metrics, control) is ready for what its flags
    /// ask (`POLLIN`, `POLLOUT`); the result says which are.
    pub fn wait_with(
        &self,
        timeout: Duration,
        others: &[(BorrowedFd<'_>, PollFlags)],
    ) -> (Vec<Signal>, Vec<bool>) {
        let mut fds: Vec<PollFd<'_>> =
            std::iter::once(PollFd::new(self.read.as_fd(), PollFlags::POLLIN))
                .chain(others.iter().map(|&(fd, flags)| PollFd::new(fd, flags)))
                .collect();
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        // EINTR is a wake-up like any other: the byte is in the pipe.
        let ready = match poll(&mut fds, timeout) {
            Ok(1..) => fds[1..].iter().map(|f| f.any().unwrap_or(false)).collect(),
            _ => vec![false; others.len()],
        };
        drop(fds);
        let mut signals = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = nix::unistd::read(&self.read, &mut buf) {
            for &b in &buf[..n] {
                if let Ok(sig) = Signal::try_from(i32::from(b)) {
                    if sig != Signal::SIGCHLD || !signals.contains(&sig) {
                        signals.push(sig);
                    }
                }
            }
        }
        (signals, ready)
    }
}

impl Drop for SignalQueue {
    fn drop(&mut self) {
        if QUEUE_FD.load(Ordering::Relaxed) == self.write.as_raw_fd() {
            QUEUE_FD.store(-1, Ordering::Relaxed);
        }
    }
}

/// Blocks every signal and returns the previous mask. The master forks
/// with signals blocked, so a new worker cannot run the master's handler
/// (and enqueue into the master's pipe) before it installs its own.
pub fn block_all() -> nix::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restores a mask saved by [`block_all`].
pub fn restore_mask(mask: SigSet) {
    // Only fails for an invalid `how`; SIG_SETMASK is valid.
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&mask), None);
}

/// The 504 written on a timeout abort; set once at worker boot.
static TIMEOUT_REPLY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// SIGABRT in a worker (the master's `--timeout`): Python's faulthandler,
/// when enabled, has already dumped every thread's traceback and chains
/// here. Answer the stuck request (with `--threads`, each stuck one) with
/// a 504 if its response has not started, then die of SIGABRT as asked.
extern "C" fn abort_stuck(signo: libc::c_int) {
    if let Some(reply) = TIMEOUT_REPLY.get() {
        crate::worker::in_flight::for_each_stuck(|fd| {
            // SAFETY: write(2) is async-signal-safe; `reply` is immutable
            // once set and lives for the process.
            unsafe { libc::write(fd, reply.as_ptr().cast(), reply.len()) };
        });
    }
    // SAFETY: signal(2) and raise(3) are async-signal-safe; with the
    // default disposition restored the raise ends the process.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        libc::raise(signo);
    }
}

/// The signal the master sends a silent worker first when the config file
/// defines `worker_abort`: a real-time signal no one else sends (glibc
/// keeps the first two for itself; SIGRTMIN accounts for them). The
/// worker's Python-level handler for it runs the hook when the
/// interpreter gets control (see `python::hooks`).
pub fn worker_abort_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

/// Master side: asks `pid` to run its `worker_abort` hook and abort.
pub fn request_worker_abort(pid: nix::unistd::Pid) {
    // SAFETY: kill(2) with a valid signal number; a worker that just died
    // gives ESRCH, which is fine (it is being reaped).
    unsafe { libc::kill(pid.as_raw(), worker_abort_signal()) };
}

/// Set by SIGTERM in a worker: finish the current request, then exit.
static STOP: AtomicBool = AtomicBool::new(false);
/// Set by SIGUSR1 in a worker: reopen the log file.
static REOPEN: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn request_reopen(_: libc::c_int) {
    REOPEN.store(true, Ordering::Relaxed);
}

/// Set by SIGINT/SIGQUIT in a worker whose config defines `worker_int`.
static QUIT: AtomicBool = AtomicBool::new(false);

extern "C" fn request_quit(_: libc::c_int) {
    QUIT.store(true, Ordering::Relaxed);
}

extern "C" fn quit_now(_: libc::c_int) {
    // SAFETY: _exit(2) is async-signal-safe and never returns.
    unsafe { libc::_exit(0) }
}

/// The first thing a forked worker does (signals still blocked since the
/// fork): forget the master's handlers and queue, ignore SIGPIPE (a gone
/// peer is an EPIPE error, not a death), install the worker's own
/// handlers, then unblock. TERM and USR1 do not restart system calls, so
/// an idle `poll` wakes up to notice them. `quit_in_loop`: INT/QUIT only
/// set a flag the loop reads (to run the `worker_int` hook), instead of
/// exiting in the handler.
pub fn become_worker(queue: SignalQueue, quit_in_loop: bool) -> nix::Result<()> {
    QUEUE_FD.store(-1, Ordering::Relaxed);
    drop(queue);
    let set = |sig, handler, flags| {
        let action = SigAction::new(handler, flags, SigSet::empty());
        // SAFETY: every handler used here is async-signal-safe (atomic
        // stores, _exit) or a default/ignore disposition.
        unsafe { sigaction(sig, &action) }.map(drop)
    };
    for sig in MASTER_SIGNALS {
        set(sig, SigHandler::SigDfl, SaFlags::empty())?;
    }
    set(Signal::SIGPIPE, SigHandler::SigIgn, SaFlags::empty())?;
    // Commands meant for the master, in case the whole group gets them.
    for sig in [
        Signal::SIGHUP,
        Signal::SIGWINCH,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGUSR2,
    ] {
        set(sig, SigHandler::SigIgn, SaFlags::empty())?;
    }
    // The worker-abort signal does nothing until a `worker_abort` hook
    // installs its handler (a booting worker past --timeout is then
    // aborted by the SIGABRT that follows, as without the hook).
    // SAFETY: ignoring a signal runs no code.
    unsafe { libc::signal(worker_abort_signal(), libc::SIG_IGN) };
    set(
        Signal::SIGTERM,
        SigHandler::Handler(request_stop),
        SaFlags::empty(),
    )?;
    set(
        Signal::SIGUSR1,
        SigHandler::Handler(request_reopen),
        SaFlags::empty(),
    )?;
    let _ = TIMEOUT_REPLY.set(crate::worker::timeout_reply::encode());
    set(
        Signal::SIGABRT,
        SigHandler::Handler(abort_stuck),
        SaFlags::SA_NODEFER,
    )?;
    let quit = if quit_in_loop { request_quit } else { quit_now };
    set(Signal::SIGINT, SigHandler::Handler(quit), SaFlags::empty())?;
    set(Signal::SIGQUIT, SigHandler::Handler(quit), SaFlags::empty())?;
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    )
}

/// In a threaded worker's pool thread: leaves TERM, USR1, INT, QUIT and
/// the worker-abort signal to the main thread, whose `poll` they interrupt
/// (a handler run on a pool thread would only be seen at the loop's next
/// tick; Python runs the `worker_abort` hook's handler on the main thread
/// only). SIGABRT stays: its handler works from any thread.
pub fn leave_to_main_thread() {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ] {
        set.add(sig);
    }
    let mut raw: libc::sigset_t = *set.as_ref();
    // SAFETY: `raw` is an initialized signal set; sigaddset with a valid
    // signal number and pthread_sigmask with SIG_BLOCK and no old set only
    // change the calling thread's mask.
    let blocked = unsafe {
        libc::sigaddset(&mut raw, worker_abort_signal());
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw, std::ptr::null_mut())
    };
    if blocked != 0 {
        warning!(
            "cannot leave signals to the main thread: {}",
            Errno::from_raw(blocked)
        );
    }
}

/// Whether a graceful stop was requested (SIGTERM in a worker).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Whether a quick stop was requested (SIGINT/SIGQUIT, when the loop
/// handles them).
pub fn quit_requested() -> bool {
    QUIT.load(Ordering::Relaxed)
}

/// Returns and clears a pending log-reopen request (SIGUSR1 in a worker).
pub fn take_reopen_request() -> bool {
    REOPEN.swap(false, Ordering::Relaxed)
}
