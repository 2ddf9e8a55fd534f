//! One worker's live figures, shared with the master for the control
//! socket's `show workers`: requests served, and the request in progress
//! with its start time. The master maps a slot before forking each worker
//! (one page, unmapped when the master forgets the worker); the worker
//! writes it around every request, the master only reads.
//!
//! The request line is written under a sequence lock: the writer makes the
//! sequence odd, writes, makes it even; a reader retries (a few times) when
//! the sequence moved under it. Every field is an atomic, so a torn read is
//! never undefined behaviour, only retried.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest request line kept (`METHOD PATH`), in bytes; longer ones are cut.
pub const LINE_MAX: usize = 256;
const WORDS: usize = LINE_MAX / 8;

/// The shared memory layout. All-zero bytes are a valid value.
#[repr(C)]
struct Slot {
    /// Requests this worker has finished.
    requests: AtomicU64,
    /// Even when `line` and `started` are consistent; odd while written.
    seq: AtomicU64,
    /// When the request in progress started, µs since the epoch; 0: idle.
    started_micros: AtomicU64,
    /// Length of the request line in `line`.
    line_len: AtomicU32,
    /// `METHOD PATH` of the request in progress, 8 bytes per word.
    line: [AtomicU64; WORDS],
}

/// A worker's slot: the master's handle and, after fork, the worker's.
pub struct WorkerSlot {
    slot: &'static Slot,
}

// SAFETY: the slot is only accessed through atomics, which are sound from
// any thread (and any process sharing the mapping).
unsafe impl Send for WorkerSlot {}
// SAFETY: as above; no method hands out non-atomic access.
unsafe impl Sync for WorkerSlot {}

/// What the master reads from a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReading {
    pub requests: u64,
    /// The request in progress: `METHOD PATH` and when it started.
    pub current: Option<(String, SystemTime)>,
}

impl WorkerSlot {
    /// Maps a fresh, zeroed slot shared with processes forked afterwards.
    pub fn new() -> std::io::Result<WorkerSlot> {
        // SAFETY: an anonymous mapping needs no file; the kernel returns
        // zero-filled, page-aligned memory or MAP_FAILED, checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Slot>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the mapping is large enough and aligned for `Slot`,
        // all-zero bytes are valid atomics, and it stays mapped until this
        // handle is dropped (the reference never escapes the handle).
        let slot = unsafe { &*(ptr as *const Slot) };
        Ok(WorkerSlot { slot })
    }

    /// The worker starts a request: `method` and `path` are shown until
    /// [`Self::request_done`].
    pub fn request_started(&self, method: &[u8], path: &[u8], now: SystemTime) {
        let mut line = [0u8; LINE_MAX];
        let mut len = 0;
        for part in [method, b" ", path] {
            let n = part.len().min(LINE_MAX - len);
            line[len..len + n].copy_from_slice(&part[..n]);
            len += n;
        }
        let s = self.slot;
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, word) in s.line.iter().enumerate().take(len.div_ceil(8)) {
            let bytes: [u8; 8] = line[i * 8..i * 8 + 8].try_into().expect("8 bytes");
            word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        s.line_len.store(len as u32, Ordering::Relaxed);
        s.started_micros
            .store(micros(now).max(1), Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The worker finished its request.
    pub fn request_done(&self) {
        let s = self.slot;
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        s.started_micros.store(0, Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(2), Ordering::Release);
        s.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// With `--threads`: one of several requests in progress finished; the
    /// slot keeps showing the latest one started.
    pub fn one_of_many_done(&self) {
        self.slot.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// What the worker last wrote. A request line caught mid-write after a
    /// few tries reads as idle (the next look shows it).
    pub fn read(&self) -> SlotReading {
        let s = self.slot;
        let requests = s.requests.load(Ordering::Relaxed);
        for _ in 0..4 {
            let before = s.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let started = s.started_micros.load(Ordering::Relaxed);
            let len = (s.line_len.load(Ordering::Relaxed) as usize).min(LINE_MAX);
            let mut line = Vec::with_capacity(len.next_multiple_of(8));
            for word in s.line.iter().take(len.div_ceil(8)) {
                line.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            line.truncate(len);
            let current = (started != 0).then(|| {
                (
                    String::from_utf8_lossy(&line).into_owned(),
                    UNIX_EPOCH + Duration::from_micros(started),
                )
            });
            return SlotReading { requests, current };
        }
        SlotReading {
            requests,
            current: None,
        }
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this size and is only
        // reachable through this handle, which is going away.
        unsafe {
            libc::munmap(
                self.slot as *const Slot as *mut libc::c_void,
                std::mem::size_of::<Slot>(),
            )
        };
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// This worker's own slot, set once at worker boot.
static MINE: OnceLock<WorkerSlot> = OnceLock::new();

/// The worker keeps its slot for the rest of its life.
pub fn install(slot: WorkerSlot) {
    let _ = MINE.set(slot);
}

/// This worker's slot, once installed (never in the master).
pub fn mine() -> Option<&'static WorkerSlot> {
    MINE.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_writes_what_the_parent_reads() {
        let slot = WorkerSlot::new().unwrap();
        assert_eq!(
            slot.read(),
            SlotReading {
                requests: 0,
                current: None
            }
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // SAFETY: the test child only touches atomics and exits at once.
        match unsafe { libc::fork() } {
            0 => {
                slot.request_started(b"GET", b"/a", t);
                slot.request_done();
                slot.request_started(b"POST", b"/slow?x=1", t);
                // SAFETY: _exit skips the test harness teardown.
                unsafe { libc::_exit(0) }
            }
            pid => {
                assert!(pid > 0);
                nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
            }
        }
        let r = slot.read();
        assert_eq!(r.requests, 1);
        assert_eq!(r.current, Some(("POST /slow?x=1".to_string(), t)));
        slot.request_done();
        assert_eq!(slot.read().current, None);
        assert_eq!(slot.read().requests, 2);
    }

    #[test]
    fn long_lines_are_cut_and_shorter_ones_do_not_show_old_bytes() {
        let slot = WorkerSlot::new().unwrap();
        let now = SystemTime::now();
        slot.request_started(b"GET", &[b'x'; 1000], now);
        let (line, _) = slot.read().current.unwrap();
        assert_eq!(line.len(), LINE_MAX);
        assert!(line.starts_with("GET xxx"));
        slot.request_started(b"GET", b"/", now);
        assert_eq!(slot.read().current.unwrap().0, "GET /");
    }
}
