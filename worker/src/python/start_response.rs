//! `start_response(status, headers, exc_info=None)` and the `write()`
//! callable it returns.
//!
//! The status and every header are validated here, so a bad value raises
//! inside the app's own call, with a message naming it: a native `str`,
//! latin-1, no CR/LF or other control characters. Valid headers are
//! encoded into the `response_head` frame right away; hop-by-hop headers
//! (which nginx owns) are dropped, like Gunicorn does.

use std::sync::Arc;

use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::errors::type_name;
use super::exchange::Exchange;
use super::latin1;
use crate::worker::{HeadFields, PendingHead, WriteError};

#[pyclass(frozen, module = "ferrocorn", name = "StartResponse")]
pub struct StartResponse {
    exchange: Arc<Exchange>,
}

impl StartResponse {
    pub fn new(exchange: Arc<Exchange>) -> StartResponse {
        StartResponse { exchange }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let exchange = &slf.get().exchange;
        {
            let state = exchange.lock()?;
            match exc_info.filter(|e| !e.is_none()) {
                // Too late to change the status: re-raise the app's error.
                Some(exc) if state.response.head_sent() => {
                    return Err(PyErr::from_value(exc.get_item(1)?))
                }
                Some(_) => {}
                None if state.response.has_status() => {
                    return Err(PyAssertionError::new_err(
                        "start_response() called a second time without exc_info",
                    ))
                }
                None => {}
            }
        }
        let head = pending_head(status, headers)?;
        exchange.lock()?.response.set_head(head);
        slf.getattr(intern!(py, "write"))
    }

    /// PEP 3333's `write(data)`: sends `data` before returning.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                type_name(data)
            ))
        })?;
        let mut state = self.exchange.lock()?;
        let (conn, writer) = state.parts()?;
        let data = data.as_bytes();
        match self.exchange.io(py, |b| writer.body(conn, data, true, b)) {
            Ok(()) => Ok(()),
            Err(WriteError::Conn(e)) => Err(state.broke("write() failed", e)),
            Err(e) => Err(PyRuntimeError::new_err(e.to_string())),
        }
    }
}

/// Validates `status` and `headers` and encodes them.
fn pending_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<PendingHead> {
    let status_str = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "status must be a str like '200 OK', not {}",
            type_name(status)
        ))
    })?;
    let status_bytes = latin1::bytes_of(status_str)?
        .ok_or_else(|| PyValueError::new_err(format!("status {} is not latin-1", repr(status))))?;
    let (code, reason) = parse_status(status_bytes).map_err(PyValueError::new_err)?;
    let mut fields = HeadFields::new(code, reason);
    let mut content_length = None;

    let items = if let Ok(list) = headers.cast::<PyList>() {
        list.as_sequence().clone()
    } else if let Ok(tuple) = headers.cast::<PyTuple>() {
        tuple.as_sequence().clone()
    } else {
        return Err(PyTypeError::new_err(format!(
            "response headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        )));
    };
    for item in items.try_iter()? {
        let item = item?;
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "response header must be a (name, value) tuple, not {}",
                    repr(&item)
                ))
            })?;
        let (name_obj, value_obj) = (pair.get_item(0)?, pair.get_item(1)?);
        let name = native(&name_obj, "name", None)?;
        check_header_name(name).map_err(PyValueError::new_err)?;
        let value = native(&value_obj, "value", Some(&name_obj))?;
        check_header_value(value).map_err(|why| {
            PyValueError::new_err(format!(
                "response header {}: {why}: {}",
                repr(&name_obj),
                repr(&value_obj)
            ))
        })?;
        if is_hop_by_hop(name) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(parse_content_length(value).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "invalid Content-Length header value {}",
                    repr(&value_obj)
                ))
            })?);
        }
        fields.push_header(name, value);
    }
    Ok(PendingHead {
        fields,
        status: code,
        content_length,
    })
}

/// The latin-1 bytes of a header name or value, or a TypeError/ValueError
/// naming it.
fn native<'a>(
    obj: &'a Bound<'_, PyAny>,
    what: &str,
    header: Option<&Bound<'_, PyAny>>,
) -> PyResult<&'a [u8]> {
    // Messages are built on the error paths only: this runs per header.
    let of = || {
        header
            .map(|h| format!(" of header {}", repr(h)))
            .unwrap_or_default()
    };
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response header {what}{} must be str, not {}: {}",
            of(),
            type_name(obj),
            repr(obj)
        ))
    })?;
    latin1::bytes_of(s)?.ok_or_else(|| {
        PyValueError::new_err(format!(
            "response header {what}{} is not latin-1: {}",
            of(),
            repr(obj)
        ))
    })
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into())
}

/// Splits `"200 OK"` into 200 and `OK`. The reason may be empty, but the
/// code is three digits, 100-999, and no control characters appear.
pub fn parse_status(status: &[u8]) -> Result<(u16, &[u8]), String> {
    let bad = || {
        format!(
            "invalid status '{}': expected 'NNN reason', e.g. '200 OK'",
            String::from_utf8_lossy(status).escape_debug()
        )
    };
    if status.len() < 3 || !status[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let reason = match &status[3..] {
        [] => &[][..],
        [b' ', reason @ ..] => reason,
        _ => return Err(bad()),
    };
    if reason.iter().any(|&c| is_control(c)) {
        return Err(bad());
    }
    let code = status[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if code < 100 {
        return Err(bad());
    }
    Ok((code, reason))
}

fn is_control(c: u8) -> bool {
    (c < 0x20 && c != b'\t') || c == 0x7f
}

/// A header name must be an HTTP token.
pub fn check_header_name(name: &[u8]) -> Result<(), String> {
    let token = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c);
    if !name.is_empty() && name.iter().all(token) {
        Ok(())
    } else {
        Err(format!(
            "invalid response header name '{}'",
            String::from_utf8_lossy(name).escape_debug()
        ))
    }
}

/// A header value must not contain CR, LF or other control characters.
pub fn check_header_value(value: &[u8]) -> Result<(), String> {
    if value.iter().any(|&c| is_control(c)) {
        Err("the value contains a newline or control character".into())
    } else {
        Ok(())
    }
}

/// Headers of one hop, which the app must not set (PEP 3333); nginx owns
/// them.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"200 OK"), Ok((200, &b"OK"[..])));
        assert_eq!(parse_status(b"404 Not Found"), Ok((404, &b"Not Found"[..])));
        assert_eq!(parse_status(b"299 "), Ok((299, &b""[..])));
        assert_eq!(parse_status(b"204"), Ok((204, &b""[..])));
        for bad in [
            &b"20 OK"[..],
            b"2000 OK",
            b"OK 200",
            b"200OK",
            b"099 Low",
            b"200 OK\r\n",
            b"",
        ] {
            assert!(parse_status(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_status(b"abc").unwrap_err(),
            "invalid status 'abc': expected 'NNN reason', e.g. '200 OK'"
        );
    }

    #[test]
    fn header_names_and_values() {
        assert!(check_header_name(b"X-Custom_1").is_ok());
        assert!(check_header_name(b"").is_err());
        assert!(check_header_name(b"Bad Name").is_err());
        assert!(check_header_name(b"Bad:Name").is_err());
        assert!(check_header_name(b"X\r\nInjected").is_err());
        assert!(check_header_value(b"text/html; charset=utf-8\t").is_ok());
        assert!(check_header_value(b"a\r\nSet-Cookie: x").is_err());
        assert!(check_header_value(b"nul\0").is_err());
    }

    #[test]
    fn hop_by_hop_and_content_length() {
        assert!(is_hop_by_hop(b"Transfer-Encoding"));
        assert!(is_hop_by_hop(b"connection"));
        assert!(!is_hop_by_hop(b"Content-Length"));
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b"4 2"), None);
        assert_eq!(parse_content_length(b""), None);
    }
}
