//! A statsd client: Gunicorn's metric names over UDP, one metric per
//! datagram, never blocking and never failing a request (a lost datagram is
//! a lost sample, as statsd intends).

use std::net::UdpSocket;

/// A connected, non-blocking UDP socket and the name prefix.
#[derive(Debug)]
pub struct Statsd {
    socket: UdpSocket,
    prefix: String,
}

/// The kinds of statsd metrics Gunicorn sends.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Timer,
}

impl Statsd {
    /// `host` is `HOST:PORT`; `prefix` is empty or ends with a dot.
    pub fn connect(host: &str, prefix: &str) -> std::io::Result<Statsd> {
        let target = host.trim_start_matches('[').replacen("]:", ":", 1);
        let target = if target.matches(':').count() > 1 {
            // An IPv6 address: std wants it bracketed.
            let (addr, port) = target.rsplit_once(':').unwrap_or((&target, "8125"));
            format!("[{addr}]:{port}")
        } else {
            target
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&target)?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(addr)?;
        socket.set_nonblocking(true)?;
        Ok(Statsd {
            socket,
            prefix: prefix.to_owned(),
        })
    }

    /// Sends `name:value|type`, prefixed.
    pub fn send(&self, name: &str, value: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "c",
            Kind::Gauge => "g",
            Kind::Timer => "ms",
        };
        let line = format!("{}{name}:{value}|{kind}", self.prefix);
        // Errors (no server, full buffer) are dropped samples.
        let _ = self.socket.send(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_gunicorns_names_with_the_prefix() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host = server.local_addr().unwrap().to_string();
        let client = Statsd::connect(&host, "app.").unwrap();
        client.send("gunicorn.requests", "1", Kind::Counter);
        client.send("gunicorn.request.duration", "12.5", Kind::Timer);
        client.send("gunicorn.workers", "3", Kind::Gauge);
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = server.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            [
                "app.gunicorn.requests:1|c",
                "app.gunicorn.request.duration:12.5|ms",
                "app.gunicorn.workers:3|g"
            ]
        );
    }
}
