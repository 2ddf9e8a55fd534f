//! The protocol's hot pieces, without the rest of the stack:
//! `cargo bench -p ferrocorn-protocol`.
//!
//! - `request_head/encode`: what the module does per request (a browser-like
//!   head with 14 headers and 2 params).
//! - `frame/decode_request`: prost's decode of a request (head, one body
//!   chunk, end), as the worker did it before `request_head_view`.
//! - `request_head/decode_prost` and `request_head/decode_view`: the head
//!   frame alone, by prost and by the worker's view (walking every header
//!   and param once, as building environ does).
//! - `response/parse_hello` and `response/parse_1mib`: the module's response
//!   parsing for a hello-world answer and a 1 MiB body in 16 KiB reads.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocorn_protocol::body::{write_prefix, BodyKind, MAX_PREFIX_LEN};
use ferrocorn_protocol::frame;
use ferrocorn_protocol::pb::{frame::Kind, Frame, Header, ResponseEnd, ResponseHead};
use ferrocorn_protocol::request_head::RequestHeadRef;
use ferrocorn_protocol::request_head_view::{
    decode_request_member, RequestHeadView, RequestMember,
};
use ferrocorn_protocol::response_stream::{parse_head, BodyParser, BodyStep};

const HEADERS: [(&[u8], &[u8]); 14] = [
    (b"Host", b"example.com"),
    (
        b"User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    (
        b"Accept",
        b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (b"Connection", b"keep-alive"),
    (
        b"Cookie",
        b"sessionid=0123456789abcdef0123456789abcdef; csrftoken=abcdef",
    ),
    (b"Upgrade-Insecure-Requests", b"1"),
    (b"Sec-Fetch-Dest", b"document"),
    (b"Sec-Fetch-Mode", b"navigate"),
    (b"Sec-Fetch-Site", b"none"),
    (b"Sec-Fetch-User", b"?1"),
    (b"Priority", b"u=0, i"),
    (b"X-Request-Id", b"5f0c6a4e-8a7b-4c1d-9e2f-3a4b5c6d7e8f"),
];
const PARAMS: [(&[u8], &[u8]); 2] = [(b"SCRIPT_NAME", b""), (b"HTTPS", b"on")];

fn head() -> RequestHeadRef<'static> {
    RequestHeadRef {
        method: b"GET",
        uri: b"/articles/42?page=2",
        path: b"/articles/42",
        query_string: b"page=2",
        protocol: b"HTTP/1.1",
        headers: &HEADERS,
        server_name: b"example.com",
        server_port: 443,
        remote_addr: b"203.0.113.7",
        remote_port: 51234,
        scheme: b"https",
        params: &PARAMS,
        content_length: -1,
    }
}

fn request_head(c: &mut Criterion) {
    let head = head();
    let mut out = vec![0u8; head.frame_len().unwrap()];
    c.bench_function("request_head/encode", |b| {
        b.iter(|| black_box(&head).write_frame(black_box(&mut out)).unwrap())
    });
}

fn decode_head(c: &mut Criterion) {
    let head = head();
    let mut bytes = vec![0u8; head.frame_len().unwrap()];
    head.write_frame(&mut bytes).unwrap();
    let bytes = Bytes::from(bytes);
    c.bench_function("request_head/decode_prost", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&bytes[..]);
            let f = frame::decode(&mut buf).unwrap().unwrap();
            let Some(Kind::RequestHead(h)) = f.kind else {
                panic!("not a head")
            };
            black_box(h.headers.len() + h.params.len())
        })
    });
    c.bench_function("request_head/decode_view", |b| {
        b.iter(|| {
            let RequestMember::Head(message) =
                decode_request_member(black_box(&bytes).slice(frame::FRAME_HEADER_LEN..)).unwrap()
            else {
                panic!("not a head")
            };
            let view = RequestHeadView::decode(&message).unwrap();
            let walked: usize = view
                .headers()
                .chain(view.params())
                .map(|(n, v)| n.len() + v.len())
                .sum();
            black_box(walked)
        })
    });
}

fn decode_request(c: &mut Criterion) {
    let head = head();
    let mut stream = vec![0u8; head.frame_len().unwrap()];
    head.write_frame(&mut stream).unwrap();
    let body = vec![b'x'; 512];
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let n = write_prefix(BodyKind::Request, body.len(), &mut prefix);
    stream.extend_from_slice(&prefix[..n]);
    stream.extend_from_slice(&body);
    stream.extend_from_slice(&[0, 0, 0, 2, 0x1a, 0x00]);
    c.bench_function("frame/decode_request", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&stream[..]);
            let mut frames = 0;
            while let Some(f) = frame::decode(&mut buf).unwrap() {
                black_box(&f);
                frames += 1;
            }
            assert_eq!(frames, 3);
        })
    });
}

fn response_stream(head_status: u32, body: &[u8]) -> Vec<u8> {
    let mut out = frame::encode_to_vec(&Frame {
        kind: Some(Kind::ResponseHead(ResponseHead {
            protocol_version: 1,
            status: head_status,
            reason: Bytes::from_static(b"OK"),
            headers: vec![Header {
                name: Bytes::from_static(b"Content-Type"),
                value: Bytes::from_static(b"text/plain"),
            }],
        })),
    });
    for chunk in body.chunks(64 * 1024) {
        out.extend(frame::encode_to_vec(&Frame {
            kind: Some(Kind::ResponseBody(Bytes::copy_from_slice(chunk))),
        }));
    }
    out.extend(frame::encode_to_vec(&Frame {
        kind: Some(Kind::ResponseEnd(ResponseEnd::default())),
    }));
    out
}

/// Parses head then body, feeding `read` bytes at a time like nginx's reads.
fn parse_response(stream: &[u8], read: usize) -> usize {
    let (used, _) = parse_head(stream).unwrap().unwrap();
    let mut parser = BodyParser::new();
    let mut data = 0;
    for piece in stream[used..].chunks(read) {
        let mut pos = 0;
        loop {
            let (next, step) = parser.step(piece, pos).unwrap();
            pos = next;
            match step {
                BodyStep::Data(r) => data += r.len(),
                BodyStep::NeedMore | BodyStep::End { .. } => break,
                BodyStep::WorkerError(e) => panic!("{e:?}"),
            }
        }
    }
    data
}

fn response(c: &mut Criterion) {
    let hello = response_stream(200, b"Hello, World!");
    c.bench_function("response/parse_hello", |b| {
        b.iter(|| assert_eq!(parse_response(black_box(&hello), 8192), 13))
    });
    let big = response_stream(200, &vec![7u8; 1 << 20]);
    let mut group = c.benchmark_group("response");
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("parse_1mib", |b| {
        b.iter(|| assert_eq!(parse_response(black_box(&big), 16384), 1 << 20))
    });
    group.finish();
}

criterion_group!(benches, request_head, decode_head, decode_request, response);
criterion_main!(benches);
