//! The access log: one line per request, written by the worker that served
//! it, in Gunicorn's `access_log_format` (`%(h)s %(r)s %(s)s`...).
//!
//! The format is parsed once ([`AccessFormat::parse`], at settings time,
//! so a typo stops the start); the master opens the file before forking,
//! workers inherit it and reopen it on SIGUSR1. Each line goes out with
//! one `write` to a file opened in append mode, so workers never
//! interleave.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ferrocorn_protocol::request_head_view::RequestHeadView;

use crate::logging;
use crate::settings::LogTarget;
use crate::worker::HeadFields;

/// Gunicorn's default `access_log_format`.
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// One `%(...)s` of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// A single-letter atom (`h`, `r`, `s`...); unknown letters print `-`.
    Letter(char),
    /// `{name}i`: a request header (case-insensitive).
    RequestHeader(String),
    /// `{name}o`: a response header (case-insensitive).
    ResponseHeader(String),
    /// `{NAME}e`: an environment variable of the worker.
    Environ(String),
    /// Anything else Gunicorn would look up and not find.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Atom(Atom),
}

/// A parsed `access_log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
    /// Whether any atom needs the response headers (decoded only then).
    wants_response_headers: bool,
}

impl AccessFormat {
    /// Parses Python %-formatting with named atoms: `%(name)s` (or `d`),
    /// `%%` for a percent sign.
    pub fn parse(format: &str) -> Result<AccessFormat, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(i) = rest.find('%') {
            text.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                text.push('%');
                rest = after;
                continue;
            }
            let Some(inner) = rest.strip_prefix('(') else {
                return Err(format!(
                    "expected %(name)s or %% at '%{}'",
                    rest.chars().take(8).collect::<String>()
                ));
            };
            let close = inner
                .find(')')
                .ok_or("an unclosed %( in the access log format")?;
            let name = &inner[..close];
            let conversion = inner[close + 1..].chars().next();
            if !matches!(conversion, Some('s' | 'd')) {
                return Err(format!("expected %({name})s, the atom ends without 's'"));
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Atom(atom(name)));
            rest = &inner[close + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let wants_response_headers = pieces
            .iter()
            .any(|p| matches!(p, Piece::Atom(Atom::ResponseHeader(_))));
        Ok(AccessFormat {
            pieces,
            wants_response_headers,
        })
    }

    /// The line for one request, without the newline.
    pub fn render(&self, facts: &RequestFacts<'_>) -> String {
        let response_headers = match (self.wants_response_headers, facts.response_head) {
            (true, Some(head)) => head.headers(),
            _ => Vec::new(),
        };
        let mut out = String::with_capacity(160);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Atom(a) => render_atom(&mut out, a, facts, &response_headers),
            }
        }
        out
    }
}

fn atom(name: &str) -> Atom {
    if let Some(inner) = name.strip_prefix('{') {
        if let Some((key, kind)) = inner.rsplit_once('}') {
            return match kind {
                "i" => Atom::RequestHeader(key.to_ascii_lowercase()),
                "o" => Atom::ResponseHeader(key.to_ascii_lowercase()),
                "e" => Atom::Environ(key.to_owned()),
                _ => Atom::Unknown,
            };
        }
    }
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Atom::Letter(c),
        _ => Atom::Unknown,
    }
}

/// What the access log and the metrics know about a finished request.
pub struct RequestFacts<'a> {
    pub head: &'a RequestHeadView<'a>,
    /// The status sent, `None` when no response head went out.
    pub status: Option<u16>,
    /// Body bytes sent.
    pub sent: u64,
    /// The response head as sent, for `%({name}o)s`.
    pub response_head: Option<&'a HeadFields>,
    /// From the request head to the end of the response.
    pub duration: Duration,
}

impl RequestFacts<'_> {
    fn request_header(&self, lower: &str) -> Option<&[u8]> {
        self.head
            .headers()
            .find(|(name, _)| name.eq_ignore_ascii_case(lower.as_bytes()))
            .map(|(_, value)| value)
    }

    /// REMOTE_ADDR: a `ferrocorn_param REMOTE_ADDR` wins, as in environ.
    fn remote_addr(&self) -> &[u8] {
        self.head
            .params()
            .filter(|(name, _)| *name == b"REMOTE_ADDR")
            .last()
            .map_or(self.head.remote_addr, |(_, value)| value)
    }
}

fn push_bytes(out: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        out.push('-');
    } else {
        // Header bytes are latin-1 (as in environ); control characters
        // would let a client forge log lines: escape them.
        for &b in bytes {
            match b {
                b'\\' => out.push_str("\\\\"),
                b'"' => out.push_str("\\\""),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
    }
}

fn render_atom(
    out: &mut String,
    atom: &Atom,
    facts: &RequestFacts<'_>,
    response_headers: &[(Vec<u8>, Vec<u8>)],
) {
    use std::fmt::Write as _;
    let head = facts.head;
    let micros = facts.duration.as_micros();
    // Writing to a String cannot fail.
    match atom {
        Atom::Letter('h') => push_bytes(out, facts.remote_addr()),
        Atom::Letter('u') => {
            let user = facts.request_header("authorization").and_then(basic_user);
            push_bytes(out, user.as_deref().unwrap_or_default());
        }
        Atom::Letter('t') => out.push_str(&clf_time(SystemTime::now())),
        Atom::Letter('r') => {
            push_bytes(out, head.method);
            out.push(' ');
            push_bytes(out, head.uri);
            out.push(' ');
            push_bytes(out, head.protocol);
        }
        Atom::Letter('m') => push_bytes(out, head.method),
        Atom::Letter('U') => push_bytes(out, head.path),
        Atom::Letter('q') => push_bytes(out, head.query_string),
        Atom::Letter('H') => push_bytes(out, head.protocol),
        Atom::Letter('s') => match facts.status {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => out.push('-'),
        },
        Atom::Letter('b' | 'B') => {
            let _ = write!(out, "{}", facts.sent);
        }
        Atom::Letter('f') => push_bytes(out, facts.request_header("referer").unwrap_or_default()),
        Atom::Letter('a') => {
            push_bytes(out, facts.request_header("user-agent").unwrap_or_default());
        }
        Atom::Letter('T') => {
            let _ = write!(out, "{}", facts.duration.as_secs());
        }
        Atom::Letter('M') => {
            let _ = write!(out, "{}", facts.duration.as_millis());
        }
        Atom::Letter('D') => {
            let _ = write!(out, "{micros}");
        }
        Atom::Letter('L') => {
            let _ = write!(out, "{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        }
        Atom::Letter('p') => {
            let _ = write!(out, "<{}>", std::process::id());
        }
        Atom::RequestHeader(name) => {
            push_bytes(out, facts.request_header(name).unwrap_or_default());
        }
        Atom::ResponseHeader(name) => {
            let value = response_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map_or(&b""[..], |(_, v)| v);
            push_bytes(out, value);
        }
        Atom::Environ(name) => {
            push_bytes(out, std::env::var(name).unwrap_or_default().as_bytes());
        }
        // `l` (identd) is always `-`, like an unknown atom.
        Atom::Letter(_) | Atom::Unknown => out.push('-'),
    }
}

/// The user name of a `Basic` Authorization header, decoded as Gunicorn
/// decodes it (`base64.b64decode`: the standard alphabet, padding
/// required); a token that does not decode gives no user (`-`).
fn basic_user(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let (scheme, token) = std::str::from_utf8(value).ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let user = decoded.split(|&b| b == b':').next()?;
    Some(user.to_vec())
}

/// Common Log Format time: `[10/Oct/2000:13:55:36 -0700]`.
fn clf_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(tm) = logging::local_time(at) else {
        return "[-]".into();
    };
    let offset = tm.tm_gmtoff / 60;
    format!(
        "[{:02}/{}/{:04}:{:02}:{:02}:{:02} {}{:02}{:02}]",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// The open access log of this process.
struct Sink {
    format: AccessFormat,
    target: LogTarget,
    file: File,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Opens the access log (the master, before forking). Without a target
/// there is no access log and [`write`] does nothing.
pub fn init(target: Option<&LogTarget>, format: &str) -> Result<(), String> {
    let Some(target) = target else { return Ok(()) };
    let format = AccessFormat::parse(format)?;
    let file = logging::open(target)
        .map_err(|e| e.to_string())?
        .ok_or("the access log cannot go to standard error")?;
    *SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some(Sink {
        format,
        target: target.clone(),
        file,
    });
    Ok(())
}

/// Writes the line of one request, if there is an access log.
pub fn write(facts: &RequestFacts<'_>) {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(sink) = sink.as_mut() else { return };
    let mut line = sink.format.render(facts);
    line.push('\n');
    // Nowhere to report a failing log write: drop it.
    let _ = sink.file.write_all(line.as_bytes());
}

/// Reopens the access log file (SIGUSR1, after rotation), keeping its
/// descriptor number.
pub fn reopen() -> io::Result<()> {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(sink) = sink.as_mut() else {
        return Ok(());
    };
    if let Some(new) = logging::open(&sink.target)? {
        // SAFETY: both descriptors are open files; `sink.file` stays the
        // owner of its number, which now names the new file.
        if unsafe { libc::dup2(new.as_raw_fd(), sink.file.as_raw_fd()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferrocorn_protocol::pb::{Header, Param, RequestHead};
    use prost::Message;

    fn head() -> RequestHead {
        let h = |n: &str, v: &str| Header {
            name: Bytes::copy_from_slice(n.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        };
        RequestHead {
            protocol_version: 1,
            method: Bytes::from_static(b"GET"),
            uri: Bytes::from_static(b"/a%20b?x=1"),
            path: Bytes::from_static(b"/a b"),
            query_string: Bytes::from_static(b"x=1"),
            protocol: Bytes::from_static(b"HTTP/1.1"),
            headers: vec![
                h("User-Agent", "curl/8.0"),
                h("Referer", "http://example.com/"),
                h("Authorization", "Basic YWxpY2U6c2VjcmV0"),
                h("X-Evil", "a\"\nb"),
            ],
            remote_addr: Bytes::from_static(b"192.0.2.1"),
            content_length: -1,
            ..Default::default()
        }
    }

    fn facts<'a>(
        head: &'a RequestHeadView<'a>,
        fields: Option<&'a HeadFields>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            head,
            status: Some(200),
            sent: 1234,
            response_head: fields,
            duration: Duration::from_micros(1_500_250),
        }
    }

    #[test]
    fn gunicorns_default_format() {
        let message = head().encode_to_vec();
        let h = RequestHeadView::decode(&message).unwrap();
        let line = AccessFormat::parse(DEFAULT_FORMAT)
            .unwrap()
            .render(&facts(&h, None));
        let (start, rest) = line.split_once(" [").unwrap();
        assert_eq!(start, "192.0.2.1 - alice");
        let (_time, rest) = rest.split_once("] ").unwrap();
        assert_eq!(
            rest,
            r#""GET /a%20b?x=1 HTTP/1.1" 200 1234 "http://example.com/" "curl/8.0""#
        );
    }

    #[test]
    fn every_atom() {
        let message = head().encode_to_vec();
        let h = RequestHeadView::decode(&message).unwrap();
        let mut fields = HeadFields::new(200, b"OK");
        fields.push_header(b"Content-Type", b"text/plain");
        let f = AccessFormat::parse(
            "%(m)s %(U)s %(q)s %(H)s %(T)s %(M)s %(D)s %(L)s %(B)s %%(s) \
             %({user-agent}i)s %({content-type}o)s %({missing}i)s %(zz)s %(Z)s %({x-evil}i)s",
        )
        .unwrap();
        assert_eq!(
            f.render(&facts(&h, Some(&fields))),
            r#"GET /a b x=1 HTTP/1.1 1 1500 1500250 1.500250 1234 %(s) curl/8.0 text/plain - - - a\"\x0ab"#
        );
        let pid = AccessFormat::parse("%(p)s")
            .unwrap()
            .render(&facts(&h, None));
        assert_eq!(pid, format!("<{}>", std::process::id()));
    }

    #[test]
    fn a_param_overrides_the_remote_address() {
        let mut h = head();
        h.params.push(Param {
            name: Bytes::from_static(b"REMOTE_ADDR"),
            value: Bytes::from_static(b"10.0.0.9"),
        });
        let message = h.encode_to_vec();
        let h = RequestHeadView::decode(&message).unwrap();
        let f = AccessFormat::parse("%(h)s %(s)s").unwrap();
        let mut facts = facts(&h, None);
        facts.status = None;
        assert_eq!(f.render(&facts), "10.0.0.9 -");
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(AccessFormat::parse("%(h)").is_err());
        assert!(AccessFormat::parse("%(h").is_err());
        assert!(AccessFormat::parse("100% sure").is_err());
        assert!(AccessFormat::parse("%(h)x").is_err());
        assert!(AccessFormat::parse("plain text").is_ok());
    }

    #[test]
    fn clf_time_shape() {
        let t = clf_time(SystemTime::now());
        // [10/Oct/2000:13:55:36 -0700]
        assert_eq!(t.len(), 28, "{t}");
        assert_eq!(&t[3..4], "/");
    }

    #[test]
    fn decodes_the_user_of_a_basic_header_and_nothing_else() {
        assert_eq!(
            basic_user(b"Basic YWxpY2U6c2VjcmV0"),
            Some(b"alice".to_vec())
        );
        assert_eq!(basic_user(b"basic  Ym9iOg== "), Some(b"bob".to_vec()));
        assert_eq!(basic_user(b"Bearer YWxpY2U6c2VjcmV0"), None);
        assert_eq!(basic_user(b"Basic not*base64"), None);
        // Python's b64decode refuses a token whose padding is missing.
        assert_eq!(basic_user(b"Basic Ym9iOg"), None);
    }
}
