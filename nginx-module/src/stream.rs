//! One request's response body stream, walked over whatever bytes nginx
//! read: pure Rust, shared by both input filters and unit-tested without
//! nginx.
//!
//! [`ResponseStream`] is the per-request context (`ngx_http_set_ctx`). Its
//! [`scan`](ResponseStream::scan) hands every body range *of the input
//! slice* to a callback, so the filters link nginx buffers pointing into the
//! upstream buffer instead of copying, and then says how the slice ended.

use std::ops::Range;

use ferrocorn_protocol::pb;
use ferrocorn_protocol::response_stream::{BodyParser, BodyStep};
use ferrocorn_protocol::FrameError;

/// A whole `response_end` frame: length 2, key of `Frame.response_end`
/// (field 6, length-delimited: 0x32), empty message.
pub const RESPONSE_END_FRAME: [u8; 6] = [0, 0, 0, 2, 0x32, 0x00];

/// `response_end` with `close` set (field 1, varint 1): the worker closes
/// the connection after it. As the worker encodes it.
pub const RESPONSE_END_CLOSE_FRAME: [u8; 8] = [0, 0, 0, 4, 0x32, 0x02, 0x08, 0x01];

/// Where the stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamState {
    /// Body frames may follow.
    #[default]
    Body,
    /// `response_end` was seen: the response is complete.
    Ended,
    /// An error frame or invalid bytes: nothing more is accepted.
    Failed,
}

/// How one scanned slice ended.
#[derive(Debug, PartialEq)]
pub enum ScanEnd {
    /// Every byte was consumed; the body goes on in the next read.
    NeedMore,
    /// `response_end` was seen. `trailing` bytes followed it in this slice
    /// (the worker broke the exchange: such a connection is not reused).
    /// `close`: the worker said it closes the connection after it.
    End { trailing: usize, close: bool },
    /// The worker sent an `error` frame mid-body.
    WorkerError(pb::Error),
    /// The bytes are not a valid body stream.
    Invalid(FrameError),
    /// Bytes arrived after the stream had already failed.
    AfterFailure,
}

/// Per-request response state, kept in the request ctx.
#[derive(Debug, Default)]
pub struct ResponseStream {
    /// Incremental frame parser; keeps the few prefix bytes split by a read.
    parser: BodyParser,
    /// Lifecycle, so input after the end or a failure is recognised.
    state: StreamState,
    /// The `close` flag of the `response_end` seen.
    close: bool,
}

impl ResponseStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (a retry against another server starts over).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    pub fn state(&self) -> StreamState {
        self.state
    }

    /// Records that the head was followed by `response_end` alone, consumed
    /// while the header was processed (HEAD, 204, 304).
    pub fn end_at_head(&mut self, close: bool) {
        self.state = StreamState::Ended;
        self.close = close;
    }

    /// Walks `input`, calling `on_data` with each body range inside it in
    /// order. Stops at the end of the slice, at `response_end`, at an error
    /// frame, or at invalid bytes; an `Err` from `on_data` (allocation
    /// failure) stops the scan and is returned as is.
    pub fn scan<E>(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(Range<usize>) -> Result<(), E>,
    ) -> Result<ScanEnd, E> {
        match self.state {
            StreamState::Ended => {
                return Ok(ScanEnd::End {
                    trailing: input.len(),
                    close: self.close,
                })
            }
            StreamState::Failed => return Ok(ScanEnd::AfterFailure),
            StreamState::Body => {}
        }
        let mut pos = 0;
        loop {
            let step = match self.parser.step(input, pos) {
                Ok(step) => step,
                Err(e) => {
                    self.state = StreamState::Failed;
                    return Ok(ScanEnd::Invalid(e));
                }
            };
            pos = step.0;
            match step.1 {
                BodyStep::Data(range) => on_data(range)?,
                BodyStep::NeedMore => return Ok(ScanEnd::NeedMore),
                BodyStep::End { close } => {
                    self.state = StreamState::Ended;
                    self.close = close;
                    return Ok(ScanEnd::End {
                        trailing: input.len() - pos,
                        close,
                    });
                }
                BodyStep::WorkerError(err) => {
                    self.state = StreamState::Failed;
                    return Ok(ScanEnd::WorkerError(err));
                }
            }
        }
    }
}

/// When `rest` (the bytes after the head frame) is exactly one
/// `response_end`, as the worker encodes it: a body-less response that is
/// already complete. Gives its `close` flag.
pub fn bare_end(rest: &[u8]) -> Option<bool> {
    if rest == RESPONSE_END_FRAME {
        Some(false)
    } else if rest == RESPONSE_END_CLOSE_FRAME {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferrocorn_protocol::frame::encode_to_vec;
    use ferrocorn_protocol::pb::{frame::Kind, Frame, ResponseEnd};
    use std::convert::Infallible;

    fn enc(kind: Kind) -> Vec<u8> {
        encode_to_vec(&Frame { kind: Some(kind) })
    }

    fn body(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out: Vec<u8> = chunks
            .iter()
            .flat_map(|c| enc(Kind::ResponseBody(Bytes::copy_from_slice(c))))
            .collect();
        out.extend(enc(Kind::ResponseEnd(ResponseEnd::default())));
        out
    }

    /// Feeds `stream` in reads of `split` bytes, as nginx would, collecting
    /// the body through the ranges and returning the last scan outcome.
    fn feed(stream: &[u8], split: usize) -> (Vec<u8>, ScanEnd) {
        let mut s = ResponseStream::new();
        let mut got = Vec::new();
        let mut last = ScanEnd::NeedMore;
        for read in stream.chunks(split) {
            last = s
                .scan(read, |r| {
                    got.extend_from_slice(&read[r]);
                    Ok::<(), Infallible>(())
                })
                .unwrap();
            if last != ScanEnd::NeedMore {
                break;
            }
        }
        (got, last)
    }

    #[test]
    fn response_end_constant_matches_prost() {
        assert_eq!(
            enc(Kind::ResponseEnd(ResponseEnd::default())),
            RESPONSE_END_FRAME.to_vec()
        );
        assert_eq!(
            enc(Kind::ResponseEnd(ResponseEnd { close: true })),
            RESPONSE_END_CLOSE_FRAME.to_vec()
        );
        assert_eq!(bare_end(&RESPONSE_END_FRAME), Some(false));
        assert_eq!(bare_end(&RESPONSE_END_CLOSE_FRAME), Some(true));
        assert_eq!(bare_end(&RESPONSE_END_FRAME[..5]), None);
        assert_eq!(bare_end(&RESPONSE_END_CLOSE_FRAME[..7]), None);
        assert_eq!(
            bare_end(&[RESPONSE_END_FRAME, RESPONSE_END_FRAME].concat()),
            None
        );
    }

    #[test]
    fn body_arrives_whole_for_every_read_size() {
        let big = vec![7u8; 200_000];
        let chunks: [&[u8]; 3] = [b"hello ", &big, b"!"];
        let stream = body(&chunks);
        for split in [1, 2, 5, 6, 7, 4096, 65536, stream.len()] {
            let (got, end) = feed(&stream, split);
            assert_eq!(got, chunks.concat(), "split {split}");
            assert_eq!(
                end,
                ScanEnd::End {
                    trailing: 0,
                    close: false
                },
                "split {split}"
            );
        }
    }

    #[test]
    fn the_close_flag_is_reported_for_every_read_size() {
        let mut stream = enc(Kind::ResponseBody("last".into()));
        stream.extend_from_slice(&RESPONSE_END_CLOSE_FRAME);
        for split in 1..=stream.len() {
            let (got, end) = feed(&stream, split);
            assert_eq!(got, b"last", "split {split}");
            assert_eq!(
                end,
                ScanEnd::End {
                    trailing: 0,
                    close: true
                },
                "split {split}"
            );
        }
    }

    #[test]
    fn empty_body_is_just_the_end() {
        let (got, end) = feed(&RESPONSE_END_FRAME, 1);
        assert!(got.is_empty());
        assert_eq!(
            end,
            ScanEnd::End {
                trailing: 0,
                close: false
            }
        );
    }

    #[test]
    fn bytes_after_the_end_are_reported() {
        let mut stream = body(&[b"ok"]);
        stream.extend_from_slice(b"junk");
        let (got, end) = feed(&stream, stream.len());
        assert_eq!(got, b"ok");
        assert_eq!(
            end,
            ScanEnd::End {
                trailing: 4,
                close: false
            }
        );

        // ...also when they come in a later read.
        let mut s = ResponseStream::new();
        let first = body(&[b"ok"]);
        let none = |_| Ok::<(), Infallible>(());
        assert_eq!(
            s.scan(&first, none),
            Ok(ScanEnd::End {
                trailing: 0,
                close: false
            })
        );
        assert_eq!(
            s.scan(b"xyz", none),
            Ok(ScanEnd::End {
                trailing: 3,
                close: false
            })
        );
    }

    #[test]
    fn worker_error_mid_body_fails_the_stream() {
        let mut stream = enc(Kind::ResponseBody("part".into()));
        stream.extend(enc(Kind::Error(pb::Error {
            kind: pb::error::Kind::Internal as i32,
            message: "app raised".into(),
        })));
        let (got, end) = feed(&stream, 3);
        assert_eq!(got, b"part");
        assert!(matches!(end, ScanEnd::WorkerError(e) if e.message == "app raised"));
    }

    #[test]
    fn garbage_fails_and_later_input_is_refused() {
        let mut s = ResponseStream::new();
        let none = |_| Ok::<(), Infallible>(());
        let end = s.scan(b"HTTP/1.1 200 OK\r\n", none).unwrap();
        assert!(matches!(end, ScanEnd::Invalid(FrameError::TooLarge(_))));
        assert_eq!(s.state(), StreamState::Failed);
        assert_eq!(s.scan(b"more", none), Ok(ScanEnd::AfterFailure));
        s.reset();
        assert_eq!(s.state(), StreamState::Body);
        assert_eq!(
            s.scan(&RESPONSE_END_FRAME, none),
            Ok(ScanEnd::End {
                trailing: 0,
                close: false
            })
        );
    }

    #[test]
    fn callback_failure_stops_the_scan() {
        let mut s = ResponseStream::new();
        let stream = body(&[b"a", b"b"]);
        let mut calls = 0;
        let r = s.scan(&stream, |_| {
            calls += 1;
            Err("no memory")
        });
        assert_eq!(r, Err("no memory"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn head_only_end_marks_the_stream_complete() {
        let mut s = ResponseStream::new();
        s.end_at_head(true);
        assert_eq!(s.state(), StreamState::Ended);
        let none = |_| Ok::<(), Infallible>(());
        assert_eq!(
            s.scan(b"", none),
            Ok(ScanEnd::End {
                trailing: 0,
                close: true
            })
        );
    }
}
