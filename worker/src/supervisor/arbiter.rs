//! The master process: binds the sockets, forks the workers and keeps
//! their number right until it is told to stop. It starts Python only
//! with `--preload` (to import the app once, before forking).
//!
//! The loop (see [`Arbiter::run`]) waits for a signal or the 1 s tick,
//! dispatches each signal to its `handle_*` method, reaps dead workers,
//! kills silent ones and spawns or retires workers to meet the target.
//! The decisions themselves live in [`super::workers`], tested without fork.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};

use serde_json::json;

use super::control::{ControlBindError, ControlServer};
use super::hook_runner::{MasterHooks, Outcome, WorkerView};
use super::listener::Listener;
use super::service::{self, Identity, PidFile};
use super::spawn::{self, Link, WorkerBoot};
use super::systemd::{self, Notifier};
use super::upgrade::{self, StartContext};
use super::workers::{
    judge_exit, timeout_action, Backoff, Exit, TimeoutAction, Verdict, WorkerSet, WorkerState,
};
use crate::logging;
use crate::metrics::{self, prometheus::MetricsServer, Restart};
use crate::python::{self, BootError, Preloaded};
use crate::settings::{Settings, DEFAULT_CONTROL_SOCKET};
use crate::signals::{PollFlags, SignalQueue};

mod commands;

/// Longest wait of the master loop between two looks at its workers.
const TICK: Duration = Duration::from_secs(1);
/// How often the master looks whether a HUP's new workers have booted.
const BOOT_POLL: Duration = Duration::from_millis(50);

/// How the master was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: workers finish their requests within `--graceful-timeout`.
    Graceful,
    /// SIGINT/SIGQUIT: workers exit at once.
    Quick,
}

impl From<crate::ctl::protocol::ShutdownKind> for Stop {
    fn from(kind: crate::ctl::protocol::ShutdownKind) -> Stop {
        match kind {
            crate::ctl::protocol::ShutdownKind::Graceful => Stop::Graceful,
            crate::ctl::protocol::ShutdownKind::Quick => Stop::Quick,
        }
    }
}

/// Starts the master: log, chdir, bind, then supervise until stopped.
/// Returns the process exit code.
pub fn run(settings: Settings) -> u8 {
    let start = StartContext::capture();
    let code = run_master(settings, start);
    // With --preload: the app's atexit handlers, as when Gunicorn exits
    // (the Python package's master returns to its python, whose own exit
    // runs them).
    if !python::is_package() {
        python::finalize();
    }
    code
}

fn run_master(settings: Settings, start: StartContext) -> u8 {
    // As Gunicorn: detach first (a master started by USR2 already is).
    if settings.daemon && !settings.check_config && !upgrade::is_upgrade_child() {
        if let Err(e) = super::daemon::daemonize() {
            eprintln!("Error: {e}");
            return 1;
        }
    }
    if let Err(e) = logging::init(settings.log_level, &settings.error_logfile) {
        eprintln!("Error: cannot open the error log {e}");
        return 1;
    }
    for w in &settings.warnings {
        warning!("{w}");
    }
    if let Err(e) = crate::access_log::init(
        settings.access_logfile.as_ref(),
        &settings.access_log_format,
    ) {
        error!("cannot open the access log: {e}");
        return 1;
    }
    if let Err(e) = metrics::init(&settings) {
        error!("{e}");
        return 1;
    }
    if let Some(dir) = &settings.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            error!("cannot change directory to {}: {e}", dir.display());
            return 1;
        }
    }
    let identity = match service::prepare(&settings) {
        Ok(who) => who,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    if settings.check_config {
        return super::check::run(&settings);
    }
    if nix::unistd::Uid::effective().is_root() && settings.user.is_none() && !settings.allow_root {
        error!(
            "refusing to run the app as root: give the workers a user with --user \
             (and --group), e.g. --user www-data, or say --allow-root \
             (FERROCORN_ALLOW_ROOT=1) to run it as root anyway"
        );
        return 1;
    }
    info!("Starting ferrocorn {}", env!("CARGO_PKG_VERSION"));
    // Master-side hooks, in Gunicorn's order: nworkers_changed(N, None)
    // as the arbiter is set up, the app preloaded, on_starting before
    // binding, when_ready once listening, then pre_fork for each worker.
    let mut hooks = MasterHooks::new(&settings, getpid());
    if let Err(e) = hooks.start() {
        error!("{e}");
        return 1;
    }
    let workers = settings.workers;
    hooks.call(
        "nworkers_changed",
        workers,
        None,
        &[json!(workers), json!(null)],
    );
    let inherited = match upgrade::take_inherited() {
        Ok(i) => i,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    let preloaded = if settings.preload_app {
        match python::preload(&settings) {
            Ok(p) => Some(p),
            Err(BootError::Interpreter(why)) => {
                error!("cannot start Python to preload the app: {why}");
                return 3;
            }
            Err(BootError::AppLoad) => {
                info!("Reason: App failed to load.");
                return 4;
            }
        }
    } else {
        None
    };
    if hooks.call("on_starting", workers, None, &[]) == Outcome::Raised {
        // Gunicorn lets the exception end the start.
        error!("Reason: the on_starting hook failed");
        return 1;
    }
    let mut listeners = Vec::new();
    let activated = match systemd::listen_fds() {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    // Socket activation (Gunicorn does the same): systemd's sockets
    // replace --bind; their files belong to systemd.
    let socket_activated = activated.is_some();
    for socket in activated.into_iter().flatten() {
        match Listener::adopt(socket.fd) {
            Ok(l) => {
                let name = socket.name.map(|n| format!(" {n}")).unwrap_or_default();
                info!(
                    "Listening at: {} ({}), from systemd{name}",
                    l.addr(),
                    getpid()
                );
                listeners.push(l);
            }
            Err(e) => {
                error!("a socket from systemd (LISTEN_FDS) cannot be used: {e}");
                return 1;
            }
        }
    }
    if socket_activated && listeners.is_empty() {
        error!("systemd passed no sockets (LISTEN_FDS=0)");
        return 1;
    }
    let binds = if socket_activated {
        &[][..]
    } else {
        &settings.bind[..]
    };
    for fd in inherited.fds {
        match Listener::adopt(fd) {
            Ok(l) => {
                info!("Listening at: {} ({}), inherited", l.addr(), getpid());
                listeners.push(l);
            }
            Err(e) => warning!("ignoring an inherited fd that is not a listening socket: {e}"),
        }
    }
    let owner = match service::socket_owner(identity, &settings) {
        Ok(o) => o,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    // Our own sockets are bound now and listen later (below): until then a
    // client is refused, so one that found a socket answering finds the
    // signal handlers and the metrics and control sockets in place. The
    // pidfile comes after, so it too means the sockets take connections.
    // Sockets from systemd or an old master (USR2) come first; their files
    // are not ours to remove if the start fails.
    let fresh = listeners.len();
    for addr in binds {
        if listeners.iter().any(|l| l.serves(addr)) {
            continue;
        }
        match Listener::bind(addr, &owner) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                error!("{e}");
                remove_own_socket_files(&listeners[fresh..]);
                return 1;
            }
        }
    }
    let signals = match SignalQueue::install() {
        Ok(q) => q,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            remove_own_socket_files(&listeners[fresh..]);
            return 1;
        }
    };
    let metrics_server = match settings.metrics_bind.as_deref().map(MetricsServer::bind) {
        None => None,
        Some(Ok(server)) => {
            info!("Serving metrics at: http://{}/metrics", server.local_addr());
            Some(server)
        }
        Some(Err(e)) => {
            error!(
                "cannot listen for metrics on {:?}: {e}",
                settings.metrics_bind
            );
            remove_own_socket_files(&listeners[fresh..]);
            return 1;
        }
    };
    let control = match settings
        .control_socket()
        .map(|path| bind_control(path, inherited.old_master.is_some()))
    {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(server))) => Some(server),
        Some(Err(e)) => {
            error!("{e}");
            remove_own_socket_files(&listeners[fresh..]);
            return 1;
        }
    };
    for l in &listeners[fresh..] {
        if let Err(e) = l.listen() {
            error!("{e}");
            remove_own_socket_files(&listeners[fresh..]);
            if let Some(control) = control {
                control.close();
            }
            return 1;
        }
        info!("Listening at: {} ({})", l.addr(), getpid());
    }
    let pidfile = match settings.pidfile.as_deref().map(PidFile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            remove_own_socket_files(&listeners[fresh..]);
            if let Some(control) = control {
                control.close();
            }
            return 1;
        }
    };
    if hooks.call("when_ready", workers, None, &[]) == Outcome::Raised {
        error!("Reason: the when_ready hook failed");
        remove_own_socket_files(&listeners[fresh..]);
        if let Some(control) = control {
            control.close();
        }
        return 1;
    }
    let mut arbiter = Arbiter {
        target: settings.workers,
        hooks,
        settings,
        listeners,
        signals: Some(signals),
        workers: WorkerSet::default(),
        backoff: Backoff::default(),
        pid: getpid(),
        identity,
        preloaded,
        spawned: 0,
        pidfile,
        start,
        upgrade_child: None,
        old_master: inherited.old_master,
        notifier: Notifier::from_env(),
        readiness: Readiness::Starting,
        socket_activated,
        metrics_server,
        control,
        started_at: Instant::now(),
        reloads: 0,
    };
    arbiter.run()
}

struct Arbiter {
    settings: Settings,
    /// The bound sockets; handed to each worker at fork.
    listeners: Vec<Listener>,
    /// `None` only in a freshly forked worker, which takes it.
    signals: Option<SignalQueue>,
    workers: WorkerSet<Link>,
    /// Wanted number of workers (`--workers`, changed by TTIN/TTOU).
    target: usize,
    backoff: Backoff,
    pid: Pid,
    /// Who workers become after fork (`--user`, `--group`).
    identity: Identity,
    /// The app imported by this master (`--preload`), for every worker.
    preloaded: Option<Preloaded>,
    /// Workers forked so far (a worker's `age` in hooks).
    spawned: u64,
    pidfile: Option<PidFile>,
    /// How this master was started, to start a new one on USR2.
    start: StartContext,
    /// The new master started by USR2, while it runs.
    upgrade_child: Option<Pid>,
    /// The master that started this one by USR2 (while it lives, this one
    /// must not remove the socket files when stopped: a roll-back).
    old_master: Option<Pid>,
    /// systemd's `$NOTIFY_SOCKET` (`Type=notify`), when set.
    notifier: Option<Notifier>,
    /// What systemd was last told.
    readiness: Readiness,
    /// The listeners came from systemd (`LISTEN_FDS`): their files are
    /// systemd's, never removed here.
    socket_activated: bool,
    /// `--metrics-bind`: Prometheus metrics, answered from the loop.
    metrics_server: Option<MetricsServer>,
    /// The config file's master-side server hooks.
    hooks: MasterHooks,
    /// `--control-socket`: `ferrocorn ctl`'s commands, answered from the
    /// loop.
    control: Option<ControlServer>,
    /// When this master started (`show stats`).
    started_at: Instant,
    /// Reloads (HUP or `reload`) so far.
    reloads: u64,
}

/// Where the master is, as systemd hears it (`READY=1`, `RELOADING=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// Until every first worker has loaded the app.
    Starting,
    Ready,
    /// After HUP, until the new workers serve and the old are retired.
    Reloading,
}

/// A start that fails removes the socket files it made, and only those:
/// systemd's, or an old master's during a USR2 upgrade, still serve.
fn remove_own_socket_files(own: &[Listener]) {
    own.iter().for_each(Listener::remove_socket_file);
}

impl Arbiter {
    /// The master loop.
    fn run(&mut self) -> u8 {
        loop {
            self.manage_workers();
            self.retire_replaced_workers();
            self.report_readiness();
            metrics::workers(self.workers.active());
            for sig in self.wait_for_events() {
                if let Some(stop) = self.dispatch(sig) {
                    return self.shutdown(stop);
                }
            }
            if let Some(stop) = self.serve_control() {
                return self.shutdown(stop);
            }
            if let Some((code, reason)) = self.reap_workers() {
                return self.halt(code, reason);
            }
            self.murder_workers();
        }
    }

    /// Waits for signals (returned), the tick or a control client,
    /// answering metrics clients meanwhile.
    fn wait_for_events(&mut self) -> Vec<Signal> {
        let mut tick = self.tick();
        let mut fds = Vec::new();
        if let Some(server) = self.metrics_server.as_ref() {
            fds.push((server.as_fd(), PollFlags::POLLIN));
        }
        if let Some(control) = self.control.as_ref() {
            fds.extend(control.fds());
            if control.has_work() {
                tick = Duration::ZERO;
            }
        }
        if fds.is_empty() {
            return self.queue().wait(tick);
        }
        let (signals, ready) = self.queue().wait_with(tick, &fds);
        drop(fds);
        let Some(server) = self.metrics_server.as_ref() else {
            return signals;
        };
        if ready.first() == Some(&true) {
            let gauges = self.gauges();
            if let Some(counters) = metrics::counters() {
                server.serve_pending(|| metrics::prometheus::render(counters, gauges));
            }
        }
        signals
    }

    fn gauges(&self) -> metrics::prometheus::Gauges {
        metrics::prometheus::Gauges {
            workers: self.workers.iter().count(),
            workers_booted: self.booted_running(),
            workers_target: self.target,
        }
    }

    /// Running workers that have loaded the app.
    fn booted_running(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.state == WorkerState::Running && w.booted)
            .count()
    }

    /// Tells systemd `READY=1` once the first workers (or a reload's new
    /// workers) serve.
    fn report_readiness(&mut self) {
        if self.readiness == Readiness::Ready {
            return;
        }
        let outgoing = !self.workers.with_state(WorkerState::Outgoing).is_empty();
        if self.booted_running() < self.target || outgoing {
            return;
        }
        let status = format!(
            "STATUS=Serving with {} workers on {}",
            self.target,
            self.listeners
                .iter()
                .map(|l| l.addr().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let message = match self.readiness {
            Readiness::Starting => format!("READY=1\n{status}\nMAINPID={}", self.pid),
            _ => format!("READY=1\n{status}"),
        };
        self.readiness = Readiness::Ready;
        self.notify(&message);
    }

    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            n.notify(state);
        }
    }

    fn queue(&self) -> &SignalQueue {
        self.signals
            .as_ref()
            .expect("the master owns its signal queue")
    }

    /// Sleeps less than a tick when a backed-off spawn is due sooner, or
    /// while a HUP waits for its new workers to boot.
    fn tick(&self) -> Duration {
        if !self.workers.with_state(WorkerState::Outgoing).is_empty() {
            return BOOT_POLL;
        }
        match self.backoff.remaining(Instant::now()) {
            Some(d) if self.workers.active() < self.target => d.min(TICK),
            _ => TICK,
        }
    }

    fn dispatch(&mut self, sig: Signal) -> Option<Stop> {
        if sig != Signal::SIGCHLD {
            info!(
                "Handling signal: {}",
                sig.as_str()[3..].to_ascii_lowercase()
            );
        }
        match sig {
            Signal::SIGTERM => return Some(Stop::Graceful),
            Signal::SIGINT | Signal::SIGQUIT => return Some(Stop::Quick),
            Signal::SIGHUP => self.handle_hup(),
            Signal::SIGTTIN => self.handle_ttin(),
            Signal::SIGTTOU => self.handle_ttou(),
            Signal::SIGUSR1 => self.handle_usr1(),
            Signal::SIGUSR2 => self.handle_usr2(),
            Signal::SIGWINCH => self.handle_winch(),
            // SIGCHLD: the loop reaps after every wake-up.
            _ => {}
        }
        None
    }

    /// HUP: start a fresh set of workers (they import the app anew); the
    /// old ones keep serving until every new one has loaded the app
    /// ([`Self::retire_replaced_workers`]), then stop gracefully. No
    /// moment without a worker ready to accept.
    fn handle_hup(&mut self) {
        info!("Hang up: Master");
        self.hooks.call("on_reload", self.target, None, &[]);
        self.reloads += 1;
        self.readiness = Readiness::Reloading;
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading: starting new workers",
            systemd::monotonic_usec()
        ));
        if self.target == 0 {
            // After WINCH (an upgrade being rolled back): workers again.
            self.set_target(self.settings.workers);
        }
        let old = self.workers.supersede_running();
        debug!("{old} workers outgoing until their replacements boot");
        self.manage_workers();
    }

    /// Marks workers that have beaten as booted, and retires outgoing
    /// workers once enough new ones have.
    fn retire_replaced_workers(&mut self) {
        for w in self.workers.iter_mut() {
            if !w.booted && w.link.heartbeat.has_beaten() {
                w.booted = true;
            }
        }
        let old = self.workers.outgoing_to_retire(self.target);
        if !old.is_empty() {
            info!("New workers booted; stopping {} old workers", old.len());
            old.iter().for_each(|_| metrics::restarted(Restart::Reload));
        }
        old.into_iter().for_each(|pid| self.retire(pid));
    }

    /// USR2: start a new master from the binary on disk, handing it the
    /// listening sockets (see [`upgrade`]). This one keeps serving.
    fn handle_usr2(&mut self) {
        if self.upgrade_child.is_some() {
            warning!("USR2 ignored: a new master is already running");
            return;
        }
        if self.old_master.is_some_and(|p| nix::unistd::getppid() == p) {
            warning!("USR2 ignored: the old master still runs; stop it first");
            return;
        }
        if let Some(p) = self.pidfile.as_mut() {
            let old = with_suffix(p.path(), ".oldbin");
            if let Err(e) = p.rename(old) {
                error!("{e}");
            }
        }
        self.hooks.call("pre_exec", self.target, None, &[]);
        let fds: Vec<_> = self
            .listeners
            .iter()
            .map(|l| l.as_fd().as_raw_fd())
            .collect();
        match upgrade::spawn_new_master(&self.start, &fds, self.pid) {
            Ok(pid) => {
                info!("Started a new master (pid: {pid}) for a binary upgrade");
                self.upgrade_child = Some(pid);
            }
            Err(e) => {
                error!("binary upgrade failed: {e}");
                self.restore_pidfile();
            }
        }
    }

    /// The new master of a USR2 upgrade exited: this one stays in charge.
    fn upgrade_failed(&mut self, exit: Exit) {
        error!("The new master exited ({exit:?}); this master stays in charge");
        self.upgrade_child = None;
        self.restore_pidfile();
        self.reclaim_control_socket();
    }

    /// The new master of a failed upgrade took the control socket's path
    /// over: make the socket anew there.
    fn reclaim_control_socket(&mut self) {
        let Some(path) = self
            .control
            .as_ref()
            .filter(|c| !c.file_is_ours())
            .map(|c| c.path().to_owned())
        else {
            return;
        };
        match ControlServer::bind(&path, false) {
            Ok(server) => {
                info!("Control socket at: {} (again)", absolute(&path).display());
                self.control = Some(server);
            }
            Err(e) => warning!(
                "cannot make the control socket {} again: {e}",
                path.display()
            ),
        }
    }

    fn restore_pidfile(&mut self) {
        if let (Some(p), Some(path)) = (self.pidfile.as_mut(), self.settings.pidfile.as_ref()) {
            if p.path() != path {
                if let Err(e) = p.rename(path.clone()) {
                    error!("{e}");
                }
            }
        }
    }

    /// WINCH: stop every worker gracefully, keep the master and the
    /// sockets (after USR2, the new master's workers serve). HUP brings
    /// the workers back.
    fn handle_winch(&mut self) {
        info!("Gracefully stopping the workers (WINCH)");
        self.set_target(0);
    }

    /// TTIN: one worker more.
    fn handle_ttin(&mut self) {
        self.set_target(self.target + 1);
        info!("Number of workers: {}", self.target);
        self.notify(&format!("STATUS=Number of workers: {}", self.target));
    }

    /// TTOU: one worker fewer (at least one stays).
    fn handle_ttou(&mut self) {
        self.set_target((self.target - 1).max(1));
        info!("Number of workers: {}", self.target);
        self.notify(&format!("STATUS=Number of workers: {}", self.target));
    }

    /// Changes the wanted number of workers; `nworkers_changed(server,
    /// new, old)` when it did change.
    fn set_target(&mut self, target: usize) {
        let old = self.target;
        self.target = target;
        if old != target {
            self.hooks.call(
                "nworkers_changed",
                target,
                None,
                &[json!(target), json!(old)],
            );
        }
    }

    /// USR1: reopen the log file, and have every worker do the same.
    fn handle_usr1(&mut self) {
        if let Err(e) = logging::reopen() {
            error!("cannot reopen the error log: {e}");
        }
        self.hooks.reopen_log();
        self.signal_all(Signal::SIGUSR1);
    }

    /// Spawns missing workers and retires extra ones.
    fn manage_workers(&mut self) {
        let plan = self.workers.plan(self.target);
        plan.retire.into_iter().for_each(|pid| self.retire(pid));
        for _ in 0..plan.spawn {
            if !self.backoff.ready(Instant::now()) || !self.spawn_worker() {
                break;
            }
        }
    }

    fn retire(&mut self, pid: Pid) {
        if let Some(w) = self.workers.get_mut(pid) {
            w.state = WorkerState::Retiring;
            send(pid, Signal::SIGTERM);
        }
    }

    /// Forks one worker; false when that failed.
    fn spawn_worker(&mut self) -> bool {
        self.spawned += 1;
        let booting = WorkerView {
            pid: None,
            age: self.spawned,
            exitcode: None,
        };
        // Before the heartbeat is made: a slow hook must not eat into the
        // new worker's --timeout to boot.
        self.hooks.call("pre_fork", self.target, Some(booting), &[]);
        let link = match Link::new() {
            Ok(l) => l,
            Err(e) => {
                error!("{e}");
                return false;
            }
        };
        match spawn::fork() {
            Ok(Some(pid)) => {
                self.workers.add(pid, self.spawned, link, Instant::now());
                true
            }
            Ok(None) => {
                // The child: take what a worker needs, drop the master's
                // bookkeeping (closing its siblings' heartbeats), and never
                // come back into this loop.
                self.workers.clear();
                self.hooks.leave_in_child();
                self.metrics_server = None;
                // Closes the control socket and its clients in the worker
                // only (the file stays: it is the master's).
                self.control = None;
                self.notifier = None;
                let boot = WorkerBoot {
                    settings: self.settings.clone(),
                    listeners: std::mem::take(&mut self.listeners),
                    link,
                    master: self.pid,
                    identity: self.identity,
                    preloaded: self.preloaded.take(),
                    age: self.spawned,
                };
                let queue = self
                    .signals
                    .take()
                    .expect("the master owns its signal queue");
                spawn::worker_main(boot, queue)
            }
            Err(e) => {
                error!("cannot fork a worker: {e}");
                false
            }
        }
    }

    /// Collects exited workers. Returns the exit code and reason when one
    /// of them means the master must stop (boot or app-load error).
    fn reap_workers(&mut self) -> Option<(u8, &'static str)> {
        loop {
            let (pid, exit) = match spawn::reap_one(false) {
                Ok(Some(reaped)) => reaped,
                Ok(None) => return None,
                Err(e) => {
                    error!("waitpid failed: {e}");
                    return None;
                }
            };
            if self.upgrade_child == Some(pid) {
                self.upgrade_failed(exit);
                continue;
            }
            if self.hooks.reaped(pid) {
                continue;
            }
            let Some(worker) = self.workers.remove(pid) else {
                continue;
            };
            let gone = WorkerView {
                pid: Some(pid),
                age: worker.age,
                exitcode: Some(exit.code()),
            };
            let now = Instant::now();
            match judge_exit(pid, exit) {
                Verdict::Halt { code, reason } => {
                    error!("Worker (pid:{pid}) exited with code {code}");
                    if worker.state == WorkerState::Retiring {
                        self.child_exit(gone);
                        continue; // abandoned after a failed reload
                    }
                    let kept = self.workers.restore_outgoing();
                    if kept > 0 {
                        // A reload with a broken app must not take the
                        // service down: the old workers carry on.
                        error!("Reload failed ({reason}); keeping the {kept} previous workers");
                        self.abandon_new_workers();
                        self.child_exit(gone);
                        continue;
                    }
                    return Some((code, reason));
                }
                Verdict::Replace { message, level } => {
                    if let Some(message) = message {
                        logging::log(level, format_args!("{message}"));
                    }
                    let harmless = exit == Exit::Code(0)
                        || worker.state == WorkerState::Retiring
                        || worker.booted
                        || worker.link.heartbeat.has_beaten();
                    match (worker.state, exit) {
                        (WorkerState::Retiring, _) | (_, Exit::Code(0)) => {}
                        (WorkerState::Aborted | WorkerState::AbortRequested, _) => {} // counted when aborted
                        (_, Exit::Signal(_) | Exit::OtherSignal(_)) => {
                            metrics::restarted(Restart::Crash)
                        }
                        (_, Exit::Code(_)) => metrics::restarted(Restart::Exit),
                    }
                    self.backoff
                        .record_exit(now.duration_since(worker.spawned_at), harmless, now);
                    self.child_exit(gone);
                }
            }
        }
    }

    /// `child_exit(server, worker)` for a reaped worker.
    fn child_exit(&mut self, worker: WorkerView) {
        let target = self.target;
        self.hooks.call("child_exit", target, Some(worker), &[]);
    }

    /// After a failed reload: stop the new workers that have not booted
    /// (they would fail the same way).
    fn abandon_new_workers(&mut self) {
        let booting: Vec<Pid> = self
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Running && !w.booted)
            .map(|w| w.pid)
            .collect();
        booting.into_iter().for_each(|pid| self.retire(pid));
    }

    /// Signals workers whose heartbeat is older than `--timeout`.
    fn murder_workers(&mut self) {
        let timeout =
            (self.settings.timeout > 0).then(|| Duration::from_secs(self.settings.timeout));
        let abort_hook = self.settings.hooks.iter().any(|h| h == "worker_abort");
        let now = SystemTime::now();
        for pid in self.workers.pids() {
            let Some(w) = self.workers.get_mut(pid) else {
                continue;
            };
            let silent = match w.link.heartbeat.last_beat() {
                Ok(t) => now.duration_since(t).unwrap_or_default(),
                Err(_) => continue,
            };
            let first = w.state != WorkerState::AbortRequested;
            match timeout_action(w.state, silent, timeout, abort_hook) {
                Some(TimeoutAction::RequestAbort) => {
                    critical!("WORKER TIMEOUT (pid:{pid})");
                    metrics::restarted(Restart::Timeout);
                    w.state = WorkerState::AbortRequested;
                    crate::signals::request_worker_abort(pid);
                }
                Some(TimeoutAction::Abort) => {
                    if first {
                        critical!("WORKER TIMEOUT (pid:{pid})");
                        metrics::restarted(Restart::Timeout);
                    }
                    w.state = WorkerState::Aborted;
                    send(pid, Signal::SIGABRT);
                }
                Some(TimeoutAction::Kill) => send(pid, Signal::SIGKILL),
                None => {}
            }
        }
    }

    /// Boot or app-load error: stop the other workers and exit with `code`.
    fn halt(&mut self, code: u8, reason: &str) -> u8 {
        self.notify(&format!("STOPPING=1\nSTATUS=Stopping: {reason}"));
        self.stop_workers(Stop::Graceful);
        info!("Shutting down: Master");
        info!("Reason: {reason}");
        self.hooks.call("on_exit", self.target, None, &[]);
        code
    }

    fn shutdown(&mut self, stop: Stop) -> u8 {
        self.notify(match stop {
            Stop::Graceful => "STOPPING=1\nSTATUS=Stopping gracefully",
            Stop::Quick => "STOPPING=1\nSTATUS=Stopping",
        });
        self.stop_workers(stop);
        info!("Shutting down: Master");
        self.hooks.call("on_exit", self.target, None, &[]);
        0
    }

    /// Closes the listeners (removing unix socket files), signals every
    /// worker, waits for them up to `--graceful-timeout`, then kills what
    /// is left.
    fn stop_workers(&mut self, stop: Stop) {
        // After USR2 the other master serves the same socket files.
        if let Some(control) = self.control.take() {
            control.close();
        }
        let handing_over = self.upgrade_child.is_some()
            || self.old_master.is_some_and(|p| nix::unistd::getppid() == p);
        for l in self.listeners.drain(..) {
            if !handing_over && !self.socket_activated {
                l.remove_socket_file();
            }
        }
        self.signal_all(match stop {
            Stop::Graceful => Signal::SIGTERM,
            Stop::Quick => Signal::SIGQUIT,
        });
        let deadline = Instant::now() + Duration::from_secs(self.settings.graceful_timeout);
        while !self.workers.is_empty() && Instant::now() < deadline {
            self.reap_quietly(false);
            if !self.workers.is_empty() {
                // Signals arriving now (a second TERM...) change nothing.
                self.queue().wait(Duration::from_millis(100));
            }
        }
        if !self.workers.is_empty() {
            self.signal_all(Signal::SIGKILL);
            self.reap_quietly(true);
        }
    }

    /// Reaps during shutdown, without replacing anyone.
    fn reap_quietly(&mut self, block: bool) {
        while !self.workers.is_empty() {
            match spawn::reap_one(block) {
                Ok(Some((pid, exit))) => self.reaped_at_stop(pid, exit),
                Ok(None) if !block => return,
                // Nothing left to wait for.
                Ok(None) | Err(_) => {
                    self.workers.clear();
                    return;
                }
            }
        }
    }

    /// A worker (or the hook runner) reaped while stopping.
    fn reaped_at_stop(&mut self, pid: Pid, exit: Exit) {
        if self.hooks.reaped(pid) {
            return;
        }
        if let Some(worker) = self.workers.remove(pid) {
            self.child_exit(WorkerView {
                pid: Some(pid),
                age: worker.age,
                exitcode: Some(exit.code()),
            });
        }
    }

    fn signal_all(&self, sig: Signal) {
        self.workers.iter().for_each(|w| send(w.pid, sig));
    }
}

/// Makes the control socket. The default path is best effort (a
/// directory the master may not write to, or another server's socket
/// there, leaves this one without, with a warning); a path given with
/// `--control-socket` must work. `take_over`: this is a USR2 upgrade's new
/// master, which replaces its old master's socket.
fn bind_control(path: &std::path::Path, take_over: bool) -> Result<Option<ControlServer>, String> {
    match ControlServer::bind(path, take_over) {
        Ok(server) => {
            info!("Control socket at: {}", absolute(path).display());
            Ok(Some(server))
        }
        Err(e) if path == std::path::Path::new(DEFAULT_CONTROL_SOCKET) => {
            let why = match e {
                ControlBindError::InUse => "another ferrocorn's control socket is there".into(),
                e => e.to_string(),
            };
            warning!(
                "no control socket: cannot create {}: {why} (give --control-socket PATH, \
                 or --no-control-socket)",
                absolute(path).display()
            );
            Ok(None)
        }
        Err(e) => Err(format!(
            "cannot create the control socket --control-socket {}: {e}",
            path.display()
        )),
    }
}

/// `path` from the current directory, for log lines.
fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::env::current_dir().map_or_else(|_| path.to_owned(), |d| d.join(path))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Sends `sig` to `pid`; a worker that just died is not an error.
fn send(pid: Pid, sig: Signal) {
    match kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => error!("cannot send {} to worker {pid}: {e}", sig.as_str()),
    }
}
