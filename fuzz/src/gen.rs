//! Structure-aware inputs: streams of valid frames, hand-broken frames and
//! byte-level mutations of both, plus the points at which a reader sees
//! the stream split.
//!
//! Random bytes alone almost never get past a length prefix; most inputs
//! here start from frames a real peer would send and then break them the
//! way a hostile or buggy peer would (lengths off by one, huge or zero,
//! truncated varints, frames of the wrong direction, two members in one
//! frame, half frames at the end).

use bytes::Bytes;
use ferrocorn_protocol::body::{self, BodyKind, MAX_BODY_CHUNK, MAX_PREFIX_LEN};
use ferrocorn_protocol::frame::encode_to_vec;
use ferrocorn_protocol::pb::{self, frame::Kind, Frame};
use ferrocorn_protocol::{MAX_FRAME_SIZE, PROTOCOL_VERSION};

use crate::rng::Rng;

/// Which side's frames an input is mostly made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Module → worker: request_head, request_body*, request_end.
    Request,
    /// Worker → module: response_head, response_body*, response_end | error.
    Response,
}

/// One fuzz input: the bytes and where the reader's reads end.
#[derive(Debug, Clone)]
pub struct Input {
    pub stream: Vec<u8>,
    /// Increasing cut points inside `stream` (exclusive of 0 and len).
    pub cuts: Vec<usize>,
}

impl Input {
    /// The stream as the reads the cut points describe.
    pub fn pieces(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.cuts.len() + 1);
        let mut start = 0;
        for &cut in &self.cuts {
            out.push(&self.stream[start..cut]);
            start = cut;
        }
        out.push(&self.stream[start..]);
        out
    }
}

/// Bytes that often sit on parsing edges.
const INTERESTING: [u8; 12] = [
    0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xff, 0x0a, 0x2a, 0x32, 0x3a, 0x12,
];

/// Key bytes of every `Frame` member (field << 3 | 2) and a few others.
const KEYS: [u8; 12] = [
    0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x32, 0x3a, 0x08, 0x0b, 0x0c, 0x78, 0x42,
];

fn b(bytes: Vec<u8>) -> Bytes {
    Bytes::from(bytes)
}

fn token(rng: &mut Rng) -> Vec<u8> {
    const WORDS: [&[u8]; 10] = [
        b"Content-Length",
        b"Content-Type",
        b"Transfer-Encoding",
        b"Host",
        b"X-Auth_User",
        b"Set-Cookie",
        b"Location",
        b"Script-Name",
        b"X-Accel-Redirect",
        b"Connection",
    ];
    if rng.one_in(3) {
        rng.some_bytes(24)
    } else {
        rng.pick(&WORDS).to_vec()
    }
}

fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => b"1\r\nSet-Cookie: evil=1".to_vec(),
        1 => vec![0],
        2 => rng.range(0, 100_000).to_string().into_bytes(),
        _ => rng.some_bytes(64),
    }
}

fn header(rng: &mut Rng) -> pb::Header {
    pb::Header {
        name: b(token(rng)),
        value: b(value(rng)),
    }
}

fn request_head(rng: &mut Rng) -> pb::RequestHead {
    pb::RequestHead {
        protocol_version: if rng.one_in(10) {
            rng.below(4) as u32
        } else {
            PROTOCOL_VERSION
        },
        method: b(rng
            .pick(&[&b"GET"[..], b"POST", b"HEAD", b"", b"G\rET"])
            .to_vec()),
        uri: b(rng.some_bytes(40)),
        path: b(rng.some_bytes(40)),
        query_string: b(rng.some_bytes(20)),
        protocol: b(rng.pick(&[&b"HTTP/1.1"[..], b"HTTP/1.0", b""]).to_vec()),
        headers: (0..rng.size(8)).map(|_| header(rng)).collect(),
        server_name: b(rng.some_bytes(12)),
        server_port: rng.next_u64() as u32,
        remote_addr: b(b"127.0.0.1".to_vec()),
        remote_port: rng.below(65536) as u32,
        scheme: b(b"http".to_vec()),
        params: (0..rng.size(3))
            .map(|_| pb::Param {
                name: b(token(rng)),
                value: b(value(rng)),
            })
            .collect(),
        content_length: match rng.below(4) {
            0 => -1,
            1 => rng.next_u64() as i64,
            _ => rng.size(5000) as i64,
        },
    }
}

fn response_head(rng: &mut Rng) -> pb::ResponseHead {
    pb::ResponseHead {
        protocol_version: if rng.one_in(10) {
            rng.below(4) as u32
        } else {
            PROTOCOL_VERSION
        },
        status: match rng.below(5) {
            0 => rng.next_u64() as u32,
            1 => rng.range(0, 1200) as u32,
            _ => *rng.pick(&[200, 204, 304, 404, 500, 100, 999]),
        },
        reason: b(rng
            .pick(&[&b"OK"[..], b"", b"A\r\nB", b"I'm a teapot"])
            .to_vec()),
        headers: (0..rng.size(8)).map(|_| header(rng)).collect(),
    }
}

fn error(rng: &mut Rng) -> pb::Error {
    pb::Error {
        kind: rng.range(0, 5) as i32 - 1,
        message: String::from_utf8_lossy(&rng.some_bytes(40)).into_owned(),
    }
}

/// A body frame written by hand (as the module and worker do), with data of
/// a size skewed small and, rarely, the largest chunk a frame can carry.
fn body_frame(rng: &mut Rng, kind: BodyKind) -> Vec<u8> {
    let len = if rng.one_in(4000) {
        MAX_BODY_CHUNK
    } else {
        rng.size(3000)
    };
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let used = body::write_prefix(kind, len, &mut prefix);
    let mut out = prefix[..used].to_vec();
    out.extend(std::iter::repeat_n(rng.byte(), len));
    out
}

/// A frame a well-behaved peer of `dir` might send.
fn valid_frame(rng: &mut Rng, dir: Direction) -> Vec<u8> {
    let kind = match (dir, rng.below(10)) {
        (Direction::Request, 0..=2) => Kind::RequestHead(request_head(rng)),
        (Direction::Request, 3..=6) => return body_frame(rng, BodyKind::Request),
        (Direction::Request, 7..=8) => Kind::RequestEnd(pb::RequestEnd {}),
        (Direction::Response, 0..=2) => Kind::ResponseHead(response_head(rng)),
        (Direction::Response, 3..=6) => return body_frame(rng, BodyKind::Response),
        (Direction::Response, 7..=8) => Kind::ResponseEnd(pb::ResponseEnd {
            close: rng.one_in(2),
        }),
        // Frames of the other direction, or errors.
        (_, _) => match rng.below(4) {
            0 => Kind::Error(error(rng)),
            1 => Kind::RequestBody(b(rng.some_bytes(50))),
            2 => Kind::ResponseBody(b(rng.some_bytes(50))),
            _ => Kind::RequestEnd(pb::RequestEnd {}),
        },
    };
    encode_to_vec(&Frame { kind: Some(kind) })
}

fn prefixed(len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A frame broken the way a hostile or buggy peer would break it.
fn broken_frame(rng: &mut Rng, dir: Direction) -> Vec<u8> {
    match rng.below(12) {
        // Plain garbage (an HTTP request, random bytes).
        0 => {
            if rng.one_in(2) {
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()
            } else {
                rng.some_bytes(64)
            }
        }
        // A huge length prefix, then a few bytes (slowloris or attack).
        1 => {
            let len = rng.range(MAX_FRAME_SIZE + 1, u32::MAX as usize) as u32;
            prefixed(len, &rng.some_bytes(8))
        }
        // A zero length.
        2 => prefixed(0, &[]),
        // A length with random payload.
        3 => {
            let n = rng.range(1, 300);
            prefixed(n as u32, &rng.bytes(n))
        }
        // One byte: a lone key.
        4 => prefixed(1, &[*rng.pick(&KEYS)]),
        // A valid frame whose length is off by a little.
        5 => {
            let mut f = valid_frame(rng, dir);
            let len = u32::from_be_bytes(f[..4].try_into().unwrap());
            let delta = rng.range(1, 3) as u32;
            let len = if rng.one_in(2) {
                len.wrapping_add(delta)
            } else {
                len.wrapping_sub(delta)
            };
            f[..4].copy_from_slice(&len.to_be_bytes());
            f
        }
        // Two members under one prefix (prost keeps the last).
        6 => {
            let a = valid_frame(rng, dir);
            let c = valid_frame(rng, dir);
            let payload = [&a[4..], &c[4..]].concat();
            prefixed(payload.len() as u32, &payload)
        }
        // A body frame whose varint disagrees with the length, or is not minimal.
        7 => {
            let key = *rng.pick(&[BodyKind::Request.key(), BodyKind::Response.key()]);
            let n = rng.size(200);
            let mut payload = vec![key];
            if rng.one_in(2) {
                // Non-minimal varint of n: one extra continuation byte.
                payload.push((n as u8 & 0x7f) | 0x80);
                payload.push((n >> 7) as u8);
            } else {
                payload.push(rng.byte());
            }
            payload.extend(rng.bytes(n));
            let len = (payload.len() as i64 + rng.range(0, 2) as i64 - 1).max(0) as u32;
            prefixed(len, &payload)
        }
        // A varint that never ends.
        8 => prefixed(
            rng.range(2, 12) as u32,
            &[0x2a, 0x80, 0x80, 0x80, 0x80, 0x80],
        ),
        // A half frame: prefix says up to the limit, little follows.
        9 => {
            let len = rng.range(1, MAX_FRAME_SIZE) as u32;
            let mut f = prefixed(len, &[*rng.pick(&KEYS)]);
            f.extend(rng.some_bytes(30));
            f
        }
        // A control frame over the module's mid-body limit.
        10 => {
            let n = rng.range(64 * 1024 - 2, 64 * 1024 + 2);
            let msg = vec![b'e'; n];
            let f = Frame {
                kind: Some(Kind::Error(pb::Error {
                    kind: 3,
                    message: String::from_utf8(msg).unwrap(),
                })),
            };
            encode_to_vec(&f)
        }
        // A valid frame cut short.
        _ => {
            let mut f = valid_frame(rng, dir);
            f.truncate(rng.below(f.len()));
            f
        }
    }
}

fn mutate(rng: &mut Rng, s: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 4) {
        if s.is_empty() {
            s.push(rng.byte());
            continue;
        }
        let at = rng.below(s.len());
        match rng.below(7) {
            0 => s[at] ^= 1 << rng.below(8),
            1 => s[at] = *rng.pick(&INTERESTING),
            2 => s.insert(at, rng.byte()),
            3 => {
                s.remove(at);
            }
            4 => s.truncate(at),
            5 => {
                let end = (at + rng.size(16)).min(s.len());
                let dup = s[at..end].to_vec();
                let to = rng.below(s.len() + 1);
                s.splice(to..to, dup);
            }
            _ => s[at] = rng.byte(),
        }
    }
}

/// Cut points: none, every byte, a few random ones, or just around frame
/// prefixes (where a varint or length may be split).
fn cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let mut out: Vec<usize> = match rng.below(6) {
        0 => Vec::new(),
        1 if len <= 4096 => (1..len).collect(),
        2 => (1..len.min(12)).collect(),
        _ => (0..rng.range(1, 8))
            .map(|_| rng.range(1, len - 1))
            .collect(),
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Input number `index` of a run: a few frames (valid or broken), an
/// optional head first, sometimes byte-mutated, and its cut points.
pub fn input(rng: &mut Rng, dir: Direction, head_first: bool) -> Input {
    let mut stream = Vec::new();
    if head_first && !rng.one_in(8) {
        let head = match dir {
            Direction::Request => Kind::RequestHead(request_head(rng)),
            Direction::Response => Kind::ResponseHead(response_head(rng)),
        };
        stream.extend(encode_to_vec(&Frame { kind: Some(head) }));
    }
    for _ in 0..rng.size(8) {
        if rng.one_in(5) {
            stream.extend(broken_frame(rng, dir));
        } else {
            stream.extend(valid_frame(rng, dir));
        }
    }
    if rng.one_in(2) {
        let end = match dir {
            Direction::Request => Kind::RequestEnd(pb::RequestEnd {}),
            Direction::Response => Kind::ResponseEnd(pb::ResponseEnd {
                close: rng.one_in(2),
            }),
        };
        stream.extend(encode_to_vec(&Frame { kind: Some(end) }));
    }
    if rng.one_in(2) {
        mutate(rng, &mut stream);
    }
    let cuts = cuts(rng, stream.len());
    Input { stream, cuts }
}
