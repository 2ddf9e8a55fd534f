//! Builds the WSGI `environ` of a request from its decoded `request_head`.
//!
//! Speed matters here (every request pays it): the constant keys live in a
//! base dict that is copied; every other key is an interned `str` created
//! once per worker (header keys are cached as they are first seen); values
//! that rarely change (method, protocol, server name...) reuse the last
//! `str` when the bytes are the same.

use std::collections::HashMap;

use ferrocorn_protocol::request_head_view::RequestHeadView;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::input::Input;
use super::latin1;

/// Interned environ keys, created once per worker.
macro_rules! environ_keys {
    ($($field:ident = $name:literal),* $(,)?) => {
        struct Keys { $($field: Py<PyString>),* }
        impl Keys {
            fn new(py: Python<'_>) -> Keys {
                Keys { $($field: PyString::intern(py, $name).unbind()),* }
            }
        }
    };
}

environ_keys! {
    request_method = "REQUEST_METHOD",
    script_name = "SCRIPT_NAME",
    path_info = "PATH_INFO",
    query_string = "QUERY_STRING",
    content_type = "CONTENT_TYPE",
    content_length = "CONTENT_LENGTH",
    server_name = "SERVER_NAME",
    server_port = "SERVER_PORT",
    server_protocol = "SERVER_PROTOCOL",
    remote_addr = "REMOTE_ADDR",
    remote_port = "REMOTE_PORT",
    request_uri = "REQUEST_URI",
    raw_uri = "RAW_URI",
    url_scheme = "wsgi.url_scheme",
    input = "wsgi.input",
}

/// Most header and param names one worker caches keys for.
const MAX_CACHED_KEYS: usize = 256;

/// The last `str` made for one field, reused while the bytes repeat.
#[derive(Default)]
struct Recent {
    bytes: Vec<u8>,
    value: Option<Py<PyString>>,
}

impl Recent {
    fn get<'py>(&mut self, py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
        if let Some(value) = &self.value {
            if self.bytes == bytes {
                return Ok(value.bind(py).clone());
            }
        }
        let value = latin1::to_str(py, bytes)?;
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
        self.value = Some(value.clone().unbind());
        Ok(value)
    }
}

/// Builds environs for one worker.
pub struct EnvironBuilder {
    /// The constant part, copied for every request.
    base: Py<PyDict>,
    keys: Keys,
    /// `HTTP_*` keys by their bytes.
    header_keys: HashMap<Box<[u8]>, Py<PyString>>,
    /// `ferrocorn_param` keys by name.
    param_keys: HashMap<Box<[u8]>, Py<PyString>>,
    /// Room to build a key or a joined value.
    scratch: Vec<u8>,
    method: Recent,
    protocol: Recent,
    scheme: Recent,
    server_name: Recent,
    server_port: Recent,
    remote_addr: Recent,
}

impl EnvironBuilder {
    /// `errors` is `wsgi.errors`, `file_wrapper` the `wsgi.file_wrapper`
    /// callable; `multithread` says whether other threads of this process
    /// may call the app at the same time (`--threads`).
    pub fn new(
        py: Python<'_>,
        errors: Bound<'_, PyAny>,
        file_wrapper: Bound<'_, PyAny>,
        multithread: bool,
    ) -> PyResult<EnvironBuilder> {
        let keys = Keys::new(py);
        let base = PyDict::new(py);
        base.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        base.set_item("wsgi.multithread", multithread)?;
        base.set_item("wsgi.multiprocess", true)?;
        base.set_item("wsgi.run_once", false)?;
        base.set_item("wsgi.errors", errors)?;
        base.set_item("wsgi.file_wrapper", file_wrapper)?;
        base.set_item("wsgi.input_terminated", true)?;
        base.set_item(
            "SERVER_SOFTWARE",
            concat!("ferrocorn/", env!("CARGO_PKG_VERSION")),
        )?;
        // Defaults that most requests keep.
        base.set_item(keys.script_name.bind(py), "")?;
        base.set_item(keys.query_string.bind(py), "")?;
        base.set_item(keys.url_scheme.bind(py), "http")?;
        Ok(EnvironBuilder {
            base: base.unbind(),
            keys,
            header_keys: HashMap::new(),
            param_keys: HashMap::new(),
            scratch: Vec::with_capacity(64),
            method: Recent::default(),
            protocol: Recent::default(),
            scheme: Recent::default(),
            server_name: Recent::default(),
            server_port: Recent::default(),
            remote_addr: Recent::default(),
        })
    }

    pub fn build<'py>(
        &mut self,
        py: Python<'py>,
        head: &RequestHeadView<'_>,
        input: Bound<'py, Input>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.base.bind(py).copy()?;
        let k = &self.keys;
        let set =
            |key: &Py<PyString>, value: Bound<'py, PyString>| env.set_item(key.bind(py), value);

        set(&k.request_method, self.method.get(py, head.method)?)?;
        let script_name = head
            .params()
            .filter(|(name, _)| *name == b"SCRIPT_NAME")
            .last()
            .map(|(_, value)| trim_trailing_slashes(value))
            .unwrap_or_default();
        if !script_name.is_empty() {
            set(&k.script_name, latin1::to_str(py, script_name)?)?;
        }
        set(
            &k.path_info,
            latin1::to_str(py, path_info(head.path, script_name))?,
        )?;
        if !head.query_string.is_empty() {
            set(&k.query_string, latin1::to_str(py, head.query_string)?)?;
        }
        let uri = latin1::to_str(py, head.uri)?;
        set(&k.request_uri, uri.clone())?;
        set(&k.raw_uri, uri)?;
        let protocol: &[u8] = if head.protocol.is_empty() {
            b"HTTP/1.1"
        } else {
            head.protocol
        };
        set(&k.server_protocol, self.protocol.get(py, protocol)?)?;
        set(&k.server_name, self.server_name.get(py, head.server_name)?)?;
        let mut digits = [0u8; 20];
        set(
            &k.server_port,
            self.server_port
                .get(py, decimal(u64::from(head.server_port), &mut digits))?,
        )?;
        set(&k.remote_addr, self.remote_addr.get(py, head.remote_addr)?)?;
        set(
            &k.remote_port,
            latin1::to_str(py, decimal(u64::from(head.remote_port), &mut digits))?,
        )?;
        if !head.scheme.is_empty() && head.scheme != b"http" {
            set(&k.url_scheme, self.scheme.get(py, head.scheme)?)?;
        }
        if head.content_length >= 0 {
            let length = decimal(head.content_length as u64, &mut digits);
            set(&k.content_length, latin1::to_str(py, length)?)?;
        }
        env.set_item(k.input.bind(py), input)?;

        for (name, header_value) in head.headers() {
            // Names with '_' could spoof a '-' header (nginx and Gunicorn
            // drop them too); Content-Length comes from the head.
            if name.contains(&b'_') || name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let key = if name.eq_ignore_ascii_case(b"content-type") {
                self.keys.content_type.bind(py).clone()
            } else {
                self.header_key(py, name)?
            };
            let value = match env.get_item(&key)? {
                None => latin1::to_str(py, header_value)?,
                // A repeated header: one value, joined (cookies with "; ").
                Some(previous) => {
                    let previous = previous.cast_into::<PyString>()?;
                    let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                        b"; "
                    } else {
                        b", "
                    };
                    self.scratch.clear();
                    self.scratch
                        .extend_from_slice(latin1::bytes_of(&previous)?.unwrap_or_default());
                    self.scratch.extend_from_slice(sep);
                    self.scratch.extend_from_slice(header_value);
                    latin1::to_str(py, &self.scratch)?
                }
            };
            env.set_item(key, value)?;
        }
        for (name, value) in head.params() {
            if name == b"SCRIPT_NAME" {
                continue;
            }
            let key = cached_key(py, &mut self.param_keys, name)?;
            env.set_item(key, latin1::to_str(py, value)?)?;
        }
        Ok(env)
    }

    /// `HTTP_` + the name upper-cased with '-' as '_'.
    fn header_key<'py>(&mut self, py: Python<'py>, name: &[u8]) -> PyResult<Bound<'py, PyString>> {
        self.scratch.clear();
        self.scratch.extend_from_slice(b"HTTP_");
        self.scratch.extend(name.iter().map(|&c| {
            if c == b'-' {
                b'_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        let scratch = std::mem::take(&mut self.scratch);
        let key = cached_key(py, &mut self.header_keys, &scratch);
        self.scratch = scratch;
        key
    }
}

/// An interned `str` for `bytes`, cached while the cache has room.
fn cached_key<'py>(
    py: Python<'py>,
    cache: &mut HashMap<Box<[u8]>, Py<PyString>>,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyString>> {
    if let Some(key) = cache.get(bytes) {
        return Ok(key.bind(py).clone());
    }
    let key = match std::str::from_utf8(bytes) {
        Ok(text) if bytes.is_ascii() => PyString::intern(py, text),
        _ => latin1::to_str(py, bytes)?,
    };
    if cache.len() < MAX_CACHED_KEYS {
        cache.insert(bytes.into(), key.clone().unbind());
    }
    Ok(key)
}

/// `SCRIPT_NAME` without trailing slashes ("/" means the root: empty).
fn trim_trailing_slashes(script_name: &[u8]) -> &[u8] {
    let mut end = script_name.len();
    while end > 0 && script_name[end - 1] == b'/' {
        end -= 1;
    }
    &script_name[..end]
}

/// The path below `SCRIPT_NAME`, when the path is inside it (at a segment
/// boundary); else the whole path.
fn path_info<'a>(path: &'a [u8], script_name: &[u8]) -> &'a [u8] {
    match path.strip_prefix(script_name) {
        Some(rest) if rest.is_empty() || rest[0] == b'/' => rest,
        _ => path,
    }
}

/// `n` in decimal, without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::exchange::Exchange;
    use crate::python::test_support::with_python;
    use crate::worker::connection::test_pair;
    use bytes::Bytes;
    use ferrocorn_protocol::pb::{Header, Param, RequestHead};
    use prost::Message;

    fn header(name: &str, value: &[u8]) -> Header {
        Header {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::copy_from_slice(value),
        }
    }

    fn param(name: &str, value: &str) -> Param {
        Param {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    fn sample() -> RequestHead {
        RequestHead {
            protocol_version: 1,
            method: Bytes::from_static(b"POST"),
            uri: Bytes::from_static(b"/app/caf%C3%A9?q=1&r=%20"),
            path: Bytes::from_static("/app/café".as_bytes()),
            query_string: Bytes::from_static(b"q=1&r=%20"),
            protocol: Bytes::from_static(b"HTTP/1.1"),
            headers: vec![
                header("Host", b"example.com"),
                header("Content-Type", b"application/json"),
                header("Content-Length", b"7"),
                header("X-Forwarded-For", b"10.0.0.1"),
                header("x-forwarded-for", b"10.0.0.2"),
                header("Cookie", b"a=1"),
                header("Cookie", b"b=2"),
                header("X_Spoofed", b"evil"),
                header("X-Latin", b"\xe9t\xe9"),
            ],
            server_name: Bytes::from_static(b"example.com"),
            server_port: 8080,
            remote_addr: Bytes::from_static(b"192.0.2.7"),
            remote_port: 54321,
            scheme: Bytes::from_static(b"https"),
            params: vec![
                param("SCRIPT_NAME", "/app/"),
                param("HTTPS", "on"),
                param("REMOTE_ADDR", "203.0.113.9"),
            ],
            content_length: 7,
        }
    }

    fn build(head: &RequestHead, check: impl FnOnce(&Bound<'_, PyDict>)) {
        let message = head.encode_to_vec();
        let head = &RequestHeadView::decode(&message).unwrap();
        with_python(|py| {
            let errors = py.None().into_bound(py);
            let wrapper = py.None().into_bound(py);
            let mut builder = EnvironBuilder::new(py, errors, wrapper, false).unwrap();
            let (conn, _peer) = test_pair();
            let input = Bound::new(py, Input::new(Exchange::new(conn, false, false))).unwrap();
            // Twice: the second build exercises the caches.
            builder.build(py, head, input.clone()).unwrap();
            check(&builder.build(py, head, input).unwrap());
        });
    }

    fn get(env: &Bound<'_, PyDict>, key: &str) -> Option<String> {
        env.get_item(key)
            .unwrap()
            .map(|v| v.extract::<String>().unwrap())
    }

    #[test]
    fn cgi_keys_follow_pep_3333() {
        build(&sample(), |env| {
            let g = |k| get(env, k);
            assert_eq!(g("REQUEST_METHOD").as_deref(), Some("POST"));
            assert_eq!(g("SCRIPT_NAME").as_deref(), Some("/app"));
            // Native strings: the UTF-8 bytes of "é", one char per byte.
            assert_eq!(g("PATH_INFO").as_deref(), Some("/caf\u{c3}\u{a9}"));
            assert_eq!(g("QUERY_STRING").as_deref(), Some("q=1&r=%20"));
            assert_eq!(
                g("REQUEST_URI").as_deref(),
                Some("/app/caf%C3%A9?q=1&r=%20")
            );
            assert_eq!(g("RAW_URI"), g("REQUEST_URI"));
            assert_eq!(g("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
            assert_eq!(g("SERVER_NAME").as_deref(), Some("example.com"));
            assert_eq!(g("SERVER_PORT").as_deref(), Some("8080"));
            assert_eq!(g("REMOTE_PORT").as_deref(), Some("54321"));
            assert_eq!(g("CONTENT_TYPE").as_deref(), Some("application/json"));
            assert_eq!(g("CONTENT_LENGTH").as_deref(), Some("7"));
            assert_eq!(g("wsgi.url_scheme").as_deref(), Some("https"));
            assert_eq!(
                g("SERVER_SOFTWARE").as_deref(),
                Some(concat!("ferrocorn/", env!("CARGO_PKG_VERSION")))
            );
        });
    }

    #[test]
    fn headers_become_http_keys() {
        build(&sample(), |env| {
            let g = |k| get(env, k);
            assert_eq!(g("HTTP_HOST").as_deref(), Some("example.com"));
            assert_eq!(
                g("HTTP_X_FORWARDED_FOR").as_deref(),
                Some("10.0.0.1, 10.0.0.2")
            );
            assert_eq!(g("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
            assert_eq!(g("HTTP_X_LATIN").as_deref(), Some("\u{e9}t\u{e9}"));
            assert_eq!(g("HTTP_X_SPOOFED"), None, "names with '_' are dropped");
            assert_eq!(g("HTTP_CONTENT_TYPE"), None);
            assert_eq!(g("HTTP_CONTENT_LENGTH"), None);
        });
    }

    #[test]
    fn params_override_and_wsgi_keys_are_set() {
        build(&sample(), |env| {
            assert_eq!(get(env, "HTTPS").as_deref(), Some("on"));
            assert_eq!(get(env, "REMOTE_ADDR").as_deref(), Some("203.0.113.9"));
            let version = env.get_item("wsgi.version").unwrap().unwrap();
            assert_eq!(version.extract::<(i32, i32)>().unwrap(), (1, 0));
            for (key, want) in [
                ("wsgi.multithread", false),
                ("wsgi.multiprocess", true),
                ("wsgi.run_once", false),
            ] {
                assert_eq!(
                    env.get_item(key)
                        .unwrap()
                        .unwrap()
                        .extract::<bool>()
                        .unwrap(),
                    want,
                    "{key}"
                );
            }
            assert!(env
                .get_item("wsgi.input")
                .unwrap()
                .unwrap()
                .is_instance_of::<Input>());
            // Every str value is a native string.
            for (k, v) in env.iter() {
                assert!(k.is_instance_of::<PyString>());
                if let Ok(s) = v.cast::<PyString>() {
                    assert!(latin1::bytes_of(s).unwrap().is_some(), "{k}");
                }
            }
        });
    }

    #[test]
    fn minimal_head_gets_defaults() {
        let head = RequestHead {
            protocol_version: 1,
            method: Bytes::from_static(b"GET"),
            uri: Bytes::from_static(b"/"),
            path: Bytes::from_static(b"/"),
            content_length: -1,
            ..Default::default()
        };
        build(&head, |env| {
            assert_eq!(get(env, "SCRIPT_NAME").as_deref(), Some(""));
            assert_eq!(get(env, "PATH_INFO").as_deref(), Some("/"));
            assert_eq!(get(env, "QUERY_STRING").as_deref(), Some(""));
            assert_eq!(get(env, "wsgi.url_scheme").as_deref(), Some("http"));
            assert_eq!(get(env, "SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
            assert_eq!(get(env, "CONTENT_LENGTH"), None);
            assert_eq!(get(env, "CONTENT_TYPE"), None);
        });
    }

    #[test]
    fn script_name_is_stripped_only_at_a_segment_boundary() {
        assert_eq!(path_info(b"/app/x", b"/app"), b"/x");
        assert_eq!(path_info(b"/app", b"/app"), b"");
        assert_eq!(path_info(b"/application", b"/app"), b"/application");
        assert_eq!(path_info(b"/other", b"/app"), b"/other");
        assert_eq!(path_info(b"/x", b""), b"/x");
        assert_eq!(trim_trailing_slashes(b"/app//"), b"/app");
        assert_eq!(trim_trailing_slashes(b"/"), b"");
    }

    #[test]
    fn decimal_formats_without_allocating() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(8080, &mut buf), b"8080");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
