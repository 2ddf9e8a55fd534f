//! `request_head` frames encoded straight from borrowed slices.
//!
//! The nginx module holds every field as a slice into nginx's own memory;
//! building prost structs would copy each header once more. This encoder
//! computes the exact size first (so nginx allocates one buffer) and then
//! writes the bytes prost would write. A test decodes the result with prost.

use core::ops::Range;

use crate::body::varint_len;
use crate::{FrameError, FRAME_HEADER_LEN, MAX_FRAME_SIZE, PROTOCOL_VERSION};

/// A request head as borrowed slices; mirrors `RequestHead` in the .proto.
#[derive(Debug, Default, Clone)]
pub struct RequestHeadRef<'a> {
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub path: &'a [u8],
    pub query_string: &'a [u8],
    pub protocol: &'a [u8],
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub server_name: &'a [u8],
    pub server_port: u32,
    pub remote_addr: &'a [u8],
    pub remote_port: u32,
    pub scheme: &'a [u8],
    pub params: &'a [(&'a [u8], &'a [u8])],
    /// -1 when unknown.
    pub content_length: i64,
}

/// Field numbers of `RequestHead`, `Header`/`Param` and `Frame.request_head`,
/// for the hand-written encoder here and the borrowed decoder
/// ([`crate::request_head_view`]).
pub(crate) mod field {
    pub const FRAME_REQUEST_HEAD: u32 = 1;
    pub const PROTOCOL_VERSION: u32 = 1;
    pub const METHOD: u32 = 2;
    pub const URI: u32 = 3;
    pub const PATH: u32 = 4;
    pub const QUERY_STRING: u32 = 5;
    pub const PROTOCOL: u32 = 6;
    pub const HEADERS: u32 = 7;
    pub const SERVER_NAME: u32 = 8;
    pub const SERVER_PORT: u32 = 9;
    pub const REMOTE_ADDR: u32 = 10;
    pub const REMOTE_PORT: u32 = 11;
    pub const SCHEME: u32 = 12;
    pub const PARAMS: u32 = 13;
    pub const CONTENT_LENGTH: u32 = 14;
    pub const PAIR_NAME: u32 = 1;
    pub const PAIR_VALUE: u32 = 2;
}

const WIRE_VARINT: u32 = 0;
const WIRE_LEN: u32 = 2;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Size of a length-delimited field (key + length + data); proto3 omits
/// empty ones.
fn len_field(field: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
    }
}

fn varint_field(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        varint_len(u64::from(field << 3)) + varint_len(v)
    }
}

fn pair_len(name: &[u8], value: &[u8]) -> usize {
    len_field(field::PAIR_NAME, name.len()) + len_field(field::PAIR_VALUE, value.len())
}

/// A repeated message field: always present, even when the message is empty.
fn message_field(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
}

impl RequestHeadRef<'_> {
    /// The fixed fields, as the one-pass encoder takes them.
    fn fields(&self) -> HeadFields<'_> {
        HeadFields {
            method: self.method,
            uri: self.uri,
            path: self.path,
            query_string: self.query_string,
            protocol: self.protocol,
            server_name: self.server_name,
            server_port: self.server_port,
            remote_addr: self.remote_addr,
            remote_port: self.remote_port,
            scheme: self.scheme,
            content_length: self.content_length,
        }
    }

    fn message_len(&self) -> usize {
        let mut n = self.fields().fixed_len();
        for (name, value) in self.headers {
            n += message_field(field::HEADERS, pair_len(name, value));
        }
        for (name, value) in self.params {
            n += message_field(field::PARAMS, pair_len(name, value));
        }
        n
    }

    /// Exact number of bytes [`write_frame`](Self::write_frame) writes, or
    /// an error if the head does not fit in one frame.
    pub fn frame_len(&self) -> Result<usize, FrameError> {
        Self::frame_len_for(self.message_len())
    }

    fn frame_len_for(message_len: usize) -> Result<usize, FrameError> {
        let payload = message_field(field::FRAME_REQUEST_HEAD, message_len);
        if payload > MAX_FRAME_SIZE {
            return Err(FrameError::TooLarge(payload));
        }
        Ok(FRAME_HEADER_LEN + payload)
    }

    /// Writes the whole frame (prefix included) into `out`, which must hold
    /// at least [`frame_len`](Self::frame_len) bytes; returns bytes written.
    pub fn write_frame(&self, out: &mut [u8]) -> Result<usize, FrameError> {
        // One pass over the headers for the size, one to write them.
        let message_len = self.message_len();
        let total = Self::frame_len_for(message_len)?;
        let mut w = Writer {
            out: &mut out[..total],
            pos: 0,
        };
        w.raw(&((total - FRAME_HEADER_LEN) as u32).to_be_bytes());
        w.key(field::FRAME_REQUEST_HEAD, WIRE_LEN);
        w.varint(message_len as u64);
        write_message(
            &mut w,
            &self.fields(),
            self.headers.iter().copied(),
            self.params.iter().copied(),
        );
        debug_assert_eq!(w.pos, total);
        Ok(total)
    }
}

/// The fields of a request head but its headers and params, for
/// [`encode_frame`]; mirrors `RequestHead` in the .proto.
#[derive(Debug, Default, Clone)]
pub struct HeadFields<'a> {
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
    /// -1 when unknown.
    pub content_length: i64,
}

/// Room [`encode_frame`] leaves in front of the message for the frame
/// prefix: the length, the key of `Frame.request_head` and the message
/// length as a varint (at most 3 bytes below [`MAX_FRAME_SIZE`]).
pub const PREFIX_ROOM: usize = FRAME_HEADER_LEN + 1 + 3;

/// Most bytes a header or param entry adds to its name and value: the
/// entry's key and length, and each string's key and length (varints of
/// at most 5 bytes: nginx strings are far below 4 GiB).
const PAIR_OVERHEAD_BOUND: usize = 3 * (1 + 5);

impl HeadFields<'_> {
    /// A buffer size that is enough for [`encode_frame`] with these fields
    /// and `pairs` headers and params whose names and values are
    /// `pair_bytes` long in all; computed without looking at the pairs
    /// themselves.
    #[inline]
    pub fn buffer_bound(&self, pairs: usize, pair_bytes: usize) -> usize {
        PREFIX_ROOM + self.fixed_len() + pairs * PAIR_OVERHEAD_BOUND + pair_bytes
    }

    #[inline]
    fn fixed_len(&self) -> usize {
        varint_field(field::PROTOCOL_VERSION, u64::from(PROTOCOL_VERSION))
            + len_field(field::METHOD, self.method.len())
            + len_field(field::URI, self.uri.len())
            + len_field(field::PATH, self.path.len())
            + len_field(field::QUERY_STRING, self.query_string.len())
            + len_field(field::PROTOCOL, self.protocol.len())
            + len_field(field::SERVER_NAME, self.server_name.len())
            + varint_field(field::SERVER_PORT, u64::from(self.server_port))
            + len_field(field::REMOTE_ADDR, self.remote_addr.len())
            + varint_field(field::REMOTE_PORT, u64::from(self.remote_port))
            + len_field(field::SCHEME, self.scheme.len())
            + varint_field(field::CONTENT_LENGTH, zigzag(self.content_length))
    }
}

/// Encodes a `request_head` frame in one pass over the headers and params,
/// the bytes [`RequestHeadRef::write_frame`] (and prost) write: the message
/// goes after [`PREFIX_ROOM`] bytes of `out`, then the prefix is put right
/// in front of it. Returns where the frame lies in `out`, or an error if it
/// does not fit in one frame. `out` must hold
/// [`buffer_bound`](HeadFields::buffer_bound) bytes for these pairs (it
/// panics otherwise, writing nothing out of bounds).
pub fn encode_frame<'h, 'p>(
    out: &mut [u8],
    fields: &HeadFields<'_>,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    params: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
) -> Result<Range<usize>, FrameError> {
    let mut w = Writer {
        out,
        pos: PREFIX_ROOM,
    };
    write_message(&mut w, fields, headers, params);
    let end = w.pos;
    let message_len = end - PREFIX_ROOM;
    let total = RequestHeadRef::frame_len_for(message_len)?;
    let start = end - total;
    w.pos = start;
    w.raw(&((total - FRAME_HEADER_LEN) as u32).to_be_bytes());
    w.key(field::FRAME_REQUEST_HEAD, WIRE_LEN);
    w.varint(message_len as u64);
    debug_assert_eq!(w.pos, PREFIX_ROOM);
    Ok(start..end)
}

/// The `RequestHead` message's fields, in the order prost writes them.
#[inline(always)]
fn write_message<'h, 'p>(
    w: &mut Writer<'_>,
    fields: &HeadFields<'_>,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    params: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
) {
    w.varint_field(field::PROTOCOL_VERSION, u64::from(PROTOCOL_VERSION));
    w.len_field(field::METHOD, fields.method);
    w.len_field(field::URI, fields.uri);
    w.len_field(field::PATH, fields.path);
    w.len_field(field::QUERY_STRING, fields.query_string);
    w.len_field(field::PROTOCOL, fields.protocol);
    for (name, value) in headers {
        w.pair(field::HEADERS, name, value);
    }
    w.len_field(field::SERVER_NAME, fields.server_name);
    w.varint_field(field::SERVER_PORT, u64::from(fields.server_port));
    w.len_field(field::REMOTE_ADDR, fields.remote_addr);
    w.varint_field(field::REMOTE_PORT, u64::from(fields.remote_port));
    w.len_field(field::SCHEME, fields.scheme);
    for (name, value) in params {
        w.pair(field::PARAMS, name, value);
    }
    w.varint_field(field::CONTENT_LENGTH, zigzag(fields.content_length));
}

struct Writer<'b> {
    out: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    #[inline]
    fn raw(&mut self, bytes: &[u8]) {
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out[self.pos] = (v as u8) | 0x80;
            self.pos += 1;
            v >>= 7;
        }
        self.out[self.pos] = v as u8;
        self.pos += 1;
    }

    #[inline]
    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from((field << 3) | wire));
    }

    #[inline]
    fn len_field(&mut self, field: u32, data: &[u8]) {
        if !data.is_empty() {
            self.key(field, WIRE_LEN);
            self.varint(data.len() as u64);
            self.raw(data);
        }
    }

    #[inline]
    fn varint_field(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, WIRE_VARINT);
            self.varint(v);
        }
    }

    #[inline]
    fn pair(&mut self, field: u32, name: &[u8], value: &[u8]) {
        self.key(field, WIRE_LEN);
        self.varint(pair_len(name, value) as u64);
        self.len_field(field::PAIR_NAME, name);
        self.len_field(field::PAIR_VALUE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::pb::{frame::Kind, Header, Param, RequestHead};
    use bytes::{Bytes, BytesMut};

    fn check_against_prost(head: &RequestHeadRef<'_>) {
        let len = head.frame_len().unwrap();
        let mut out = vec![0u8; len];
        assert_eq!(head.write_frame(&mut out).unwrap(), len);
        let decoded = frame::decode(&mut BytesMut::from(&out[..]))
            .unwrap()
            .unwrap();
        let b = |s: &[u8]| Bytes::copy_from_slice(s);
        let expected = RequestHead {
            protocol_version: PROTOCOL_VERSION,
            method: b(head.method),
            uri: b(head.uri),
            path: b(head.path),
            query_string: b(head.query_string),
            protocol: b(head.protocol),
            headers: head
                .headers
                .iter()
                .map(|(n, v)| Header {
                    name: b(n),
                    value: b(v),
                })
                .collect(),
            server_name: b(head.server_name),
            server_port: head.server_port,
            remote_addr: b(head.remote_addr),
            remote_port: head.remote_port,
            scheme: b(head.scheme),
            params: head
                .params
                .iter()
                .map(|(n, v)| Param {
                    name: b(n),
                    value: b(v),
                })
                .collect(),
            content_length: head.content_length,
        };
        assert_eq!(decoded.kind, Some(Kind::RequestHead(expected.clone())));
        // And byte for byte what prost itself writes.
        let theirs = frame::encode_to_vec(&crate::pb::Frame {
            kind: Some(Kind::RequestHead(expected)),
        });
        assert_eq!(out, theirs);
    }

    /// encode_frame writes what write_frame writes, in a buffer of the bound.
    fn check_one_pass(head: &RequestHeadRef<'_>) {
        let mut theirs = vec![0u8; head.frame_len().unwrap()];
        head.write_frame(&mut theirs).unwrap();
        let fields = HeadFields {
            method: head.method,
            uri: head.uri,
            path: head.path,
            query_string: head.query_string,
            protocol: head.protocol,
            server_name: head.server_name,
            server_port: head.server_port,
            remote_addr: head.remote_addr,
            remote_port: head.remote_port,
            scheme: head.scheme,
            content_length: head.content_length,
        };
        let pairs = head.headers.iter().chain(head.params);
        let bound = fields.buffer_bound(
            pairs.clone().count(),
            pairs.map(|(n, v)| n.len() + v.len()).sum(),
        );
        let mut out = vec![0xaa; bound];
        let range = encode_frame(
            &mut out,
            &fields,
            head.headers.iter().copied(),
            head.params.iter().copied(),
        )
        .unwrap();
        assert_eq!(&out[range], &theirs[..]);
    }

    #[test]
    fn one_pass_encoding_is_byte_identical() {
        let sizes = [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000];
        for &n in &sizes {
            let v = vec![b'v'; n];
            let headers: Vec<(&[u8], &[u8])> =
                vec![(b"Host", b"example.com"), (b"X-Empty", b""), (b"X-N", &v)];
            let params: Vec<(&[u8], &[u8])> = vec![(b"SCRIPT_NAME", &v), (b"", b"")];
            check_one_pass(&RequestHeadRef {
                method: b"GET",
                uri: &v,
                path: b"/",
                protocol: b"HTTP/1.1",
                headers: &headers,
                server_name: b"localhost",
                server_port: 80,
                remote_addr: b"127.0.0.1",
                remote_port: 65535,
                scheme: b"https",
                params: &params,
                content_length: -1,
                ..Default::default()
            });
        }
        check_one_pass(&RequestHeadRef::default());
        check_one_pass(&RequestHeadRef {
            content_length: 1 << 40,
            ..Default::default()
        });
    }

    #[test]
    fn one_pass_refuses_a_head_over_the_frame_limit() {
        let big = vec![b'x'; MAX_FRAME_SIZE];
        let fields = HeadFields::default();
        let mut out = vec![0u8; fields.buffer_bound(1, big.len() + 1)];
        let headers: [(&[u8], &[u8]); 1] = [(b"X", &big)];
        assert!(matches!(
            encode_frame(&mut out, &fields, headers, []),
            Err(FrameError::TooLarge(_))
        ));
        // Just under the limit is accepted, with a three-byte message length.
        let fits = vec![b'x'; MAX_FRAME_SIZE - 20];
        let headers: [(&[u8], &[u8]); 1] = [(b"X", &fits)];
        let mut out = vec![0u8; fields.buffer_bound(1, fits.len() + 1)];
        let range = encode_frame(&mut out, &fields, headers, []).unwrap();
        assert!(range.len() <= FRAME_HEADER_LEN + MAX_FRAME_SIZE);
        check_one_pass(&RequestHeadRef {
            headers: &headers,
            ..Default::default()
        });
    }

    #[test]
    fn typical_head_matches_prost() {
        let big = vec![b'v'; 8192];
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"example.com"),
            (b"X-Empty", b""),
            (b"Cookie", b"a=1"),
            (b"Cookie", b"b=2"),
            (b"X-Big", &big),
        ];
        let params: Vec<(&[u8], &[u8])> = vec![(b"SCRIPT_NAME", b"/app"), (b"EMPTY", b"")];
        check_against_prost(&RequestHeadRef {
            method: b"GET",
            uri: b"/caf%C3%A9?q=1",
            path: "/café".as_bytes(),
            query_string: b"q=1",
            protocol: b"HTTP/1.1",
            headers: &headers,
            server_name: b"localhost",
            server_port: 8080,
            remote_addr: b"127.0.0.1",
            remote_port: 54321,
            scheme: b"http",
            params: &params,
            content_length: 1 << 40,
        });
    }

    #[test]
    fn empty_and_negative_fields_match_prost() {
        check_against_prost(&RequestHeadRef {
            content_length: -1,
            ..Default::default()
        });
        check_against_prost(&RequestHeadRef::default());
    }

    #[test]
    fn head_over_the_frame_limit_is_refused() {
        let big = vec![b'x'; MAX_FRAME_SIZE];
        let headers: Vec<(&[u8], &[u8])> = vec![(b"X", &big)];
        let head = RequestHeadRef {
            headers: &headers,
            ..Default::default()
        };
        assert!(matches!(head.frame_len(), Err(FrameError::TooLarge(_))));
    }
}
