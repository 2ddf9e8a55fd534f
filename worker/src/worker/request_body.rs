//! The request body as a stream: `read`, `read into a buffer`, `read up to
//! a newline` and `drain`, pulling `request_body` frames off the connection
//! only when the app asks for more, until `request_end`.
//!
//! A body frame is taken as soon as its prefix (length, key, size) is
//! there: its payload needs no further checking, so it is handed out as it
//! arrives instead of being gathered whole first. Results are [`Pieces`]
//! (zero-copy slices of what was received, which the Python side copies
//! once into a `bytes` object), or, for a read of a known size,
//! [`read_body_into`](Connection::read_body_into) the caller's buffer:
//! there the rest of a large frame goes from the socket straight into that
//! buffer, with no copy in between.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes};
use ferrocorn_protocol::body::BodyKind;
use ferrocorn_protocol::frame::{self, FrameError, FRAME_HEADER_LEN};
use ferrocorn_protocol::pb::frame::Kind;
use ferrocorn_protocol::request_head_view::RequestMember;

use super::connection::{kind_name, Blocker, ConnError, Connection, READ_CHUNK};

/// Where the current request's body stands.
#[derive(Debug, Default)]
pub struct BodyCursor {
    /// The unread, received rest of the current body frame.
    pending: Bytes,
    /// Bytes of the current body frame still on the socket, after
    /// `pending` (the receive buffer is empty while there are any).
    unreceived: usize,
    /// `request_end` was received.
    ended: bool,
    /// Body bytes the head announced and the app has not read yet, when
    /// the head knew the length: what a whole-body read will return.
    announced_left: Option<u64>,
}

/// Body bytes as slices of the received frames.
#[derive(Debug, Default)]
pub struct Pieces {
    first: Bytes,
    rest: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    fn push(&mut self, piece: Bytes) {
        self.len += piece.len();
        if self.first.is_empty() {
            self.first = piece;
        } else {
            self.rest.push(piece);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies all pieces into `out`, which must be [`len`](Self::len) long.
    pub fn copy_to(&self, out: &mut [u8]) {
        let mut at = 0;
        for piece in std::iter::once(&self.first).chain(&self.rest) {
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.copy_to(&mut v);
        v
    }
}

/// Reads of at least this many bytes go from the socket straight into the
/// caller's buffer; smaller ones gather a read chunk first.
const DIRECT_READ_MIN: usize = READ_CHUNK;

/// The size of a plain body frame at the start of `buf` (`len | key |
/// varint(n) | n bytes`, the only form senders write), and the prefix
/// length. `Ok(None)`: not there yet, or not such a frame (prost decides).
fn body_frame_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    if buf.len() <= FRAME_HEADER_LEN || buf[FRAME_HEADER_LEN] != BodyKind::Request.key() {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    frame::check_len(len)?;
    // The size varint, at most 3 bytes below the frame limit.
    let mut n = 0usize;
    for (i, &byte) in buf[FRAME_HEADER_LEN + 1..].iter().take(3).enumerate() {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            let prefix = FRAME_HEADER_LEN + 1 + i + 1;
            return Ok((prefix - FRAME_HEADER_LEN + n == len).then_some((n, prefix)));
        }
    }
    Ok(None)
}

impl Connection {
    /// Starts the body of a new request; `content_length` is the head's
    /// (-1 when unknown).
    pub fn begin_body(&mut self, content_length: i64) {
        self.body = BodyCursor {
            announced_left: u64::try_from(content_length).ok(),
            ..BodyCursor::default()
        };
        self.served = true;
    }

    /// Whether the request body was read up to `request_end`.
    pub fn body_ended(&self) -> bool {
        self.body.ended && self.body.pending.is_empty() && self.body.unreceived == 0
    }

    /// How many bytes a read of `limit` (all when `None`) will return when
    /// the head announced the body's length and the peer keeps to it.
    pub fn body_read_size(&self, limit: Option<usize>) -> Option<usize> {
        let left = usize::try_from(self.body.announced_left?).ok()?;
        Some(limit.map_or(left, |l| l.min(left)))
    }

    fn delivered(&mut self, n: usize) {
        if let Some(left) = &mut self.body.announced_left {
            *left = left.saturating_sub(n as u64);
        }
    }

    /// Makes sure unread body bytes are pending; false at the end.
    #[inline(always)]
    fn fill_body<B: Blocker>(&mut self, b: &B) -> Result<bool, ConnError> {
        while self.body.pending.is_empty() {
            if self.body.unreceived > 0 {
                let want = self.body.unreceived.min(READ_CHUNK);
                match self.read_at_most(want)? {
                    None => self.wait_readable(b)?,
                    Some(0) => return Err(ConnError::Closed),
                    Some(n) => {
                        self.body.unreceived -= n;
                        self.body.pending = self.rbuf.split().freeze();
                    }
                }
                continue;
            }
            if self.body.ended {
                return Ok(false);
            }
            if let Some((n, prefix)) = body_frame_prefix(&self.rbuf)? {
                self.rbuf.advance(prefix);
                let here = n.min(self.rbuf.len());
                self.body.pending = self.rbuf.split_to(here).freeze();
                self.body.unreceived = n - here;
                continue;
            }
            match self.decode()? {
                Some(RequestMember::Other(Kind::RequestBody(data))) => self.body.pending = data,
                Some(RequestMember::Other(Kind::RequestEnd(_))) => self.body.ended = true,
                Some(RequestMember::Head(_)) => {
                    return Err(ConnError::OutOfOrder(
                        "request_head frame inside a request body".into(),
                    ))
                }
                Some(RequestMember::Other(other)) => {
                    return Err(ConnError::OutOfOrder(format!(
                        "{} frame inside a request body",
                        kind_name(&other)
                    )))
                }
                // A body frame's prefix needs only a few bytes: read a
                // chunk, not the whole frame.
                None => match self.read_at_most(READ_CHUNK)? {
                    None => self.wait_readable(b)?,
                    Some(0) => return Err(ConnError::Closed),
                    Some(_) => {}
                },
            }
        }
        Ok(true)
    }

    /// Reads `limit` bytes (all of the rest when `None`), fewer only at the
    /// end of the body.
    pub fn read_body<B: Blocker>(
        &mut self,
        limit: Option<usize>,
        b: &B,
    ) -> Result<Pieces, ConnError> {
        let mut want = limit.unwrap_or(usize::MAX);
        let mut out = Pieces::default();
        while want > 0 && self.fill_body(b)? {
            let take = want.min(self.body.pending.len());
            out.push(self.body.pending.split_to(take));
            want -= take;
        }
        self.delivered(out.len());
        Ok(out)
    }

    /// Fills `out` with the next body bytes, fewer only at the end of the
    /// body; returns how many, all initialized. A large rest of a body
    /// frame is read from the socket straight into `out`.
    pub fn read_body_into<B: Blocker>(
        &mut self,
        out: &mut [MaybeUninit<u8>],
        b: &B,
    ) -> Result<usize, ConnError> {
        let mut at = 0;
        while at < out.len() {
            let room = out.len() - at;
            if !self.body.pending.is_empty() {
                let take = room.min(self.body.pending.len());
                out[at..at + take].write_copy_of_slice(&self.body.pending[..take]);
                self.body.pending.advance(take);
                at += take;
            } else if self.body.unreceived > 0 && room >= DIRECT_READ_MIN {
                let want = room.min(self.body.unreceived);
                match self.read_direct(&mut out[at..at + want])? {
                    None => self.wait_readable(b)?,
                    Some(0) => return Err(ConnError::Closed),
                    Some(n) => {
                        self.body.unreceived -= n;
                        at += n;
                    }
                }
            } else if !self.fill_body(b)? {
                break;
            }
        }
        self.delivered(at);
        Ok(at)
    }

    /// Reads up to and including the next `\n`, at most `limit` bytes.
    pub fn read_body_line<B: Blocker>(
        &mut self,
        limit: Option<usize>,
        b: &B,
    ) -> Result<Pieces, ConnError> {
        let mut want = limit.unwrap_or(usize::MAX);
        let mut out = Pieces::default();
        while want > 0 && self.fill_body(b)? {
            let window = want.min(self.body.pending.len());
            match self.body.pending[..window].iter().position(|&c| c == b'\n') {
                Some(i) => {
                    out.push(self.body.pending.split_to(i + 1));
                    break;
                }
                None => {
                    out.push(self.body.pending.split_to(window));
                    want -= window;
                }
            }
        }
        self.delivered(out.len());
        Ok(out)
    }

    /// Discards the rest of the body, up to `request_end`, so the
    /// connection can carry the next request.
    // Inlined into both serving loops' serve_connection, as when it had one.
    #[inline(always)]
    pub fn drain_body<B: Blocker>(&mut self, b: &B) -> Result<(), ConnError> {
        self.body.pending = Bytes::new();
        while self.fill_body(b)? {
            self.body.pending = Bytes::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::connection::{test_pair, Direct};
    use ferrocorn_protocol::frame;
    use ferrocorn_protocol::pb::{self, Frame};
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn send_body(peer: &mut UnixStream, chunks: &[&[u8]], end: bool) {
        let mut bytes = Vec::new();
        for c in chunks {
            bytes.extend(frame::encode_to_vec(&Frame {
                kind: Some(Kind::RequestBody(Bytes::copy_from_slice(c))),
            }));
        }
        if end {
            bytes.extend(frame::encode_to_vec(&Frame {
                kind: Some(Kind::RequestEnd(pb::RequestEnd {})),
            }));
        }
        // Byte by byte from a thread: every split point is exercised.
        let mut peer = peer.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in bytes {
                peer.write_all(&[b]).unwrap();
            }
        });
    }

    fn conn_with(chunks: &[&[u8]]) -> (Connection, UnixStream) {
        let (mut conn, mut peer) = test_pair();
        conn.begin_body(-1);
        send_body(&mut peer, chunks, true);
        (conn, peer)
    }

    #[test]
    fn read_spans_frames_and_stops_at_the_end() {
        let (mut conn, _peer) = conn_with(&[b"hello ", b"wor", b"ld"]);
        assert_eq!(conn.read_body(Some(4), &Direct).unwrap().to_vec(), b"hell");
        assert_eq!(conn.read_body(Some(5), &Direct).unwrap().to_vec(), b"o wor");
        assert_eq!(conn.read_body(None, &Direct).unwrap().to_vec(), b"ld");
        assert!(conn.read_body(None, &Direct).unwrap().is_empty());
        assert!(conn.read_body(Some(10), &Direct).unwrap().is_empty());
        assert!(conn.body_ended());
    }

    #[test]
    fn read_zero_reads_nothing() {
        let (mut conn, _peer) = conn_with(&[b"abc"]);
        assert!(conn.read_body(Some(0), &Direct).unwrap().is_empty());
        assert_eq!(conn.read_body(None, &Direct).unwrap().to_vec(), b"abc");
    }

    #[test]
    fn lines_are_found_across_frames() {
        let (mut conn, _peer) = conn_with(&[b"first li", b"ne\nsecond\nthi", b"rd"]);
        let mut line = |limit| conn.read_body_line(limit, &Direct).unwrap().to_vec();
        assert_eq!(line(None), b"first line\n");
        assert_eq!(line(Some(3)), b"sec");
        assert_eq!(line(None), b"ond\n");
        assert_eq!(line(None), b"third");
        assert_eq!(line(None), b"");
    }

    #[test]
    fn empty_body_is_just_the_end() {
        let (mut conn, _peer) = conn_with(&[]);
        assert!(conn.read_body(None, &Direct).unwrap().is_empty());
        assert!(conn.body_ended());
    }

    #[test]
    fn drain_skips_to_the_next_request() {
        let (mut conn, mut peer) = conn_with(&[&[1u8; 70_000], b"tail"]);
        assert_eq!(conn.read_body(Some(3), &Direct).unwrap().len(), 3);
        conn.drain_body(&Direct).unwrap();
        assert!(conn.body_ended());
        // The next request's frames follow.
        conn.begin_body(-1);
        send_body(&mut peer, &[b"next"], true);
        assert_eq!(conn.read_body(None, &Direct).unwrap().to_vec(), b"next");
    }

    #[test]
    fn a_head_inside_a_body_is_out_of_order() {
        let (mut conn, mut peer) = test_pair();
        conn.begin_body(-1);
        peer.write_all(&frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestHead(pb::RequestHead::default())),
        }))
        .unwrap();
        let err = conn.read_body(None, &Direct).unwrap_err().to_string();
        assert_eq!(
            err,
            "malformed frame: request_head frame inside a request body"
        );
    }

    #[test]
    fn a_peer_gone_mid_body_is_closed() {
        let (mut conn, mut peer) = test_pair();
        conn.begin_body(-1);
        send_body(&mut peer, &[b"partial"], false);
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(peer);
        assert_eq!(
            conn.read_body(Some(7), &Direct).unwrap().to_vec(),
            b"partial"
        );
        assert!(matches!(
            conn.read_body(None, &Direct),
            Err(ConnError::Closed)
        ));
    }

    /// `read_body_into` a new buffer of `n` bytes; the bytes it returned.
    fn read_into(conn: &mut Connection, n: usize) -> Result<Vec<u8>, ConnError> {
        let mut out = Vec::with_capacity(n);
        let got = conn.read_body_into(&mut out.spare_capacity_mut()[..n], &Direct)?;
        // SAFETY: read_body_into initialized the first `got` bytes.
        unsafe { out.set_len(got) };
        Ok(out)
    }

    /// A writer that sends `bytes` in pieces of `step`, pausing between.
    fn trickle(peer: &UnixStream, bytes: Vec<u8>, step: usize) {
        let mut peer = peer.try_clone().unwrap();
        std::thread::spawn(move || {
            for piece in bytes.chunks(step) {
                peer.write_all(piece).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
    }

    fn frames(chunks: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for c in chunks {
            bytes.extend(frame::encode_to_vec(&Frame {
                kind: Some(Kind::RequestBody(Bytes::copy_from_slice(c))),
            }));
        }
        bytes.extend(frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestEnd(pb::RequestEnd {})),
        }));
        bytes
    }

    #[test]
    fn reads_into_a_buffer_span_frames_and_go_straight_from_the_socket() {
        // Two large frames and a small one, arriving in uneven pieces.
        let a: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let b = vec![7u8; 200_000];
        let want = [&a[..], &b[..], b"end"].concat();
        let (mut conn, peer) = test_pair();
        conn.begin_body(want.len() as i64);
        trickle(&peer, frames(&[&a, &b, b"end"]), 50_001);
        assert_eq!(conn.body_read_size(None), Some(want.len()));
        assert_eq!(conn.body_read_size(Some(10)), Some(10));
        assert_eq!(read_into(&mut conn, 10).unwrap(), want[..10]);
        assert_eq!(conn.body_read_size(None), Some(want.len() - 10));
        assert_eq!(read_into(&mut conn, want.len() - 10).unwrap(), want[10..]);
        // The end is still to come; a further read finds it.
        assert_eq!(read_into(&mut conn, 5).unwrap(), b"");
        assert!(conn.body_ended());
    }

    #[test]
    fn a_read_into_a_buffer_stops_at_the_end_of_a_short_body() {
        let (mut conn, peer) = test_pair();
        conn.begin_body(100);
        trickle(&peer, frames(&[&[1u8; 70_000]]), 9_000);
        assert_eq!(read_into(&mut conn, 100_000).unwrap(), vec![1u8; 70_000]);
        assert!(conn.body_ended());
    }

    #[test]
    fn small_reads_and_lines_work_across_a_frame_taken_by_its_prefix() {
        let mut text = b"line one\n".repeat(20_000);
        text.extend_from_slice(b"last");
        let (mut conn, mut peer) = test_pair();
        conn.begin_body(text.len() as i64);
        trickle(&peer, frames(&[&text]), 30_000);
        assert_eq!(
            conn.read_body_line(None, &Direct).unwrap().to_vec(),
            b"line one\n"
        );
        assert_eq!(conn.read_body(Some(4), &Direct).unwrap().to_vec(), b"line");
        let rest = conn.read_body(None, &Direct).unwrap().to_vec();
        assert_eq!(rest, text[13..]);
        assert!(conn.body_ended());
        // The connection is ready for the next request.
        conn.begin_body(-1);
        send_body(&mut peer, &[b"next"], true);
        assert_eq!(conn.read_body(None, &Direct).unwrap().to_vec(), b"next");
    }

    #[test]
    fn a_peer_gone_inside_a_frame_read_into_a_buffer_is_closed() {
        let (mut conn, mut peer) = test_pair();
        conn.begin_body(200_000);
        let bytes = frames(&[&[3u8; 200_000]]);
        peer.write_all(&bytes[..100_000]).unwrap();
        drop(peer);
        assert!(matches!(
            read_into(&mut conn, 200_000),
            Err(ConnError::Closed)
        ));
    }

    #[test]
    fn body_prefixes_are_read_only_in_their_plain_form() {
        let plain = frames(&[&[9u8; 300]]);
        assert_eq!(body_frame_prefix(&plain), Ok(Some((300, 7))));
        // Incomplete prefixes wait for more.
        for cut in 0..7 {
            assert_eq!(body_frame_prefix(&plain[..cut]), Ok(None), "cut {cut}");
        }
        // A size that disagrees with the length: left to prost.
        let mut odd = plain.clone();
        odd[5] = 0x2b;
        assert_eq!(body_frame_prefix(&odd), Ok(None));
        // Not a body frame.
        assert_eq!(body_frame_prefix(&frames(&[])), Ok(None));
        // A length over the limit is an error at once.
        let huge = [0xff, 0xff, 0xff, 0xff, BodyKind::Request.key(), 0x01];
        assert!(body_frame_prefix(&huge).is_err());
    }
}
