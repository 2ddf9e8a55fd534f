//! The request body as a stream: `read`, `read up to a newline` and
//! `drain`, pulling `request_body` frames off the connection only when the
//! app asks for more, until `request_end`.
//!
//! Results are [`Pieces`]: zero-copy slices of the received frames, which
//! the Python side copies once into a `bytes` object.

use bytes::Bytes;
use ferrocorn_protocol::pb::frame::Kind;
use ferrocorn_protocol::request_head_view::RequestMember;

use super::connection::{kind_name, Blocker, ConnError, Connection};

/// Where the current request's body stands.
#[derive(Debug, Default)]
pub struct BodyCursor {
    /// The unread rest of the last body frame.
    pending: Bytes,
    /// `request_end` was received.
    ended: bool,
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

impl Connection {
    /// Starts the body of a new request.
    pub fn begin_body(&mut self) {
        self.body = BodyCursor::default();
        self.served = true;
    }

    /// Whether the request body was read up to `request_end`.
    pub fn body_ended(&self) -> bool {
        self.body.ended && self.body.pending.is_empty()
    }

    /// Makes sure unread body bytes are pending; false at the end.
    #[inline(always)]
    fn fill_body<B: Blocker>(&mut self, b: &B) -> Result<bool, ConnError> {
        while self.body.pending.is_empty() {
            if self.body.ended {
                return Ok(false);
            }
            match self.read_frame(b)? {
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
                None => return Err(ConnError::Closed),
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
        Ok(out)
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
        conn.begin_body();
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
        conn.begin_body();
        send_body(&mut peer, &[b"next"], true);
        assert_eq!(conn.read_body(None, &Direct).unwrap().to_vec(), b"next");
    }

    #[test]
    fn a_head_inside_a_body_is_out_of_order() {
        let (mut conn, mut peer) = test_pair();
        conn.begin_body();
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
        conn.begin_body();
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
}
