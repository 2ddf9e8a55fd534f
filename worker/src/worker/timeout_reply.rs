//! The 504 a worker killed by `--timeout` leaves for nginx when its app
//! had not started the response: encoded once at boot, written by the
//! SIGABRT handler (see [`crate::signals`]) with a single `write(2)`.

use bytes::Bytes;
use ferrocorn_protocol::frame;
use ferrocorn_protocol::pb::frame::Kind;
use ferrocorn_protocol::pb::{Frame, ResponseEnd};

use super::response_head::HeadFields;

const BODY: &[u8] = b"504 Gateway Timeout: the worker was stuck and has been restarted\n";

/// `response_head` 504, one `response_body`, `response_end`.
pub fn encode() -> Vec<u8> {
    let mut head = HeadFields::new(504, b"Gateway Timeout");
    head.push_header(b"Content-Type", b"text/plain; charset=utf-8");
    head.push_header(b"Content-Length", BODY.len().to_string().as_bytes());
    let mut out = Vec::new();
    head.write_frame(&mut out)
        .expect("a two-header head fits in a frame");
    out.extend(frame::encode_to_vec(&Frame {
        kind: Some(Kind::ResponseBody(Bytes::from_static(BODY))),
    }));
    out.extend(frame::encode_to_vec(&Frame {
        kind: Some(Kind::ResponseEnd(ResponseEnd { close: true })),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn decodes_as_a_complete_504() {
        let mut buf = BytesMut::from(&encode()[..]);
        let kinds: Vec<Kind> =
            std::iter::from_fn(|| frame::decode(&mut buf).unwrap().map(|f| f.kind.unwrap()))
                .collect();
        match &kinds[..] {
            [Kind::ResponseHead(h), Kind::ResponseBody(b), Kind::ResponseEnd(_)] => {
                assert_eq!(h.status, 504);
                assert_eq!(&b[..], BODY);
            }
            other => panic!("{other:?}"),
        }
    }
}
