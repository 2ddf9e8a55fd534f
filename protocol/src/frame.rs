//! Length-prefixed frames: `u32` big-endian length, then one protobuf
//! [`Frame`](crate::pb::Frame).
//!
//! Decoding is a two-step state check in the mini-redis manner: [`check`]
//! says whether a whole frame is buffered (and how long it is) without
//! touching the buffer; [`decode`] then consumes it. Too few bytes is
//! `Ok(None)`: read more and call again.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use std::fmt;

use crate::pb::{frame::Kind, Frame};

/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Largest payload a frame may carry (1 MiB). Bounds every receive buffer.
pub const MAX_FRAME_SIZE: usize = 1 << 20;

/// Why a byte stream is not a valid frame sequence. Each closes the
/// connection it came from; none is a "need more bytes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME_SIZE`].
    TooLarge(usize),
    /// A zero length prefix: no frame is empty.
    Empty,
    /// The payload is not a protobuf `Frame`, or has no member set.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes exceeds the {MAX_FRAME_SIZE}-byte limit"
                )
            }
            FrameError::Empty => f.write_str("frame with zero length"),
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Validates a frame's length prefix.
pub fn check_len(len: usize) -> Result<(), FrameError> {
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME_SIZE => Err(FrameError::TooLarge(n)),
        _ => Ok(()),
    }
}

/// Returns the total length (prefix included) of the frame at the start of
/// `buf` if all of it is there, `Ok(None)` if more bytes are needed.
pub fn check(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
    check_len(len)?;
    let total = FRAME_HEADER_LEN + len;
    Ok((buf.len() >= total).then_some(total))
}

/// Decodes and removes the first frame of `buf`; `Ok(None)` when it is not
/// complete yet (nothing is consumed then).
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    let Some(total) = check(buf)? else {
        return Ok(None);
    };
    let mut payload = buf.split_to(total).freeze();
    payload.advance(FRAME_HEADER_LEN);
    let frame = Frame::decode(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if frame.kind.is_none() {
        return Err(FrameError::Malformed("no frame member set".into()));
    }
    Ok(Some(frame))
}

/// Appends `frame`, length prefix first. Panics if the encoding exceeds
/// [`MAX_FRAME_SIZE`]: senders split bodies below it (see [`crate::body`]).
pub fn encode(frame: &Frame, out: &mut impl BufMut) {
    let len = frame.encoded_len();
    assert!(
        len <= MAX_FRAME_SIZE,
        "frame of {len} bytes is over the limit"
    );
    out.put_u32(len as u32);
    frame.encode_raw(out);
}

/// Encodes `frame` into a new vector (tests and cold paths).
pub fn encode_to_vec(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + frame.encoded_len());
    encode(frame, &mut out);
    out
}

/// The .proto name of a frame member, for log lines.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::RequestHead(_) => "request_head",
        Kind::RequestBody(_) => "request_body",
        Kind::RequestEnd(_) => "request_end",
        Kind::ResponseHead(_) => "response_head",
        Kind::ResponseBody(_) => "response_body",
        Kind::ResponseEnd(_) => "response_end",
        Kind::Error(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{frame::Kind, Header, RequestEnd, RequestHead};
    use bytes::Bytes;

    fn sample() -> Vec<Frame> {
        vec![
            Frame {
                kind: Some(Kind::RequestHead(RequestHead {
                    protocol_version: 1,
                    method: Bytes::from_static(b"POST"),
                    uri: Bytes::from_static(b"/a%20b?x=1"),
                    headers: vec![
                        Header {
                            name: "X-A".into(),
                            value: "1".into(),
                        },
                        Header {
                            name: "X-A".into(),
                            value: "2".into(),
                        },
                    ],
                    content_length: -1,
                    ..Default::default()
                })),
            },
            Frame {
                kind: Some(Kind::RequestBody(Bytes::from(vec![7u8; 3000]))),
            },
            Frame {
                kind: Some(Kind::RequestEnd(RequestEnd {})),
            },
        ]
    }

    fn stream() -> Vec<u8> {
        sample().iter().flat_map(encode_to_vec).collect()
    }

    #[test]
    fn empty_buffer_needs_more() {
        let mut buf = BytesMut::new();
        assert_eq!(decode(&mut buf), Ok(None));
    }

    #[test]
    fn whole_stream_round_trips() {
        let mut buf = BytesMut::from(&stream()[..]);
        let mut got = Vec::new();
        while let Some(f) = decode(&mut buf).unwrap() {
            got.push(f);
        }
        assert_eq!(got, sample());
        assert!(buf.is_empty());
    }

    #[test]
    fn split_at_every_byte() {
        let bytes = stream();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &bytes {
            buf.put_u8(*b);
            while let Some(f) = decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, sample());
    }

    #[test]
    fn incomplete_frame_consumes_nothing() {
        let bytes = stream();
        let mut buf = BytesMut::from(&bytes[..10]);
        assert_eq!(decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], &bytes[..10]);
    }

    #[test]
    fn oversize_length_is_refused_before_payload_arrives() {
        let mut buf = BytesMut::new();
        buf.put_u32(MAX_FRAME_SIZE as u32 + 1);
        assert_eq!(
            decode(&mut buf),
            Err(FrameError::TooLarge(MAX_FRAME_SIZE + 1))
        );
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(decode(&mut huge), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn max_size_frame_is_accepted() {
        let body = Bytes::from(vec![1u8; MAX_FRAME_SIZE - 8]);
        let f = Frame {
            kind: Some(Kind::ResponseBody(body)),
        };
        let bytes = encode_to_vec(&f);
        assert!(bytes.len() - FRAME_HEADER_LEN <= MAX_FRAME_SIZE);
        assert_eq!(decode(&mut BytesMut::from(&bytes[..])).unwrap(), Some(f));
    }

    #[test]
    fn zero_length_is_an_error() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(FrameError::Empty));
    }

    #[test]
    fn corrupt_payload_is_malformed() {
        // Length 3, then a key with wire type 7 (invalid).
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 0x0f, 0xff, 0xff][..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::Malformed(_))));
        // A valid protobuf with no oneof member set (unknown field 15).
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 0x78, 0x01][..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::Malformed(_))));
        // Truncated nested message: head says 10 bytes, frame holds 2.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 0x0a, 0x0a][..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::Malformed(_))));
    }
}
