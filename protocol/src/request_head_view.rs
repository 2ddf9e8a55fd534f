//! `request_head` frames read in place: the worker's decoder.
//!
//! prost would allocate a `Header` (and bump a reference count per field)
//! for every header of every request. [`RequestHeadView`] instead walks the
//! protobuf wire format once, checking it exactly as prost would, and keeps
//! each field as a slice of the received frame; headers and params are
//! re-walked on demand by [`Pairs`], with no allocation at all. Unit tests
//! and the fuzz target `request_head_view` check it against prost.
//!
//! The fast path takes a frame whose payload is the `request_head` member
//! alone (what every sender writes); [`head_message`] finds it. Anything
//! else (another member first, repeated members, unknown frame fields) is
//! for prost, whose canonical re-encoding a caller may then view.

use bytes::Bytes;
use prost::Message;

use crate::pb::{frame::Kind, Frame};
use crate::FrameError;

use crate::request_head::field;

/// Protobuf wire types.
pub(crate) mod wire {
    pub const VARINT: u8 = 0;
    pub const FIXED64: u8 = 1;
    pub const LEN: u8 = 2;
    pub const START_GROUP: u8 = 3;
    pub const END_GROUP: u8 = 4;
    pub const FIXED32: u8 = 5;
}

/// prost's nesting limit (`RECURSION_LIMIT`), counted the same way: the
/// frame is at 100, each message or group one level deeper.
pub(crate) const RECURSION_LIMIT: u32 = 100;

/// The `RequestHead` message bytes of a frame payload (prefix removed) when
/// the payload is exactly one `request_head` member; `None` otherwise (not
/// a head, or a head prost must sort out).
pub fn head_message(payload: &[u8]) -> Option<&[u8]> {
    let key = ((field::FRAME_REQUEST_HEAD << 3) | u32::from(wire::LEN)) as u8;
    let rest = payload.strip_prefix(&[key])?;
    let mut r = Reader { buf: rest, pos: 0 };
    let len = r.varint().ok()?;
    (len == (rest.len() - r.pos) as u64).then(|| &rest[r.pos..])
}

/// One frame as the worker takes it.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // moved once per frame; boxing would allocate
pub enum RequestMember {
    /// `request_head`: its message bytes, to view with
    /// [`RequestHeadView::decode`] (not checked yet).
    Head(Bytes),
    /// Any other member, decoded by prost (bodies are slices of `payload`).
    Other(Kind),
}

/// Decodes a frame payload (length prefix removed) for the worker: a lone
/// `request_head` member is sliced out as it is; every other frame goes
/// through prost, and a head prost decodes from an unusual encoding is
/// re-encoded canonically, so that the view sees exactly what prost saw.
pub fn decode_request_member(payload: Bytes) -> Result<RequestMember, FrameError> {
    if let Some(message) = head_message(&payload) {
        return Ok(RequestMember::Head(payload.slice_ref(message)));
    }
    let frame = Frame::decode(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    match frame.kind {
        None => Err(FrameError::Malformed("no frame member set".into())),
        Some(Kind::RequestHead(head)) => Ok(RequestMember::Head(head.encode_to_vec().into())),
        Some(other) => Ok(RequestMember::Other(other)),
    }
}

/// A `RequestHead` whose fields are slices of the message bytes; mirrors
/// `RequestHead` in the .proto, with the same defaults for absent fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeadView<'a> {
    pub protocol_version: u32,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub path: &'a [u8],
    pub query_string: &'a [u8],
    pub protocol: &'a [u8],
    pub server_name: &'a [u8],
    pub server_port: u32,
    pub remote_addr: &'a [u8],
    pub remote_port: u32,
    pub scheme: &'a [u8],
    pub content_length: i64,
    /// The whole message, re-walked by [`headers`](Self::headers) and
    /// [`params`](Self::params).
    message: &'a [u8],
    /// Offsets of the first header and first param entry (the walk starts
    /// there), `message.len()` when there is none.
    first_header: usize,
    first_param: usize,
}

impl<'a> RequestHeadView<'a> {
    /// Checks `message` (the `RequestHead` message bytes, as
    /// [`head_message`] returns them) as prost would, and views it.
    pub fn decode(message: &'a [u8]) -> Result<RequestHeadView<'a>, FrameError> {
        Self::decode_at(message, RECURSION_LIMIT - 1)
    }

    fn decode_at(message: &'a [u8], depth: u32) -> Result<RequestHeadView<'a>, FrameError> {
        let mut v = RequestHeadView {
            protocol_version: 0,
            method: b"",
            uri: b"",
            path: b"",
            query_string: b"",
            protocol: b"",
            server_name: b"",
            server_port: 0,
            remote_addr: b"",
            remote_port: 0,
            scheme: b"",
            content_length: 0,
            message,
            first_header: message.len(),
            first_param: message.len(),
        };
        let mut r = Reader {
            buf: message,
            pos: 0,
        };
        while !r.at_end() {
            let start = r.pos;
            let (tag, wire_type) = r.key()?;
            let bytes_field = |r: &mut Reader<'a>| {
                expect_wire(wire_type, wire::LEN)?;
                r.len_delimited()
            };
            let varint_field = |r: &mut Reader<'a>| {
                expect_wire(wire_type, wire::VARINT)?;
                r.varint()
            };
            match tag {
                field::PROTOCOL_VERSION => v.protocol_version = varint_field(&mut r)? as u32,
                field::METHOD => v.method = bytes_field(&mut r)?,
                field::URI => v.uri = bytes_field(&mut r)?,
                field::PATH => v.path = bytes_field(&mut r)?,
                field::QUERY_STRING => v.query_string = bytes_field(&mut r)?,
                field::PROTOCOL => v.protocol = bytes_field(&mut r)?,
                field::SERVER_NAME => v.server_name = bytes_field(&mut r)?,
                field::SERVER_PORT => v.server_port = varint_field(&mut r)? as u32,
                field::REMOTE_ADDR => v.remote_addr = bytes_field(&mut r)?,
                field::REMOTE_PORT => v.remote_port = varint_field(&mut r)? as u32,
                field::SCHEME => v.scheme = bytes_field(&mut r)?,
                field::CONTENT_LENGTH => {
                    let z = varint_field(&mut r)?;
                    v.content_length = ((z >> 1) as i64) ^ -((z & 1) as i64);
                }
                field::HEADERS | field::PARAMS => {
                    expect_wire(wire_type, wire::LEN)?;
                    check_depth(depth)?;
                    pair(r.len_delimited()?, depth - 1)?;
                    let first = if tag == field::HEADERS {
                        &mut v.first_header
                    } else {
                        &mut v.first_param
                    };
                    *first = (*first).min(start);
                }
                _ => r.skip(tag, wire_type, depth)?,
            }
        }
        Ok(v)
    }

    /// Client headers in order, repeats kept, as `(name, value)`.
    pub fn headers(&self) -> Pairs<'a> {
        Pairs::new(self.message, self.first_header, field::HEADERS)
    }

    /// `ferrocorn_param` entries in configuration order, as `(name, value)`.
    pub fn params(&self) -> Pairs<'a> {
        Pairs::new(self.message, self.first_param, field::PARAMS)
    }

    /// The same head as prost's owned type (tests, fuzzing, cold paths).
    pub fn to_owned(&self) -> crate::pb::RequestHead {
        let b = Bytes::copy_from_slice;
        crate::pb::RequestHead {
            protocol_version: self.protocol_version,
            method: b(self.method),
            uri: b(self.uri),
            path: b(self.path),
            query_string: b(self.query_string),
            protocol: b(self.protocol),
            headers: self
                .headers()
                .map(|(n, v)| crate::pb::Header {
                    name: b(n),
                    value: b(v),
                })
                .collect(),
            server_name: b(self.server_name),
            server_port: self.server_port,
            remote_addr: b(self.remote_addr),
            remote_port: self.remote_port,
            scheme: b(self.scheme),
            params: self
                .params()
                .map(|(n, v)| crate::pb::Param {
                    name: b(n),
                    value: b(v),
                })
                .collect(),
            content_length: self.content_length,
        }
    }
}

/// A `Header` or `Param` message: (name, value), last occurrence winning,
/// unknown fields skipped.
#[inline]
pub(crate) fn pair(message: &[u8], depth: u32) -> Result<(&[u8], &[u8]), FrameError> {
    // What every sender writes: name then value, short lengths, or
    // nothing after a name (an empty value is left out).
    if let [0x0a, n, rest @ ..] = message {
        let n = usize::from(*n);
        if n < 0x80 && n <= rest.len() {
            let (name, rest) = rest.split_at(n);
            match rest {
                [] => return Ok((name, b"")),
                [0x12, m, value @ ..] if usize::from(*m) == value.len() && *m < 0x80 => {
                    return Ok((name, value))
                }
                _ => {}
            }
        }
    }
    pair_slow(message, depth)
}

#[inline(never)]
fn pair_slow(message: &[u8], depth: u32) -> Result<(&[u8], &[u8]), FrameError> {
    let mut r = Reader {
        buf: message,
        pos: 0,
    };
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    while !r.at_end() {
        let (tag, wire_type) = r.key()?;
        match tag {
            field::PAIR_NAME | field::PAIR_VALUE => {
                expect_wire(wire_type, wire::LEN)?;
                let data = r.len_delimited()?;
                if tag == field::PAIR_NAME {
                    name = data;
                } else {
                    value = data;
                }
            }
            _ => r.skip(tag, wire_type, depth)?,
        }
    }
    Ok((name, value))
}

/// The entries of one repeated pair field of a checked message.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    reader: Reader<'a>,
    field: u32,
}

impl<'a> Pairs<'a> {
    pub(crate) fn new(message: &'a [u8], from: usize, field: u32) -> Pairs<'a> {
        Pairs {
            reader: Reader {
                buf: message,
                pos: from,
            },
            field,
        }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The message was checked by `decode`: errors cannot happen here,
        // and would only end the walk early.
        let r = &mut self.reader;
        while !r.at_end() {
            let (tag, wire_type) = r.key().ok()?;
            if tag == self.field && wire_type == wire::LEN {
                return pair(r.len_delimited().ok()?, RECURSION_LIMIT).ok();
            }
            r.skip(tag, wire_type, RECURSION_LIMIT).ok()?;
        }
        None
    }
}

#[cold]
fn malformed(why: &str) -> FrameError {
    FrameError::Malformed(format!("request_head: {why}"))
}

#[inline(always)]
pub(crate) fn expect_wire(actual: u8, expected: u8) -> Result<(), FrameError> {
    if actual == expected {
        Ok(())
    } else {
        Err(wrong_wire(actual, expected))
    }
}

#[cold]
fn wrong_wire(actual: u8, expected: u8) -> FrameError {
    malformed(&format!(
        "invalid wire type: {actual} (expected {expected})"
    ))
}

pub(crate) fn check_depth(depth: u32) -> Result<(), FrameError> {
    if depth == 0 {
        Err(malformed("recursion limit reached"))
    } else {
        Ok(())
    }
}

/// A cursor over protobuf wire bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A base-128 varint of at most 10 bytes, the 10th below 2 (prost's rule).
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Result<u64, FrameError> {
        // Most varints here (keys, lengths of names and values) are one byte.
        match self.buf.get(self.pos) {
            Some(&byte) if byte < 0x80 => {
                self.pos += 1;
                Ok(u64::from(byte))
            }
            _ => self.varint_slow(),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, FrameError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(malformed("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte >= 0x02 {
                    break;
                }
                return Ok(value);
            }
        }
        Err(malformed("invalid varint"))
    }

    /// A field key: (tag, wire type), refusing what prost refuses.
    #[inline(always)]
    pub(crate) fn key(&mut self) -> Result<(u32, u8), FrameError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(malformed("invalid key value"));
        }
        let wire_type = (key & 0x07) as u8;
        if wire_type > wire::FIXED32 {
            return Err(malformed("invalid wire type value"));
        }
        let tag = (key as u32) >> 3;
        if tag == 0 {
            return Err(malformed("invalid tag value: 0"));
        }
        Ok((tag, wire_type))
    }

    #[inline(always)]
    fn take(&mut self, len: u64) -> Result<&'a [u8], FrameError> {
        if len > (self.buf.len() - self.pos) as u64 {
            return Err(malformed("buffer underflow"));
        }
        let data = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(data)
    }

    #[inline(always)]
    pub(crate) fn len_delimited(&mut self) -> Result<&'a [u8], FrameError> {
        let len = self.varint()?;
        self.take(len)
    }

    /// Skips an unknown field as prost's `skip_field` does, groups included.
    pub(crate) fn skip(&mut self, tag: u32, wire_type: u8, depth: u32) -> Result<(), FrameError> {
        check_depth(depth)?;
        let len = match wire_type {
            wire::VARINT => {
                self.varint()?;
                0
            }
            wire::FIXED32 => 4,
            wire::FIXED64 => 8,
            wire::LEN => self.varint()?,
            wire::START_GROUP => loop {
                let (inner_tag, inner_wire) = self.key()?;
                if inner_wire == wire::END_GROUP {
                    if inner_tag != tag {
                        return Err(malformed("unexpected end group tag"));
                    }
                    break 0;
                }
                self.skip(inner_tag, inner_wire, depth - 1)?;
            },
            _ => return Err(malformed("unexpected end group tag")),
        };
        self.take(len).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::pb::{Header, Param, RequestHead};
    use bytes::BytesMut;

    fn sample() -> RequestHead {
        let h = |n: &str, v: &str| Header {
            name: Bytes::copy_from_slice(n.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        };
        RequestHead {
            protocol_version: 1,
            method: Bytes::from_static(b"POST"),
            uri: Bytes::from_static(b"/a?b=1"),
            path: Bytes::from_static(b"/a"),
            query_string: Bytes::from_static(b"b=1"),
            protocol: Bytes::from_static(b"HTTP/1.1"),
            headers: vec![
                h("Host", "x"),
                h("Cookie", "a=1"),
                h("Cookie", ""),
                h("", ""),
            ],
            server_name: Bytes::from_static(b"localhost"),
            server_port: 8080,
            remote_addr: Bytes::from_static(b"127.0.0.1"),
            remote_port: 65535,
            scheme: Bytes::from_static(b"https"),
            params: vec![Param {
                name: Bytes::from_static(b"SCRIPT_NAME"),
                value: Bytes::from_static(b"/app"),
            }],
            content_length: -1,
        }
    }

    /// The view of a frame agrees with prost's decode of the same frame.
    fn agrees(frame_bytes: &[u8]) {
        let theirs = frame::decode(&mut BytesMut::from(frame_bytes));
        let payload = &frame_bytes[4..];
        let ours = head_message(payload).map(RequestHeadView::decode);
        match (ours, theirs) {
            (
                Some(Ok(view)),
                Ok(Some(Frame {
                    kind: Some(Kind::RequestHead(h)),
                })),
            ) => {
                assert_eq!(view.to_owned(), h)
            }
            (Some(Err(_)), Err(_)) | (None, _) => {}
            (ours, theirs) => panic!("view says {ours:?}, prost says {theirs:?}"),
        }
    }

    fn head_frame(head: &RequestHead) -> Vec<u8> {
        frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestHead(head.clone())),
        })
    }

    #[test]
    fn a_typical_head_reads_like_prost() {
        let bytes = head_frame(&sample());
        let view = RequestHeadView::decode(head_message(&bytes[4..]).unwrap()).unwrap();
        assert_eq!(view.to_owned(), sample());
        assert_eq!(view.method, b"POST");
        assert_eq!(view.headers().count(), 4);
        assert_eq!(
            view.params().collect::<Vec<_>>(),
            vec![(&b"SCRIPT_NAME"[..], &b"/app"[..])]
        );
        agrees(&bytes);
    }

    #[test]
    fn an_unusual_head_encoding_is_viewed_as_prost_read_it() {
        // The head, then an unknown frame field: not the fast path.
        let bytes = head_frame(&sample());
        let payload = [&bytes[4..], &[0x78, 0x01][..]].concat();
        assert_eq!(head_message(&payload), None);
        let RequestMember::Head(message) = decode_request_member(Bytes::from(payload)).unwrap()
        else {
            panic!("not a head")
        };
        assert_eq!(
            RequestHeadView::decode(&message).unwrap().to_owned(),
            sample()
        );
        // The fast path slices the payload itself.
        let payload = Bytes::copy_from_slice(&bytes[4..]);
        let RequestMember::Head(message) = decode_request_member(payload.clone()).unwrap() else {
            panic!("not a head")
        };
        assert_eq!(
            message.as_ptr(),
            payload[payload.len() - message.len()..].as_ptr()
        );
    }

    #[test]
    fn the_empty_head_has_the_defaults() {
        let view = RequestHeadView::decode(b"").unwrap();
        assert_eq!(view.to_owned(), RequestHead::default());
        assert_eq!(view.headers().next(), None);
    }

    #[test]
    fn interleaved_repeats_and_unknown_fields_read_like_prost() {
        let mut msg = Vec::new();
        let mut a = sample();
        a.params.clear();
        a.encode(&mut msg).unwrap();
        // Unknown fields of every wire type, a group, then overrides and
        // more headers after the first params.
        msg.extend_from_slice(&[0x78, 0x05]); // field 15 varint
        msg.extend_from_slice(&[0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]); // field 16 fixed64
        msg.extend_from_slice(&[0x8d, 0x01, 1, 2, 3, 4]); // field 17 fixed32
        msg.extend_from_slice(&[0x93, 0x01, 0x08, 0x01, 0x94, 0x01]); // group 18 { 1: 1 }
        let b = RequestHead {
            method: Bytes::from_static(b"GET"),
            params: vec![Param::default()],
            headers: vec![Header {
                name: Bytes::from_static(b"X-Late"),
                value: Bytes::from_static(b"1"),
            }],
            content_length: 1 << 40,
            ..Default::default()
        };
        b.encode(&mut msg).unwrap();
        // A header with an unknown field and its name given twice.
        msg.extend_from_slice(&[0x3a, 10, 0x0a, 1, b'A', 0x18, 1, 0x0a, 1, b'B', 0x12, 0]);
        let view = RequestHeadView::decode(&msg).unwrap();
        let prost = RequestHead::decode(&msg[..]).unwrap();
        assert_eq!(view.to_owned(), prost);
        assert_eq!(view.method, b"GET");
        assert_eq!(view.headers().last(), Some((&b"B"[..], &b""[..])));
    }

    #[test]
    fn broken_heads_are_refused_like_prost() {
        let good = sample().encode_to_vec();
        let cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),                     // truncated
            [&good[..], &[0x10][..]].concat(),                   // truncated varint
            [&good[..], &[0x12, 0x05, b'a'][..]].concat(),       // length past the end
            [&good[..], &[0x0a, 0x01][..]].concat(),             // wrong wire type (version as LEN)
            [&good[..], &[0x10, 0x00][..]].concat(),             // method as varint
            [&good[..], &[0x07][..]].concat(),                   // wire type 7
            [&good[..], &[0x02, 0x00][..]].concat(),             // tag 0
            [&good[..], &[0x94, 0x01][..]].concat(),             // stray end group
            [&good[..], &[0x93, 0x01, 0x9c, 0x01][..]].concat(), // mismatched end group
            [&good[..], &[0x3a, 0x02, 0x0a, 0x05][..]].concat(), // header name past its message
            [&good[..], &[0x08][..], &[0xff; 9][..], &[0x02][..]].concat(), // 10th varint byte too big
            [&good[..], &[0xff, 0xff, 0xff, 0xff, 0x7f][..]].concat(),      // key above u32
        ];
        for (i, msg) in cases.iter().enumerate() {
            assert!(
                RequestHead::decode(&msg[..]).is_err(),
                "case {i}: prost accepts"
            );
            assert!(
                RequestHeadView::decode(msg).is_err(),
                "case {i}: view accepts"
            );
        }
        // A 10-byte varint whose last byte is 1 is fine (u64::MAX).
        let max = [&good[..], &[0x08][..], &[0xff; 9][..], &[0x01][..]].concat();
        assert_eq!(
            RequestHeadView::decode(&max).unwrap().to_owned(),
            RequestHead::decode(&max[..]).unwrap()
        );
    }

    /// Whether prost decodes `message` as the head of a frame.
    fn prost_accepts_in_a_frame(message: &[u8]) -> bool {
        let mut payload = vec![0x0a];
        prost::encoding::encode_varint(message.len() as u64, &mut payload);
        payload.extend_from_slice(message);
        let mut bytes = BytesMut::from(&(payload.len() as u32).to_be_bytes()[..]);
        bytes.extend_from_slice(&payload);
        frame::decode(&mut bytes).is_ok()
    }

    #[test]
    fn groups_nest_up_to_prosts_limit() {
        let mut limits = Vec::new();
        for depth in 96usize..=100 {
            let groups = |depth| [vec![0x7b; depth], vec![0x7c; depth]].concat(); // group 15
            let msg = groups(depth);
            let ok = RequestHeadView::decode(&msg).is_ok();
            assert_eq!(ok, prost_accepts_in_a_frame(&msg), "depth {depth}");
            limits.push(ok);
            // The same groups inside a header, one level deeper.
            let mut header = vec![0x3a];
            prost::encoding::encode_varint(msg.len() as u64, &mut header);
            header.extend(msg);
            assert_eq!(
                RequestHeadView::decode(&header).is_ok(),
                prost_accepts_in_a_frame(&header),
                "header depth {depth}"
            );
        }
        assert!(limits.contains(&true) && limits.contains(&false));
    }

    #[test]
    fn only_a_lone_head_member_takes_the_fast_path() {
        let bytes = head_frame(&sample());
        assert!(head_message(&bytes[4..]).is_some());
        // A second member after the head: prost's business.
        let two = [&bytes[4..], &[0x1a, 0x00][..]].concat();
        assert_eq!(head_message(&two), None);
        // A body frame, an end frame, an empty payload.
        assert_eq!(head_message(&[0x12, 0x01, b'x']), None);
        assert_eq!(head_message(&[0x1a, 0x00]), None);
        assert_eq!(head_message(&[]), None);
        // An empty head message.
        assert_eq!(head_message(&[0x0a, 0x00]), Some(&[][..]));
        // A head followed by an end: prost keeps the last member.
        assert!(matches!(
            decode_request_member(Bytes::from(two)),
            Ok(RequestMember::Other(Kind::RequestEnd(_)))
        ));
        // A length that does not end the payload.
        assert_eq!(head_message(&[0x0a, 0x05, 1]), None);
    }
}
