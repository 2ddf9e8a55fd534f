//! One response on the wire, as PEP 3333 wants it sent: the head goes out
//! lazily with the first non-empty body chunk (or at the end), responses
//! that have no body (HEAD, 1xx, 204, 304) send none, a `Content-Length`
//! caps the body and ends it as soon as it is reached, and every response
//! ends with `response_end`, or with `error` when it cannot be completed.

use std::fmt;
use std::os::fd::BorrowedFd;

use ferrocorn_protocol::pb::error::Kind as ErrorKind;

use super::connection::{Blocker, ConnError, Connection};
use super::response_head::{HeadFields, RESPONSE_END, RESPONSE_END_CLOSE};
use crate::signals;

/// A validated status line and headers, waiting to be sent.
#[derive(Debug, Clone)]
pub struct PendingHead {
    pub fields: HeadFields,
    pub status: u16,
    /// The app's `Content-Length`, if it set one.
    pub content_length: Option<u64>,
}

/// Gunicorn's 500 page.
const INTERNAL_ERROR_PAGE: &[u8] = b"<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n  <body>\n    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n";

impl PendingHead {
    /// The head of the 500 response sent when the app fails early.
    pub fn internal_error() -> PendingHead {
        let mut fields = HeadFields::new(500, b"Internal Server Error");
        fields.push_header(b"Content-Type", b"text/html");
        fields.push_header(
            b"Content-Length",
            INTERNAL_ERROR_PAGE.len().to_string().as_bytes(),
        );
        PendingHead {
            fields,
            status: 500,
            content_length: Some(INTERNAL_ERROR_PAGE.len() as u64),
        }
    }
}

/// Why a response could not be written as asked.
#[derive(Debug)]
pub enum WriteError {
    /// Body data before `start_response` was called.
    NoStatus,
    /// The head does not fit in one frame.
    HeadTooLarge,
    /// The app ended its body before its `Content-Length`.
    ShortBody {
        declared: u64,
        sent: u64,
    },
    Conn(ConnError),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::NoStatus => f.write_str("response body before start_response() was called"),
            WriteError::HeadTooLarge => f.write_str("response headers exceed the 1 MiB frame limit"),
            WriteError::ShortBody { declared, sent } => write!(
                f,
                "response body ended after {sent} of the {declared} bytes its Content-Length announced"
            ),
            WriteError::Conn(e) => write!(f, "{e}"),
        }
    }
}

impl From<ConnError> for WriteError {
    fn from(e: ConnError) -> Self {
        WriteError::Conn(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Head,
    /// Head sent; body frames may follow.
    Body,
    /// `response_end` queued; further body data is discarded.
    Complete,
    /// `error` queued; the connection closes.
    Failed,
}

/// The state of the response to the current request.
#[derive(Debug)]
pub struct ResponseWriter {
    /// The request was HEAD: never send a body.
    head_request: bool,
    /// Set by `start_response`, taken when the head is sent.
    pending: Option<PendingHead>,
    phase: Phase,
    /// The response has no body (HEAD, 1xx, 204, 304), known once the
    /// head is sent.
    bodiless: bool,
    /// Body bytes still allowed by `Content-Length`.
    remaining: Option<u64>,
    declared: Option<u64>,
    sent: u64,
    /// The head as sent, for the access log and metrics.
    sent_head: Option<PendingHead>,
}

impl ResponseWriter {
    pub fn new(head_request: bool) -> ResponseWriter {
        ResponseWriter {
            head_request,
            pending: None,
            phase: Phase::Head,
            bodiless: false,
            remaining: None,
            declared: None,
            sent: 0,
            sent_head: None,
        }
    }

    /// Whether `start_response` was called (the head may not be sent yet).
    pub fn has_status(&self) -> bool {
        self.pending.is_some() || self.phase != Phase::Head
    }

    /// Whether the head went out; from then on the status is final.
    pub fn head_sent(&self) -> bool {
        self.phase != Phase::Head
    }

    /// Whether the response is complete (`response_end` queued) while the
    /// app may still be producing data, which is then discarded.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Complete
    }

    /// The status and headers sent, once the head went out.
    pub fn sent_head(&self) -> Option<(u16, &HeadFields)> {
        self.sent_head.as_ref().map(|h| (h.status, &h.fields))
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.sent
    }

    /// Whether the response turned out to have no body at all.
    pub fn is_bodiless(&self) -> bool {
        self.bodiless
    }

    /// Sets or replaces the head; only before it is sent.
    pub fn set_head(&mut self, head: PendingHead) {
        debug_assert!(!self.head_sent());
        self.pending = Some(head);
    }

    fn send_head(&mut self, conn: &mut Connection) -> Result<(), WriteError> {
        let head = self.pending.take().ok_or(WriteError::NoStatus)?;
        super::in_flight::response_started();
        head.fields
            .write_frame(conn.out())
            .map_err(|_| WriteError::HeadTooLarge)?;
        let head = self.sent_head.insert(head);
        let bodiless = self.head_request
            || (100..200).contains(&head.status)
            || head.status == 204
            || head.status == 304;
        self.bodiless = bodiless;
        self.declared = head.content_length;
        self.remaining = if bodiless {
            Some(0)
        } else {
            head.content_length
        };
        self.phase = Phase::Body;
        if self.remaining == Some(0) {
            self.complete(conn);
        }
        Ok(())
    }

    fn complete(&mut self, conn: &mut Connection) {
        // A stop that came while the app ran makes this the last response:
        // decided here, at the last moment, so nginx learns it with the
        // response instead of finding the connection closed later.
        if signals::stop_requested() || signals::quit_requested() {
            conn.set_last();
        }
        let end: &[u8] = if conn.is_last() {
            &RESPONSE_END_CLOSE
        } else {
            &RESPONSE_END
        };
        conn.out().extend_from_slice(end);
        self.phase = Phase::Complete;
    }

    /// Sends body data. `flush`: the app may take a while to produce the
    /// next chunk, so send now (PEP 3333 forbids holding data back).
    pub fn body<B: Blocker>(
        &mut self,
        conn: &mut Connection,
        data: &[u8],
        flush: bool,
        b: &B,
    ) -> Result<(), WriteError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.phase == Phase::Head {
            self.send_head(conn)?;
        }
        if self.phase != Phase::Body {
            return Ok(());
        }
        let data = match self.remaining {
            Some(r) => &data[..data.len().min(r as usize)],
            None => data,
        };
        conn.send_body(data, b)?;
        self.sent += data.len() as u64;
        let mut flush = flush;
        if let Some(r) = &mut self.remaining {
            *r -= data.len() as u64;
            if *r == 0 {
                self.complete(conn);
                flush = true;
            }
        }
        if flush {
            conn.flush(b)?;
        }
        Ok(())
    }

    /// Sends up to `len` bytes of a file from `offset` as body data.
    pub fn file<B: Blocker>(
        &mut self,
        conn: &mut Connection,
        file: BorrowedFd<'_>,
        offset: i64,
        len: u64,
        b: &B,
    ) -> Result<(), WriteError> {
        if len == 0 {
            return Ok(());
        }
        if self.phase == Phase::Head {
            self.send_head(conn)?;
        }
        if self.phase != Phase::Body {
            return Ok(());
        }
        let len = self.remaining.map_or(len, |r| r.min(len));
        let sent = conn.send_file(file, offset, len, b)?;
        self.sent += sent;
        if let Some(r) = &mut self.remaining {
            *r -= sent;
            if *r == 0 {
                self.complete(conn);
                conn.flush(b)?;
            }
        }
        Ok(())
    }

    /// Ends the response: sends the head if it is still pending, then
    /// `response_end`, and flushes. A body shorter than its
    /// `Content-Length` cannot be ended normally: the caller must
    /// [`fail`](Self::fail) instead.
    pub fn finish<B: Blocker>(&mut self, conn: &mut Connection, b: &B) -> Result<(), WriteError> {
        if self.phase == Phase::Head {
            self.send_head(conn)?;
        }
        if self.phase == Phase::Body {
            if let (Some(declared), Some(r)) = (self.declared, self.remaining) {
                if r > 0 {
                    return Err(WriteError::ShortBody {
                        declared,
                        sent: self.sent,
                    });
                }
            }
            self.complete(conn);
        }
        conn.flush(b)?;
        Ok(())
    }

    /// Answers 500 with Gunicorn's page; only before the head was sent.
    pub fn internal_error<B: Blocker>(
        &mut self,
        conn: &mut Connection,
        b: &B,
    ) -> Result<(), WriteError> {
        debug_assert!(!self.head_sent());
        self.pending = Some(PendingHead::internal_error());
        self.body(conn, INTERNAL_ERROR_PAGE, false, b)?;
        self.finish(conn, b)
    }

    /// Cuts the response short with an `error` frame (INTERNAL); nginx
    /// then aborts the client's response. The connection must be closed.
    pub fn fail<B: Blocker>(&mut self, conn: &mut Connection, message: String, b: &B) {
        self.phase = Phase::Failed;
        conn.queue_error(ErrorKind::Internal, message);
        // The connection closes anyway; a write error changes nothing.
        let _ = conn.flush(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::connection::{test_pair, Direct};
    use bytes::BytesMut;
    use ferrocorn_protocol::frame;
    use ferrocorn_protocol::pb::frame::Kind;
    use std::io::Read;

    fn head(status: u16, content_length: Option<u64>) -> PendingHead {
        let mut fields = HeadFields::new(status, b"X");
        if let Some(n) = content_length {
            fields.push_header(b"Content-Length", n.to_string().as_bytes());
        }
        PendingHead {
            fields,
            status,
            content_length,
        }
    }

    /// Runs `f` against a writer and returns the frames the peer received,
    /// as (kind name, body bytes) pairs.
    fn frames_of(
        head_request: bool,
        f: impl FnOnce(&mut ResponseWriter, &mut Connection),
    ) -> Vec<(&'static str, Vec<u8>)> {
        let (mut conn, mut peer) = test_pair();
        let mut w = ResponseWriter::new(head_request);
        f(&mut w, &mut conn);
        drop(conn);
        let mut bytes = Vec::new();
        peer.read_to_end(&mut bytes).unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut out = Vec::new();
        while let Some(f) = frame::decode(&mut buf).unwrap() {
            out.push(match f.kind.unwrap() {
                Kind::ResponseHead(h) => ("head", h.status.to_string().into_bytes()),
                Kind::ResponseBody(b) => ("body", b.to_vec()),
                Kind::ResponseEnd(_) => ("end", vec![]),
                Kind::Error(e) => ("error", e.message.into_bytes()),
                other => panic!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn head_waits_for_the_first_nonempty_chunk() {
        let frames = frames_of(false, |w, c| {
            w.set_head(head(200, None));
            w.body(c, b"", true, &Direct).unwrap();
            assert!(!w.head_sent());
            w.body(c, b"hi", false, &Direct).unwrap();
            assert!(w.head_sent());
            w.finish(c, &Direct).unwrap();
        });
        assert_eq!(
            frames,
            vec![
                ("head", b"200".to_vec()),
                ("body", b"hi".to_vec()),
                ("end", vec![])
            ]
        );
    }

    #[test]
    fn empty_body_sends_head_and_end() {
        let frames = frames_of(false, |w, c| {
            w.set_head(head(200, None));
            w.finish(c, &Direct).unwrap();
        });
        assert_eq!(frames, vec![("head", b"200".to_vec()), ("end", vec![])]);
    }

    #[test]
    fn bodiless_responses_send_no_body() {
        for (head_request, status) in [(true, 200), (false, 204), (false, 304), (false, 101)] {
            let frames = frames_of(head_request, |w, c| {
                w.set_head(head(status, Some(5)));
                w.body(c, b"hello", false, &Direct).unwrap();
                assert!(w.is_complete());
                w.finish(c, &Direct).unwrap();
            });
            assert_eq!(
                frames,
                vec![("head", status.to_string().into_bytes()), ("end", vec![])],
                "status {status} head_request {head_request}"
            );
        }
    }

    #[test]
    fn content_length_caps_and_completes_the_body() {
        let frames = frames_of(false, |w, c| {
            w.set_head(head(200, Some(5)));
            w.body(c, b"hel", false, &Direct).unwrap();
            assert!(!w.is_complete());
            w.body(c, b"lo world", false, &Direct).unwrap();
            assert!(w.is_complete());
            w.body(c, b"more", false, &Direct).unwrap();
            w.finish(c, &Direct).unwrap();
        });
        assert_eq!(
            frames,
            vec![
                ("head", b"200".to_vec()),
                ("body", b"hel".to_vec()),
                ("body", b"lo".to_vec()),
                ("end", vec![])
            ]
        );
    }

    #[test]
    fn short_body_is_an_error() {
        frames_of(false, |w, c| {
            w.set_head(head(200, Some(10)));
            w.body(c, b"abc", false, &Direct).unwrap();
            let err = w.finish(c, &Direct).unwrap_err();
            assert_eq!(
                err.to_string(),
                "response body ended after 3 of the 10 bytes its Content-Length announced"
            );
        });
    }

    #[test]
    fn body_without_status_is_refused() {
        frames_of(false, |w, c| {
            assert!(matches!(
                w.body(c, b"x", false, &Direct),
                Err(WriteError::NoStatus)
            ));
        });
    }

    #[test]
    fn internal_error_replaces_a_pending_head() {
        let frames = frames_of(false, |w, c| {
            w.set_head(head(200, None));
            w.internal_error(c, &Direct).unwrap();
        });
        assert_eq!(frames[0], ("head", b"500".to_vec()));
        assert!(String::from_utf8_lossy(&frames[1].1).contains("Internal Server Error"));
        assert_eq!(frames[2], ("end", vec![]));
    }

    #[test]
    fn failure_after_the_head_sends_an_error_frame() {
        let frames = frames_of(false, |w, c| {
            w.set_head(head(200, None));
            w.body(c, b"part", true, &Direct).unwrap();
            w.fail(c, "app raised".into(), &Direct);
        });
        assert_eq!(
            frames,
            vec![
                ("head", b"200".to_vec()),
                ("body", b"part".to_vec()),
                ("error", b"app raised".to_vec())
            ]
        );
    }
}
