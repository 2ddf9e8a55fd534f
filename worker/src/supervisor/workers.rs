//! The arbiter's decisions as plain functions over plain data, so they are
//! tested without forking: which workers to spawn or retire, what a
//! worker's exit means, when a silent worker is killed and with what, and
//! how long to wait before replacing workers that keep dying.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::logging::Level;

/// Exit code of a worker that could not start Python or its loop.
pub const EXIT_WORKER_BOOT_ERROR: i32 = 3;
/// Exit code of a worker that could not import or build the app.
pub const EXIT_APP_LOAD_ERROR: i32 = 4;

/// Where a worker is in its life, as the master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Serving; counts towards the target.
    Running,
    /// Superseded by a HUP: keeps serving until its replacements have
    /// booted, then retires. Does not count towards the target.
    Outgoing,
    /// Sent SIGTERM because there are too many workers (TTOU, HUP); it
    /// finishes its request and exits. Does not count towards the target.
    Retiring,
    /// Missed its heartbeat and was sent the worker-abort signal, which
    /// runs the `worker_abort` hook if Python gets control; SIGABRT follows.
    AbortRequested,
    /// Missed its heartbeat and was sent SIGABRT; SIGKILL follows.
    Aborted,
}

/// One live worker process.
#[derive(Debug)]
pub struct WorkerRecord<H> {
    pub pid: Pid,
    /// Spawn order; the oldest workers are retired first.
    pub age: u64,
    pub spawned_at: Instant,
    pub state: WorkerState,
    /// Has beaten at least once: the app is loaded and it serves.
    pub booted: bool,
    /// What the master shares with the worker (its heartbeat and figures
    /// in the real arbiter, `()` in tests).
    pub link: H,
}

/// The master's table of live workers.
#[derive(Debug)]
pub struct WorkerSet<H> {
    workers: Vec<WorkerRecord<H>>,
}

/// What to do to reach the target number of workers.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub spawn: usize,
    /// Oldest first.
    pub retire: Vec<Pid>,
}

impl<H> Default for WorkerSet<H> {
    fn default() -> Self {
        WorkerSet {
            workers: Vec::new(),
        }
    }
}

impl<H> WorkerSet<H> {
    /// Records a forked worker; `age`: its spawn number (the one its
    /// hooks see).
    pub fn add(&mut self, pid: Pid, age: u64, link: H, now: Instant) {
        self.workers.push(WorkerRecord {
            pid,
            age,
            spawned_at: now,
            state: WorkerState::Running,
            booted: false,
            link,
        });
    }

    pub fn remove(&mut self, pid: Pid) -> Option<WorkerRecord<H>> {
        let i = self.workers.iter().position(|w| w.pid == pid)?;
        Some(self.workers.swap_remove(i))
    }

    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut WorkerRecord<H>> {
        self.workers.iter_mut().find(|w| w.pid == pid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &WorkerRecord<H>> {
        self.workers.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut WorkerRecord<H>> {
        self.workers.iter_mut()
    }

    pub fn pids(&self) -> Vec<Pid> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Drops every record (a forked child forgets its siblings this way).
    pub fn clear(&mut self) {
        self.workers.clear();
    }

    /// Workers that count towards the target.
    pub fn active(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| !matches!(w.state, WorkerState::Retiring | WorkerState::Outgoing))
            .count()
    }

    /// HUP: every running worker becomes outgoing (it keeps serving until
    /// its replacements have booted). Returns how many.
    pub fn supersede_running(&mut self) -> usize {
        let mut n = 0;
        for w in &mut self.workers {
            if w.state == WorkerState::Running {
                w.state = WorkerState::Outgoing;
                n += 1;
            }
        }
        n
    }

    /// Outgoing workers to retire now: all of them once `target` running
    /// workers have booted, none before.
    pub fn outgoing_to_retire(&self, target: usize) -> Vec<Pid> {
        let booted = self
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Running && w.booted)
            .count();
        if booted < target {
            return Vec::new();
        }
        self.with_state(WorkerState::Outgoing)
    }

    /// A HUP's new workers failed to load the app: the outgoing workers
    /// go back to serving. Returns how many.
    pub fn restore_outgoing(&mut self) -> usize {
        let mut n = 0;
        for w in &mut self.workers {
            if w.state == WorkerState::Outgoing {
                w.state = WorkerState::Running;
                n += 1;
            }
        }
        n
    }

    pub fn with_state(&self, state: WorkerState) -> Vec<Pid> {
        self.workers
            .iter()
            .filter(|w| w.state == state)
            .map(|w| w.pid)
            .collect()
    }

    /// Spawns missing workers, or retires the oldest extra ones.
    pub fn plan(&self, target: usize) -> Plan {
        let active = self.active();
        if active >= target {
            let mut running: Vec<&WorkerRecord<H>> = self
                .workers
                .iter()
                .filter(|w| w.state == WorkerState::Running)
                .collect();
            running.sort_by_key(|w| w.age);
            let retire = running
                .iter()
                .take(active - target)
                .map(|w| w.pid)
                .collect();
            Plan { spawn: 0, retire }
        } else {
            Plan {
                spawn: target - active,
                retire: Vec::new(),
            }
        }
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
    /// Killed by a signal without a name here (a real-time signal).
    OtherSignal(i32),
}

impl Exit {
    /// The exit code, or minus the signal number (as Python's
    /// `multiprocessing` reports it): `child_exit` hooks see this.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => -(s as i32),
            Exit::OtherSignal(n) => -n,
        }
    }
}

/// What a worker's exit means for the master.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Replace it if the target says so; log `message` at `level`, if any.
    Replace {
        message: Option<String>,
        level: Level,
    },
    /// Stop everything and exit with `code` (Gunicorn's boot/app-load errors).
    Halt { code: u8, reason: &'static str },
}

/// Judges an exit the way Gunicorn's `reap_workers` does.
pub fn judge_exit(pid: Pid, exit: Exit) -> Verdict {
    let replace = |level, message: String| Verdict::Replace {
        message: Some(message),
        level,
    };
    match exit {
        Exit::Code(0) => Verdict::Replace {
            message: None,
            level: Level::Debug,
        },
        Exit::Code(EXIT_WORKER_BOOT_ERROR) => Verdict::Halt {
            code: EXIT_WORKER_BOOT_ERROR as u8,
            reason: "Worker failed to boot.",
        },
        Exit::Code(EXIT_APP_LOAD_ERROR) => Verdict::Halt {
            code: EXIT_APP_LOAD_ERROR as u8,
            reason: "App failed to load.",
        },
        Exit::Code(code) => replace(
            Level::Error,
            format!("Worker (pid:{pid}) exited with code {code}."),
        ),
        Exit::Signal(Signal::SIGKILL) => replace(
            Level::Error,
            format!("Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?"),
        ),
        Exit::Signal(Signal::SIGTERM) => {
            replace(Level::Info, format!("Worker (pid:{pid}) was sent SIGTERM!"))
        }
        Exit::Signal(sig) => replace(
            Level::Error,
            format!("Worker (pid:{pid}) was sent {}!", sig.as_str()),
        ),
        Exit::OtherSignal(n) => replace(
            Level::Error,
            format!("Worker (pid:{pid}) was sent signal {n}!"),
        ),
    }
}

/// What the master does to a worker silent past `--timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Send the worker-abort signal: its `worker_abort` hook runs when the
    /// interpreter gets control, then the worker aborts itself.
    RequestAbort,
    /// SIGABRT: every thread's traceback is dumped, the request answered
    /// 504, the worker dies.
    Abort,
    /// SIGKILL.
    Kill,
}

/// What a silent worker gets, if anything, a tick apart each: with a
/// `worker_abort` hook the worker-abort signal first, then SIGABRT (it
/// logs why it hangs), then SIGKILL when it is still there.
pub fn timeout_action(
    state: WorkerState,
    silent_for: Duration,
    timeout: Option<Duration>,
    abort_hook: bool,
) -> Option<TimeoutAction> {
    let timeout = timeout?;
    if silent_for <= timeout {
        return None;
    }
    Some(match state {
        WorkerState::Running | WorkerState::Outgoing | WorkerState::Retiring if abort_hook => {
            TimeoutAction::RequestAbort
        }
        WorkerState::Running | WorkerState::Outgoing | WorkerState::Retiring => {
            TimeoutAction::Abort
        }
        WorkerState::AbortRequested => TimeoutAction::Abort,
        WorkerState::Aborted => TimeoutAction::Kill,
    })
}

/// Slows down the replacement of workers that die soon after they start
/// (a crash in the app's import, a segfaulting extension), so a broken
/// deployment does not fork as fast as it can.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Early deaths in a row.
    failures: u32,
    /// No spawning before this instant.
    not_before: Option<Instant>,
}

impl Backoff {
    /// A worker that lived less than this and did not exit cleanly counts
    /// as a failure.
    pub const EARLY: Duration = Duration::from_secs(5);
    /// Longest wait between two spawns.
    pub const MAX_DELAY: Duration = Duration::from_secs(10);

    /// The wait after `failures` early deaths in a row: 0.1 s, doubling.
    pub fn delay(failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let millis = 100u64.saturating_mul(1 << (failures - 1).min(16));
        Duration::from_millis(millis).min(Self::MAX_DELAY)
    }

    /// Records a worker's death. `harmless`: it exited 0, was told to stop,
    /// or had booted (loaded the app and beaten its heartbeat): a worker
    /// killed while serving (by an operator, the OOM killer, a crash in one
    /// request) is no boot loop and is replaced at once, as Gunicorn does.
    pub fn record_exit(&mut self, lived: Duration, harmless: bool, now: Instant) {
        if harmless || lived >= Self::EARLY {
            self.failures = 0;
            self.not_before = None;
        } else {
            self.failures += 1;
            self.not_before = Some(now + Self::delay(self.failures));
        }
    }

    /// Whether a worker may be spawned now.
    pub fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// How long until spawning is allowed again, if it is not now.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.not_before
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    fn set(n: i32) -> WorkerSet<()> {
        let mut s = WorkerSet::default();
        let now = Instant::now();
        for i in 1..=n {
            s.add(pid(100 + i), i as u64, (), now);
        }
        s
    }

    #[test]
    fn missing_workers_are_spawned() {
        let s = set(1);
        assert_eq!(
            s.plan(3),
            Plan {
                spawn: 2,
                retire: vec![]
            }
        );
        assert_eq!(
            set(3).plan(3),
            Plan {
                spawn: 0,
                retire: vec![]
            }
        );
        assert_eq!(WorkerSet::<()>::default().plan(1).spawn, 1);
    }

    #[test]
    fn extra_workers_are_retired_oldest_first() {
        let s = set(4);
        assert_eq!(s.plan(2).retire, vec![pid(101), pid(102)]);
    }

    #[test]
    fn retiring_workers_do_not_count_and_are_not_retired_twice() {
        // HUP: the old workers retire while new ones are spawned.
        let mut s = set(2);
        for p in [pid(101), pid(102)] {
            s.get_mut(p).unwrap().state = WorkerState::Retiring;
        }
        assert_eq!(
            s.plan(2),
            Plan {
                spawn: 2,
                retire: vec![]
            }
        );
        s.add(pid(201), 3, (), Instant::now());
        s.add(pid(202), 4, (), Instant::now());
        assert_eq!(
            s.plan(2),
            Plan {
                spawn: 0,
                retire: vec![]
            }
        );
        // TTOU with one old worker still finishing: retire the oldest running.
        assert_eq!(s.plan(1).retire, vec![pid(201)]);
    }

    #[test]
    fn hup_retires_old_workers_only_once_the_new_ones_have_booted() {
        let mut s = set(2);
        s.iter_mut().for_each(|w| w.booted = true);
        assert_eq!(s.supersede_running(), 2);
        // The old ones do not count: two new ones are due, none retired yet.
        assert_eq!(
            s.plan(2),
            Plan {
                spawn: 2,
                retire: vec![]
            }
        );
        s.add(pid(201), 3, (), Instant::now());
        s.add(pid(202), 4, (), Instant::now());
        assert!(s.outgoing_to_retire(2).is_empty(), "new ones still booting");
        s.get_mut(pid(201)).unwrap().booted = true;
        assert!(s.outgoing_to_retire(2).is_empty(), "one still booting");
        s.get_mut(pid(202)).unwrap().booted = true;
        let mut old = s.outgoing_to_retire(2);
        old.sort();
        assert_eq!(old, vec![pid(101), pid(102)]);
    }

    #[test]
    fn a_failed_reload_gives_the_old_workers_back() {
        let mut s = set(2);
        s.supersede_running();
        s.add(pid(201), 3, (), Instant::now());
        s.remove(pid(201));
        assert_eq!(s.restore_outgoing(), 2);
        assert_eq!(
            s.plan(2),
            Plan {
                spawn: 0,
                retire: vec![]
            }
        );
        assert_eq!(s.with_state(WorkerState::Running).len(), 2);
    }

    #[test]
    fn aborted_workers_still_count_until_reaped() {
        let mut s = set(2);
        s.get_mut(pid(101)).unwrap().state = WorkerState::Aborted;
        assert_eq!(
            s.plan(2),
            Plan {
                spawn: 0,
                retire: vec![]
            }
        );
        s.remove(pid(101));
        assert_eq!(s.plan(2).spawn, 1);
    }

    #[test]
    fn exit_codes_follow_gunicorns_contract() {
        assert_eq!(
            judge_exit(pid(7), Exit::Code(3)),
            Verdict::Halt {
                code: 3,
                reason: "Worker failed to boot."
            }
        );
        assert_eq!(
            judge_exit(pid(7), Exit::Code(4)),
            Verdict::Halt {
                code: 4,
                reason: "App failed to load."
            }
        );
        assert_eq!(
            judge_exit(pid(7), Exit::Code(0)),
            Verdict::Replace {
                message: None,
                level: Level::Debug
            }
        );
        assert_eq!(
            judge_exit(pid(7), Exit::Code(1)),
            Verdict::Replace {
                message: Some("Worker (pid:7) exited with code 1.".into()),
                level: Level::Error
            }
        );
        assert_eq!(
            judge_exit(pid(7), Exit::Signal(Signal::SIGKILL)),
            Verdict::Replace {
                message: Some("Worker (pid:7) was sent SIGKILL! Perhaps out of memory?".into()),
                level: Level::Error
            }
        );
        assert_eq!(
            judge_exit(pid(7), Exit::OtherSignal(36)),
            Verdict::Replace {
                message: Some("Worker (pid:7) was sent signal 36!".into()),
                level: Level::Error
            }
        );
        assert_eq!(Exit::OtherSignal(36).code(), -36);
        assert_eq!(
            judge_exit(pid(7), Exit::Signal(Signal::SIGSEGV)),
            Verdict::Replace {
                message: Some("Worker (pid:7) was sent SIGSEGV!".into()),
                level: Level::Error
            }
        );
    }

    #[test]
    fn silent_workers_get_abort_then_kill() {
        let t = Some(Duration::from_secs(30));
        let s = Duration::from_secs;
        use TimeoutAction::*;
        assert_eq!(timeout_action(WorkerState::Running, s(29), t, false), None);
        assert_eq!(timeout_action(WorkerState::Running, s(30), t, false), None);
        assert_eq!(
            timeout_action(WorkerState::Running, s(31), t, false),
            Some(Abort)
        );
        assert_eq!(
            timeout_action(WorkerState::Aborted, s(32), t, false),
            Some(Kill)
        );
        assert_eq!(
            timeout_action(WorkerState::Running, s(9999), None, true),
            None
        );
    }

    #[test]
    fn a_worker_abort_hook_gets_its_chance_before_the_abort() {
        let t = Some(Duration::from_secs(30));
        let s = Duration::from_secs;
        use TimeoutAction::*;
        assert_eq!(timeout_action(WorkerState::Running, s(30), t, true), None);
        assert_eq!(
            timeout_action(WorkerState::Outgoing, s(31), t, true),
            Some(RequestAbort)
        );
        // Still silent a tick later (stuck in C holding the GIL): dump and kill.
        assert_eq!(
            timeout_action(WorkerState::AbortRequested, s(32), t, true),
            Some(Abort)
        );
        assert_eq!(
            timeout_action(WorkerState::Aborted, s(33), t, true),
            Some(Kill)
        );
    }

    #[test]
    fn early_deaths_back_off_exponentially_and_reset() {
        let now = Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready(now));
        b.record_exit(Duration::from_millis(200), false, now);
        assert!(!b.ready(now));
        assert_eq!(b.remaining(now), Some(Duration::from_millis(100)));
        assert!(b.ready(now + Duration::from_millis(100)));
        b.record_exit(Duration::from_millis(200), false, now);
        assert_eq!(b.remaining(now), Some(Duration::from_millis(200)));
        for _ in 0..20 {
            b.record_exit(Duration::ZERO, false, now);
        }
        assert_eq!(b.remaining(now), Some(Backoff::MAX_DELAY));
        // A worker that ran for a while, or stopped cleanly, resets it.
        b.record_exit(Duration::from_secs(60), false, now);
        assert!(b.ready(now));
        b.record_exit(Duration::ZERO, false, now);
        b.record_exit(Duration::ZERO, true, now);
        assert!(b.ready(now));
    }
}
