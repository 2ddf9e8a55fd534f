//! The error log shared by the master and the workers, in Gunicorn's line
//! format: `[2026-11-25 17:00:00 +0000] [PID] [INFO] message`.
//!
//! Each line (a traceback included) is written with one `write` call to a
//! file opened in append mode, so lines of different processes never
//! interleave. Apps' `wsgi.errors` output goes to the same place, raw.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use crate::settings::LogTarget;

/// Log levels, Gunicorn's names and order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
    Critical = 50,
}

impl Level {
    /// Parses a `--log-level` value (any case).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Where lines go: `None` is standard error.
struct Sink {
    target: LogTarget,
    file: Option<File>,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    target: LogTarget::Stderr,
    file: None,
});
static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Opens a log destination in append mode; `None` is standard error.
pub fn open(target: &LogTarget) -> io::Result<Option<File>> {
    match target {
        LogTarget::Stderr => Ok(None),
        LogTarget::Stdout => {
            use std::os::fd::AsFd;
            Ok(Some(File::from(io::stdout().as_fd().try_clone_to_owned()?)))
        }
        LogTarget::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Some)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Opens the log destination and sets the level. Called once by the master
/// before forking; workers inherit the open file.
pub fn init(level: Level, target: &LogTarget) -> io::Result<()> {
    let file = open(target)?;
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    sink.target = target.clone();
    sink.file = file;
    LEVEL.store(level as u8, Ordering::Relaxed);
    Ok(())
}

/// Reopens the log file (after rotation; SIGUSR1).
pub fn reopen() -> io::Result<()> {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let file = open(&sink.target)?;
    match (&sink.file, file) {
        // Keep the descriptor number: Python's faulthandler writes to it.
        (Some(old), Some(new)) => {
            // SAFETY: both descriptors are open files owned by this
            // module; `old` stays owned by `sink` and now names the new file.
            if unsafe { libc::dup2(new.as_raw_fd(), old.as_raw_fd()) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        (_, file) => sink.file = file,
    }
    Ok(())
}

/// The descriptor log lines go to (for Python's faulthandler).
pub fn raw_fd() -> i32 {
    let sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    sink.file.as_ref().map_or(2, |f| f.as_raw_fd())
}

/// Whether lines at `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Writes bytes as they are (for `wsgi.errors`).
pub fn write_raw(bytes: &[u8]) {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    // Nowhere to report a failing log write: drop it, like Python's logging.
    let _ = match sink.file.as_mut() {
        Some(file) => file.write_all(bytes),
        None => io::stderr().lock().write_all(bytes),
    };
}

/// Formats and writes one line at `level`, if enabled.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    crate::metrics::log_line(level);
    if !enabled(level) {
        return;
    }
    let mut line = String::with_capacity(128);
    use fmt::Write as _;
    let _ = write!(
        line,
        "[{}] [{}] [{}] {args}",
        timestamp(),
        std::process::id(),
        level.label()
    );
    if !line.ends_with('\n') {
        line.push('\n');
    }
    write_raw(line.as_bytes());
}

/// Local time as `2026-11-25 17:00:00 +0000`.
fn timestamp() -> String {
    let now = std::time::SystemTime::now();
    let Some(tm) = local_time(now) else {
        return format!("@{:?}", now);
    };
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// The broken-down local time of `at` (`None` if the C library fails).
pub fn local_time(at: std::time::SystemTime) -> Option<libc::tm> {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: `tm` is plain data that localtime_r fully initializes when it
    // returns non-null; both pointers are valid for the call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        (!libc::localtime_r(&secs, &mut tm).is_null()).then_some(tm)
    }
}

macro_rules! debug {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Debug, format_args!($($arg)*)) };
}
macro_rules! info {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Info, format_args!($($arg)*)) };
}
macro_rules! warning {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Warning, format_args!($($arg)*)) };
}
macro_rules! error {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Error, format_args!($($arg)*)) };
}
macro_rules! critical {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Critical, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARNING"), Some(Level::Warning));
        assert_eq!(Level::parse("nope"), None);
        assert!(Level::Debug < Level::Critical);
    }

    #[test]
    fn timestamp_has_gunicorns_shape() {
        let t = timestamp();
        // 2026-11-25 17:00:00 +0000
        assert_eq!(t.len(), 25, "{t}");
        assert_eq!(&t[4..5], "-");
        assert!(t[20..21] == *"+" || t[20..21] == *"-", "{t}");
    }
}
