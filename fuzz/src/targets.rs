//! The fuzz targets: each feeds one [`Input`] to a decoder, whole and split
//! at the input's cut points, and panics when an invariant breaks.
//!
//! Invariants checked for every decoder:
//! - no panic (a panic aborts the run: the release profile aborts);
//! - no loop: every call consumes bytes or asks for more;
//! - bounded buffering: nothing waits for more than one maximum frame;
//! - split-point independence: the same stream read whole or in pieces
//!   gives the same frames, body bytes and outcome;
//! - agreement with prost: what the module's hand-written parser accepts,
//!   `frame::decode` decodes to the same frames; the worker's head view
//!   accepts exactly the heads prost accepts, with the same fields.

use bytes::{Bytes, BytesMut};
use ferrocorn_protocol::body::BodyKind;
use ferrocorn_protocol::frame::{self, FrameError};
use ferrocorn_protocol::pb::{self, frame::Kind, Frame};
use ferrocorn_protocol::request_head_view::{
    decode_request_member, head_message, RequestHeadView, RequestMember,
};
use ferrocorn_protocol::response_stream::{BodyParser, BodyStep};
use ferrocorn_protocol::{FRAME_HEADER_LEN, MAX_FRAME_SIZE};
use prost::Message;

use crate::gen::Input;
use crate::module_head::{self, Parsed};
use crate::module_stream::{bare_end, ResponseStream, ScanEnd, StreamState};

// ---- the worker's request decoder ------------------------------------------

/// What a frame reader reports.
#[derive(Debug, PartialEq)]
enum Event {
    Frame(Box<Frame>),
    Error(FrameError),
}

/// Reads `pieces` the way the worker's connection does: append what one
/// `read` returned, then decode frames until one is incomplete.
fn decode_pieces(pieces: &[&[u8]]) -> (Vec<Event>, Option<usize>) {
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match frame::decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(
                        before - buf.len() > FRAME_HEADER_LEN,
                        "a frame consumed {} bytes",
                        before - buf.len()
                    );
                    check_round_trip(&f);
                    events.push(Event::Frame(Box::new(f)));
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame was consumed");
                    assert!(
                        buf.len() < FRAME_HEADER_LEN + MAX_FRAME_SIZE,
                        "{} bytes buffered without a whole frame",
                        buf.len()
                    );
                    break;
                }
                Err(e) => {
                    events.push(Event::Error(e));
                    return (events, None);
                }
            }
        }
    }
    (events, Some(buf.len()))
}

/// A decoded frame encodes (canonically) and decodes back to itself.
fn check_round_trip(f: &Frame) {
    assert!(f.kind.is_some(), "decode returned a frame with no member");
    if f.encoded_len() > MAX_FRAME_SIZE {
        // Possible only by widening negative int32 varints; never re-sent.
        return;
    }
    let bytes = frame::encode_to_vec(f);
    let back = frame::decode(&mut BytesMut::from(&bytes[..]))
        .expect("a re-encoded frame decodes")
        .expect("a re-encoded frame is whole");
    assert_eq!(&back, f, "round trip changed the frame");
}

/// `frame::decode` over a stream, as the worker reads requests.
pub fn request_decoder(input: &Input) {
    let whole = decode_pieces(&[&input.stream]);
    let split = decode_pieces(&input.pieces());
    assert_eq!(whole, split, "split reads changed the frames");
}

// ---- the worker's request-head view ----------------------------------------

/// The worker's frame decoder ([`decode_request_member`] and
/// [`RequestHeadView`]) against prost on every whole frame of the stream,
/// and on one-byte corruptions inside each head message (its lengths kept,
/// so the bytes inside the message are what is tested).
pub fn request_head_view(input: &Input) {
    let stream = &input.stream;
    let mut at = 0;
    while let Ok(Some(total)) = frame::check(&stream[at..]) {
        let payload = &stream[at + FRAME_HEADER_LEN..at + total];
        member_agrees(payload);
        if let Some(message) = head_message(payload) {
            let mut corrupt = message.to_vec();
            for i in 0..corrupt.len().min(8) {
                let pos = (i * 7919 + total) % corrupt.len();
                let old = corrupt[pos];
                corrupt[pos] = match i % 3 {
                    0 => old ^ (1 << (total % 8)),
                    1 => 0x80 | old,
                    _ => [0x00, 0x7f, 0xff, 0x0b, 0x0c, 0x3a][(total + i) % 6],
                };
                message_agrees(&corrupt);
                corrupt[pos] = old;
            }
        }
        at += total;
    }
}

/// prost's reading of a frame payload, as `frame::decode` has it.
fn prost_frame(payload: &[u8]) -> Result<Kind, ()> {
    match Frame::decode(payload) {
        Ok(Frame { kind: Some(kind) }) => Ok(kind),
        _ => Err(()),
    }
}

fn member_agrees(payload: &[u8]) {
    let theirs = prost_frame(payload);
    match (
        decode_request_member(Bytes::copy_from_slice(payload)),
        theirs,
    ) {
        (Ok(RequestMember::Head(message)), theirs) => {
            let theirs = theirs.map(|k| match k {
                Kind::RequestHead(h) => h,
                other => panic!("view took a {} frame for a head", frame::kind_name(&other)),
            });
            view_agrees(&message, theirs);
        }
        (Ok(RequestMember::Other(ours)), Ok(theirs)) => assert_eq!(ours, theirs),
        (Err(_), Err(())) => {}
        (ours, theirs) => panic!("worker decoder says {ours:?}, prost says {theirs:?}"),
    }
}

/// A head message alone, as the fast path would slice it out of a frame.
fn message_agrees(message: &[u8]) {
    let mut payload = vec![0x0a];
    prost::encoding::encode_varint(message.len() as u64, &mut payload);
    payload.extend_from_slice(message);
    assert_eq!(head_message(&payload), Some(message));
    member_agrees(&payload);
}

fn view_agrees(message: &[u8], theirs: Result<pb::RequestHead, ()>) {
    match (RequestHeadView::decode(message), theirs) {
        (Ok(view), Ok(head)) => {
            assert_eq!(view.to_owned(), head, "view differs from prost");
            assert_eq!(view.headers().count(), head.headers.len());
            assert_eq!(view.params().count(), head.params.len());
        }
        (Err(_), Err(())) => {}
        (ours, theirs) => panic!("view says {ours:?}, prost says {theirs:?}"),
    }
}

// ---- the module's response parsers -----------------------------------------

/// How a body stream ended, with absolute stream offsets.
#[derive(Debug, PartialEq)]
enum Outcome {
    End { at: usize, close: bool },
    WorkerError { err: pb::Error, at: usize },
    Invalid(FrameError),
    NeedMore,
}

/// Runs [`BodyParser`] over `pieces`, checking progress on every call.
fn parse_body(pieces: &[&[u8]]) -> (Vec<u8>, Outcome) {
    let mut parser = BodyParser::new();
    let mut data = Vec::new();
    let mut base = 0;
    for piece in pieces {
        let mut pos = 0;
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls <= piece.len() + 2, "step makes no progress");
            let (next, step) = match parser.step(piece, pos) {
                Ok(r) => r,
                Err(e) => {
                    check_fused(&mut parser, piece, pos);
                    return (data, Outcome::Invalid(e));
                }
            };
            assert!(next >= pos && next <= piece.len(), "step moved to {next}");
            match step {
                BodyStep::Data(r) => {
                    assert!(
                        r.start >= pos && r.start < r.end && r.end == next,
                        "data range {r:?} from {pos} to {next}"
                    );
                    data.extend_from_slice(&piece[r]);
                }
                BodyStep::NeedMore => {
                    assert_eq!(next, piece.len(), "NeedMore with bytes left");
                    break;
                }
                BodyStep::End { close } => {
                    assert!(parser.is_done());
                    // Later calls keep saying End and consume nothing.
                    assert_eq!(
                        parser.step(piece, next),
                        Ok((next, BodyStep::End { close }))
                    );
                    return (
                        data,
                        Outcome::End {
                            at: base + next,
                            close,
                        },
                    );
                }
                BodyStep::WorkerError(err) => {
                    return (
                        data,
                        Outcome::WorkerError {
                            err,
                            at: base + next,
                        },
                    )
                }
            }
            pos = next;
        }
        base += piece.len();
    }
    (data, Outcome::NeedMore)
}

/// A parser that returned an error stays failed: more input is refused,
/// never a panic or a frame.
fn check_fused(parser: &mut BodyParser, piece: &[u8], pos: usize) {
    for _ in 0..MAX_PREFIX_PROBES {
        match parser.step(piece, pos) {
            Err(_) => {}
            Ok(r) => panic!("a failed parser went on: {r:?}"),
        }
    }
}

/// How often a failed parser is poked again.
const MAX_PREFIX_PROBES: usize = 10;

/// The body stream as prost sees it, frame by frame.
#[derive(Debug)]
enum Reference {
    End {
        at: usize,
        data: Vec<u8>,
        close: bool,
    },
    Error {
        err: pb::Error,
        at: usize,
        data: Vec<u8>,
    },
    NeedMore {
        data: Vec<u8>,
    },
    /// prost rejects the stream, or accepts a frame the module's parser
    /// refuses on purpose (stricter): no comparison past this point.
    Refused,
}

/// A body frame exactly as senders write it: `key | varint(n) | n bytes`.
fn is_plain_body_frame(payload: &[u8]) -> bool {
    if payload.first() != Some(&BodyKind::Response.key()) {
        return false;
    }
    let mut size = 0usize;
    for (i, &byte) in payload[1..].iter().enumerate().take(3) {
        size |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return 1 + (i + 1) + size == payload.len();
        }
    }
    false
}

/// Largest non-body frame the module accepts mid-body (its own limit).
const MODULE_MAX_CONTROL_FRAME: usize = 64 * 1024;

fn reference_body(stream: &[u8]) -> Reference {
    let mut buf = BytesMut::from(stream);
    let mut data = Vec::new();
    loop {
        let start = stream.len() - buf.len();
        let total = match frame::check(&buf) {
            Ok(Some(total)) => total,
            Ok(None) => return Reference::NeedMore { data },
            Err(_) => return Reference::Refused,
        };
        let payload = &stream[start + FRAME_HEADER_LEN..start + total];
        let f = match frame::decode(&mut buf) {
            Ok(Some(f)) => f,
            _ => return Reference::Refused,
        };
        let at = start + total;
        if payload[0] == BodyKind::Response.key() && !is_plain_body_frame(payload) {
            // The module reads a frame starting with the body key as a body
            // frame and refuses extra members; prost keeps the last one.
            return Reference::Refused;
        }
        match f.kind {
            Some(Kind::ResponseBody(b)) if is_plain_body_frame(payload) => {
                data.extend_from_slice(&b)
            }
            _ if payload.len() > MODULE_MAX_CONTROL_FRAME => return Reference::Refused,
            Some(Kind::ResponseEnd(end)) => {
                return Reference::End {
                    at,
                    data,
                    close: end.close,
                }
            }
            Some(Kind::Error(err)) => return Reference::Error { err, at, data },
            _ => return Reference::Refused,
        }
    }
}

/// The module's body parser against prost, whole and split.
pub fn response_body(input: &Input) {
    let whole = parse_body(&[&input.stream]);
    let split = parse_body(&input.pieces());
    assert_eq!(whole, split, "split reads changed the body stream");
    let (data, outcome) = whole;
    match (&outcome, reference_body(&input.stream)) {
        (
            Outcome::End { at, close },
            Reference::End {
                at: r_at,
                data: r,
                close: r_close,
            },
        ) => {
            assert_eq!(
                (*at, &data, *close),
                (r_at, &r, r_close),
                "end differs from prost"
            );
        }
        (
            Outcome::WorkerError { err, at },
            Reference::Error {
                err: e,
                at: r_at,
                data: r,
            },
        ) => {
            assert_eq!(
                (err, *at, &data),
                (&e, r_at, &r),
                "error differs from prost"
            );
        }
        (Outcome::NeedMore, Reference::NeedMore { data: r }) => {
            assert!(data.starts_with(&r), "body differs from prost");
        }
        // Refused by both, or by the module first: it checks a prefix
        // before the payload arrives, and is stricter than prost on purpose.
        (Outcome::Invalid(_), Reference::Refused | Reference::NeedMore { .. }) => {}
        (ours, theirs) => panic!("parser says {ours:?}, prost says {theirs:?}"),
    }
    module_stream(input, &data, &outcome);
}

/// The module's per-request [`ResponseStream`] over the same pieces: the
/// same body and end as the bare parser, and a final state that refuses
/// more input.
fn module_stream(input: &Input, data: &[u8], outcome: &Outcome) {
    let mut s = ResponseStream::new();
    let mut got = Vec::new();
    let mut base = 0;
    let mut last = ScanEnd::NeedMore;
    for piece in input.pieces() {
        last = s
            .scan(piece, |r| {
                got.extend_from_slice(&piece[r]);
                Ok::<(), ()>(())
            })
            .unwrap();
        base += piece.len();
        if last != ScanEnd::NeedMore {
            break;
        }
    }
    assert_eq!(got, data, "module stream body differs from the parser's");
    match (&last, outcome) {
        (ScanEnd::NeedMore, Outcome::NeedMore) => assert_eq!(s.state(), StreamState::Body),
        (ScanEnd::End { trailing, close }, Outcome::End { at, close: c }) => {
            assert_eq!((base - trailing, *close), (*at, *c));
            assert_eq!(s.state(), StreamState::Ended);
            assert_eq!(
                s.scan(b"more", |_| Ok::<(), ()>(())),
                Ok(ScanEnd::End {
                    trailing: 4,
                    close: *c
                })
            );
        }
        (ScanEnd::WorkerError(e), Outcome::WorkerError { err, .. }) => {
            assert_eq!(e, err);
            assert_eq!(
                s.scan(b"more", |_| Ok::<(), ()>(())),
                Ok(ScanEnd::AfterFailure)
            );
        }
        (ScanEnd::Invalid(e), Outcome::Invalid(f)) => {
            assert_eq!(e, f);
            assert_eq!(
                s.scan(b"more", |_| Ok::<(), ()>(())),
                Ok(ScanEnd::AfterFailure)
            );
        }
        (a, b) => panic!("module stream says {a:?}, parser says {b:?}"),
    }
}

/// A head outcome that outlives the buffer it was read from.
type OwnedHead = Result<Option<(usize, pb::ResponseHead)>, module_head::HeadError>;

fn owned_head(parsed: Result<Parsed<'_>, module_head::HeadError>) -> OwnedHead {
    parsed.map(|p| match p {
        Parsed::NeedMore => None,
        Parsed::Head { used, head } => Some((used, head.to_owned())),
    })
}

/// The module's head check over nginx's growing header buffer, then its
/// body stream over the rest.
pub fn response_head(input: &Input) {
    let mut buf = Vec::new();
    let mut decided = None;
    for piece in input.pieces() {
        buf.extend_from_slice(piece);
        let parsed = owned_head(module_head::parse(&buf));
        match (&decided, parsed) {
            (None, Ok(None)) => assert!(
                buf.len() < FRAME_HEADER_LEN + MAX_FRAME_SIZE,
                "head still incomplete after {} bytes",
                buf.len()
            ),
            (None, other) => decided = Some(other),
            (Some(d), other) => assert_eq!(d, &other, "more bytes changed the head outcome"),
        }
    }
    let whole = module_head::parse(&input.stream);
    match &decided {
        None => assert_eq!(whole, Ok(Parsed::NeedMore)),
        Some(d) => assert_eq!(
            d,
            &owned_head(module_head::parse(&input.stream)),
            "whole and split heads differ"
        ),
    }
    let Ok(Parsed::Head { used, head }) = whole else {
        return;
    };
    assert!(used <= input.stream.len());
    // What reaches nginx's header tables cannot split the client response.
    assert!((100..=999).contains(&head.status()));
    let clean = |v: &[u8]| !v.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0);
    assert!(clean(head.reason()));
    for (name, value) in head.headers() {
        assert!(!name.is_empty() && clean(name) && !name.contains(&b':'));
        assert!(clean(value));
    }
    if let Some(len) = module_head::status_line_len(head.reason()) {
        let mut line = vec![0; len];
        module_head::write_status_line(head.status(), head.reason(), &mut line);
        assert!(clean(&line));
        assert_eq!(
            line,
            format!("{} ", head.status())
                .into_bytes()
                .into_iter()
                .chain(head.reason().iter().copied())
                .collect::<Vec<u8>>()
        );
    }
    // Read in place or by prost, the head is what prost reads.
    let payload = &input.stream[FRAME_HEADER_LEN..used];
    match Frame::decode(payload).map(|f| f.kind) {
        Ok(Some(Kind::ResponseHead(theirs))) => assert_eq!(head.to_owned(), theirs),
        other => panic!("module read a head, prost says {other:?}"),
    }
    let rest = &input.stream[used..];
    if let Some(close) = bare_end(rest) {
        let mut s = ResponseStream::new();
        assert_eq!(
            s.scan(rest, |_| Ok::<(), ()>(())),
            Ok(ScanEnd::End { trailing: 0, close })
        );
    }
    let cuts = input
        .cuts
        .iter()
        .filter(|&&c| c > used)
        .map(|&c| c - used)
        .collect();
    response_body(&Input {
        stream: rest.to_vec(),
        cuts,
    });
}
