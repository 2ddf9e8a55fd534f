//! Giving freed heap memory back to the system when a worker goes idle.
//!
//! glibc keeps what a request freed (a large body, the app's temporaries)
//! for the next one, and returns only the top of the heap on its own. That
//! is the right choice under load; an idle worker should not sit on it. So
//! after a serving loop wait in which nothing happened ([`IDLE_DELAY`]
//! with no request, after some activity), the worker asks glibc to return
//! every free page (`malloc_trim`): a few microseconds, once per idle
//! spell, never while requests keep coming (with `--threads`, only when
//! no thread holds a request).

use std::time::Duration;

/// Quiet time after activity before freed memory is returned.
pub const IDLE_DELAY: Duration = Duration::from_millis(100);

/// Whether memory may have been freed since the last trim.
#[derive(Debug, Default)]
pub struct IdleTrim {
    /// Something happened since the last trim.
    busy: bool,
}

impl IdleTrim {
    /// Longest wait the serving loop may make before calling
    /// [`idle`](Self::idle): short while a trim is due.
    pub fn wait(&self) -> Duration {
        if self.busy {
            IDLE_DELAY
        } else {
            Duration::MAX
        }
    }

    /// The serving loop woke up for work.
    pub fn busy(&mut self) {
        self.busy = true;
    }

    /// A whole wait passed with nothing to do: trim, once per idle spell.
    pub fn idle(&mut self) {
        if std::mem::take(&mut self.busy) {
            self.now();
        }
    }

    /// Returns free heap pages to the system now.
    pub fn now(&mut self) {
        self.busy = false;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only reorganizes the allocator's free lists,
        // each arena under its own lock: it is safe to call at any time,
        // from any thread (with --threads, the pool's are idle anyway).
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_idle_spell() {
        let mut trim = IdleTrim::default();
        trim.idle();
        assert!(!trim.busy);
        assert_eq!(trim.wait(), Duration::MAX);
        trim.busy();
        assert!(trim.busy);
        assert_eq!(trim.wait(), IDLE_DELAY);
        trim.idle();
        assert!(!trim.busy, "trimmed and reset");
        trim.idle();
        assert!(!trim.busy);
    }
}
