//! Body frames written by hand.
//!
//! A `request_body` / `response_body` frame is
//! `len(u32 BE) | key | varint(n) | n data bytes`, where `key` is the
//! protobuf key of the oneof member. Writing the few prefix bytes ourselves
//! lets a sender place them in front of data it does not copy (nginx's
//! request body buffers, a Python `bytes` object) and still produce exactly
//! what prost would.

/// Which body member a prefix introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `Frame.request_body` (field 2).
    Request,
    /// `Frame.response_body` (field 5).
    Response,
}

impl BodyKind {
    /// The protobuf key byte: field number << 3 | wire type 2 (length-delimited).
    pub const fn key(self) -> u8 {
        match self {
            BodyKind::Request => (2 << 3) | 2,
            BodyKind::Response => (5 << 3) | 2,
        }
    }
}

/// Largest prefix: 4 length bytes, 1 key byte, up to 3 varint bytes (sizes
/// below 2^21, which covers [`MAX_BODY_CHUNK`]).
pub const MAX_PREFIX_LEN: usize = 8;

/// Largest data a single body frame carries; senders split above it.
pub const MAX_BODY_CHUNK: usize = crate::MAX_FRAME_SIZE - MAX_PREFIX_LEN;

/// Number of bytes of the protobuf varint encoding of `v`.
pub const fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Writes the prefix of a body frame carrying `data_len` bytes into `out`
/// and returns how many bytes it used. `data_len` must not exceed
/// [`MAX_BODY_CHUNK`].
pub fn write_prefix(kind: BodyKind, data_len: usize, out: &mut [u8; MAX_PREFIX_LEN]) -> usize {
    assert!(
        data_len <= MAX_BODY_CHUNK,
        "body chunk over the frame limit"
    );
    let payload = 1 + varint_len(data_len as u64) + data_len;
    out[..4].copy_from_slice(&(payload as u32).to_be_bytes());
    out[4] = kind.key();
    let mut pos = 5;
    let mut v = data_len as u64;
    while v >= 0x80 {
        out[pos] = (v as u8) | 0x80;
        v >>= 7;
        pos += 1;
    }
    out[pos] = v as u8;
    pos + 1
}

/// The prefix length [`write_prefix`] uses for `data_len` bytes.
pub const fn prefix_len(data_len: usize) -> usize {
    5 + varint_len(data_len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::pb::{frame::Kind, Frame};
    use bytes::Bytes;

    #[test]
    fn prefix_matches_prost_for_every_varint_width() {
        for n in [0usize, 1, 127, 128, 16383, 16384, 65536, MAX_BODY_CHUNK] {
            for kind in [BodyKind::Request, BodyKind::Response] {
                let data = vec![0xabu8; n];
                let mut prefix = [0u8; MAX_PREFIX_LEN];
                let used = write_prefix(kind, n, &mut prefix);
                assert_eq!(used, prefix_len(n));
                let mut ours = prefix[..used].to_vec();
                ours.extend_from_slice(&data);
                let member = match kind {
                    BodyKind::Request => Kind::RequestBody(Bytes::from(data)),
                    BodyKind::Response => Kind::ResponseBody(Bytes::from(data)),
                };
                let theirs = frame::encode_to_vec(&Frame { kind: Some(member) });
                assert_eq!(ours, theirs, "n={n} kind={kind:?}");
            }
        }
    }

    #[test]
    #[should_panic]
    fn oversize_chunk_is_refused() {
        let mut prefix = [0u8; MAX_PREFIX_LEN];
        write_prefix(BodyKind::Response, MAX_BODY_CHUNK + 1, &mut prefix);
    }
}
