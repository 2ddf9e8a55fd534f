//! Listening sockets, bound by the master before any worker is forked and
//! shared by all of them (each worker accepts on every listener).
//!
//! Sockets are non-blocking (workers poll them and race to accept), have a
//! backlog of 2048, and stay open across `exec` (no close-on-exec): a
//! USR2 binary upgrade hands them to the new master, which [`Listener::adopt`]s them.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{
    accept4, bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6, UnixAddr,
};
use nix::unistd::{chown, Gid, Uid};

use crate::settings::BindAddr;

/// Pending connections the kernel queues per listener (Gunicorn's default).
pub const BACKLOG: i32 = 2048;

/// SO_SNDBUF asked for accepted unix connections (the kernel doubles it
/// for its bookkeeping): a maximum frame and then some.
const UNIX_SEND_BUFFER: usize = ferrocorn_protocol::MAX_FRAME_SIZE + 256 * 1024;

/// One bound socket, listening once [`Listener::listen`] was called (or
/// from the start, when adopted).
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    /// As given on the command line, for log lines.
    addr: BindAddr,
}

/// Why a `--bind` address could not be bound.
#[derive(Debug)]
pub struct BindError {
    addr: BindAddr,
    why: String,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: {}", self.addr, self.why)
    }
}

impl std::error::Error for BindError {}

/// Owner and mode a unix socket file gets between `bind` and `listen`, so
/// that the socket takes connections only once they are final (a client
/// that waits for the socket to answer never sees it half-owned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketFileOwner {
    pub uid: Option<Uid>,
    pub gid: Option<Gid>,
    pub mode: u32,
}

impl Listener {
    /// Binds `addr`; a unix socket file gets `owner`'s owner and mode. It
    /// takes no connection (a client is refused) until [`Listener::listen`].
    pub fn bind(addr: &BindAddr, owner: &SocketFileOwner) -> Result<Listener, BindError> {
        let fail = |why: String| BindError {
            addr: addr.clone(),
            why,
        };
        let fd = match addr {
            BindAddr::Unix(path) => bind_unix(path, owner).map_err(|e| fail(e.to_string()))?,
            BindAddr::Tcp { host, port } => {
                let target = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| fail(format!("cannot resolve {host}: {e}")))?
                    .next()
                    .ok_or_else(|| fail(format!("{host} has no address")))?;
                bind_tcp(target).map_err(|e| fail(e.to_string()))?
            }
        };
        // Inheritable across exec; workers inherit it through fork anyway.
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| fail(e.to_string()))?;
        Ok(Listener {
            fd,
            addr: addr.clone(),
        })
    }

    /// Starts taking connections. The master calls it last, once whatever
    /// a client may use after connecting is in place (signal handlers, the
    /// metrics and control sockets): a socket that answers means a master
    /// ready to be spoken to.
    pub fn listen(&self) -> Result<(), BindError> {
        Backlog::new(BACKLOG)
            .and_then(|backlog| listen(&self.fd, backlog))
            .map_err(|e| BindError {
                addr: self.addr.clone(),
                why: e.to_string(),
            })
    }

    /// Takes over a listening socket inherited from an old master (USR2
    /// upgrade): its address is read from the socket itself.
    pub fn adopt(fd: OwnedFd) -> io::Result<Listener> {
        use nix::sys::socket::{getsockname, SockaddrStorage};
        let local: SockaddrStorage = getsockname(fd.as_raw_fd())?;
        let addr = if let Some(unix) = local.as_unix_addr() {
            let path = unix.path().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "an unnamed unix socket")
            })?;
            BindAddr::Unix(path.to_owned())
        } else if let Some(v4) = local.as_sockaddr_in() {
            BindAddr::Tcp {
                host: v4.ip().to_string(),
                port: v4.port(),
            }
        } else if let Some(v6) = local.as_sockaddr_in6() {
            BindAddr::Tcp {
                host: v6.ip().to_string(),
                port: v6.port(),
            }
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a unix or TCP socket",
            ));
        };
        nix::fcntl::fcntl(&fd, FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))?;
        Ok(Listener { fd, addr })
    }

    /// Whether this listener serves `--bind` address `wanted` (an adopted
    /// TCP listener has a numeric host).
    pub fn serves(&self, wanted: &BindAddr) -> bool {
        match (&self.addr, wanted) {
            (BindAddr::Unix(a), BindAddr::Unix(b)) => a == b,
            (BindAddr::Tcp { host, port }, BindAddr::Tcp { host: h, port: p }) if port == p => {
                let mine: Option<std::net::IpAddr> = host.parse().ok();
                (h.as_str(), *p)
                    .to_socket_addrs()
                    .is_ok_and(|mut addrs| addrs.any(|a| Some(a.ip()) == mine))
            }
            _ => false,
        }
    }

    /// Accepts one pending connection, non-blocking; `EAGAIN` when another
    /// worker was faster.
    pub fn accept(&self) -> nix::Result<OwnedFd> {
        let conn = accept4(&self.fd, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC)?;
        match self.addr {
            // Frames are written whole; never let Nagle hold back a reply.
            BindAddr::Tcp { .. } => {
                let _ = setsockopt(&conn, sockopt::TcpNoDelay, &true);
            }
            // A unix socket's send buffer bounds how much of a response is
            // in flight (208 KiB by default): room for a whole maximum
            // frame lets a 1 MiB body go out in one writev instead of a
            // wait for nginx per fifth of it. The kernel caps the size at
            // net.core.wmem_max; memory is only used while data waits.
            // (TCP tunes its own buffer; setting one would stop that.)
            BindAddr::Unix(_) => {
                let _ = setsockopt(&conn, sockopt::SndBuf, &UNIX_SEND_BUFFER);
            }
        }
        Ok(conn)
    }

    pub fn addr(&self) -> &BindAddr {
        &self.addr
    }

    /// Removes the socket file of a unix listener (the master, at exit).
    pub fn remove_socket_file(&self) {
        if let BindAddr::Unix(path) = &self.addr {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    warning!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn bind_unix(path: &Path, owner: &SocketFileOwner) -> io::Result<OwnedFd> {
    remove_stale_socket(path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // Connections are refused until listen(): the file is given away
    // now, so whoever can connect sees its final owner and mode.
    let give = || -> io::Result<()> {
        if owner.uid.is_some() || owner.gid.is_some() {
            chown(path, owner.uid, owner.gid)
                .map_err(|e| io::Error::other(format!("cannot chown {}: {e}", path.display())))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(owner.mode))
            .map_err(|e| io::Error::other(format!("cannot chmod {}: {e}", path.display())))
    };
    if let Err(e) = give() {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(fd)
}

/// A socket file left by a dead server is removed; one a live server
/// answers on is "in use"; any other file is never touched.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        ));
    }
    std::fs::remove_file(path)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a))?,
    }
    Ok(fd)
}

/// The local address of a bound TCP listener (tests bind port 0).
#[cfg(test)]
pub fn local_port(listener: &Listener) -> u16 {
    let addr: SockaddrIn = nix::sys::socket::getsockname(listener.fd.as_raw_fd()).unwrap();
    addr.port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrocorn-listener-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    const PRIVATE: SocketFileOwner = SocketFileOwner {
        uid: None,
        gid: None,
        mode: 0o600,
    };

    #[test]
    fn unix_socket_has_its_owner_and_mode_once_it_listens() {
        use std::os::unix::fs::MetadataExt;
        let path = tmp("owned.sock");
        let nobody = nix::unistd::Gid::from_raw(65534);
        let owner = SocketFileOwner {
            uid: None,
            gid: Some(nobody),
            mode: 0o640,
        };
        let listener = Listener::bind(&BindAddr::Unix(path.clone()), &owner).unwrap();
        listener.listen().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        if nix::unistd::Uid::effective().is_root() {
            assert_eq!(meta.gid(), 65534);
        }
        listener.remove_socket_file();
    }

    #[test]
    fn unix_socket_replaces_a_stale_one_but_not_a_live_one() {
        let path = tmp("a.sock");
        let addr = BindAddr::Unix(path.clone());
        let first = Listener::bind(&addr, &PRIVATE).unwrap();
        first.listen().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A live listener is "in use".
        let err = Listener::bind(&addr, &PRIVATE).unwrap_err().to_string();
        assert!(err.contains("another server"), "{err}");
        // Once it is gone, its file is stale and replaced.
        drop(first);
        let second = Listener::bind(&addr, &PRIVATE).unwrap();
        // Bound, it refuses connections until it listens.
        assert!(UnixStream::connect(&path).is_err());
        second.listen().unwrap();
        let _client = UnixStream::connect(&path).unwrap();
        assert!(second.accept().is_ok());
        second.remove_socket_file();
        assert!(!path.exists());
    }

    #[test]
    fn a_regular_file_is_never_removed() {
        let path = tmp("not-a-socket");
        std::fs::write(&path, b"keep me").unwrap();
        let err = Listener::bind(&BindAddr::Unix(path.clone()), &PRIVATE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[test]
    fn tcp_listener_accepts_nonblocking() {
        let l = Listener::bind(
            &BindAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            &PRIVATE,
        )
        .unwrap();
        l.listen().unwrap();
        assert_eq!(l.accept().unwrap_err(), nix::errno::Errno::EAGAIN);
        let _c = std::net::TcpStream::connect(("127.0.0.1", local_port(&l))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(l.accept().is_ok());
    }
}
