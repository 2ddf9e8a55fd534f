//! The fork boundary. [`fork`] is the only place a process splits; in the
//! child, [`worker_main`] turns the copy of the master into a worker, in
//! this order: reset signals (ignoring SIGPIPE), die with the master,
//! start Python, import the app, serve; the exit code says how it ended
//! (0 stopped, 3 boot error, 4 app load error).

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, getppid, ForkResult, Pid};

use super::heartbeat::{Heartbeat, Pulse};
use super::listener::Listener;
use super::service::{self, Identity};
use super::workers::{Exit, EXIT_APP_LOAD_ERROR, EXIT_WORKER_BOOT_ERROR};
use crate::metrics::worker_slot::{self, WorkerSlot};
use crate::python::{self, BootError, Preloaded, WorkerInfo};
use crate::settings::Settings;
use crate::signals::{self, SignalQueue};
use crate::worker::recycle::random_u64;
use crate::worker::{self, Recycle, ServeConfig};

/// What the master and one worker share, made before the fork: the
/// master keeps its copy in the worker's record.
pub struct Link {
    /// Liveness (`--timeout`).
    pub heartbeat: Heartbeat,
    /// Requests served and the one in progress (`show workers`).
    pub slot: WorkerSlot,
}

impl Link {
    pub fn new() -> Result<Link, String> {
        Ok(Link {
            heartbeat: Heartbeat::new()
                .map_err(|e| format!("cannot create a worker heartbeat: {e}"))?,
            slot: WorkerSlot::new().map_err(|e| format!("cannot map a worker's figures: {e}"))?,
        })
    }
}

/// What a worker takes from the master at fork.
pub struct WorkerBoot {
    pub settings: Settings,
    pub listeners: Vec<Listener>,
    pub link: Link,
    /// The master's pid, to notice being orphaned.
    pub master: Pid,
    /// The user and group to switch to before Python starts.
    pub identity: Identity,
    /// The app, when the master preloaded it (`--preload`).
    pub preloaded: Option<Preloaded>,
    /// This worker's spawn number (`worker.age` in hooks).
    pub age: u64,
}

/// Forks. `Some(pid)` in the master, `None` in the new worker, which
/// starts with every signal blocked until [`signals::become_worker`].
pub fn fork() -> nix::Result<Option<Pid>> {
    let mask = signals::block_all()?;
    // SAFETY: the master is single-threaded (it starts no threads; with
    // --preload, fork_with_python warns if the app did), so the child gets
    // a consistent copy of every lock and allocator, and may run any
    // code, not only async-signal-safe code.
    let raw_fork = || unsafe { nix::unistd::fork() };
    match python::fork_process(raw_fork) {
        Ok(ForkResult::Parent { child }) => {
            signals::restore_mask(mask);
            Ok(Some(child))
        }
        Ok(ForkResult::Child) => Ok(None),
        Err(e) => {
            signals::restore_mask(mask);
            Err(e)
        }
    }
}

/// Reaps one exited child (any: workers, the hook runner, a USR2 master):
/// `None` when none has exited (or, with `block`, none is left to wait
/// for). nix's `waitpid` is not used: it fails on a child killed by a
/// signal it has no name for (a real-time signal), after reaping it, and
/// the master would lose track of that worker.
pub fn reap_one(block: bool) -> Result<Option<(Pid, Exit)>, Errno> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid out pointer for the status.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        match pid {
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 if Errno::last() == Errno::ECHILD => return Ok(None),
            -1 => return Err(Errno::last()),
            0 => return Ok(None),
            _ => {}
        }
        let exit = if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            let n = libc::WTERMSIG(status);
            Signal::try_from(n).map_or(Exit::OtherSignal(n), Exit::Signal)
        } else {
            continue; // stopped or continued: not an exit
        };
        return Ok(Some((Pid::from_raw(pid), exit)));
    }
}

/// The worker process's whole life; never returns.
pub fn worker_main(boot: WorkerBoot, queue: SignalQueue) -> ! {
    let code = run_worker(boot, queue);
    std::process::exit(code)
}

fn run_worker(boot: WorkerBoot, queue: SignalQueue) -> i32 {
    let quit_in_loop = python::wants_worker_int(&boot.settings);
    if let Err(e) = signals::become_worker(queue, quit_in_loop) {
        error!("Worker failed to boot: cannot set up signals: {e}");
        return EXIT_WORKER_BOOT_ERROR;
    }
    // If the master dies without stopping us, stop gracefully.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        warning!("cannot ask to be stopped with the master: {e}");
    }
    if getppid() != boot.master {
        return 0;
    }
    if let Err(e) = service::switch_to(boot.identity) {
        error!("Worker failed to boot: {e}");
        return EXIT_WORKER_BOOT_ERROR;
    }
    info!("Booting worker with pid: {}", getpid());

    let settings = &boot.settings;
    let me = WorkerInfo {
        master: boot.master.as_raw(),
        age: boot.age,
    };
    let mut app = match python::boot(settings, boot.preloaded, me) {
        Ok(app) => app,
        Err(BootError::Interpreter(why)) => {
            error!("Worker failed to boot: {why}");
            return EXIT_WORKER_BOOT_ERROR;
        }
        // The traceback or message is already in the log.
        Err(BootError::AppLoad) => return EXIT_APP_LOAD_ERROR,
    };
    worker_slot::install(boot.link.slot);
    let mut pulse = Pulse::new(boot.link.heartbeat);
    pulse.beat(Instant::now());
    let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let config = ServeConfig {
        keep_alive: Duration::from_secs(settings.keep_alive),
        io_timeout: seconds(settings.timeout),
        master: boot.master,
    };
    let mut recycle = Recycle::new(
        settings.max_requests,
        settings.max_requests_jitter,
        settings.max_worker_memory,
        random_u64(),
    );
    if let Some(max) = recycle.max_requests() {
        debug!("this worker retires after {max} requests");
    }
    if settings.threads > 1 {
        // Threads start here, in the worker, after the fork: the master
        // never has any.
        worker::serve_threaded(
            &boot.listeners,
            &mut pulse,
            &config,
            recycle,
            &app,
            settings.threads,
        );
    } else {
        worker::serve(&boot.listeners, &mut pulse, &config, &mut recycle, &mut app);
    }
    if worker::reloading() {
        python::run_worker_int(&app);
    } else if signals::quit_requested() && python::run_worker_int(&app) {
        python::run_worker_exit(&app);
        return 0; // quick: no interpreter shutdown
    }
    python::run_worker_exit(&app);
    info!("Worker exiting (pid: {})", getpid());
    drop(app);
    python::finalize();
    0
}
