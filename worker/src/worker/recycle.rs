//! When a worker should retire on its own: after `--max-requests` (plus
//! its share of `--max-requests-jitter`) or once its resident memory
//! passes `--max-worker-memory`. The serving loop asks after every batch of
//! requests; a due worker stops like on SIGTERM, and the master replaces it.

use std::sync::{Mutex, PoisonError};

use crate::metrics::Restart;

/// A worker's recycling limits and its count so far.
#[derive(Debug)]
pub struct Recycle {
    /// Requests after which the worker retires, jitter included.
    max_requests: Option<u64>,
    /// Resident set size, in bytes, past which the worker retires.
    max_rss: Option<u64>,
    served: u64,
    /// Why the worker is due, once it is.
    due: Option<String>,
    /// Which limit made it due (for the restart metrics).
    due_limit: Option<Restart>,
}

impl Recycle {
    /// `jitter_roll` is a random number; the worker's extra requests are
    /// `jitter_roll % (jitter + 1)`.
    pub fn new(max_requests: u64, jitter: u64, max_rss_mib: u64, jitter_roll: u64) -> Recycle {
        Recycle {
            max_requests: (max_requests > 0)
                .then(|| max_requests + jitter_roll % jitter.saturating_add(1)),
            max_rss: (max_rss_mib > 0).then(|| max_rss_mib.saturating_mul(1 << 20)),
            served: 0,
            due: None,
            due_limit: None,
        }
    }

    /// The request limit this worker drew (for the log).
    pub fn max_requests(&self) -> Option<u64> {
        self.max_requests
    }

    /// Whether the request about to be served is this worker's last: the
    /// limit is reached with it, or the worker is due already.
    pub fn next_is_last(&self) -> bool {
        self.due.is_some() || self.max_requests.is_some_and(|max| self.served + 1 >= max)
    }

    /// Counts one served request.
    pub fn count_request(&mut self) {
        self.served += 1;
        if self.due.is_none() && self.max_requests.is_some_and(|max| self.served >= max) {
            self.due = Some(format!("served {} requests (--max-requests)", self.served));
            self.due_limit = Some(Restart::MaxRequests);
        }
    }

    /// Checks the memory limit against `rss` bytes (after a request).
    #[inline(always)]
    pub fn check_rss(&mut self, rss: impl FnOnce() -> Option<u64>) {
        let Some(max) = self.max_rss else { return };
        if self.due.is_some() {
            return;
        }
        if let Some(rss) = rss().filter(|&r| r > max) {
            self.due = Some(format!(
                "resident memory {} MiB passed --max-worker-memory {} MiB",
                rss >> 20,
                max >> 20
            ));
            self.due_limit = Some(Restart::MaxMemory);
        }
    }

    /// Which limit the worker reached, once it is due.
    pub fn due_limit(&self) -> Option<Restart> {
        self.due_limit
    }

    /// Why the worker should retire now, if it should.
    pub fn due(&self) -> Option<&str> {
        self.due.as_deref()
    }
}

/// Where the serving loop counts each served request: the worker's own
/// [`Recycle`], or with `--threads`, the one its threads share.
pub trait CountRequests {
    /// Whether the request about to be served is the worker's last.
    fn next_is_last(&self) -> bool;
    fn request_done(&mut self);
}

impl CountRequests for Recycle {
    #[inline(always)]
    fn next_is_last(&self) -> bool {
        Recycle::next_is_last(self)
    }

    #[inline(always)]
    fn request_done(&mut self) {
        self.count_request();
        self.check_rss(current_rss);
    }
}

impl CountRequests for &Mutex<Recycle> {
    fn next_is_last(&self) -> bool {
        self.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_is_last()
    }

    fn request_done(&mut self) {
        self.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .request_done();
    }
}

/// This process's resident set size in bytes (`/proc/self/statm`).
pub fn current_rss() -> Option<u64> {
    rss_at("/proc/self/statm")
}

/// Another process's resident set size in bytes (the master asks about its
/// workers for `show workers`).
pub fn rss_of(pid: i32) -> Option<u64> {
    rss_at(&format!("/proc/{pid}/statm"))
}

fn rss_at(statm: &str) -> Option<u64> {
    let statm = std::fs::read_to_string(statm).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    Some(pages * page)
}

/// A random number for the jitter, from the kernel.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(buf)
    } else {
        u64::from(std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limits_never_due() {
        let mut r = Recycle::new(0, 50, 0, 7);
        for _ in 0..10_000 {
            r.count_request();
        }
        r.check_rss(|| Some(u64::MAX));
        assert_eq!(r.due(), None);
        assert_eq!(r.max_requests(), None);
    }

    #[test]
    fn the_request_that_reaches_the_limit_is_the_last() {
        let mut r = Recycle::new(2, 0, 0, 0);
        assert!(!r.next_is_last());
        r.count_request();
        assert!(r.next_is_last());
        r.count_request();
        assert!(r.due().is_some() && r.next_is_last());
        let mut r = Recycle::new(0, 0, 100, 0);
        r.check_rss(|| Some(200 << 20));
        assert!(r.next_is_last());
        assert!(!Recycle::new(0, 0, 0, 0).next_is_last());
    }

    #[test]
    fn max_requests_with_jitter() {
        let mut r = Recycle::new(10, 5, 0, 13); // 13 % 6 = 1
        assert_eq!(r.max_requests(), Some(11));
        for _ in 0..10 {
            r.count_request();
        }
        assert_eq!(r.due(), None);
        r.count_request();
        assert_eq!(r.due(), Some("served 11 requests (--max-requests)"));
        for roll in 0..100 {
            let max = Recycle::new(10, 5, 0, roll).max_requests().unwrap();
            assert!((10..=15).contains(&max));
        }
        assert_eq!(Recycle::new(10, 0, 0, 99).max_requests(), Some(10));
    }

    #[test]
    fn memory_limit() {
        let mut r = Recycle::new(0, 0, 100, 0);
        r.check_rss(|| Some(100 << 20));
        assert_eq!(r.due(), None);
        r.check_rss(|| None);
        assert_eq!(r.due(), None);
        r.check_rss(|| Some(150 << 20));
        assert_eq!(
            r.due(),
            Some("resident memory 150 MiB passed --max-worker-memory 100 MiB")
        );
        assert!(current_rss().unwrap() > 0);
    }
}
