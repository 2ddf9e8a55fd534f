//! A worker's serving loop: one `poll` over the listening sockets and this
//! worker's idle kept-alive connections, with a tick of at most a second
//! for the heartbeat and the stop flag. A readable connection has its
//! request served to completion, synchronously, by the [`Handler`]; then it
//! waits for the next request (nginx upstream keepalive) until
//! `--keep-alive` seconds pass or the peer closes.
//!
//! No Python here: the handler is the only thing that touches it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ferrocorn_protocol::pb::error::Kind as ErrorKind;
use ferrocorn_protocol::request_head_view::{RequestHeadView, RequestMember};
use ferrocorn_protocol::PROTOCOL_VERSION;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{getppid, Pid};

use super::connection::{kind_name, ConnError, Connection, Direct, Polled};
use super::idle_trim::IdleTrim;
use super::in_flight;
use super::recycle::{CountRequests, Recycle};
use crate::logging;
use crate::signals;
use crate::supervisor::heartbeat::{Pulse, BEAT_INTERVAL};
use crate::supervisor::listener::Listener;

/// Serves one request.
pub trait Handler {
    /// Serves the request whose head was just read, the body still on the
    /// connection. Returns the connection if it can carry another request.
    fn handle(&mut self, conn: Connection, head: &RequestHeadView<'_>) -> Option<Connection>;

    /// Asked between requests, at most once a second: a reason to restart
    /// this worker (`--reload` saw a file change), if there is one.
    fn restart_reason(&mut self) -> Option<String> {
        None
    }
}

/// The serving loop's settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Idle time after a response before the connection is closed; zero
    /// closes it right after the response.
    pub keep_alive: Duration,
    /// Longest wait for the socket within an exchange (`--timeout`).
    pub io_timeout: Option<Duration>,
    /// The master; when it is gone, the worker stops.
    pub master: Pid,
}

/// How long a new connection may take to send its first request.
pub(super) const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(30);
/// Most idle connections one worker keeps; the oldest is closed beyond.
const MAX_IDLE: usize = 1024;

/// A connection between requests.
pub(super) struct Idle {
    pub conn: Connection,
    pub deadline: Instant,
}

/// Most connections a stopping worker takes from the listen queue.
pub(super) const MAX_DRAIN: usize = 1024;

/// Serves until a graceful stop (SIGTERM), recycling or the master's death.
pub fn serve<H: Handler>(
    listeners: &[Listener],
    pulse: &mut Pulse,
    config: &ServeConfig,
    recycle: &mut Recycle,
    handler: &mut H,
) {
    let mut idle: Vec<Idle> = Vec::new();
    let mut ready: Vec<bool> = Vec::new();
    let mut last_check = Instant::now();
    // Booting (importing the app) freed memory; give it back before serving.
    let mut trim = IdleTrim::default();
    trim.now();
    loop {
        let now = Instant::now();
        pulse.beat(now);
        match between_requests(now, &mut last_check, config, recycle, || {
            handler.restart_reason()
        }) {
            Some(LoopEnd::Quit) => return, // quick stop: nothing more is served
            Some(LoopEnd::Stop) => break,
            None => {}
        }
        expire_idle(&mut idle, now);

        let wait = idle
            .iter()
            .map(|c| c.deadline - now)
            .min()
            .unwrap_or(BEAT_INTERVAL)
            .min(BEAT_INTERVAL)
            .min(trim.wait());
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| l.as_fd())
            .chain(idle.iter().map(|c| c.conn.fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let timeout =
            PollTimeout::try_from(wait + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) => {
                trim.idle();
                continue;
            }
            Err(Errno::EINTR) => continue,
            Ok(_) => trim.busy(),
            Err(e) => {
                error!("poll failed: {e}");
                break;
            }
        }
        ready.clear();
        ready.extend(fds.iter().map(|f| f.any().unwrap_or(true)));
        drop(fds);

        let (listeners_ready, conns_ready) = ready.split_at(listeners.len());
        // Take ready connections out (backwards, so swap_remove is safe).
        let mut serving = Vec::new();
        for i in (0..idle.len()).rev() {
            if conns_ready[i] {
                serving.push(idle.swap_remove(i));
            }
        }
        for Idle { conn, deadline } in serving {
            let was_partial = conn.partial_frame_len() > 0;
            if let Some(back) = serve_connection(conn, handler, config, recycle) {
                if was_partial && back.partial_frame_len() > 0 {
                    // Still the same frame: a trickling peer gets no more
                    // time than the first deadline (no slowloris).
                    idle.push(Idle {
                        conn: back,
                        deadline,
                    });
                } else {
                    park(&mut idle, back, config.keep_alive, config);
                }
            }
        }
        for (listener, _) in listeners.iter().zip(listeners_ready).filter(|(_, r)| **r) {
            // One connection per wake-up, so workers share new connections.
            if let Some(fd) = accept(listener, &mut idle) {
                let conn = Connection::new(fd, config.io_timeout);
                if let Some(back) = serve_connection(conn, handler, config, recycle) {
                    let wait = first_wait(&back, config);
                    park(&mut idle, back, wait, config);
                }
            }
        }
    }
    finish_idle(idle, handler, config, recycle);
    // Recycling leaves the queue to the other workers; a stop serves it.
    if signals::stop_requested() {
        drain_listeners(listeners, handler, config, recycle);
    }
}

/// Set once a reason to restart (`--reload`) ended the loop.
static RELOADING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this worker stopped serving to reload (a changed file): it
/// then runs `worker_int` on its way out, as Gunicorn's reloader does.
pub fn reloading() -> bool {
    RELOADING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Why a serving loop ends.
pub(super) enum LoopEnd {
    /// SIGINT/SIGQUIT with a `worker_int` hook: nothing more is served.
    Quit,
    /// SIGTERM, recycling or the master's death: finish, then exit.
    Stop,
}

/// The checks of every loop iteration: stop signals, recycling, the
/// master's death and a reason to restart (`--reload`, asked of
/// `restart_reason`), both once per beat, and a log reopen request.
#[inline(always)]
pub(super) fn between_requests(
    now: Instant,
    last_check: &mut Instant,
    config: &ServeConfig,
    recycle: &Recycle,
    restart_reason: impl FnOnce() -> Option<String>,
) -> Option<LoopEnd> {
    if signals::quit_requested() {
        return Some(LoopEnd::Quit);
    }
    if signals::stop_requested() {
        return Some(LoopEnd::Stop);
    }
    if let Some(why) = recycle.due() {
        info!("Autorestarting worker after current request: {why}");
        if let Some(limit) = recycle.due_limit() {
            crate::metrics::restarted(limit);
        }
        return Some(LoopEnd::Stop);
    }
    if now.duration_since(*last_check) >= BEAT_INTERVAL {
        *last_check = now;
        if getppid() != config.master {
            info!("Parent changed, shutting down");
            return Some(LoopEnd::Stop);
        }
        if let Some(why) = restart_reason() {
            // Like recycling: the master starts a fresh worker.
            info!("Worker reloading: {why}");
            RELOADING.store(true, std::sync::atomic::Ordering::Relaxed);
            return Some(LoopEnd::Stop);
        }
    }
    if signals::take_reopen_request() {
        if let Err(e) = logging::reopen() {
            error!("cannot reopen the error log: {e}");
        }
        if let Err(e) = crate::access_log::reopen() {
            error!("cannot reopen the access log: {e}");
        }
    }
    None
}

/// Accepts one connection, if one is there. Out of descriptors, closes
/// the oldest idle connection (or pauses, to let other workers accept).
pub(super) fn accept(listener: &Listener, idle: &mut Vec<Idle>) -> Option<OwnedFd> {
    match listener.accept() {
        Ok(fd) => return Some(fd),
        Err(Errno::EAGAIN | Errno::ECONNABORTED | Errno::EINTR) => {}
        Err(e @ (Errno::EMFILE | Errno::ENFILE)) => {
            warning!("accept failed on {}: {e}", listener.addr());
            if let Some(oldest) = (0..idle.len()).min_by_key(|&i| idle[i].deadline) {
                idle.swap_remove(oldest);
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(e) => error!("accept failed on {}: {e}", listener.addr()),
    }
    None
}

/// How long a new connection is kept for its next request: the longer
/// wait for a first request (nginx may connect before it sends), or the
/// keep-alive once it has served one (the request came with the connect).
pub(super) fn first_wait(conn: &Connection, config: &ServeConfig) -> Duration {
    if conn.has_served() {
        return config.keep_alive;
    }
    config
        .keep_alive
        .max(config.io_timeout.unwrap_or(FIRST_REQUEST_WAIT))
}

/// Closes idle connections whose time is up.
#[inline(always)]
pub(super) fn expire_idle(idle: &mut Vec<Idle>, now: Instant) {
    // Idle connections are in no particular order: swap_remove will do.
    let mut i = 0;
    while i < idle.len() {
        if idle[i].deadline > now {
            i += 1;
            continue;
        }
        let c = idle.swap_remove(i);
        if c.conn.partial_frame_len() > 0 {
            warning!(
                "closing connection: timed out with an incomplete frame ({} bytes)",
                c.conn.partial_frame_len()
            );
        }
    }
}

/// The last request of each connection: no keep-alive.
pub(super) fn last_round(config: &ServeConfig) -> ServeConfig {
    ServeConfig {
        keep_alive: Duration::ZERO,
        ..config.clone()
    }
}

/// On the way out: serves requests that already arrived on idle
/// connections (nginx may have sent one just before the stop), then closes
/// them all.
fn finish_idle<H: Handler, C: CountRequests>(
    idle: Vec<Idle>,
    handler: &mut H,
    config: &ServeConfig,
    counter: &mut C,
) {
    debug!("closing {} idle connections", idle.len());
    let last = last_round(config);
    let first_request_deadline = Instant::now() + config.io_timeout.unwrap_or(FIRST_REQUEST_WAIT);
    for Idle { conn, .. } in idle {
        finish_connection(conn, first_request_deadline, handler, &last, counter);
    }
}

/// On the way out, one connection: serves what already arrived on it, or
/// the first request of one nginx just opened (waiting for it until
/// `first_request_deadline`), then closes it. `last` is [`last_round`].
pub(super) fn finish_connection<H: Handler, C: CountRequests>(
    conn: Connection,
    first_request_deadline: Instant,
    handler: &mut H,
    last: &ServeConfig,
    counter: &mut C,
) {
    if conn.has_served() {
        // Kept alive between requests: nginx retries a request that
        // meets a closed cached connection, so only what already
        // arrived is served.
        let mut fds = [PollFd::new(conn.fd(), PollFlags::POLLIN)];
        if matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1..)) {
            serve_connection(conn, handler, last, counter);
        }
    } else {
        // Accepted, first request not written yet: nginx would not
        // retry it, so wait for it as for a queued connection.
        serve_first_request(conn, first_request_deadline, handler, last, counter);
    }
}

/// Waits (until `deadline`) for the first request of a connection nginx
/// opened and serves it; for connections accepted while stopping.
fn serve_first_request<H: Handler, C: CountRequests>(
    conn: Connection,
    deadline: Instant,
    handler: &mut H,
    last: &ServeConfig,
    counter: &mut C,
) {
    let mut conn = Some(conn);
    while let Some(c) = conn.take() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(c.fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(1..) => conn = serve_connection(c, handler, last, counter),
            Err(Errno::EINTR) => conn = Some(c),
            _ => {}
        }
    }
}

/// On the way out: serves the connections nginx already made that wait in
/// the listen queue. When the master stops, nobody else would accept them
/// and nginx would see them reset; on a reload or recycling, this only
/// shares the queue with the other workers.
fn drain_listeners<H: Handler, C: CountRequests>(
    listeners: &[Listener],
    handler: &mut H,
    config: &ServeConfig,
    counter: &mut C,
) {
    let last = last_round(config);
    let mut drained = 0;
    for listener in listeners {
        while drained < MAX_DRAIN {
            let Ok(fd) = listener.accept() else { break };
            drained += 1;
            let deadline = Instant::now() + config.io_timeout.unwrap_or(FIRST_REQUEST_WAIT);
            // Connected but the request not written yet: wait for it.
            let conn = Connection::new(fd, config.io_timeout);
            serve_first_request(conn, deadline, handler, &last, counter);
        }
    }
    if drained > 0 {
        debug!("served {drained} queued connections before exiting");
    }
}

/// Keeps a connection for its next request, for `wait` at most.
/// A connection holding part of a frame gets the I/O timeout instead: a
/// frame in progress must complete in time, however long idle may last.
pub(super) fn park(idle: &mut Vec<Idle>, conn: Connection, wait: Duration, config: &ServeConfig) {
    let wait = if conn.partial_frame_len() > 0 {
        config.io_timeout.unwrap_or(FIRST_REQUEST_WAIT)
    } else {
        wait
    };
    if wait.is_zero() {
        return;
    }
    if idle.len() >= MAX_IDLE {
        if let Some(oldest) = (0..idle.len()).min_by_key(|&i| idle[i].deadline) {
            idle.swap_remove(oldest);
        }
    }
    idle.push(Idle {
        conn,
        deadline: Instant::now() + wait,
    });
}

/// Serves the requests buffered or readable on `conn` without waiting for
/// new ones. Returns the connection when it should stay open.
pub(super) fn serve_connection<H: Handler, C: CountRequests>(
    mut conn: Connection,
    handler: &mut H,
    config: &ServeConfig,
    counter: &mut C,
) -> Option<Connection> {
    loop {
        let message = match conn.poll_frame() {
            Ok(Polled::Frame(RequestMember::Head(message))) => message,
            Ok(Polled::Frame(RequestMember::Other(other))) => {
                let e = ConnError::OutOfOrder(format!(
                    "{} frame before request_head",
                    kind_name(&other)
                ));
                return refuse(conn, ErrorKind::MalformedFrame, e.to_string());
            }
            Ok(Polled::Pending) => {
                conn.release_idle_buffer();
                return Some(conn);
            }
            Ok(Polled::Eof) => return None,
            Err(e) if e.is_peer_gone() => return None,
            Err(e @ ConnError::Frame(_)) => {
                return refuse(conn, ErrorKind::MalformedFrame, e.to_string())
            }
            Err(e) => {
                warning!("closing connection: {e}");
                return None;
            }
        };
        let head = match RequestHeadView::decode(&message) {
            Ok(head) => head,
            Err(e) => return refuse(conn, ErrorKind::MalformedFrame, e.to_string()),
        };
        if head.protocol_version != PROTOCOL_VERSION {
            let why = format!(
                "module speaks protocol {}, this worker speaks {PROTOCOL_VERSION}",
                head.protocol_version
            );
            return refuse(conn, ErrorKind::VersionMismatch, why);
        }
        conn.begin_body(head.content_length);
        if config.keep_alive.is_zero() || counter.next_is_last() {
            conn.set_last();
        }
        in_flight::begin_request(conn.fd().as_raw_fd());
        let back = handler.handle(conn, &head);
        in_flight::end_request();
        counter.request_done();
        conn = back?;
        match conn.drain_body(&Direct) {
            Ok(()) => {}
            Err(e) if e.is_peer_gone() => return None,
            Err(e) => {
                warning!("closing connection: {e}");
                return None;
            }
        }
        if conn.is_last() {
            // Its response_end said `close`: nginx will not reuse it.
            return None;
        }
        if !conn.has_buffered_frame() {
            conn.release_idle_buffer();
            return Some(conn);
        }
    }
}

/// Logs why, tells the peer with an `error` frame, and closes.
fn refuse(mut conn: Connection, kind: ErrorKind, why: String) -> Option<Connection> {
    warning!("closing connection: {why}");
    conn.queue_error(kind, why);
    let _ = conn.flush(&Direct);
    conn.close_after_error();
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::connection::test_pair;
    use crate::worker::response::{PendingHead, ResponseWriter};
    use crate::worker::response_head::HeadFields;
    use bytes::{Bytes, BytesMut};
    use ferrocorn_protocol::frame;
    use ferrocorn_protocol::pb::{self, frame::Kind, Frame, RequestHead};
    use std::io::{Read, Write};

    /// Answers every request with its method and the body it read.
    struct Echo {
        seen: Vec<String>,
    }

    impl Handler for Echo {
        fn handle(
            &mut self,
            mut conn: Connection,
            head: &RequestHeadView<'_>,
        ) -> Option<Connection> {
            self.seen
                .push(String::from_utf8_lossy(head.method).into_owned());
            let body = conn.read_body(Some(4), &Direct).ok()?;
            let mut w = ResponseWriter::new(false);
            w.set_head(PendingHead {
                fields: HeadFields::new(200, b"OK"),
                status: 200,
                content_length: None,
            });
            let mut data = vec![0; body.len()];
            body.copy_to(&mut data);
            w.body(&mut conn, &data, false, &Direct).ok()?;
            w.finish(&mut conn, &Direct).ok()?;
            Some(conn)
        }
    }

    fn request(method: &str, version: u32, body: &[u8]) -> Vec<u8> {
        let mut out = frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestHead(RequestHead {
                protocol_version: version,
                method: Bytes::copy_from_slice(method.as_bytes()),
                content_length: -1,
                ..Default::default()
            })),
        });
        if !body.is_empty() {
            out.extend(frame::encode_to_vec(&Frame {
                kind: Some(Kind::RequestBody(Bytes::copy_from_slice(body))),
            }));
        }
        out.extend(frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestEnd(pb::RequestEnd {})),
        }));
        out
    }

    fn config() -> ServeConfig {
        ServeConfig {
            keep_alive: Duration::from_secs(2),
            io_timeout: Some(Duration::from_secs(5)),
            master: getppid(),
        }
    }

    fn no_recycle() -> Recycle {
        Recycle::new(0, 0, 0, 0)
    }

    fn received(peer: &mut std::os::unix::net::UnixStream) -> Vec<Kind> {
        let mut bytes = Vec::new();
        peer.read_to_end(&mut bytes).unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        std::iter::from_fn(|| frame::decode(&mut buf).unwrap().map(|f| f.kind.unwrap())).collect()
    }

    #[test]
    fn buffered_requests_are_served_in_turn_with_unread_bodies_drained() {
        let (conn, mut peer) = test_pair();
        let mut bytes = request("POST", 1, b"first body, longer than read");
        bytes.extend(request("GET", 1, b""));
        peer.write_all(&bytes).unwrap();
        let mut echo = Echo { seen: vec![] };
        let back = serve_connection(conn, &mut echo, &config(), &mut no_recycle());
        assert!(back.is_some(), "kept alive");
        drop(back);
        assert_eq!(echo.seen, vec!["POST", "GET"]);
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let kinds = received(&mut peer);
        let bodies: Vec<&Bytes> = kinds
            .iter()
            .filter_map(|k| match k {
                Kind::ResponseBody(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(bodies, vec![&Bytes::from_static(b"firs")]);
        assert_eq!(
            kinds
                .iter()
                .filter(|k| matches!(k, Kind::ResponseEnd(e) if !e.close))
                .count(),
            2,
            "both ended, the connection kept: {kinds:?}"
        );
    }

    #[test]
    fn another_protocol_version_is_refused_with_an_error_frame() {
        let (conn, mut peer) = test_pair();
        peer.write_all(&request("GET", 2, b"")).unwrap();
        let mut echo = Echo { seen: vec![] };
        assert!(serve_connection(conn, &mut echo, &config(), &mut no_recycle()).is_none());
        assert!(echo.seen.is_empty());
        match &received(&mut peer)[..] {
            [Kind::Error(e)] => {
                assert_eq!(e.kind, pb::error::Kind::VersionMismatch as i32);
                assert_eq!(e.message, "module speaks protocol 2, this worker speaks 1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_frame_before_the_head_closes_the_connection() {
        let (conn, mut peer) = test_pair();
        peer.write_all(&frame::encode_to_vec(&Frame {
            kind: Some(Kind::RequestBody(Bytes::from_static(b"x"))),
        }))
        .unwrap();
        assert!(serve_connection(
            conn,
            &mut Echo { seen: vec![] },
            &config(),
            &mut no_recycle()
        )
        .is_none());
        match &received(&mut peer)[..] {
            [Kind::Error(e)] => {
                assert_eq!(e.kind, pb::error::Kind::MalformedFrame as i32);
                assert_eq!(
                    e.message,
                    "malformed frame: request_body frame before request_head"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_closes_only_that_connection() {
        let (conn, mut peer) = test_pair();
        peer.write_all(&[0, 0, 0, 3, 0x0f, 0xff, 0xff]).unwrap();
        assert!(serve_connection(
            conn,
            &mut Echo { seen: vec![] },
            &config(),
            &mut no_recycle()
        )
        .is_none());
        assert!(matches!(&received(&mut peer)[..], [Kind::Error(_)]));
    }

    #[test]
    fn a_request_that_arrived_before_a_stop_is_still_served() {
        let (quiet, _quiet_peer) = test_pair();
        let (busy, mut peer) = test_pair();
        peer.write_all(&request("GET", 1, b"")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let idle = vec![
            Idle {
                conn: quiet,
                deadline,
            },
            Idle {
                conn: busy,
                deadline,
            },
        ];
        let mut echo = Echo { seen: vec![] };
        finish_idle(idle, &mut echo, &config(), &mut no_recycle());
        assert_eq!(echo.seen, vec!["GET"]);
        let kinds = received(&mut peer);
        assert!(
            matches!(kinds.last(), Some(Kind::ResponseEnd(e)) if e.close),
            "the last response says the connection closes: {kinds:?}"
        );
    }

    #[test]
    fn keep_alive_zero_closes_after_the_response() {
        let (conn, mut peer) = test_pair();
        peer.write_all(&request("GET", 1, b"")).unwrap();
        let mut cfg = config();
        cfg.keep_alive = Duration::ZERO;
        assert!(
            serve_connection(conn, &mut Echo { seen: vec![] }, &cfg, &mut no_recycle()).is_none()
        );
        let kinds = received(&mut peer);
        assert!(
            matches!(kinds.last(), Some(Kind::ResponseEnd(e)) if e.close),
            "{kinds:?}"
        );
    }

    #[test]
    fn the_request_that_reaches_max_requests_says_close() {
        let (conn, mut peer) = test_pair();
        let mut bytes = request("GET", 1, b"");
        bytes.extend(request("GET", 1, b""));
        peer.write_all(&bytes).unwrap();
        let mut recycle = Recycle::new(1, 0, 0, 0);
        let mut echo = Echo { seen: vec![] };
        assert!(serve_connection(conn, &mut echo, &config(), &mut recycle).is_none());
        assert_eq!(
            echo.seen,
            vec!["GET"],
            "the second request is left to nginx"
        );
        let kinds = received(&mut peer);
        assert!(
            matches!(kinds.last(), Some(Kind::ResponseEnd(e)) if e.close),
            "{kinds:?}"
        );
    }
}
