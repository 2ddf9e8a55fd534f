//! What the control socket's commands do, in the master: each acts through
//! the same handler as its signal (`reload` is HUP's, `worker add` TTIN's,
//! `reopen` USR1's, `shutdown` TERM's or INT's), so both behave alike; the
//! `show` commands read the master's tables and the workers' slots.

use std::time::{Instant, SystemTime};

use nix::unistd::Pid;
use serde_json::{json, Map, Value};

use super::{send, Arbiter, Stop};
use crate::ctl::protocol::{self, Command};
use crate::metrics::{self, Counters, Restart};
use crate::supervisor::workers::WorkerState;
use nix::sys::signal::Signal;

impl Arbiter {
    /// Answers the requests control clients have sent; a `shutdown`
    /// returns how to stop (after its reply is queued).
    pub(super) fn serve_control(&mut self) -> Option<Stop> {
        let pending = self.control.as_mut()?.serve(Instant::now());
        let mut stop = None;
        for p in pending {
            if p.command.acts() {
                info!("Control: {}", p.command);
            } else {
                debug!("Control: {}", p.command);
            }
            let (result, asked) = self.execute(p.command);
            stop = stop.or(asked);
            let line = match result {
                Ok(data) => protocol::ok_reply(&p.id, data),
                Err(e) => protocol::error_reply(&p.id, &e),
            };
            if let Some(control) = self.control.as_mut() {
                control.reply(p.client, line);
            }
        }
        stop
    }

    fn execute(&mut self, command: Command) -> (Result<Value, String>, Option<Stop>) {
        let done = |v: Value| (Ok(v), None);
        match command {
            Command::Help => done(protocol::help()),
            Command::ShowWorkers => done(self.show_workers()),
            Command::ShowStats => done(self.show_stats()),
            Command::ShowConfig => done(self.show_config()),
            Command::ShowListeners => done(json!({
                "listeners": self.listeners.iter().map(|l| l.addr().to_string()).collect::<Vec<_>>()
            })),
            Command::WorkerAdd(n) => {
                let previous = self.target;
                (0..n).for_each(|_| self.handle_ttin());
                done(json!({"added": n, "previous": previous, "target": self.target}))
            }
            Command::WorkerRemove(n) => {
                let previous = self.target;
                (0..n).for_each(|_| self.handle_ttou());
                done(json!({
                    "removed": previous - self.target,
                    "previous": previous,
                    "target": self.target,
                }))
            }
            Command::WorkerKill(pid) => (self.kill_worker(Pid::from_raw(pid)), None),
            Command::Reload => {
                self.handle_hup();
                done(json!({"reloading": true, "reloads": self.reloads}))
            }
            Command::Reopen => {
                self.handle_usr1();
                done(json!({"reopened": true}))
            }
            Command::Shutdown(kind) => {
                let stop = Stop::from(kind);
                let how = match stop {
                    Stop::Graceful => "graceful",
                    Stop::Quick => "quick",
                };
                (Ok(json!({"stopping": how})), Some(stop))
            }
        }
    }

    /// `worker kill PID`: that worker stops gracefully (SIGTERM, as a
    /// retired worker) and a fresh one takes its place.
    fn kill_worker(&mut self, pid: Pid) -> Result<Value, String> {
        let state = self
            .workers
            .iter()
            .find(|w| w.pid == pid)
            .map(|w| w.state)
            .ok_or_else(|| format!("{pid} is not a worker of this server"))?;
        match state {
            WorkerState::Retiring | WorkerState::AbortRequested | WorkerState::Aborted => {
                send(pid, Signal::SIGTERM);
            }
            WorkerState::Running | WorkerState::Outgoing => self.retire(pid),
        }
        Ok(json!({"killed": pid.as_raw()}))
    }

    fn show_workers(&self) -> Value {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut workers: Vec<_> = self.workers.iter().collect();
        workers.sort_by_key(|w| w.age);
        let rows: Vec<Value> = workers
            .into_iter()
            .map(|w| {
                let reading = w.link.slot.read();
                // Fresher than `booted`, which the loop updates each tick.
                let booted = w.booted || w.link.heartbeat.has_beaten();
                let state = match (w.state, booted, &reading.current) {
                    (WorkerState::Running, false, _) => "booting",
                    (WorkerState::Running, true, Some(_)) => "busy",
                    (WorkerState::Running, true, None) => "idle",
                    (WorkerState::Outgoing, ..) => "outgoing",
                    (WorkerState::Retiring, ..) => "retiring",
                    (WorkerState::AbortRequested | WorkerState::Aborted, ..) => "aborted",
                };
                let (request, request_seconds) = match reading.current {
                    Some((line, since)) => (
                        Value::from(line),
                        Value::from(seconds(wall.duration_since(since).unwrap_or_default())),
                    ),
                    None => (Value::Null, Value::Null),
                };
                let last_beat = w
                    .link
                    .heartbeat
                    .last_beat()
                    .ok()
                    .and_then(|t| wall.duration_since(t).ok())
                    .map(seconds);
                json!({
                    "pid": w.pid.as_raw(),
                    "age": w.age,
                    "uptime_seconds": seconds(now.duration_since(w.spawned_at)),
                    "state": state,
                    "requests": reading.requests,
                    "rss_bytes": crate::worker::recycle::rss_of(w.pid.as_raw()),
                    "request": request,
                    "request_seconds": request_seconds,
                    "last_beat_seconds": last_beat,
                })
            })
            .collect();
        json!({"workers": rows, "target": self.target})
    }

    fn show_stats(&self) -> Value {
        let mut stats = json!({
            "pid": self.pid.as_raw(),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": seconds(self.started_at.elapsed()),
            "workers": self.workers.iter().count(),
            "workers_booted": self.booted_running(),
            "workers_target": self.target,
            "workers_spawned": self.spawned,
            "reloads": self.reloads,
            "listeners": self.listeners.iter().map(|l| l.addr().to_string()).collect::<Vec<_>>(),
            "control_socket": self.control.as_ref().map(|c| super::absolute(c.path()).display().to_string()),
        });
        if let Some(c) = metrics::counters() {
            let get = Counters::get;
            let mut by_class = Map::new();
            for (code, n) in c.status.iter().map(get).enumerate() {
                if n > 0 {
                    let class = if code == 0 {
                        "none".to_string()
                    } else {
                        format!("{}xx", code / 100)
                    };
                    let slot = by_class.entry(class).or_insert(Value::from(0u64));
                    *slot = Value::from(slot.as_u64().unwrap_or(0) + n);
                }
            }
            let restarts: Map<String, Value> = Restart::ALL
                .iter()
                .enumerate()
                .map(|(i, why)| (why.label().to_string(), Value::from(get(&c.restarts[i]))))
                .collect();
            stats["requests"] = Value::from(get(&c.requests));
            stats["responses"] = Value::Object(by_class);
            stats["restarts"] = Value::Object(restarts);
        }
        stats
    }

    fn show_config(&self) -> Value {
        let settings: Map<String, Value> = self
            .settings
            .effective
            .iter()
            .map(|(name, values)| {
                let value = match crate::settings::SETTINGS
                    .iter()
                    .find(|s| s.name == *name)
                    .is_some_and(|s| s.repeatable)
                {
                    true => Value::from(values.clone()),
                    false => values.last().cloned().map_or(Value::Null, Value::from),
                };
                (name.to_string(), value)
            })
            .collect();
        json!({"app": self.settings.app, "settings": settings})
    }
}

/// Seconds with millisecond precision.
fn seconds(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
