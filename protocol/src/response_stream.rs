//! The module's side of a response: the head frame, then a body stream
//! parsed incrementally from whatever bytes nginx happened to read.
//!
//! [`parse_head`] looks at the start of nginx's header buffer. After it,
//! [`BodyParser`] walks the rest of the stream, yielding ranges of body
//! data *in the caller's buffer* (nginx links them as buffers, no copy) and
//! finally `End` or an `Error`. Splits may fall anywhere, including inside
//! a length prefix or a varint; the parser keeps those few bytes itself.

use std::ops::Range;

use prost::Message;

use crate::body::{BodyKind, MAX_PREFIX_LEN};
use crate::frame::{self, check_len, kind_name, FrameError, FRAME_HEADER_LEN};
use crate::pb::{self, frame::Kind};
use crate::response_head_view::{response_head_message, ResponseHeadRef, ResponseHeadView};

/// What the first frame of a response was.
#[derive(Debug, PartialEq)]
pub enum HeadOutcome<'a> {
    /// Read in place when the frame is the plain shape, else by prost.
    Head(ResponseHeadRef<'a>),
    /// The worker failed before it had a status (e.g. version mismatch).
    Error(pb::Error),
}

/// Parses the head frame at the start of `buf`. `Ok(None)`: need more bytes.
/// On success returns the frame's total length, so the caller can advance.
pub fn parse_head(buf: &[u8]) -> Result<Option<(usize, HeadOutcome<'_>)>, FrameError> {
    let Some(total) = frame::check(buf)? else {
        return Ok(None);
    };
    let payload = &buf[FRAME_HEADER_LEN..total];
    if let Some(view) =
        response_head_message(payload).and_then(|m| ResponseHeadView::decode(m).ok())
    {
        return Ok(Some((
            total,
            HeadOutcome::Head(ResponseHeadRef::View(view)),
        )));
    }
    let frame = pb::Frame::decode(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let outcome = match frame.kind {
        Some(Kind::ResponseHead(head)) => HeadOutcome::Head(ResponseHeadRef::Owned(head)),
        Some(Kind::Error(err)) => HeadOutcome::Error(err),
        Some(other) => return Err(unexpected(&other, "response_head")),
        None => return Err(FrameError::Malformed("no frame member set".into())),
    };
    Ok(Some((total, outcome)))
}

fn unexpected(kind: &Kind, wanted: &str) -> FrameError {
    FrameError::Malformed(format!(
        "{} frame where {wanted} was expected",
        kind_name(kind)
    ))
}

/// One step of the body stream.
#[derive(Debug, PartialEq)]
pub enum BodyStep {
    /// Body bytes at this range of the input slice.
    Data(Range<usize>),
    /// `response_end`: the response is complete. `close`: the worker
    /// closes the connection now (`ResponseEnd.close`); otherwise it is
    /// idle and may carry the next request.
    End { close: bool },
    /// The worker sent an `error` frame mid-response.
    WorkerError(pb::Error),
    /// The input is exhausted; feed more.
    NeedMore,
}

/// Largest non-body frame accepted mid-stream (an `error` message).
const MAX_CONTROL_FRAME: usize = 64 * 1024;

#[derive(Debug)]
enum State {
    /// Collecting a frame's length, key and (for body frames) size varint.
    Prefix {
        bytes: [u8; MAX_PREFIX_LEN],
        have: usize,
    },
    /// Inside a body frame's data.
    Data { remaining: usize },
    /// Collecting a whole control frame (`response_end` / `error`).
    Control { frame: Vec<u8>, len: usize },
    /// After `response_end` (with its `close` flag).
    Done { close: bool },
    /// After an error or an `error` frame: the stream is over, and every
    /// later call repeats why.
    Failed(FrameError),
}

/// What [`BodyParser::whole_prefix`] found.
enum Whole {
    /// A control frame of this length, all of it in the input.
    Control(usize),
    /// A body frame's prefix of this many bytes, and the state after it.
    Body(usize, State),
    /// Not enough bytes to decide here: collect them byte by byte.
    Partial,
}

/// Incremental parser of `response_body* (response_end | error)`.
#[derive(Debug)]
pub struct BodyParser {
    state: State,
}

impl Default for BodyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyParser {
    pub fn new() -> Self {
        BodyParser {
            state: State::Prefix {
                bytes: [0; MAX_PREFIX_LEN],
                have: 0,
            },
        }
    }

    /// True once `response_end` was seen.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }

    /// Parses from `input[pos..]`. Returns the new position and what was
    /// found. Call again from the returned position until `NeedMore`,
    /// `End` or an error. Data after `End` is the caller's to reject.
    ///
    /// After an `Err` or a `WorkerError` the parser is fused: every later
    /// call returns an error and consumes nothing.
    pub fn step(&mut self, input: &[u8], pos: usize) -> Result<(usize, BodyStep), FrameError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        let result = self.advance(input, pos);
        match &result {
            Err(e) => self.state = State::Failed(e.clone()),
            Ok((_, BodyStep::WorkerError(_))) => {
                self.state =
                    State::Failed(FrameError::Malformed("bytes after an error frame".into()))
            }
            Ok(_) => {}
        }
        result
    }

    fn advance(&mut self, input: &[u8], mut pos: usize) -> Result<(usize, BodyStep), FrameError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Done { close } => return Ok((pos, BodyStep::End { close: *close })),
                State::Data { remaining } => {
                    if pos == input.len() {
                        return Ok((pos, BodyStep::NeedMore));
                    }
                    let take = (*remaining).min(input.len() - pos);
                    *remaining -= take;
                    if *remaining == 0 {
                        self.state = Self::new().state;
                    }
                    return Ok((pos + take, BodyStep::Data(pos..pos + take)));
                }
                State::Control { frame, len } => {
                    let want = *len - frame.len();
                    let take = want.min(input.len() - pos);
                    frame.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    if frame.len() < *len {
                        return Ok((pos, BodyStep::NeedMore));
                    }
                    let frame = std::mem::take(frame);
                    return self.control(&frame).map(|step| (pos, step));
                }
                State::Prefix { bytes, have } => {
                    if pos == input.len() {
                        return Ok((pos, BodyStep::NeedMore));
                    }
                    if *have == 0 {
                        // The usual case: the whole prefix (or the whole
                        // control frame) is in this read; no byte-by-byte
                        // collecting, no copy of the control frame.
                        match Self::whole_prefix(&input[pos..])? {
                            Whole::Control(len) => {
                                let frame =
                                    &input[pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + len];
                                return self
                                    .control(frame)
                                    .map(|step| (pos + FRAME_HEADER_LEN + len, step));
                            }
                            Whole::Body(used, next) => {
                                pos += used;
                                self.state = next;
                                continue;
                            }
                            Whole::Partial => {}
                        }
                    }
                    bytes[*have] = input[pos];
                    *have += 1;
                    pos += 1;
                    if let Some(next) = Self::prefix_complete(&bytes[..*have])? {
                        self.state = next;
                    }
                }
            }
        }
    }

    /// A whole control frame's payload (`response_end` or `error`).
    fn control(&mut self, frame: &[u8]) -> Result<BodyStep, FrameError> {
        // `response_end` as every worker writes it (field 6, empty or with
        // `close` = 1): what prost would read, without asking it.
        let plain_end = match frame {
            [0x32, 0x00] => Some(false),
            [0x32, 0x02, 0x08, 0x01] => Some(true),
            _ => None,
        };
        if let Some(close) = plain_end {
            self.state = State::Done { close };
            return Ok(BodyStep::End { close });
        }
        let decoded = pb::Frame::decode(frame).map_err(|e| FrameError::Malformed(e.to_string()))?;
        match decoded.kind {
            Some(Kind::ResponseEnd(end)) => {
                self.state = State::Done { close: end.close };
                Ok(BodyStep::End { close: end.close })
            }
            Some(Kind::Error(err)) => Ok(BodyStep::WorkerError(err)),
            Some(other) => Err(unexpected(&other, "response_body or response_end")),
            None => Err(FrameError::Malformed("no frame member set".into())),
        }
    }

    /// What the start of `rest` is when a whole prefix is there: the same
    /// decisions (and errors) as [`prefix_complete`](Self::prefix_complete)
    /// makes byte by byte.
    fn whole_prefix(rest: &[u8]) -> Result<Whole, FrameError> {
        if rest.len() <= FRAME_HEADER_LEN {
            return Ok(Whole::Partial);
        }
        let key = rest[FRAME_HEADER_LEN];
        if key != BodyKind::Response.key() {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            if (2..=MAX_CONTROL_FRAME).contains(&len) && rest.len() >= FRAME_HEADER_LEN + len {
                return Ok(Whole::Control(len));
            }
            return Ok(Whole::Partial);
        }
        for n in FRAME_HEADER_LEN + 1..=rest.len().min(MAX_PREFIX_LEN) {
            if let Some(next) = Self::prefix_complete(&rest[..n])? {
                return Ok(Whole::Body(n, next));
            }
        }
        Ok(Whole::Partial)
    }

    /// Decides, from the prefix bytes collected so far, which state follows;
    /// `Ok(None)` while more prefix bytes are needed.
    fn prefix_complete(p: &[u8]) -> Result<Option<State>, FrameError> {
        if p.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes(p[..4].try_into().expect("4 bytes")) as usize;
        // A bad length is refused as soon as it is whole, like frame::check.
        check_len(len)?;
        if p.len() == FRAME_HEADER_LEN {
            return Ok(None);
        }
        let key = p[4];
        if len == 1 {
            // The frame is this key alone, which no message is: let prost
            // say why (never read a byte of the next frame).
            let e = pb::Frame::decode(&[key][..])
                .err()
                .map_or_else(|| "one-byte frame".to_string(), |e| e.to_string());
            return Err(FrameError::Malformed(e));
        }
        if key != BodyKind::Response.key() {
            if len > MAX_CONTROL_FRAME {
                return Err(FrameError::Malformed(format!(
                    "control frame of {len} bytes (key {key:#x}) mid-body"
                )));
            }
            let mut frame = Vec::with_capacity(len);
            frame.push(key);
            return Ok(Some(State::Control { frame, len }));
        }
        // Body frame: varint follows the key.
        let varint = &p[5..];
        let Some(last) = varint.last() else {
            return Ok(None);
        };
        if last & 0x80 != 0 {
            if 1 + varint.len() >= len {
                // The size would run past the frame: refuse now rather than
                // read the next frame's bytes as more varint.
                return Err(FrameError::Malformed(format!(
                    "body frame of {len} bytes ends inside its size varint"
                )));
            }
            if p.len() == MAX_PREFIX_LEN {
                return Err(FrameError::Malformed("body size varint too long".into()));
            }
            return Ok(None);
        }
        let mut size = 0usize;
        for (i, b) in varint.iter().enumerate() {
            size |= usize::from(b & 0x7f) << (7 * i);
        }
        if 1 + varint.len() + size != len {
            return Err(FrameError::Malformed(format!(
                "body frame of {len} bytes declares {size} data bytes"
            )));
        }
        Ok(Some(if size == 0 {
            Self::new().state
        } else {
            State::Data { remaining: size }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Frame, Header, ResponseEnd, ResponseHead};
    use bytes::Bytes;

    fn enc(kind: Kind) -> Vec<u8> {
        frame::encode_to_vec(&Frame { kind: Some(kind) })
    }

    fn body_stream(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend(enc(Kind::ResponseBody(Bytes::copy_from_slice(c))));
        }
        out.extend(enc(Kind::ResponseEnd(ResponseEnd::default())));
        out
    }

    /// Feeds `stream` in pieces of `split` bytes; returns body and whether
    /// the end was seen.
    fn run(stream: &[u8], split: usize) -> Result<(Vec<u8>, Option<pb::Error>, bool), FrameError> {
        let mut p = BodyParser::new();
        let mut body = Vec::new();
        for piece in stream.chunks(split.max(1)) {
            let mut pos = 0;
            loop {
                let (next, step) = p.step(piece, pos)?;
                pos = next;
                match step {
                    BodyStep::Data(r) => body.extend_from_slice(&piece[r]),
                    BodyStep::NeedMore => break,
                    BodyStep::End { .. } => {
                        assert_eq!(pos, piece.len(), "data after end");
                        return Ok((body, None, true));
                    }
                    BodyStep::WorkerError(e) => return Ok((body, Some(e), false)),
                }
            }
        }
        Ok((body, None, false))
    }

    #[test]
    fn plain_response_ends_are_what_prost_writes() {
        for close in [false, true] {
            let frame = enc(Kind::ResponseEnd(ResponseEnd { close }));
            let mut p = BodyParser::new();
            assert_eq!(p.control(&frame[4..]), Ok(BodyStep::End { close }));
            let plain: &[u8] = if close { &[0x32, 2, 8, 1] } else { &[0x32, 0] };
            assert_eq!(&frame[4..], plain);
        }
    }

    #[test]
    fn head_needs_whole_frame() {
        let head = enc(Kind::ResponseHead(ResponseHead {
            protocol_version: 1,
            status: 200,
            reason: "OK".into(),
            headers: vec![Header {
                name: "Content-Type".into(),
                value: "text/plain".into(),
            }],
        }));
        for cut in 0..head.len() {
            assert_eq!(parse_head(&head[..cut]), Ok(None));
        }
        let mut with_body = head.clone();
        with_body.extend(body_stream(&[b"x"]));
        let (used, outcome) = parse_head(&with_body).unwrap().unwrap();
        assert_eq!(used, head.len());
        assert!(matches!(outcome, HeadOutcome::Head(ResponseHeadRef::View(h)) if h.status == 200));
    }

    #[test]
    fn head_rejects_body_frame_and_garbage() {
        let body = enc(Kind::ResponseBody("x".into()));
        assert!(matches!(parse_head(&body), Err(FrameError::Malformed(_))));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\n"),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn body_split_at_every_size() {
        let chunks: [&[u8]; 4] = [b"hello", &[b'a'; 200], b"!", &[0u8; 20000]];
        let stream = body_stream(&chunks);
        let want: Vec<u8> = chunks.concat();
        for split in [1, 2, 3, 5, 7, 64, 4096, stream.len()] {
            let (body, err, end) = run(&stream, split).unwrap();
            assert_eq!(body, want, "split {split}");
            assert!(end && err.is_none());
        }
    }

    #[test]
    fn empty_input_needs_more() {
        let mut p = BodyParser::new();
        assert_eq!(p.step(&[], 0), Ok((0, BodyStep::NeedMore)));
    }

    #[test]
    fn end_alone_is_an_empty_body() {
        let (body, _, end) = run(&body_stream(&[]), 1).unwrap();
        assert!(body.is_empty() && end);
    }

    #[test]
    fn worker_error_mid_body_is_reported() {
        let mut stream = enc(Kind::ResponseBody("part".into()));
        stream.extend(enc(Kind::Error(pb::Error {
            kind: pb::error::Kind::Internal as i32,
            message: "app raised".into(),
        })));
        for split in [1, 3, stream.len()] {
            let (body, err, end) = run(&stream, split).unwrap();
            assert_eq!(body, b"part");
            assert_eq!(err.unwrap().message, "app raised");
            assert!(!end);
        }
    }

    #[test]
    fn corrupt_streams_are_errors() {
        // Oversize length.
        assert!(matches!(
            run(&[0xff, 0xff, 0xff, 0xff, 0x2a], 1),
            Err(FrameError::TooLarge(_))
        ));
        // Zero length.
        assert_eq!(run(&[0, 0, 0, 0, 0x2a], 1), Err(FrameError::Empty));
        // Both refused from the four length bytes alone (found by fuzzing:
        // the parser used to wait for a fifth byte that prost never needs).
        assert_eq!(run(&[0, 0, 0, 0], 1), Err(FrameError::Empty));
        assert!(matches!(
            run(&[0x00, 0x96, 0x2a, 0x00], 4),
            Err(FrameError::TooLarge(9841152))
        ));
        // Body frame whose declared data size disagrees with the length.
        assert!(matches!(
            run(&[0, 0, 0, 9, 0x2a, 3, b'a', b'b', b'c'], 2),
            Err(FrameError::Malformed(_))
        ));
        // A second response_head mid-body.
        let head = enc(Kind::ResponseHead(ResponseHead::default()));
        assert!(matches!(run(&head, 1), Err(FrameError::Malformed(_))));
        // A size varint that runs past its frame is refused at once (found
        // by fuzzing: the parser waited for a byte of the next frame).
        assert!(matches!(
            run(&[0, 0, 0, 2, 0x2a, 0x80], 1),
            Err(FrameError::Malformed(_))
        ));
        // Over-long varint.
        assert!(matches!(
            run(&[0, 0, 0, 9, 0x2a, 0x80, 0x80, 0x80, 0x80], 1),
            Err(FrameError::Malformed(_))
        ));
        // Huge control frame.
        assert!(matches!(
            run(&[0, 2, 0, 0, 0x32], 1),
            Err(FrameError::Malformed(_))
        ));
    }

    /// Found by fuzzing: a one-byte control frame (a lone key) was read as
    /// two bytes, taking the next frame's first byte, so `[0,0,0,1,0x32]`
    /// followed by a 0 byte passed for a `response_end` that prost refuses.
    #[test]
    fn one_byte_control_frame_is_malformed() {
        for key in [0x32u8, 0x3a, 0x2a, 0x0a, 0x0b, 0x0c] {
            let stream = [0, 0, 0, 1, key, 0x00, 0, 0, 0, 2, 0x32, 0x00];
            assert!(
                frame::decode(&mut bytes::BytesMut::from(&stream[..])).is_err(),
                "prost refuses key {key:#x} alone"
            );
            for split in [1, 5, stream.len()] {
                assert!(
                    matches!(run(&stream, split), Err(FrameError::Malformed(_))),
                    "key {key:#x} split {split}"
                );
            }
        }
    }

    /// Found by fuzzing: stepping a parser again after it returned an
    /// error indexed past its prefix buffer (a panic, so an abort in nginx).
    /// Now every later call repeats the error and consumes nothing.
    #[test]
    fn a_failed_parser_stays_failed() {
        let long_varint = [0u8, 0, 0, 9, 0x2a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80];
        let mut p = BodyParser::new();
        let mut pos = 0;
        let err = loop {
            match p.step(&long_varint[..pos + 1], pos) {
                Ok((next, BodyStep::NeedMore)) => pos = next,
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
        };
        for _ in 0..4 {
            assert_eq!(p.step(&long_varint, pos), Err(err.clone()));
        }
        // After an error frame, too.
        let mut stream = enc(Kind::Error(pb::Error::default()));
        stream.extend(body_stream(&[b"x"]));
        let mut p = BodyParser::new();
        let (pos, step) = p.step(&stream, 0).unwrap();
        assert!(matches!(step, BodyStep::WorkerError(_)));
        assert!(matches!(
            p.step(&stream, pos),
            Err(FrameError::Malformed(_))
        ));
        assert!(!p.is_done());
    }

    #[test]
    fn data_ranges_point_into_the_input() {
        let stream = body_stream(&[b"abc", b"de"]);
        let mut p = BodyParser::new();
        let (pos, step) = p.step(&stream, 0).unwrap();
        assert_eq!(step, BodyStep::Data(6..9));
        assert_eq!(&stream[6..9], b"abc");
        let (pos, step) = p.step(&stream, pos).unwrap();
        assert_eq!(step, BodyStep::Data(15..17));
        assert_eq!(
            p.step(&stream, pos).unwrap().1,
            BodyStep::End { close: false }
        );
        assert!(p.is_done());
    }

    #[test]
    fn the_close_flag_of_response_end_is_reported_at_every_split() {
        let mut stream = enc(Kind::ResponseBody(Bytes::from_static(b"abc")));
        stream.extend(enc(Kind::ResponseEnd(ResponseEnd { close: true })));
        for split in 1..=stream.len() {
            let mut p = BodyParser::new();
            let mut end = None;
            for piece in stream.chunks(split) {
                let mut pos = 0;
                loop {
                    let (next, step) = p.step(piece, pos).unwrap();
                    pos = next;
                    match step {
                        BodyStep::Data(_) => {}
                        BodyStep::NeedMore => break,
                        BodyStep::End { close } => {
                            end = Some(close);
                            break;
                        }
                        BodyStep::WorkerError(e) => panic!("{e:?}"),
                    }
                }
            }
            assert_eq!(end, Some(true), "split {split}");
            assert_eq!(p.step(&[], 0).unwrap().1, BodyStep::End { close: true });
        }
    }
}
