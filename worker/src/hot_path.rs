//! The worker's per-request path with no nginx, no fork and no supervisor,
//! for `cargo bench -p ferrocorn` (worker/benches/hot_path.rs): a loaded
//! app answering request frames over a socket pair, exactly as a worker
//! does between `poll` wake-ups, plus its two costly parts on their own
//! (the environ build, the bare Python call). Not a stable API.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ferrocorn_protocol::pb::RequestHead;
use ferrocorn_protocol::request_head_view::{RequestHeadView, RequestMember};

pub use crate::python::bench::{CallBench, EnvironBench};
use crate::python::WsgiApp;
use crate::worker::connection::Polled;
use crate::worker::{Connection, Direct, Handler};

/// A worker's app behind one kept-alive connection.
pub struct HotPath {
    app: WsgiApp,
    /// The app object itself, for [`CallBench`].
    raw_app: pyo3::Py<pyo3::PyAny>,
    conn: Option<Connection>,
    /// nginx's end of the connection.
    peer: UnixStream,
    response: Vec<u8>,
    /// nginx's read buffer, reused (not zeroed per request).
    chunk: Vec<u8>,
}

impl HotPath {
    /// Starts CPython with `pythonpath` on `sys.path` and loads `spec`
    /// (`module:callable`).
    pub fn new(pythonpath: PathBuf, spec: &str) -> Result<HotPath, String> {
        let (app, raw_app) = crate::python::bench::start(pythonpath, spec)?;
        let (ours, peer) = UnixStream::pair().map_err(|e| e.to_string())?;
        ours.set_nonblocking(true).map_err(|e| e.to_string())?;
        peer.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(HotPath {
            app,
            raw_app,
            conn: Some(Connection::new(
                OwnedFd::from(ours),
                Some(Duration::from_secs(5)),
            )),
            peer,
            response: Vec::with_capacity(1 << 16),
            chunk: vec![0; 1 << 16],
        })
    }

    /// The app object, for [`CallBench::new`].
    pub fn app_object(&self) -> pyo3::Py<pyo3::PyAny> {
        pyo3::Python::attach(|py| self.raw_app.clone_ref(py))
    }

    /// Sends one request's frames (`request_head`, body, `request_end`) as
    /// nginx would, lets the worker serve it, and returns the response
    /// frames' length. `request` must fit the socket buffer.
    pub fn exchange(&mut self, request: &[u8]) -> usize {
        self.peer
            .write_all(request)
            .expect("request fits the socket");
        let mut conn = self.conn.take().expect("the connection stays open");
        let message = match conn.poll_frame().expect("a valid request") {
            Polled::Frame(RequestMember::Head(message)) => message,
            other => panic!("expected a request_head, got {other:?}"),
        };
        let head = RequestHeadView::decode(&message).expect("a valid head");
        conn.begin_body(head.content_length);
        let mut conn = self.app.handle(conn, &head).expect("kept alive");
        conn.drain_body(&Direct).expect("body drained");
        self.conn = Some(conn);
        self.response.clear();
        loop {
            match self.peer.read(&mut self.chunk) {
                Ok(0) => panic!("the worker closed the connection"),
                Ok(n) => self.response.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the response: {e}"),
            }
        }
        self.response.len()
    }

    /// The last response's frames.
    pub fn response(&self) -> &[u8] {
        &self.response
    }
}

/// A typical request head as nginx's module sends it: a browser's GET
/// with 8 headers, behind `ferrocorn_pass`.
pub fn typical_head() -> RequestHead {
    use ferrocorn_protocol::pb::Header;
    let header = |n: &'static str, v: &'static str| Header {
        name: n.as_bytes().to_vec().into(),
        value: v.as_bytes().to_vec().into(),
    };
    RequestHead {
        protocol_version: ferrocorn_protocol::PROTOCOL_VERSION,
        method: "GET".into(),
        uri: "/hello?name=world".into(),
        path: "/hello".into(),
        query_string: "name=world".into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![
            header("Host", "example.com"),
            header(
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            ),
            header("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            header("Accept-Language", "en-US,en;q=0.5"),
            header("Accept-Encoding", "gzip, deflate, br"),
            header("Cookie", "session=0123456789abcdef; theme=dark"),
            header("X-Forwarded-For", "203.0.113.7"),
            header("X-Forwarded-Proto", "https"),
        ],
        server_name: "example.com".into(),
        server_port: 80,
        remote_addr: "127.0.0.1".into(),
        remote_port: 50000,
        scheme: "http".into(),
        params: vec![],
        content_length: -1,
    }
}
