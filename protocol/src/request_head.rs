//! `request_head` frames encoded straight from borrowed slices.
//!
//! The nginx module holds every field as a slice into nginx's own memory;
//! building prost structs would copy each header once more. This encoder
//! computes the exact size first (so nginx allocates one buffer) and then
//! writes the bytes prost would write. A test decodes the result with prost.

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
    fn message_len(&self) -> usize {
        let mut n = varint_field(field::PROTOCOL_VERSION, u64::from(PROTOCOL_VERSION))
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
            + varint_field(field::CONTENT_LENGTH, zigzag(self.content_length));
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
        w.varint_field(field::PROTOCOL_VERSION, u64::from(PROTOCOL_VERSION));
        w.len_field(field::METHOD, self.method);
        w.len_field(field::URI, self.uri);
        w.len_field(field::PATH, self.path);
        w.len_field(field::QUERY_STRING, self.query_string);
        w.len_field(field::PROTOCOL, self.protocol);
        for (name, value) in self.headers {
            w.pair(field::HEADERS, name, value);
        }
        w.len_field(field::SERVER_NAME, self.server_name);
        w.varint_field(field::SERVER_PORT, u64::from(self.server_port));
        w.len_field(field::REMOTE_ADDR, self.remote_addr);
        w.varint_field(field::REMOTE_PORT, u64::from(self.remote_port));
        w.len_field(field::SCHEME, self.scheme);
        for (name, value) in self.params {
            w.pair(field::PARAMS, name, value);
        }
        w.varint_field(field::CONTENT_LENGTH, zigzag(self.content_length));
        debug_assert_eq!(w.pos, total);
        Ok(total)
    }
}

struct Writer<'b> {
    out: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out[self.pos] = (v as u8) | 0x80;
            self.pos += 1;
            v >>= 7;
        }
        self.out[self.pos] = v as u8;
        self.pos += 1;
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from((field << 3) | wire));
    }

    fn len_field(&mut self, field: u32, data: &[u8]) {
        if !data.is_empty() {
            self.key(field, WIRE_LEN);
            self.varint(data.len() as u64);
            self.raw(data);
        }
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, WIRE_VARINT);
            self.varint(v);
        }
    }

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
