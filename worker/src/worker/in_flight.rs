//! What each serving thread is doing, for the two things that look at a
//! worker from outside its request: the `--timeout` abort (which
//! connection gets the 504, from a signal handler) and, with `--threads`,
//! the heartbeat (a worker is as alive as its least recently progressing
//! request).
//!
//! One [`Slot`] per serving thread: the single-threaded worker's is a
//! static, a threaded worker's pool gets one each. Every field is an
//! atomic, so the SIGABRT handler can read them.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The request one thread serves.
pub struct Slot {
    /// Its connection; -1 between requests.
    fd: AtomicI32,
    /// Its response head is queued: no 504 can replace it.
    started: AtomicBool,
    /// Monotonic nanoseconds of its last progress (start, or a wait on
    /// nginx's socket); 0 between requests. Only kept with threads.
    progress: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            fd: AtomicI32::new(-1),
            started: AtomicBool::new(false),
            progress: AtomicU64::new(0),
        }
    }
}

/// The single-threaded worker's slot (and any thread's before it joins a pool).
static MAIN: Slot = Slot::new();
/// One slot per thread of a threaded worker's pool.
static POOL: OnceLock<Box<[Slot]>> = OnceLock::new();
/// `--timeout` in nanoseconds, for the abort handler to tell stuck requests.
static TIMEOUT_NS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's slot.
    static MINE: Cell<&'static Slot> = const { Cell::new(&MAIN) };
}

/// Monotonic nanoseconds (never 0); async-signal-safe.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC
    // always exists on Linux. It is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
        .max(1)
}

/// Makes `threads` slots for a pool; once per worker, before its threads
/// start.
pub fn start_pool(threads: usize, timeout: Option<Duration>) {
    let _ = POOL.set((0..threads).map(|_| Slot::new()).collect());
    TIMEOUT_NS.store(
        timeout.map_or(0, |t| t.as_nanos() as u64),
        Ordering::Relaxed,
    );
}

/// Whether this worker serves with a pool of threads.
pub fn threaded() -> bool {
    POOL.get().is_some()
}

/// Makes pool slot `i` the calling thread's.
pub fn enter_pool(i: usize) {
    if let Some(slot) = POOL.get().and_then(|p| p.get(i)) {
        enter(slot);
    }
}

fn enter(slot: &'static Slot) {
    MINE.with(|m| m.set(slot));
}

/// The calling thread starts serving a request on `fd`.
pub fn begin_request(fd: i32) {
    MINE.with(|m| {
        let slot = m.get();
        slot.started.store(false, Ordering::Relaxed);
        slot.fd.store(fd, Ordering::Relaxed);
        if !std::ptr::eq(slot, &MAIN) {
            slot.progress.store(now_ns(), Ordering::Relaxed);
        }
    });
}

/// The calling thread's request is over.
pub fn end_request() {
    MINE.with(|m| {
        let slot = m.get();
        slot.fd.store(-1, Ordering::Relaxed);
        slot.progress.store(0, Ordering::Relaxed);
    });
}

/// The calling thread's response has started: no 504 can replace it.
pub fn response_started() {
    MINE.with(|m| m.get().started.store(true, Ordering::Relaxed));
}

/// The calling thread's request made progress (it waits on nginx's
/// socket, not on the app). False for a thread outside a pool, whose loop
/// keeps the heartbeat itself.
pub fn progressed() -> bool {
    MINE.with(|m| {
        let slot = m.get();
        if std::ptr::eq(slot, &MAIN) {
            return false;
        }
        if slot.progress.load(Ordering::Relaxed) != 0 {
            slot.progress.store(now_ns(), Ordering::Relaxed);
        }
        true
    })
}

/// The last progress of the pool's least recently progressing request
/// (monotonic ns), if any request is in flight.
pub fn oldest_progress() -> Option<u64> {
    oldest_in(POOL.get()?)
}

fn oldest_in(slots: &[Slot]) -> Option<u64> {
    slots
        .iter()
        .map(|s| s.progress.load(Ordering::Relaxed))
        .filter(|&p| p != 0)
        .min()
}

/// Calls `f` with the connection of each request the `--timeout` abort
/// answers with a 504: one whose response has not started and that is
/// stuck (past the timeout; with no such request, the least recently
/// progressing one). Single-threaded, that is the one request.
/// Async-signal-safe: atomics and `clock_gettime` only.
pub fn for_each_stuck(mut f: impl FnMut(i32)) {
    match POOL.get() {
        Some(pool) => stuck_in(pool, now_ns(), TIMEOUT_NS.load(Ordering::Relaxed), f),
        None => {
            let fd = MAIN.fd.load(Ordering::Relaxed);
            if fd >= 0 && !MAIN.started.load(Ordering::Relaxed) {
                f(fd);
            }
        }
    }
}

fn stuck_in(slots: &[Slot], now: u64, timeout: u64, mut f: impl FnMut(i32)) {
    let oldest = oldest_in(slots).unwrap_or(0);
    for slot in slots {
        let progress = slot.progress.load(Ordering::Relaxed);
        let fd = slot.fd.load(Ordering::Relaxed);
        if progress == 0 || fd < 0 || slot.started.load(Ordering::Relaxed) {
            continue;
        }
        if now.saturating_sub(progress) >= timeout || progress == oldest {
            f(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a new thread whose slot is `slot`.
    fn on(slot: &'static Slot, f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            enter(slot);
            f();
        })
        .join()
        .unwrap();
    }

    fn stuck(slots: &[Slot], now: u64, timeout: u64) -> Vec<i32> {
        let mut fds = vec![];
        stuck_in(slots, now, timeout, |fd| fds.push(fd));
        fds
    }

    #[test]
    fn slots_track_progress_and_pick_the_stuck_requests() {
        let slots: &'static [Slot] = Box::leak((0..3).map(|_| Slot::new()).collect());
        assert_eq!(oldest_in(slots), None);
        on(&slots[0], || begin_request(10));
        let first = oldest_in(slots).unwrap();
        on(&slots[1], || {
            begin_request(11);
            assert!(progressed());
        });
        let second = slots[1].progress.load(Ordering::Relaxed);
        assert!(second >= first);
        assert_eq!(oldest_in(slots), Some(first), "the older request counts");
        assert_eq!(stuck(slots, second, u64::MAX), vec![10], "the oldest one");
        assert_eq!(
            stuck(slots, second + 100, 100),
            vec![10, 11],
            "all past the timeout"
        );
        on(&slots[0], response_started);
        assert_eq!(
            stuck(slots, second, u64::MAX),
            Vec::<i32>::new(),
            "a started response gets no 504"
        );
        on(&slots[0], end_request);
        assert_eq!(oldest_in(slots), Some(second));
        on(&slots[1], end_request);
        assert_eq!(oldest_in(slots), None);
    }

    #[test]
    fn outside_a_pool_progress_is_the_loops_business() {
        assert!(!std::thread::spawn(progressed).join().unwrap());
    }
}
