//! The master's `/metrics` endpoint: the shared counters in Prometheus'
//! text format, over a minimal HTTP/1.0 exchange (one request per
//! connection, then close). The master serves it from its own loop, so a
//! client gets at most [`CLIENT_TIMEOUT`] of the master's attention.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::shared::{Counters, Restart, BUCKETS};

/// Longest the master waits for a metrics client's request.
pub const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);

/// What the master knows that the counters do not.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Live worker processes.
    pub workers: usize,
    /// Workers that have loaded the app and serve.
    pub workers_booted: usize,
    /// The wanted number of workers.
    pub workers_target: usize,
}

/// The exposition text.
pub fn render(c: &Counters, g: Gauges) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(4096);
    let get = Counters::get;
    fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    metric(
        &mut out,
        "ferrocorn_requests_total",
        "counter",
        "Requests served by the workers.",
    );
    let _ = writeln!(out, "ferrocorn_requests_total {}", get(&c.requests));
    metric(
        &mut out,
        "ferrocorn_request_duration_seconds",
        "histogram",
        "Time from the request head to the end of the response.",
    );
    let mut cumulative = 0;
    for (i, le) in BUCKETS.iter().enumerate() {
        cumulative += get(&c.buckets[i]);
        let _ = writeln!(
            out,
            "ferrocorn_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += get(&c.buckets[BUCKETS.len()]);
    let _ = writeln!(
        out,
        "ferrocorn_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
         ferrocorn_request_duration_seconds_sum {:.6}\n\
         ferrocorn_request_duration_seconds_count {cumulative}",
        get(&c.duration_micros) as f64 / 1e6
    );
    metric(
        &mut out,
        "ferrocorn_responses_total",
        "counter",
        "Responses by status code (\"none\": the request got no response head).",
    );
    for (code, n) in c.status.iter().map(get).enumerate() {
        if n > 0 {
            let code = if code == 0 {
                "none".to_string()
            } else {
                code.to_string()
            };
            let _ = writeln!(out, "ferrocorn_responses_total{{status=\"{code}\"}} {n}");
        }
    }
    metric(
        &mut out,
        "ferrocorn_workers",
        "gauge",
        "Live worker processes.",
    );
    let _ = writeln!(out, "ferrocorn_workers {}", g.workers);
    metric(
        &mut out,
        "ferrocorn_workers_booted",
        "gauge",
        "Workers that have loaded the app and serve.",
    );
    let _ = writeln!(out, "ferrocorn_workers_booted {}", g.workers_booted);
    metric(
        &mut out,
        "ferrocorn_workers_target",
        "gauge",
        "The wanted number of workers.",
    );
    let _ = writeln!(out, "ferrocorn_workers_target {}", g.workers_target);
    metric(
        &mut out,
        "ferrocorn_worker_restarts_total",
        "counter",
        "Workers replaced, by reason.",
    );
    for (i, why) in Restart::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "ferrocorn_worker_restarts_total{{reason=\"{}\"}} {}",
            why.label(),
            get(&c.restarts[i])
        );
    }
    out
}

/// The listening socket of `--metrics-bind`.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub fn bind(addr: &str) -> std::io::Result<MetricsServer> {
        let target = match crate::settings::parse_bind(addr) {
            Ok(crate::settings::BindAddr::Tcp { host, port }) if host.contains(':') => {
                format!("[{host}]:{port}")
            }
            Ok(crate::settings::BindAddr::Tcp { host, port }) => format!("{host}:{port}"),
            _ => addr.to_owned(),
        };
        let listener = TcpListener::bind(target)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener })
    }

    pub fn local_addr(&self) -> String {
        self.listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string())
    }

    /// Answers the connections waiting, each within [`CLIENT_TIMEOUT`].
    pub fn serve_pending(&self, body: impl Fn() -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            if let Err(e) = answer(stream, &body) {
                debug!("metrics client: {e}");
            }
        }
    }
}

impl AsFd for MetricsServer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

fn answer(mut stream: TcpStream, body: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // With SO_RCVTIMEO set, read(2) fails with EINTR despite
            // SA_RESTART (signal(7)): a signal to the master (a worker's
            // SIGCHLD) mid-scrape must not drop the scrape.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                stream.set_read_timeout(Some(left))?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, text) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics" | b"/") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body())
        }
        (b"GET" | b"HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
    };
    let mut response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        response.extend_from_slice(text.as_bytes());
    }
    stream.write_all(&response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let c = super::super::shared::map().unwrap();
        c.record(Some(200), Duration::from_millis(7));
        c.record(Some(200), Duration::from_millis(70));
        c.record(None, Duration::from_secs(100));
        c.restarted(Restart::Timeout);
        let text = render(
            c,
            Gauges {
                workers: 2,
                workers_booted: 2,
                workers_target: 2,
            },
        );
        for line in [
            "ferrocorn_requests_total 3",
            "ferrocorn_request_duration_seconds_bucket{le=\"0.005\"} 0",
            "ferrocorn_request_duration_seconds_bucket{le=\"0.01\"} 1",
            "ferrocorn_request_duration_seconds_bucket{le=\"0.1\"} 2",
            "ferrocorn_request_duration_seconds_bucket{le=\"30\"} 2",
            "ferrocorn_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "ferrocorn_request_duration_seconds_count 3",
            "ferrocorn_request_duration_seconds_sum 100.077000",
            "ferrocorn_responses_total{status=\"200\"} 2",
            "ferrocorn_responses_total{status=\"none\"} 1",
            "ferrocorn_workers 2",
            "ferrocorn_worker_restarts_total{reason=\"timeout\"} 1",
            "ferrocorn_worker_restarts_total{reason=\"crash\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn serves_get_metrics_and_404_elsewhere() {
        let server = MetricsServer::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr();
        let fetch = |path: &str| {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            server.serve_pending(|| "m 1\n".into());
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = fetch("/metrics");
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nm 1\n"), "{ok}");
        assert!(fetch("/nope").starts_with("HTTP/1.0 404"));
    }
}
