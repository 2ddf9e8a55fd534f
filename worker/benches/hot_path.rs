//! The worker's hot path without nginx: `cargo bench -p ferrocorn`.
//!
//! - `environ/build`: the environ of a typical browser GET (8 headers).
//! - `python/call`: `app(environ, start_response)` and its iterable, with a
//!   prebuilt environ: the Python call alone.
//! - `exchange/*`: one request's frames in, the app called, the response
//!   frames out over a socket pair: everything a worker does per request
//!   but `poll` (decode, environ, call, `start_response`, framing,
//!   `read`/`write`).
//!
//! The request decode and frame encoding alone are in
//! `cargo bench -p ferrocorn-protocol`.

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ferrocorn::hot_path::{typical_head, CallBench, EnvironBench, HotPath};
use ferrocorn_protocol::frame;
use ferrocorn_protocol::pb::frame::Kind;
use ferrocorn_protocol::pb::{Frame, RequestEnd};
use ferrocorn_protocol::request_head_view::RequestHeadView;
use prost::Message;

fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/apps")
}

/// The frames nginx's module sends for a body-less request.
fn request_frames() -> Vec<u8> {
    let mut out = frame::encode_to_vec(&Frame {
        kind: Some(Kind::RequestHead(typical_head())),
    });
    out.extend(frame::encode_to_vec(&Frame {
        kind: Some(Kind::RequestEnd(RequestEnd {})),
    }));
    out
}

fn benches(c: &mut Criterion) {
    let message = typical_head().encode_to_vec();
    let head = RequestHeadView::decode(&message).expect("a valid head");
    let request = request_frames();

    let mut hello = HotPath::new(apps_dir(), "bench_apps:hello").expect("the app loads");
    let mut environ = EnvironBench::new().expect("an environ builder");
    c.bench_function("environ/build", |b| {
        b.iter(|| black_box(environ.build(black_box(&head))))
    });

    let call = CallBench::new(
        hello.app_object(),
        EnvironBench::new().expect("an environ builder"),
        &head,
    );
    c.bench_function("python/call", |b| b.iter(|| black_box(call.call())));

    // Check once that the exchange answers what the app says.
    hello.exchange(&request);
    let body = b"Hello, World!\n";
    assert!(
        hello.response().windows(body.len()).any(|w| w == body),
        "the response carries the app's body"
    );
    c.bench_function("exchange/hello", |b| {
        b.iter(|| black_box(hello.exchange(black_box(&request))))
    });

    let mut headers = HotPath::new(apps_dir(), "bench_apps:headers").expect("the app loads");
    c.bench_function("exchange/headers_read_by_the_app", |b| {
        b.iter(|| black_box(headers.exchange(black_box(&request))))
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
