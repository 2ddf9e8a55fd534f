//! The control socket (`--control-socket`), the master's side: a
//! non-blocking unix listener and its few clients, served from the
//! master's loop (no thread: the master forks). What the commands do is the
//! arbiter's ([`super::arbiter`]); this file only moves bytes, and never
//! lets a client hold the master up:
//!
//! - the file is made mode 0600 whatever the umask, and a peer whose uid
//!   (`SO_PEERCRED`) is neither the master's nor root's is answered an
//!   error and closed;
//! - one JSON request per line, at most [`MAX_REQUEST`] bytes; a client
//!   whose reply is not yet sent is not read (back-pressure), one silent
//!   for [`CLIENT_TIMEOUT`] is dropped, and at most [`MAX_CLIENTS`] are
//!   served at once;
//! - the file is removed at exit only while it is still this master's (a
//!   USR2 upgrade's new master takes the path over).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::{umask, Mode};
use serde_json::Value;

use crate::ctl::protocol::{error_reply, parse_request, Command, MAX_REQUEST};
use crate::signals::PollFlags;

/// Clients served at once; more are answered an error and closed.
pub const MAX_CLIENTS: usize = 16;
/// A client that neither sends nor reads for this long is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control socket could not be made.
#[derive(Debug)]
pub enum ControlBindError {
    /// Another live server answers on that path.
    InUse,
    Other(io::Error),
}

impl std::fmt::Display for ControlBindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlBindError::InUse => f.write_str("another ferrocorn answers on it"),
            ControlBindError::Other(e) => e.fmt(f),
        }
    }
}

/// A command read from a client, to be answered with [`ControlServer::reply`].
#[derive(Debug)]
pub struct Pending {
    pub client: u64,
    pub id: Value,
    pub command: Command,
}

/// The listening control socket and its clients.
pub struct ControlServer {
    listener: UnixListener,
    /// As given (relative to the master's directory).
    path: PathBuf,
    /// Device and inode of the file this master created.
    file: (u64, u64),
    /// The master's effective uid: the one (besides root) let in.
    uid: u32,
    clients: Vec<Client>,
    next_token: u64,
}

struct Client {
    token: u64,
    stream: UnixStream,
    /// Bytes read, not yet a whole request line.
    input: Vec<u8>,
    /// Reply bytes not yet written.
    output: Vec<u8>,
    /// Last time bytes moved either way.
    active_at: Instant,
    /// A request of this client is with the arbiter: read no further.
    awaiting: bool,
    /// The client closed its side (or sent too much): close once the
    /// output is written.
    closing: bool,
}

impl ControlServer {
    /// Creates the socket file at `path`, mode 0600. A stale file (no
    /// server answers) is replaced; a live one only when `take_over` (the
    /// new master of a USR2 upgrade, whose old master is going away).
    pub fn bind(path: &Path, take_over: bool) -> Result<ControlServer, ControlBindError> {
        let other = ControlBindError::Other;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(other(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                )))
            }
            Ok(_) => {
                if UnixStream::connect(path).is_ok() && !take_over {
                    return Err(ControlBindError::InUse);
                }
                std::fs::remove_file(path).map_err(other)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(other(e)),
        }
        // Owner-only from the moment the file exists, whatever --umask says.
        let old = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        umask(old);
        let listener = bound.map_err(other)?;
        let made = (|| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            listener.set_nonblocking(true)?;
            std::fs::metadata(path)
        })();
        let meta = match made {
            Ok(meta) => meta,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(other(e));
            }
        };
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            uid: nix::unistd::geteuid().as_raw(),
            clients: Vec::new(),
            next_token: 1,
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the master's wait should wake up for: a connection on the
    /// listener, a request from an idle client, room for a reply not yet
    /// sent. A client that closed its side is not watched for reading (it
    /// would always be readable).
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let clients = self.clients.iter().filter_map(|c| {
            let flags = if !c.output.is_empty() {
                PollFlags::POLLOUT
            } else if !c.closing && !c.awaiting {
                PollFlags::POLLIN
            } else {
                return None;
            };
            Some((c.stream.as_fd(), flags))
        });
        std::iter::once((self.listener.as_fd(), PollFlags::POLLIN))
            .chain(clients)
            .collect()
    }

    /// Whether a request already read waits to be answered: the master
    /// must not sleep then.
    pub fn has_work(&self) -> bool {
        self.clients
            .iter()
            .any(|c| c.output.is_empty() && !c.awaiting && c.input.contains(&b'\n'))
    }

    /// Accepts, reads and writes what can be without blocking, drops
    /// clients that are done, misbehave or stall, and returns the
    /// requests to answer (at most one per client at a time).
    pub fn serve(&mut self, now: Instant) -> Vec<Pending> {
        self.accept_pending(now);
        let mut pending = Vec::new();
        for c in &mut self.clients {
            c.flush(now);
            if !c.output.is_empty() || c.awaiting {
                continue;
            }
            if !c.closing {
                c.read_some(now);
            }
            if let Some(end) = c.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = c.input.drain(..=end).collect();
                match parse_request(line.trim_ascii()) {
                    (id, Ok(command)) => {
                        c.awaiting = true;
                        pending.push(Pending {
                            client: c.token,
                            id,
                            command,
                        });
                    }
                    (id, Err(e)) => c.send(error_reply(&id, &e), now),
                }
            } else if c.input.len() >= MAX_REQUEST {
                let e = format!("request longer than {MAX_REQUEST} bytes");
                c.send(error_reply(&Value::Null, &e), now);
                c.input.clear();
                c.closing = true;
            }
        }
        self.clients.retain_mut(|c| {
            let done = c.closing && c.output.is_empty() && !c.awaiting && !c.input.contains(&b'\n');
            let stalled = now.duration_since(c.active_at) > CLIENT_TIMEOUT;
            if stalled && !done {
                debug!("control socket: dropping a client silent for {CLIENT_TIMEOUT:?}");
            }
            if done {
                drain(&mut c.stream);
            }
            !done && !stalled
        });
        pending
    }

    /// Queues the reply to a request from [`Self::serve`] and writes what
    /// it can at once.
    pub fn reply(&mut self, client: u64, line: Vec<u8>) {
        let now = Instant::now();
        if let Some(c) = self.clients.iter_mut().find(|c| c.token == client) {
            c.awaiting = false;
            c.send(line, now);
        }
    }

    /// At exit: a last try to send what is queued (a `shutdown`'s reply),
    /// then the file is removed if it is still this master's.
    pub fn close(mut self) {
        let now = Instant::now();
        self.clients.iter_mut().for_each(|c| c.flush(now));
        self.remove_file();
    }

    fn remove_file(&self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warning!("cannot remove {}: {e}", self.path.display());
            }
        }
    }

    /// Whether the socket file at the path is still the one this master
    /// made (a USR2 child that exited took it away).
    pub fn file_is_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file)
    }

    fn accept_pending(&mut self, now: Instant) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warning!("control socket: accept failed: {e}");
                    return;
                }
            };
            let uid = getsockopt(&stream, sockopt::PeerCredentials).map(|c| c.uid());
            let refusal = match uid {
                Ok(uid) if uid == self.uid || uid == 0 => None,
                Ok(uid) => {
                    warning!("control socket: refused a connection from uid {uid}");
                    Some(format!(
                        "permission denied: uid {uid} is neither the server's user (uid {}) nor root",
                        self.uid
                    ))
                }
                Err(e) => Some(format!("cannot tell who is connecting: {e}")),
            };
            let refusal = refusal.or_else(|| {
                (self.clients.len() >= MAX_CLIENTS)
                    .then(|| format!("too many control clients (at most {MAX_CLIENTS})"))
            });
            if let Some(why) = refusal {
                // Best effort: a fresh socket's buffer takes a short line.
                let mut s = stream;
                let _ = s.set_nonblocking(true);
                let _ = s.write(&error_reply(&Value::Null, &why));
                drain(&mut s);
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.clients.push(Client {
                token: self.next_token,
                stream,
                input: Vec::new(),
                output: Vec::new(),
                active_at: now,
                awaiting: false,
                closing: false,
            });
            self.next_token += 1;
        }
    }
}

/// Reads and drops what a client sent that will not be answered, so the
/// close is a plain end of stream: closing a unix socket with unread data
/// resets the connection, and the client could lose the error reply.
fn drain(stream: &mut UnixStream) {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut buf) {
            Ok(1..) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => return,
        }
    }
}

impl AsFd for ControlServer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Client {
    /// Reads what is there, up to one request's worth buffered.
    fn read_some(&mut self, now: Instant) {
        let mut buf = [0u8; 1024];
        while self.input.len() < MAX_REQUEST && !self.input.contains(&b'\n') {
            let room = (MAX_REQUEST - self.input.len()).min(buf.len());
            match self.stream.read(&mut buf[..room]) {
                Ok(0) => {
                    self.closing = true;
                    return;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    self.active_at = now;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.closing = true;
                    self.input.clear();
                    return;
                }
            }
        }
    }

    fn send(&mut self, line: Vec<u8>, now: Instant) {
        self.output.extend_from_slice(&line);
        self.flush(now);
    }

    /// Writes what the socket takes now.
    fn flush(&mut self, now: Instant) {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => break,
                Ok(n) => {
                    self.output.drain(..n);
                    self.active_at = now;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The client went away: nothing more to send it.
                    self.output.clear();
                    self.closing = true;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrocorn-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Serves until a request is pending (the test's client wrote one).
    fn next(server: &mut ControlServer) -> Pending {
        for _ in 0..200 {
            if let Some(p) = server.serve(Instant::now()).pop() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no request came");
    }

    #[test]
    fn socket_is_private_whatever_the_umask_and_removed_at_close() {
        let path = tmp("a.ctl");
        let old = umask(Mode::empty());
        let server = ControlServer::bind(&path, false);
        umask(old);
        let server = server.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            ControlServer::bind(&path, false),
            Err(ControlBindError::InUse)
        ));
        server.close();
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_file_is_replaced_and_a_taken_over_one_left_alone() {
        let path = tmp("b.ctl");
        let first = ControlServer::bind(&path, false).unwrap();
        let second = ControlServer::bind(&path, true).unwrap();
        assert!(!first.file_is_ours());
        first.close();
        assert!(path.exists(), "the old master removed the new one's socket");
        drop(second); // no close: the file stays, as after a crash
        let third = ControlServer::bind(&path, false).unwrap();
        assert!(third.file_is_ours());
        third.close();
    }

    #[test]
    fn requests_are_answered_in_order_and_garbage_gets_an_error() {
        let path = tmp("c.ctl");
        let mut server = ControlServer::bind(&path, false).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client
            .write_all(b"{\"id\":1,\"command\":\"show stats\"}\nnot json\n")
            .unwrap();
        let p = next(&mut server);
        assert_eq!(
            (p.id.clone(), p.command),
            (Value::from(1), Command::ShowStats)
        );
        server.reply(p.client, b"{\"first\":1}\n".to_vec());
        server.serve(Instant::now());
        let mut lines = BufReader::new(client.try_clone().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "{\"first\":1}");
        let err: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(err["status"], "error");
        assert!(err["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON request"));
        server.close();
    }

    #[test]
    fn an_endless_line_is_refused_and_the_client_closed() {
        let path = tmp("d.ctl");
        let mut server = ControlServer::bind(&path, false).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(&[b'x'; MAX_REQUEST + 100]).unwrap();
        for _ in 0..50 {
            server.serve(Instant::now());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(server.clients.is_empty());
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        assert!(out.contains("request longer than 4096 bytes"), "{out}");
        server.close();
    }

    #[test]
    fn a_reply_not_yet_taken_is_waited_for_with_pollout_only() {
        let path = tmp("f.ctl");
        let mut server = ControlServer::bind(&path, false).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"{\"command\": \"help\"}\n").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let p = next(&mut server);
        // More than the socket buffer holds: the rest waits for the client.
        server.reply(p.client, vec![b'x'; 4 << 20]);
        let flags: Vec<PollFlags> = server.fds().iter().map(|(_, f)| *f).collect();
        assert_eq!(flags, [PollFlags::POLLIN, PollFlags::POLLOUT]);
        let mut got = Vec::new();
        let reader = std::thread::spawn(move || {
            client.read_to_end(&mut got).unwrap();
            got.len()
        });
        while !server.clients.is_empty() {
            server.serve(Instant::now());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reader.join().unwrap(), 4 << 20);
        server.close();
    }

    #[test]
    fn a_silent_client_is_dropped() {
        let path = tmp("e.ctl");
        let mut server = ControlServer::bind(&path, false).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"{\"command\": \"show").unwrap();
        let start = Instant::now();
        server.serve(start);
        assert_eq!(server.clients.len(), 1);
        server.serve(start + CLIENT_TIMEOUT + Duration::from_secs(1));
        assert!(server.clients.is_empty());
        let mut out = Vec::new();
        client.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
        server.close();
    }
}
