//! The response head as the module judges it: pure Rust, unit-tested
//! without nginx.
//!
//! [`parse`] turns the start of nginx's header buffer into a checked
//! [`ResponseHeadRef`] (read in place, no allocation, for what workers
//! send) or a [`HeadError`] whose `Display` is the exact
//! error-log line. Everything that reaches nginx's header tables has passed
//! [`check`]: a status nginx can print, and header names and values that
//! cannot split the client's response.

use std::fmt;

use ferrocorn_protocol::pb;
use ferrocorn_protocol::response_head_view::ResponseHeadRef;
use ferrocorn_protocol::response_stream::{parse_head, HeadOutcome};
use ferrocorn_protocol::{FrameError, PROTOCOL_VERSION};

/// Why a response head is refused (the client gets a 502).
#[derive(Debug, PartialEq)]
pub enum HeadError {
    /// The first frame is not a valid frame, or not a head or error.
    Frame(FrameError),
    /// The worker answered with an `error` frame instead of a head.
    Worker { kind: &'static str, message: String },
    /// The worker speaks another protocol version.
    Version(u32),
    /// Status outside 100..=999.
    Status(u32),
    /// Reason phrase with control characters.
    Reason,
    /// A header name that is not an HTTP token, or a value with CR, LF or NUL.
    Header(Vec<u8>),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Frame(e) => write!(f, "upstream sent invalid frame: {e}"),
            HeadError::Worker { kind, message } => {
                write!(f, "upstream sent error frame: {kind}: {message}")
            }
            HeadError::Version(v) => write!(
                f,
                "upstream sent invalid protocol version {v} (this module speaks {PROTOCOL_VERSION})"
            ),
            HeadError::Status(s) => write!(f, "upstream sent invalid status {s}"),
            HeadError::Reason => f.write_str("upstream sent invalid reason phrase"),
            HeadError::Header(name) => write!(
                f,
                "upstream sent invalid header \"{}\"",
                String::from_utf8_lossy(name).escape_debug()
            ),
        }
    }
}

/// Outcome of looking at the header buffer.
#[derive(Debug, PartialEq)]
pub enum Parsed<'a> {
    /// The head frame is not complete yet: read more.
    NeedMore,
    /// A valid head, `used` bytes long (body-stream bytes may follow).
    Head {
        used: usize,
        head: ResponseHeadRef<'a>,
    },
}

/// Parses and checks the head frame at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed<'_>, HeadError> {
    match parse_head(buf).map_err(HeadError::Frame)? {
        None => Ok(Parsed::NeedMore),
        Some((_, HeadOutcome::Error(err))) => Err(worker_error(err)),
        Some((used, HeadOutcome::Head(head))) => {
            check(&head)?;
            Ok(Parsed::Head { used, head })
        }
    }
}

/// The `error` frame as a [`HeadError::Worker`]; also used mid-body.
pub fn worker_error(err: pb::Error) -> HeadError {
    HeadError::Worker {
        kind: error_kind_name(err.kind),
        message: err.message,
    }
}

/// The .proto name of an error kind, e.g. `VERSION_MISMATCH`.
pub fn error_kind_name(kind: i32) -> &'static str {
    pb::error::Kind::try_from(kind)
        .map(|k| k.as_str_name())
        .unwrap_or("UNKNOWN_KIND")
}

/// Version, status, reason and every header of a decoded head.
pub fn check(head: &ResponseHeadRef<'_>) -> Result<(), HeadError> {
    if head.protocol_version() != PROTOCOL_VERSION {
        return Err(HeadError::Version(head.protocol_version()));
    }
    if !(100..=999).contains(&head.status()) {
        return Err(HeadError::Status(head.status()));
    }
    if !is_field_value(head.reason()) {
        return Err(HeadError::Reason);
    }
    for (name, value) in head.headers() {
        if !is_token(name) || !is_field_value(value) {
            return Err(HeadError::Header(name.to_vec()));
        }
    }
    Ok(())
}

/// Length of the status line nginx puts after `HTTP/1.1 ` (`"200 OK"`).
/// `None` for an empty reason: nginx then prints its own phrase for the code.
pub fn status_line_len(reason: &[u8]) -> Option<usize> {
    (!reason.is_empty()).then_some(4 + reason.len())
}

/// Writes the status line of a checked head (three status digits, a
/// space, the reason) into `out`, [`status_line_len`] bytes long.
pub fn write_status_line(status: u32, reason: &[u8], out: &mut [u8]) {
    debug_assert!((100..=999).contains(&status));
    out[0] = b'0' + (status / 100) as u8;
    out[1] = b'0' + (status / 10 % 10) as u8;
    out[2] = b'0' + (status % 10) as u8;
    out[3] = b' ';
    out[4..4 + reason.len()].copy_from_slice(reason);
}

/// Responses nginx sends without a body: the worker still ends them with
/// `response_end`, which the module consumes with the head when it is there.
pub fn is_header_only(is_head_request: bool, status: u32) -> bool {
    is_head_request || status == 204 || status == 304
}

/// RFC 9110 token: the characters a header name may hold.
fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| TCHAR[usize::from(c)])
}

/// A field value nginx can copy into the client response as is: no CR, LF
/// or NUL (which would let the app split the response).
fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&c| FIELD_BYTE[usize::from(c)])
}

/// `tchar` of RFC 9110 5.6.2, by byte: one lookup per character of every
/// response header name.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let punct = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < punct.len() {
        t[punct[i] as usize] = true;
        i += 1;
    }
    t
};

/// Bytes a field value may hold: all but CR, LF and NUL.
static FIELD_BYTE: [bool; 256] = {
    let mut t = [true; 256];
    t[b'\r' as usize] = false;
    t[b'\n' as usize] = false;
    t[0] = false;
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocorn_protocol::frame::encode_to_vec;
    use ferrocorn_protocol::pb::{frame::Kind, Frame, Header, ResponseHead};

    fn head(status: u32, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            protocol_version: PROTOCOL_VERSION,
            status,
            reason: "OK".into(),
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: n.as_bytes().to_vec().into(),
                    value: v.as_bytes().to_vec().into(),
                })
                .collect(),
        }
    }

    fn frame(kind: Kind) -> Vec<u8> {
        encode_to_vec(&Frame { kind: Some(kind) })
    }

    #[test]
    fn head_is_parsed_after_the_last_byte_arrives() {
        let h = head(
            200,
            &[("Content-Type", "text/plain"), ("Set-Cookie", "a=1")],
        );
        let bytes = frame(Kind::ResponseHead(h.clone()));
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(Parsed::NeedMore), "cut {cut}");
        }
        let mut with_body = bytes.clone();
        with_body.extend_from_slice(&[0, 0, 0, 2, 0x32, 0]);
        assert_eq!(
            parse(&with_body),
            Ok(Parsed::Head {
                used: bytes.len(),
                head: ResponseHeadRef::Owned(h)
            })
        );
    }

    #[test]
    fn error_frame_is_logged_with_kind_and_message() {
        let bytes = frame(Kind::Error(pb::Error {
            kind: pb::error::Kind::VersionMismatch as i32,
            message: "module speaks 1, worker speaks 2".into(),
        }));
        let err = parse(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upstream sent error frame: VERSION_MISMATCH: module speaks 1, worker speaks 2"
        );
        assert_eq!(error_kind_name(99), "UNKNOWN_KIND");
    }

    #[test]
    fn other_versions_are_refused() {
        let mut h = head(200, &[]);
        h.protocol_version = 2;
        let err = parse(&frame(Kind::ResponseHead(h))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upstream sent invalid protocol version 2 (this module speaks 1)"
        );
    }

    #[test]
    fn garbage_is_an_invalid_frame() {
        let err = parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_err();
        assert!(err.to_string().starts_with("upstream sent invalid frame: "));
        let body_first = frame(Kind::ResponseBody("x".into()));
        assert!(matches!(
            parse(&body_first),
            Err(HeadError::Frame(FrameError::Malformed(_)))
        ));
    }

    fn check(h: &ResponseHead) -> Result<(), HeadError> {
        super::check(&ResponseHeadRef::Owned(h.clone()))
    }

    #[test]
    fn status_and_headers_are_checked() {
        assert_eq!(check(&head(99, &[])), Err(HeadError::Status(99)));
        assert_eq!(check(&head(1000, &[])), Err(HeadError::Status(1000)));
        assert_eq!(check(&head(999, &[])), Ok(()));
        let split = head(200, &[("X-A", "1\r\nSet-Cookie: evil=1")]);
        assert_eq!(check(&split), Err(HeadError::Header(b"X-A".to_vec())));
        let bad_name = head(200, &[("X A", "1")]);
        assert!(check(&bad_name).is_err());
        let empty_name = head(200, &[("", "1")]);
        assert!(check(&empty_name).is_err());
        let mut bad_reason = head(200, &[]);
        bad_reason.reason = "OK\r\nX: y".into();
        assert_eq!(check(&bad_reason), Err(HeadError::Reason));
        // Tabs and obs-text are legal in values.
        assert_eq!(check(&head(200, &[("X-A", "a\tb \u{e9}")])), Ok(()));
    }

    #[test]
    fn token_and_value_tables_are_the_rfc_sets() {
        for c in 0..=255u8 {
            let tchar = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
            assert_eq!(is_token(&[c]), tchar, "{c:#x}");
            assert_eq!(
                is_field_value(&[c]),
                !matches!(c, b'\r' | b'\n' | 0),
                "{c:#x}"
            );
        }
        assert!(!is_token(b""));
        assert!(is_field_value(b""));
    }

    #[test]
    fn status_line_joins_code_and_reason() {
        let line = |status, reason: &[u8]| {
            let mut out = vec![0; status_line_len(reason)?];
            write_status_line(status, reason, &mut out);
            Some(out)
        };
        assert_eq!(line(200, b"OK").unwrap(), b"200 OK");
        assert_eq!(line(418, b"I'm a teapot").unwrap(), b"418 I'm a teapot");
        assert_eq!(line(999, b"x").unwrap(), b"999 x");
        assert_eq!(line(100, b"y").unwrap(), b"100 y");
        assert_eq!(line(200, b""), None);
    }

    #[test]
    fn header_only_responses() {
        assert!(is_header_only(true, 200));
        assert!(is_header_only(false, 204));
        assert!(is_header_only(false, 304));
        assert!(!is_header_only(false, 200));
    }
}
