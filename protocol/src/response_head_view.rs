//! `response_head` frames read in place: the module's decoder.
//!
//! prost would allocate the reason phrase, the header list and every header
//! name and value of every response, only for nginx to copy them into its
//! own pool. [`ResponseHeadView`] walks the wire format once, checking it
//! exactly as prost would (the reader of [`crate::request_head_view`]), and
//! keeps every field as a slice of the received frame; the headers are
//! re-walked on demand, with no allocation at all.
//!
//! The fast path takes a frame whose payload is the `response_head` member
//! alone (what every worker writes). Anything else (another member, an
//! `error` frame, repeated members, a malformed head) goes to prost, which
//! also words the error: [`ResponseHeadRef`] is either kind of head.

use bytes::Bytes;

use crate::pb;
use crate::request_head_view::{
    check_depth, expect_wire, pair, wire, Pairs, Reader, RECURSION_LIMIT,
};
use crate::FrameError;

/// Field numbers of `ResponseHead` and `Frame.response_head`.
mod field {
    pub const FRAME_RESPONSE_HEAD: u32 = 4;
    pub const PROTOCOL_VERSION: u32 = 1;
    pub const STATUS: u32 = 2;
    pub const REASON: u32 = 3;
    pub const HEADERS: u32 = 4;
}

/// The `ResponseHead` message bytes of a frame payload (prefix removed) when
/// the payload is exactly one `response_head` member; `None` otherwise.
pub fn response_head_message(payload: &[u8]) -> Option<&[u8]> {
    let key = ((field::FRAME_RESPONSE_HEAD << 3) | u32::from(wire::LEN)) as u8;
    let rest = payload.strip_prefix(&[key])?;
    let mut r = Reader { buf: rest, pos: 0 };
    let len = r.varint().ok()?;
    (len == (rest.len() - r.pos) as u64).then(|| &rest[r.pos..])
}

/// A `ResponseHead` whose fields are slices of the message bytes; mirrors
/// `ResponseHead` in the .proto, with the same defaults for absent fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeadView<'a> {
    pub protocol_version: u32,
    pub status: u32,
    pub reason: &'a [u8],
    /// The whole message, re-walked by [`headers`](Self::headers).
    message: &'a [u8],
    /// Offset of the first header entry, `message.len()` when there is none.
    first_header: usize,
}

impl<'a> ResponseHeadView<'a> {
    /// Checks `message` (the `ResponseHead` message bytes, as
    /// [`response_head_message`] returns them) as prost would, and views it.
    pub fn decode(message: &'a [u8]) -> Result<ResponseHeadView<'a>, FrameError> {
        let depth = RECURSION_LIMIT - 1;
        let mut v = ResponseHeadView {
            protocol_version: 0,
            status: 0,
            reason: b"",
            message,
            first_header: message.len(),
        };
        let mut r = Reader {
            buf: message,
            pos: 0,
        };
        while !r.at_end() {
            let start = r.pos;
            let (tag, wire_type) = r.key()?;
            match tag {
                field::PROTOCOL_VERSION | field::STATUS => {
                    expect_wire(wire_type, wire::VARINT)?;
                    let value = r.varint()? as u32;
                    if tag == field::STATUS {
                        v.status = value;
                    } else {
                        v.protocol_version = value;
                    }
                }
                field::REASON => {
                    expect_wire(wire_type, wire::LEN)?;
                    v.reason = r.len_delimited()?;
                }
                field::HEADERS => {
                    expect_wire(wire_type, wire::LEN)?;
                    check_depth(depth)?;
                    pair(r.len_delimited()?, depth - 1)?;
                    v.first_header = v.first_header.min(start);
                }
                _ => r.skip(tag, wire_type, depth)?,
            }
        }
        Ok(v)
    }

    /// Response headers in the app's order, repeats kept, as `(name, value)`.
    pub fn headers(&self) -> Pairs<'a> {
        Pairs::new(self.message, self.first_header, field::HEADERS)
    }
}

/// A response head as the module reads it: in place, or decoded by prost
/// when the frame is not the plain shape.
#[derive(Debug, Clone)]
pub enum ResponseHeadRef<'a> {
    View(ResponseHeadView<'a>),
    Owned(pb::ResponseHead),
}

impl<'a> ResponseHeadRef<'a> {
    pub fn protocol_version(&self) -> u32 {
        match self {
            ResponseHeadRef::View(v) => v.protocol_version,
            ResponseHeadRef::Owned(h) => h.protocol_version,
        }
    }

    pub fn status(&self) -> u32 {
        match self {
            ResponseHeadRef::View(v) => v.status,
            ResponseHeadRef::Owned(h) => h.status,
        }
    }

    pub fn reason(&self) -> &[u8] {
        match self {
            ResponseHeadRef::View(v) => v.reason,
            ResponseHeadRef::Owned(h) => &h.reason,
        }
    }

    /// The headers in order, as `(name, value)`.
    pub fn headers(&self) -> Headers<'_> {
        match self {
            ResponseHeadRef::View(v) => Headers::View(v.headers()),
            ResponseHeadRef::Owned(h) => Headers::Owned(h.headers.iter()),
        }
    }

    /// The same head as prost's owned type (tests, fuzzing).
    pub fn to_owned(&self) -> pb::ResponseHead {
        let b = Bytes::copy_from_slice;
        pb::ResponseHead {
            protocol_version: self.protocol_version(),
            status: self.status(),
            reason: b(self.reason()),
            headers: self
                .headers()
                .map(|(n, v)| pb::Header {
                    name: b(n),
                    value: b(v),
                })
                .collect(),
        }
    }
}

/// The headers of a [`ResponseHeadRef`].
#[derive(Debug, Clone)]
pub enum Headers<'a> {
    View(Pairs<'a>),
    Owned(core::slice::Iter<'a, pb::Header>),
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Headers::View(pairs) => pairs.next(),
            Headers::Owned(iter) => iter.next().map(|h| (&h.name[..], &h.value[..])),
        }
    }
}

/// Equal when prost would have decoded the same head.
impl PartialEq for ResponseHeadRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.protocol_version() == other.protocol_version()
            && self.status() == other.status()
            && self.reason() == other.reason()
            && self.headers().eq(other.headers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, FRAME_HEADER_LEN};
    use crate::pb::{frame::Kind, Frame, Header, ResponseHead};
    use prost::Message;

    fn sample() -> ResponseHead {
        let h = |n: &str, v: &str| Header {
            name: Bytes::copy_from_slice(n.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        };
        ResponseHead {
            protocol_version: 1,
            status: 200,
            reason: Bytes::from_static(b"OK"),
            headers: vec![
                h("Content-Type", "text/plain"),
                h("Set-Cookie", "a=1"),
                h("Set-Cookie", ""),
                h("X-Big", &"v".repeat(300)),
            ],
        }
    }

    fn payload(head: &ResponseHead) -> Vec<u8> {
        frame::encode_to_vec(&Frame {
            kind: Some(Kind::ResponseHead(head.clone())),
        })[FRAME_HEADER_LEN..]
            .to_vec()
    }

    /// The view of a payload agrees with prost's decode of it, whenever the
    /// view accepts it.
    fn agrees(payload: &[u8]) -> bool {
        let theirs = Frame::decode(payload);
        let Some(message) = response_head_message(payload) else {
            return false;
        };
        match (ResponseHeadView::decode(message), theirs) {
            (
                Ok(view),
                Ok(Frame {
                    kind: Some(Kind::ResponseHead(h)),
                }),
            ) => {
                assert_eq!(ResponseHeadRef::View(view).to_owned(), h);
                true
            }
            (Err(_), Err(_)) => false,
            (ours, theirs) => panic!("view says {ours:?}, prost says {theirs:?}"),
        }
    }

    #[test]
    fn a_typical_head_reads_like_prost() {
        let bytes = payload(&sample());
        let view = ResponseHeadView::decode(response_head_message(&bytes).unwrap()).unwrap();
        assert_eq!((view.status, view.reason), (200, &b"OK"[..]));
        assert_eq!(view.headers().count(), 4);
        assert!(agrees(&bytes));
        assert_eq!(
            ResponseHeadRef::View(view),
            ResponseHeadRef::Owned(sample())
        );
    }

    #[test]
    fn empty_fields_are_defaults() {
        let bytes = payload(&ResponseHead::default());
        let view = ResponseHeadView::decode(response_head_message(&bytes).unwrap()).unwrap();
        assert_eq!(view.headers().count(), 0);
        assert_eq!((view.status, view.reason), (0, &b""[..]));
        assert!(agrees(&bytes));
    }

    #[test]
    fn unusual_encodings_read_like_prost() {
        let base = payload(&sample());
        let message = response_head_message(&base).unwrap();
        let frame_of = |m: &[u8]| {
            let mut p = vec![0x22];
            let mut len = m.len();
            while len >= 0x80 {
                p.push((len as u8) | 0x80);
                len >>= 7;
            }
            p.push(len as u8);
            p.extend_from_slice(m);
            p
        };
        // Unknown fields of every wire type, a repeated status (last wins),
        // a header with an unknown field and its value before its name.
        let extra: &[&[u8]] = &[
            &[0x78, 0x05],
            &[0x79, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x7d, 1, 2, 3, 4],
            &[0x7a, 0x02, b'h', b'i'],
            &[0x7b, 0x08, 0x01, 0x7c],
            &[0x10, 0xf4, 0x03],
            &[
                0x22, 0x0a, 0x12, 0x01, b'v', 0x18, 0x01, 0x0a, 0x03, b'X', b'-', b'A',
            ],
        ];
        for e in extra {
            let m = [message, e].concat();
            assert!(agrees(&frame_of(&m)), "{e:x?}");
        }
        // Wrong wire types, truncations, a bad group: refused like prost.
        let bad: &[&[u8]] = &[
            &[0x12, 0x01, b'x'],
            &[0x08],
            &[0x1a, 0x05, b'x'],
            &[0x22, 0x02, 0x0a],
            &[0x7b, 0x08, 0x01],
            &[0x7c],
            &[0x00, 0x01],
        ];
        for e in bad {
            let m = [message, e].concat();
            assert!(!agrees(&frame_of(&m)), "{e:x?}");
        }
        // Not the lone member: for prost.
        assert_eq!(
            response_head_message(&[&base[..], &[0x78, 0x01]].concat()),
            None
        );
        assert_eq!(response_head_message(&base[..base.len() - 1]), None);
    }
}
