//! Metrics: statsd (`--statsd-host`, Gunicorn's metric names) and
//! Prometheus (`--metrics-bind`, served by the master from counters the
//! workers share with it).
//!
//! - `shared`: the counters in memory shared across fork.
//! - `statsd`: the UDP client.
//! - `prometheus`: the exposition text and the master's HTTP endpoint.
//! - `worker_slot`: one worker's live figures (requests served, the
//!   request in progress) for the control socket's `show workers`.
//!
//! [`init`] runs in the master before the first fork; the functions below
//! are no-ops for what was not configured.

pub mod prometheus;
pub mod shared;
pub mod statsd;
pub mod worker_slot;

use std::sync::OnceLock;

pub use shared::{Counters, Restart};
use statsd::{Kind, Statsd};

use crate::access_log::RequestFacts;
use crate::logging::Level;
use crate::settings::Settings;

static COUNTERS: OnceLock<&'static Counters> = OnceLock::new();
static STATSD: OnceLock<Statsd> = OnceLock::new();

/// Sets up what the settings ask for (the master, before forking).
pub fn init(settings: &Settings) -> Result<(), String> {
    let wanted = settings.metrics_bind.is_some() || settings.control_socket().is_some();
    if wanted && COUNTERS.get().is_none() {
        let counters =
            shared::map().map_err(|e| format!("cannot map the metrics counters: {e}"))?;
        let _ = COUNTERS.set(counters);
    }
    if let Some(host) = &settings.statsd_host {
        let client = Statsd::connect(host, &settings.statsd_prefix)
            .map_err(|e| format!("cannot reach statsd at {host}: {e}"))?;
        let _ = STATSD.set(client);
    }
    Ok(())
}

/// The shared counters, when `--metrics-bind` or the control socket is on.
pub fn counters() -> Option<&'static Counters> {
    COUNTERS.get().copied()
}

/// With `--threads`: the requests in progress; the slot's writers take
/// turns under it (the slot has room for one writer and one request).
static THREADS_IN_FLIGHT: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

fn threads_in_flight() -> std::sync::MutexGuard<'static, usize> {
    THREADS_IN_FLIGHT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A worker starts a request (`show workers` shows it until it is done;
/// with `--threads`, the latest started until none is left).
pub fn request_started(method: &[u8], uri: &[u8]) {
    if let Some(slot) = worker_slot::mine() {
        let now = std::time::SystemTime::now();
        // With threads, the count's lock also makes this the slot's one writer.
        let _one_writer = crate::worker::in_flight::threaded().then(|| {
            let mut n = threads_in_flight();
            *n += 1;
            n
        });
        slot.request_started(method, uri, now);
    }
}

/// A worker is through with a request, however it ended.
pub fn request_ended() {
    if let Some(slot) = worker_slot::mine() {
        if crate::worker::in_flight::threaded() {
            let mut n = threads_in_flight();
            *n = n.saturating_sub(1);
            if *n == 0 {
                slot.request_done();
            } else {
                slot.one_of_many_done();
            }
        } else {
            slot.request_done();
        }
    }
}

/// A worker finished a request.
pub fn request_done(facts: &RequestFacts<'_>) {
    if let Some(c) = counters() {
        c.record(facts.status, facts.duration);
    }
    if let Some(s) = STATSD.get() {
        let ms = facts.duration.as_secs_f64() * 1000.0;
        s.send(
            "gunicorn.request.duration",
            &format!("{ms:.3}"),
            Kind::Timer,
        );
        s.send("gunicorn.requests", "1", Kind::Counter);
        if let Some(status) = facts.status {
            s.send(
                &format!("gunicorn.request.status.{status}"),
                "1",
                Kind::Counter,
            );
        }
    }
}

/// A worker was replaced (counted by whoever knows why).
pub fn restarted(why: Restart) {
    if let Some(c) = counters() {
        c.restarted(why);
    }
}

/// The master's worker count (`gunicorn.workers`, a gauge).
pub fn workers(n: usize) {
    if let Some(s) = STATSD.get() {
        s.send("gunicorn.workers", &n.to_string(), Kind::Gauge);
    }
}

/// A log line at `level` was written (`gunicorn.log.<level>`).
pub fn log_line(level: Level) {
    let Some(s) = STATSD.get() else { return };
    let name = match level {
        Level::Critical => "gunicorn.log.critical",
        Level::Error => "gunicorn.log.error",
        Level::Warning => "gunicorn.log.warning",
        _ => return,
    };
    s.send(name, "1", Kind::Counter);
}

/// An app raised while handling a request (`gunicorn.log.exception`).
pub fn exception() {
    if let Some(s) = STATSD.get() {
        s.send("gunicorn.log.exception", "1", Kind::Counter);
    }
}
