//! How the client body is cut into `request_body` frames, and the
//! constant `request_end` frame that closes it.

use ferrocorn_protocol::body::MAX_BODY_CHUNK;

/// The whole `request_end` frame: length 2, key of `Frame.request_end`
/// (field 3, length-delimited: 0x1a), empty message.
pub static REQUEST_END_FRAME: [u8; 6] = [0, 0, 0, 2, 0x1a, 0x00];

/// Splits `len` body bytes into frame-sized pieces: `(offset, size)` with
/// `size <= MAX_BODY_CHUNK`, never empty.
pub fn body_pieces(len: u64) -> impl Iterator<Item = (u64, usize)> {
    let chunk = MAX_BODY_CHUNK as u64;
    (0..len.div_ceil(chunk)).map(move |i| {
        let offset = i * chunk;
        (offset, (len - offset).min(chunk) as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocorn_protocol::frame::encode_to_vec;
    use ferrocorn_protocol::pb::{frame::Kind, Frame, RequestEnd};

    #[test]
    fn request_end_constant_matches_prost() {
        let want = encode_to_vec(&Frame {
            kind: Some(Kind::RequestEnd(RequestEnd {})),
        });
        assert_eq!(REQUEST_END_FRAME.to_vec(), want);
    }

    #[test]
    fn pieces_cover_the_body_exactly() {
        let chunk = MAX_BODY_CHUNK as u64;
        for len in [
            0,
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            20 * 1024 * 1024,
            3 * chunk,
        ] {
            let pieces: Vec<_> = body_pieces(len).collect();
            assert_eq!(pieces.iter().map(|p| p.1 as u64).sum::<u64>(), len);
            let mut next = 0;
            for (offset, size) in &pieces {
                assert_eq!(*offset, next, "contiguous");
                assert!(*size > 0 && *size <= MAX_BODY_CHUNK);
                next += *size as u64;
            }
        }
        assert_eq!(body_pieces(0).count(), 0);
        assert_eq!(body_pieces(20 * 1024 * 1024).count(), 21);
    }
}
