//! `response_head`, `response_end` and `error` frames, encoded by hand.
//!
//! The head is built field by field while `start_response` validates each
//! header, straight from the Python strings' latin-1 bytes, with no
//! intermediate structs; the frame envelope is added when it is sent. A
//! test decodes the result with prost.

use ferrocorn_protocol::body::varint_len;
use ferrocorn_protocol::{FrameError, MAX_FRAME_SIZE, PROTOCOL_VERSION};

/// `Frame.response_end`: length 2, key of field 6, empty message.
pub const RESPONSE_END: [u8; 6] = [0, 0, 0, 2, (6 << 3) | 2, 0];

/// `Frame.response_end` with `close = true` (field 1, varint 1): the last
/// response on its connection.
pub const RESPONSE_END_CLOSE: [u8; 8] = [0, 0, 0, 4, (6 << 3) | 2, 2, 1 << 3, 1];

/// Key of `Frame.response_head` (field 4, length-delimited).
const FRAME_RESPONSE_HEAD: u8 = (4 << 3) | 2;
/// Keys inside `ResponseHead`.
const PROTOCOL_VERSION_KEY: u8 = 1 << 3;
const STATUS_KEY: u8 = 2 << 3;
const REASON_KEY: u8 = (3 << 3) | 2;
const HEADER_KEY: u8 = (4 << 3) | 2;
/// Keys inside `Header`.
const NAME_KEY: u8 = (1 << 3) | 2;
const VALUE_KEY: u8 = (2 << 3) | 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The encoded fields of one `ResponseHead` message.
#[derive(Debug, Clone)]
pub struct HeadFields {
    buf: Vec<u8>,
}

impl HeadFields {
    /// Starts a head with the protocol version, `status` and `reason`.
    pub fn new(status: u16, reason: &[u8]) -> HeadFields {
        let mut buf = Vec::with_capacity(256);
        buf.push(PROTOCOL_VERSION_KEY);
        put_varint(&mut buf, u64::from(PROTOCOL_VERSION));
        buf.push(STATUS_KEY);
        put_varint(&mut buf, u64::from(status));
        if !reason.is_empty() {
            buf.push(REASON_KEY);
            put_varint(&mut buf, reason.len() as u64);
            buf.extend_from_slice(reason);
        }
        HeadFields { buf }
    }

    /// Appends one header (proto3 omits empty strings, as prost does).
    pub fn push_header(&mut self, name: &[u8], value: &[u8]) {
        let field = |len: usize| {
            if len == 0 {
                0
            } else {
                1 + varint_len(len as u64) + len
            }
        };
        let pair = field(name.len()) + field(value.len());
        self.buf.push(HEADER_KEY);
        put_varint(&mut self.buf, pair as u64);
        for (key, data) in [(NAME_KEY, name), (VALUE_KEY, value)] {
            if !data.is_empty() {
                self.buf.push(key);
                put_varint(&mut self.buf, data.len() as u64);
                self.buf.extend_from_slice(data);
            }
        }
    }

    /// The headers, decoded again (for the access log's `%({name}o)s`).
    pub fn headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        use prost::Message;
        ferrocorn_protocol::pb::ResponseHead::decode(&self.buf[..])
            .map(|h| {
                h.headers
                    .into_iter()
                    .map(|h| (h.name.to_vec(), h.value.to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Appends the whole frame (length prefix first) to `out`.
    pub fn write_frame(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let payload = 1 + varint_len(self.buf.len() as u64) + self.buf.len();
        if payload > MAX_FRAME_SIZE {
            return Err(FrameError::TooLarge(payload));
        }
        out.reserve(4 + payload);
        out.extend_from_slice(&(payload as u32).to_be_bytes());
        out.push(FRAME_RESPONSE_HEAD);
        put_varint(out, self.buf.len() as u64);
        out.extend_from_slice(&self.buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use ferrocorn_protocol::frame;
    use ferrocorn_protocol::pb::{frame::Kind, Frame, Header, ResponseEnd, ResponseHead};

    #[test]
    fn head_matches_prost_byte_for_byte() {
        let big = vec![b'v'; 300];
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"Content-Type", b"text/plain"),
            (b"X-Empty", b""),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
            (b"X-Big", &big),
            (b"X-Caf\xe9", b"\xe9t\xe9"),
        ];
        for (status, reason) in [(200u16, &b"OK"[..]), (599, b""), (100, b"Continue")] {
            let mut fields = HeadFields::new(status, reason);
            for (n, v) in &headers {
                fields.push_header(n, v);
            }
            let mut ours = Vec::new();
            fields.write_frame(&mut ours).unwrap();
            let expected = Frame {
                kind: Some(Kind::ResponseHead(ResponseHead {
                    protocol_version: PROTOCOL_VERSION,
                    status: u32::from(status),
                    reason: Bytes::copy_from_slice(reason),
                    headers: headers
                        .iter()
                        .map(|(n, v)| Header {
                            name: Bytes::copy_from_slice(n),
                            value: Bytes::copy_from_slice(v),
                        })
                        .collect(),
                })),
            };
            assert_eq!(ours, frame::encode_to_vec(&expected));
            let decoded = frame::decode(&mut BytesMut::from(&ours[..])).unwrap();
            assert_eq!(decoded, Some(expected));
        }
    }

    #[test]
    fn end_matches_prost() {
        let f = Frame {
            kind: Some(Kind::ResponseEnd(ResponseEnd::default())),
        };
        assert_eq!(RESPONSE_END.to_vec(), frame::encode_to_vec(&f));
        let f = Frame {
            kind: Some(Kind::ResponseEnd(ResponseEnd { close: true })),
        };
        assert_eq!(RESPONSE_END_CLOSE.to_vec(), frame::encode_to_vec(&f));
    }

    #[test]
    fn oversize_head_is_refused() {
        let mut fields = HeadFields::new(200, b"OK");
        fields.push_header(b"X", &vec![b'x'; MAX_FRAME_SIZE]);
        assert!(matches!(
            fields.write_frame(&mut Vec::new()),
            Err(FrameError::TooLarge(_))
        ));
    }
}
