//! Running under systemd: readiness notifications (`Type=notify`) and
//! socket activation (`ferrocorn@.socket`), both without libsystemd.
//!
//! - [`Notifier`]: `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...`
//!   datagrams to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//!   namespace), as `sd_notify(3)` sends them.
//! - [`listen_fds`]: the sockets systemd passed (`$LISTEN_FDS` descriptors
//!   from 3 on, meant for `$LISTEN_PID`), as `sd_listen_fds(3)` finds them.
//!
//! Both variables are removed from the environment once read, so workers
//! and the app never see them (`sd_*(unset_environment=1)`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use std::os::unix::fs::FileTypeExt;

use nix::unistd::getpid;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, if set; removes the variable.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        // The master is single-threaded: nothing reads the environment
        // concurrently.
        std::env::remove_var("NOTIFY_SOCKET");
        let socket = UnixDatagram::unbound().ok()?;
        let bytes = path.as_encoded_bytes();
        let connected = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| socket.connect_addr(&addr))
            }
            None => socket.connect(&path),
        };
        match connected {
            Ok(()) => Some(Notifier { socket }),
            Err(e) => {
                warning!("cannot reach systemd at NOTIFY_SOCKET={path:?}: {e}");
                None
            }
        }
    }

    /// Sends one notification: `KEY=VALUE` lines.
    pub fn notify(&self, state: &str) {
        debug!("systemd notify: {}", state.replace('\n', " "));
        if let Err(e) = self.socket.send(state.as_bytes()) {
            warning!("cannot notify systemd: {e}");
        }
    }
}

/// `MONOTONIC_USEC=` for `RELOADING=1` (systemd's `Type=notify-reload`
/// wants it): CLOCK_MONOTONIC in microseconds.
pub fn monotonic_usec() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::from(t).as_micros())
        .unwrap_or(0)
}

/// A socket handed over by systemd.
#[derive(Debug)]
pub struct Activated {
    pub fd: OwnedFd,
    /// Its `FileDescriptorName=` (the socket unit's name by default).
    pub name: Option<String>,
}

/// Takes the sockets systemd passed to this process, if any. `Ok(None)`
/// when this process was not socket-activated. Removes `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment.
pub fn listen_fds() -> Result<Option<Vec<Activated>>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(None);
    };
    if pid.trim().parse::<i32>().ok() != Some(getpid().as_raw()) {
        // Meant for another process (a parent that exec'd us without
        // passing them on).
        return Ok(None);
    }
    let count: RawFd = count
        .trim()
        .parse()
        .map_err(|_| format!("invalid LISTEN_FDS={count:?} from systemd"))?;
    let mut names = names
        .as_deref()
        .map(|n| n.split(':').map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter();
    let mut sockets = Vec::new();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count.max(0) {
        // stat through /proc follows the descriptor to the socket itself.
        let meta = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .map_err(|e| format!("LISTEN_FDS: descriptor {fd}: {e}"))?;
        if !meta.file_type().is_socket() {
            return Err(format!("LISTEN_FDS: descriptor {fd} is not a socket"));
        }
        // SAFETY: systemd passed this descriptor to this process for it to
        // own (sd_listen_fds); it is open (fstat succeeded), and nothing
        // else in the process refers to it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        sockets.push(Activated {
            fd,
            name: names.next().filter(|n| !n.is_empty()),
        });
    }
    Ok(Some(sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_arrive_as_datagrams() {
        let dir = std::env::temp_dir().join(format!("fc-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: {
                let s = UnixDatagram::unbound().unwrap();
                s.connect(&path).unwrap();
                s
            },
        };
        notifier.notify("READY=1\nSTATUS=up");
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
        assert!(monotonic_usec() > 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
