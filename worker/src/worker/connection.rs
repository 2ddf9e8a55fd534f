//! One framed connection from the nginx module.
//!
//! The socket is non-blocking. Reads go into a `BytesMut` and decoded
//! frames are zero-copy slices of it (a request head is viewed in place,
//! see `request_head_view`); the payload of a large body frame may also be
//! read straight into the app's buffer (see `request_body`). Writes are
//! coalesced in a small
//! buffer; a large body chunk goes out with `writev` behind its hand-made
//! prefix, so the caller's bytes are never copied. When the socket is not
//! ready, the connection waits in `poll` through a [`Blocker`], which lets
//! the Python side release the GIL around exactly that wait and nothing
//! else.

use std::fmt;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use ferrocorn_protocol::body::{self, BodyKind, MAX_BODY_CHUNK, MAX_PREFIX_LEN};
use ferrocorn_protocol::frame::{self, FrameError};
use ferrocorn_protocol::pb::{self, frame::Kind, Frame};
use ferrocorn_protocol::request_head_view::{decode_request_member, RequestMember};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::request_body::BodyCursor;
use crate::supervisor::heartbeat::{self, BEAT_INTERVAL};

/// Bytes asked of each `read` when no frame length says more.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// Bytes asked of the first `read` of a request: its head, usually whole.
/// A buffer this small is kept between requests; larger ones are let go.
const FIRST_READ: usize = 4 * 1024;
/// Writes smaller than this are copied into the write buffer and sent
/// together; larger ones go out with `writev`, uncopied.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Runs a blocking wait. The worker loop waits directly ([`Direct`]); the
/// Python side wraps the wait in `Python::detach` so other Python threads
/// run meanwhile.
pub trait Blocker {
    fn block<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T;
}

/// Waits on the calling thread, holding whatever it holds.
pub struct Direct;

impl Blocker for Direct {
    fn block<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        f()
    }
}

/// Longest `error` frame message; longer ones are cut.
const MAX_ERROR_MESSAGE: usize = 4096;

/// Why a connection cannot go on. Each closes it.
#[derive(Debug)]
pub enum ConnError {
    /// The peer closed the connection in the middle of a frame or exchange.
    Closed,
    /// Bytes that are not a valid frame.
    Frame(FrameError),
    /// A valid frame where the exchange does not allow it.
    OutOfOrder(String),
    /// The socket made no progress for the I/O timeout.
    Timeout,
    Io(Errno),
}

impl ConnError {
    /// The peer went away: a client abort, not a fault worth a warning.
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self,
            ConnError::Closed | ConnError::Io(Errno::EPIPE | Errno::ECONNRESET)
        )
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Closed => f.write_str("the peer closed the connection"),
            ConnError::Frame(e) => write!(f, "{e}"),
            ConnError::OutOfOrder(why) => write!(f, "malformed frame: {why}"),
            ConnError::Timeout => f.write_str("timed out waiting for the socket"),
            ConnError::Io(e) => write!(f, "{}", io::Error::from(*e)),
        }
    }
}

impl std::error::Error for ConnError {}

impl From<FrameError> for ConnError {
    fn from(e: FrameError) -> Self {
        ConnError::Frame(e)
    }
}

pub use ferrocorn_protocol::frame::kind_name;

/// What a non-blocking look at the socket found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // moved once per request; boxing would allocate
pub enum Polled {
    Frame(RequestMember),
    /// No whole frame yet; wait for readability.
    Pending,
    /// The peer closed cleanly between frames.
    Eof,
}

/// A connection and its buffers.
#[derive(Debug)]
pub struct Connection {
    fd: OwnedFd,
    /// Received bytes not yet decoded.
    pub(super) rbuf: BytesMut,
    /// Encoded frames not yet written.
    wbuf: Vec<u8>,
    /// Longest wait for the socket in the middle of an exchange.
    io_timeout: Option<Duration>,
    /// Where the current request's body stands.
    pub(super) body: BodyCursor,
    /// A request has begun on this connection: nginx connected for it, so
    /// a stopping worker must not close it before its first request.
    pub(super) served: bool,
    /// The worker closes this connection after the current response, and
    /// its `response_end` says so (`close`), so nginx does not reuse it.
    last: bool,
}

impl Connection {
    pub fn new(fd: OwnedFd, io_timeout: Option<Duration>) -> Connection {
        Connection {
            fd,
            rbuf: BytesMut::new(),
            // Grown as responses need (the coalescing limit at most): an
            // idle connection should not hold a full buffer.
            wbuf: Vec::new(),
            io_timeout,
            body: BodyCursor::default(),
            served: false,
            last: false,
        }
    }

    /// Marks the current response as the last on this connection: its
    /// `response_end` carries `close` and the worker closes afterwards.
    pub fn set_last(&mut self) {
        self.last = true;
    }

    /// Whether the connection closes after the current response.
    pub fn is_last(&self) -> bool {
        self.last
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    // ---- reading ----------------------------------------------------------

    /// One `read` into the buffer, with room for the whole pending frame:
    /// `Ok(Some(n))` bytes, `Ok(None)` would block, `Ok(Some(0))` end of
    /// stream.
    fn read_some(&mut self) -> Result<Option<usize>, ConnError> {
        let want = match frame::check(&self.rbuf) {
            // Room for the whole pending frame, or at least a chunk.
            Err(_) | Ok(Some(_)) => READ_CHUNK,
            Ok(None) if self.rbuf.len() >= frame::FRAME_HEADER_LEN => {
                let len = u32::from_be_bytes(self.rbuf[..4].try_into().expect("4 bytes")) as usize;
                (frame::FRAME_HEADER_LEN + len - self.rbuf.len()).max(READ_CHUNK)
            }
            Ok(None) if self.rbuf.is_empty() => FIRST_READ,
            Ok(None) => READ_CHUNK,
        };
        self.read_at_most(want)
    }

    /// One `read` of up to `max` bytes into the buffer (see [`read_some`](Self::read_some)).
    pub(super) fn read_at_most(&mut self, max: usize) -> Result<Option<usize>, ConnError> {
        self.rbuf.reserve(max);
        // Writable memory owned by `rbuf`; read(2) initializes the first
        // `n` bytes it reports, and only those are exposed below.
        let spare = &mut self.rbuf.spare_capacity_mut()[..max];
        let n = read_fd(self.fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len())?;
        if let Some(n) = n {
            // SAFETY: see above: `n` bytes past the old length are initialized.
            unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
        }
        Ok(n)
    }

    /// One `read` straight into `out`, bypassing the buffer (which must not
    /// hold bytes that come before these): `Ok(None)` would block; the
    /// first `n` bytes of `Ok(Some(n))` are initialized.
    pub(super) fn read_direct(
        &mut self,
        out: &mut [MaybeUninit<u8>],
    ) -> Result<Option<usize>, ConnError> {
        debug_assert!(self.rbuf.is_empty());
        read_fd(self.fd.as_raw_fd(), out.as_mut_ptr().cast(), out.len())
    }

    /// Waits until the socket is readable (at most the I/O timeout).
    pub(super) fn wait_readable<B: Blocker>(&self, b: &B) -> Result<(), ConnError> {
        self.wait(PollFlags::POLLIN, b)
    }

    /// Lets go of a receive buffer grown past a head's first read while
    /// the connection waits for its next request (unless it holds the
    /// start of one): a worker may keep hundreds of idle connections.
    pub fn release_idle_buffer(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > FIRST_READ {
            self.rbuf = BytesMut::new();
        }
    }

    /// Whether a whole frame is already buffered.
    pub fn has_buffered_frame(&self) -> bool {
        !matches!(frame::check(&self.rbuf), Ok(None))
    }

    /// Whether a request has been read from this connection.
    pub fn has_served(&self) -> bool {
        self.served
    }

    /// Bytes of an incomplete frame waiting for the rest.
    pub fn partial_frame_len(&self) -> usize {
        self.rbuf.len()
    }

    /// Decodes and removes the first buffered frame, if it is whole.
    pub(super) fn decode(&mut self) -> Result<Option<RequestMember>, ConnError> {
        let Some(total) = frame::check(&self.rbuf)? else {
            return Ok(None);
        };
        let mut payload = self.rbuf.split_to(total).freeze();
        payload.advance(frame::FRAME_HEADER_LEN);
        Ok(Some(decode_request_member(payload)?))
    }

    /// Decodes a buffered frame, or reads once without waiting and tries
    /// again.
    // Inlined into both serving loops' serve_connection, as when it had one.
    #[inline(always)]
    pub fn poll_frame(&mut self) -> Result<Polled, ConnError> {
        if let Some(kind) = self.decode()? {
            return Ok(Polled::Frame(kind));
        }
        match self.read_some()? {
            None => Ok(Polled::Pending),
            Some(0) if self.rbuf.is_empty() => Ok(Polled::Eof),
            Some(0) => Err(ConnError::Closed),
            Some(_) => Ok(match self.decode()? {
                Some(kind) => Polled::Frame(kind),
                None => Polled::Pending,
            }),
        }
    }

    /// The next frame, waiting through `b` as long as it takes (up to the
    /// I/O timeout per wait). `Ok(None)`: the peer closed between frames.
    pub fn read_frame<B: Blocker>(&mut self, b: &B) -> Result<Option<RequestMember>, ConnError> {
        loop {
            if let Some(kind) = self.decode()? {
                return Ok(Some(kind));
            }
            match self.read_some()? {
                None => self.wait(PollFlags::POLLIN, b)?,
                Some(0) if self.rbuf.is_empty() => return Ok(None),
                Some(0) => return Err(ConnError::Closed),
                Some(_) => {}
            }
        }
    }

    /// Closes after an `error` frame: stops sending, then discards what
    /// the peer already sent. Closing with unread input makes TCP reset the
    /// connection, and the peer could lose the error frame to the reset.
    pub fn close_after_error(mut self) {
        let _ = nix::sys::socket::shutdown(self.fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        for _ in 0..16 {
            self.rbuf.clear();
            if !matches!(self.read_some(), Ok(Some(1..))) {
                break;
            }
        }
    }

    // ---- writing ----------------------------------------------------------

    /// The write buffer, for encoders that append whole frames to it.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Sends `data` as body frames (split at the frame limit). Small data
    /// is buffered; call [`flush`](Self::flush) to push it out.
    pub fn send_body<B: Blocker>(&mut self, data: &[u8], b: &B) -> Result<(), ConnError> {
        for chunk in data.chunks(MAX_BODY_CHUNK) {
            let mut prefix = [0u8; MAX_PREFIX_LEN];
            let used = body::write_prefix(BodyKind::Response, chunk.len(), &mut prefix);
            if self.wbuf.len() + used + chunk.len() <= COALESCE_LIMIT {
                self.wbuf.extend_from_slice(&prefix[..used]);
                self.wbuf.extend_from_slice(chunk);
            } else {
                let wbuf = std::mem::take(&mut self.wbuf);
                let result = self.write_all(
                    &mut [
                        IoSlice::new(&wbuf),
                        IoSlice::new(&prefix[..used]),
                        IoSlice::new(chunk),
                    ],
                    b,
                );
                self.wbuf = wbuf;
                self.wbuf.clear();
                result?;
            }
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` as body frames, the data
    /// with `sendfile` (never entering user space). Returns the bytes sent,
    /// fewer than `len` only if the file ended early.
    pub fn send_file<B: Blocker>(
        &mut self,
        file: BorrowedFd<'_>,
        mut offset: i64,
        len: u64,
        b: &B,
    ) -> Result<u64, ConnError> {
        let mut sent = 0u64;
        while sent < len {
            let chunk = (len - sent).min(MAX_BODY_CHUNK as u64) as usize;
            let mut prefix = [0u8; MAX_PREFIX_LEN];
            let used = body::write_prefix(BodyKind::Response, chunk, &mut prefix);
            self.wbuf.extend_from_slice(&prefix[..used]);
            self.flush(b)?;
            let mut left = chunk;
            while left > 0 {
                match nix::sys::sendfile::sendfile(&self.fd, file, Some(&mut offset), left) {
                    // The file is shorter than it said: the frame cannot be
                    // completed, so the connection is done for.
                    Ok(0) => return Err(ConnError::Io(Errno::EIO)),
                    Ok(n) => left -= n,
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => self.wait(PollFlags::POLLOUT, b)?,
                    Err(e) => return Err(ConnError::Io(e)),
                }
            }
            sent += chunk as u64;
        }
        Ok(sent)
    }

    /// Appends an `error` frame (the caller closes after flushing).
    pub fn queue_error(&mut self, kind: pb::error::Kind, mut message: String) {
        // The message is for a log line: an app's huge exception text must
        // not make the frame exceed the limit.
        if message.len() > MAX_ERROR_MESSAGE {
            let mut cut = MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        let f = Frame {
            kind: Some(Kind::Error(pb::Error {
                kind: kind as i32,
                message,
            })),
        };
        frame::encode(&f, &mut self.wbuf);
    }

    /// Writes out everything buffered.
    pub fn flush<B: Blocker>(&mut self, b: &B) -> Result<(), ConnError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let wbuf = std::mem::take(&mut self.wbuf);
        let result = self.write_all(&mut [IoSlice::new(&wbuf)], b);
        self.wbuf = wbuf;
        self.wbuf.clear();
        result
    }

    fn write_all<B: Blocker>(&self, mut parts: &mut [IoSlice<'_>], b: &B) -> Result<(), ConnError> {
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            match nix::sys::uio::writev(&self.fd, parts) {
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLOUT, b)?,
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
        Ok(())
    }

    /// Waits until the socket is ready for `events`, at most the I/O
    /// timeout. Signals (EINTR) do not end the wait.
    fn wait<B: Blocker>(&self, events: PollFlags, b: &B) -> Result<(), ConnError> {
        let fd = self.fd.as_fd();
        let timeout = self.io_timeout;
        b.block(move || wait_fd(fd, events, timeout))
    }
}

/// read(2) of up to `len` bytes at `buf`, retried on EINTR: `Ok(None)`
/// would block, `Ok(Some(0))` end of stream.
fn read_fd(fd: std::os::fd::RawFd, buf: *mut u8, len: usize) -> Result<Option<usize>, ConnError> {
    loop {
        // SAFETY: callers pass `len` writable bytes at `buf`; read(2) writes
        // at most that many.
        let n = unsafe { libc::read(fd, buf.cast(), len) };
        match Errno::result(n) {
            Ok(n) => return Ok(Some(n as usize)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(ConnError::Io(e)),
        }
    }
}

/// Polls one descriptor until it is ready or `timeout` passes.
fn wait_fd(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    timeout: Option<Duration>,
) -> Result<(), ConnError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        // Waiting on nginx keeps the heartbeat going, one beat per slice.
        heartbeat::beat_while_waiting();
        let left = match deadline {
            None => BEAT_INTERVAL,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ConnError::Timeout);
                }
                left.min(BEAT_INTERVAL)
            }
        };
        // Round up so a sub-millisecond rest does not spin.
        let left =
            PollTimeout::try_from(left + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, left) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(ConnError::Io(e)),
        }
    }
}

/// A connected pair for tests: our side as a [`Connection`], the peer as a
/// std stream.
#[cfg(test)]
pub fn test_pair() -> (Connection, std::os::unix::net::UnixStream) {
    let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    (
        Connection::new(OwnedFd::from(ours), Some(Duration::from_secs(5))),
        peer,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::io::{Read, Write};

    fn enc(kind: Kind) -> Vec<u8> {
        frame::encode_to_vec(&Frame { kind: Some(kind) })
    }

    #[test]
    fn frames_split_across_writes_are_reassembled() {
        let (mut conn, mut peer) = test_pair();
        let mut bytes = enc(Kind::RequestBody(Bytes::from(vec![5u8; 100_000])));
        bytes.extend(enc(Kind::RequestEnd(pb::RequestEnd {})));
        let writer = std::thread::spawn(move || {
            for piece in bytes.chunks(7777) {
                peer.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            peer
        });
        match conn.read_frame(&Direct).unwrap() {
            Some(RequestMember::Other(Kind::RequestBody(b))) => assert_eq!(b.len(), 100_000),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            conn.read_frame(&Direct).unwrap(),
            Some(RequestMember::Other(Kind::RequestEnd(_)))
        ));
        drop(writer.join().unwrap());
        assert!(conn.read_frame(&Direct).unwrap().is_none(), "clean EOF");
    }

    #[test]
    fn poll_frame_does_not_wait() {
        let (mut conn, mut peer) = test_pair();
        assert!(matches!(conn.poll_frame().unwrap(), Polled::Pending));
        let bytes = enc(Kind::RequestEnd(pb::RequestEnd {}));
        peer.write_all(&bytes[..3]).unwrap();
        assert!(matches!(conn.poll_frame().unwrap(), Polled::Pending));
        peer.write_all(&bytes[3..]).unwrap();
        assert!(matches!(
            conn.poll_frame().unwrap(),
            Polled::Frame(RequestMember::Other(Kind::RequestEnd(_)))
        ));
        drop(peer);
        assert!(matches!(conn.poll_frame().unwrap(), Polled::Eof));
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let (mut conn, mut peer) = test_pair();
        peer.write_all(&[0, 0, 0, 9, 1]).unwrap();
        drop(peer);
        assert!(matches!(conn.read_frame(&Direct), Err(ConnError::Closed)));
    }

    #[test]
    fn oversize_and_garbage_are_frame_errors() {
        let (mut conn, mut peer) = test_pair();
        peer.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let err = conn.read_frame(&Direct).unwrap_err();
        assert!(
            matches!(err, ConnError::Frame(FrameError::TooLarge(_))),
            "{err}"
        );
    }

    #[test]
    fn silence_times_out() {
        let (mut conn, _peer) = test_pair();
        conn.io_timeout = Some(Duration::from_millis(50));
        assert!(matches!(conn.read_frame(&Direct), Err(ConnError::Timeout)));
    }

    #[test]
    fn small_bodies_coalesce_and_large_ones_are_split() {
        let (mut conn, mut peer) = test_pair();
        conn.send_body(b"hello ", &Direct).unwrap();
        conn.send_body(b"world", &Direct).unwrap();
        let big = vec![9u8; MAX_BODY_CHUNK + 10];
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).unwrap();
            all
        });
        conn.send_body(&big, &Direct).unwrap();
        conn.flush(&Direct).unwrap();
        drop(conn);
        let mut got = BytesMut::from(&reader.join().unwrap()[..]);
        let mut body = Vec::new();
        let mut frames = 0;
        while let Some(f) = frame::decode(&mut got).unwrap() {
            match f.kind {
                Some(Kind::ResponseBody(b)) => body.extend_from_slice(&b),
                other => panic!("{other:?}"),
            }
            frames += 1;
        }
        assert_eq!(frames, 4);
        assert_eq!(&body[..11], b"hello world");
        assert_eq!(body.len(), 11 + MAX_BODY_CHUNK + 10);
    }

    #[test]
    fn a_gone_peer_is_reported_as_such() {
        let (mut conn, peer) = test_pair();
        drop(peer);
        conn.send_body(b"x", &Direct).unwrap();
        let err = conn.flush(&Direct).unwrap_err();
        assert!(err.is_peer_gone(), "{err}");
    }
}
