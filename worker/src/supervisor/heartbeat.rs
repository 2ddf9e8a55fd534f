//! A worker's heartbeat: an anonymous in-memory file (memfd) created by the
//! master before the fork. The worker sets its modification time between
//! requests and during idle waits; the master reads it every tick. A worker
//! stuck in one request stops beating, and the master kills it after
//! `--timeout` (Gunicorn's `WorkerTmp`, without a file on disk).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::{fstat, futimens};
use nix::sys::time::TimeSpec;

/// Shared between the master and one worker.
#[derive(Debug)]
pub struct Heartbeat {
    file: OwnedFd,
    /// The file's time at creation; a later time means the worker beat.
    born: SystemTime,
}

impl Heartbeat {
    /// Creates the file; its time is "now", so a booting worker has a full
    /// `--timeout` to import the app and start serving.
    pub fn new() -> nix::Result<Heartbeat> {
        let file = memfd_create("ferrocorn-heartbeat", MFdFlags::MFD_CLOEXEC)?;
        let mut beat = Heartbeat {
            file,
            born: UNIX_EPOCH,
        };
        beat.touch()?;
        beat.born = beat.last_beat()?;
        Ok(beat)
    }

    /// Records "alive now" (the worker side).
    pub fn touch(&self) -> nix::Result<()> {
        futimens(&self.file, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW)
    }

    /// Records "alive as of `when`" (a threaded worker's oldest request).
    pub fn touch_at(&self, when: SystemTime) -> nix::Result<()> {
        let since = when.duration_since(UNIX_EPOCH).unwrap_or_default();
        let at = TimeSpec::from_duration(since);
        futimens(&self.file, &at, &at)
    }

    /// When the worker last beat (the master side).
    pub fn last_beat(&self) -> nix::Result<SystemTime> {
        let st = fstat(&self.file)?;
        Ok(UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32))
    }

    /// Whether the worker has beaten since the file was made (it beats
    /// first once its app is loaded).
    pub fn has_beaten(&self) -> bool {
        self.last_beat().is_ok_and(|t| t > self.born)
    }
}

/// The worker's side: touches the heartbeat at most once per interval, so
/// the serving loop can call [`Pulse::beat`] on every iteration for free.
#[derive(Debug)]
pub struct Pulse {
    heartbeat: Heartbeat,
    last: Option<Instant>,
}

/// How often a worker touches its heartbeat when it can.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(1);

impl Pulse {
    pub fn new(heartbeat: Heartbeat) -> Pulse {
        WORKER_HEARTBEAT.store(heartbeat.file.as_raw_fd(), Ordering::Relaxed);
        Pulse {
            heartbeat,
            last: None,
        }
    }

    /// Touches the heartbeat if the last touch is older than
    /// [`BEAT_INTERVAL`].
    pub fn beat(&mut self, now: Instant) {
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= BEAT_INTERVAL)
        {
            if let Err(e) = self.heartbeat.touch() {
                warning!("cannot update the heartbeat: {e}");
            }
            self.last = Some(now);
        }
    }

    /// A threaded worker's beat: alive as of the last progress of its least
    /// recently progressing request (`oldest`, monotonic ns from
    /// [`in_flight`](crate::worker::in_flight)), or now when none is in
    /// flight. One request stuck past `--timeout` makes the whole worker
    /// look stuck, and the master aborts it.
    pub fn beat_as_of(&mut self, now: Instant, oldest: Option<u64>) {
        let Some(oldest) = oldest else {
            return self.beat(now);
        };
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < BEAT_INTERVAL)
        {
            return;
        }
        let behind = crate::worker::in_flight::now_ns().saturating_sub(oldest);
        let when = SystemTime::now() - Duration::from_nanos(behind);
        if let Err(e) = self.heartbeat.touch_at(when) {
            warning!("cannot update the heartbeat: {e}");
        }
        self.last = Some(now);
    }
}

/// This worker's heartbeat descriptor, for waits deep in socket I/O that
/// have no [`Pulse`] at hand; -1 outside a serving worker (the master).
static WORKER_HEARTBEAT: AtomicI32 = AtomicI32::new(-1);

/// When [`beat_while_waiting`] last touched the heartbeat, in
/// milliseconds of the coarse monotonic clock.
static LAST_WAIT_BEAT_MS: AtomicU64 = AtomicU64::new(0);

/// The least time between two beats from waits: a large body makes a
/// dozen socket waits per request, which need not each cost a syscall.
const WAIT_BEAT_INTERVAL_MS: u64 = 250;

/// Milliseconds of CLOCK_MONOTONIC_COARSE (read from the vDSO, no syscall).
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Touches this worker's heartbeat (with `--threads`, the calling
/// thread's progress) from a wait on nginx's socket: waiting
/// for the peer is not being stuck in the app, and the socket wait has its
/// own timeout. Only the app's own code can make a worker miss beats.
/// At most one touch of the file per [`WAIT_BEAT_INTERVAL_MS`], far
/// below any `--timeout` (a pool thread's progress is an atomic store, not
/// a syscall: it is not limited).
pub fn beat_while_waiting() {
    // A pool thread marks its own request; the loop beats for them all.
    if crate::worker::in_flight::progressed() {
        return;
    }
    let fd = WORKER_HEARTBEAT.load(Ordering::Relaxed);
    let now = coarse_ms();
    if now.saturating_sub(LAST_WAIT_BEAT_MS.load(Ordering::Relaxed)) < WAIT_BEAT_INTERVAL_MS {
        return;
    }
    LAST_WAIT_BEAT_MS.store(now, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: the descriptor belongs to the worker's Pulse, which lives
        // until the worker process exits; it is never closed before.
        let file = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = futimens(file, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW);
    }
}

/// How long ago this worker last beat; `None` outside a serving worker.
/// A `worker_abort` signal that arrives late (the worker recovered and
/// beat since) is recognised by it.
pub fn silent_for() -> Option<Duration> {
    let fd = WORKER_HEARTBEAT.load(Ordering::Relaxed);
    if fd < 0 {
        return None;
    }
    // SAFETY: as in `beat_while_waiting`: the Pulse's descriptor stays
    // open until the worker process exits.
    let file = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = fstat(file).ok()?;
    let beat = UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32);
    SystemTime::now().duration_since(beat).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_moves_the_beat_forward() {
        let hb = Heartbeat::new().unwrap();
        let first = hb.last_beat().unwrap();
        assert!(!hb.has_beaten());
        assert!(SystemTime::now().duration_since(first).unwrap() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
        hb.touch().unwrap();
        assert!(hb.last_beat().unwrap() > first);
        assert!(hb.has_beaten());
        let past = SystemTime::now() - Duration::from_secs(40);
        hb.touch_at(past).unwrap();
        let back = hb.last_beat().unwrap();
        assert!(back <= past + Duration::from_millis(1) && back + Duration::from_secs(1) > past);
    }
}
