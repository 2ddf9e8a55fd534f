//! Counters shared by the master and every worker: one anonymous shared
//! mapping made by the master before the first fork. Workers add to it
//! with atomic operations after each request; the master reads it to
//! answer `/metrics` and adds its own restart counts. Counters only grow
//! (Prometheus counters), so a worker that dies loses nothing it counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds (Prometheus' default
/// buckets, plus 30 s, the default `--timeout`).
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why a worker was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Silent past `--timeout`, aborted by the master.
    Timeout,
    /// Killed by a signal nobody asked for (a crash, the OOM killer).
    Crash,
    /// Exited on its own with an error.
    Exit,
    /// Recycled after `--max-requests`.
    MaxRequests,
    /// Recycled past `--max-worker-memory`.
    MaxMemory,
    /// Replaced by a reload (HUP).
    Reload,
}

impl Restart {
    pub const ALL: [Restart; 6] = [
        Restart::Timeout,
        Restart::Crash,
        Restart::Exit,
        Restart::MaxRequests,
        Restart::MaxMemory,
        Restart::Reload,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Restart::Timeout => "timeout",
            Restart::Crash => "crash",
            Restart::Exit => "exit",
            Restart::MaxRequests => "max_requests",
            Restart::MaxMemory => "max_worker_memory",
            Restart::Reload => "reload",
        }
    }
}

/// Status codes counted one by one (100..=999 are valid).
const STATUS_CODES: usize = 1000;

/// The shared counters. All-zero bytes are a valid value (fresh mapping).
#[repr(C)]
pub struct Counters {
    pub requests: AtomicU64,
    /// Sum of request durations, in microseconds.
    pub duration_micros: AtomicU64,
    /// Requests per histogram bucket, not cumulative; the last slot is
    /// `+Inf`.
    pub buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Responses per status code; slot 0 counts requests that got none.
    pub status: [AtomicU64; STATUS_CODES],
    pub restarts: [AtomicU64; Restart::ALL.len()],
}

impl Counters {
    /// Counts one finished request.
    pub fn record(&self, status: Option<u16>, duration: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
        let secs = duration.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let code = status.map_or(0, usize::from).min(STATUS_CODES - 1);
        self.status[code].fetch_add(1, Ordering::Relaxed);
    }

    pub fn restarted(&self, why: Restart) {
        let i = Restart::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.restarts[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Maps a fresh, zeroed [`Counters`] shared with every process forked
/// afterwards. It lives as long as the process.
pub fn map() -> std::io::Result<&'static Counters> {
    let size = std::mem::size_of::<Counters>();
    // SAFETY: an anonymous mapping needs no file; the kernel returns
    // zero-filled, page-aligned memory or MAP_FAILED, checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the mapping is large enough and aligned for `Counters`,
    // all-zero bytes are valid atomics, it is never unmapped (so
    // 'static holds), and it is only accessed through atomics, which are
    // sound across processes sharing the memory.
    Ok(unsafe { &*(ptr as *const Counters) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_process_counts_into_the_parents_mapping() {
        let counters = map().unwrap();
        counters.record(Some(200), Duration::from_millis(3));
        // SAFETY: the test child only touches atomics and exits at once.
        match unsafe { libc::fork() } {
            0 => {
                counters.record(Some(404), Duration::from_secs(60));
                counters.restarted(Restart::MaxRequests);
                // SAFETY: _exit ends the child without running the parent's
                // test harness teardown.
                unsafe { libc::_exit(0) }
            }
            pid => {
                assert!(pid > 0);
                nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
            }
        }
        assert_eq!(Counters::get(&counters.requests), 2);
        assert_eq!(Counters::get(&counters.status[200]), 1);
        assert_eq!(Counters::get(&counters.status[404]), 1);
        assert_eq!(Counters::get(&counters.buckets[0]), 1);
        assert_eq!(Counters::get(&counters.buckets[BUCKETS.len()]), 1);
        assert_eq!(Counters::get(&counters.restarts[3]), 1);
        assert_eq!(Counters::get(&counters.duration_micros), 60_003_000);
    }
}
