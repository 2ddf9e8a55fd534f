//! The control socket's wire format, shared by the master and `ferrocorn
//! ctl`: one JSON object per line each way, as Gunicorn's `gunicornc`
//! frames them but newline-delimited.
//!
//! Request: `{"id": 1, "command": "show workers"}` (`id` optional, echoed).
//! Reply: `{"id": 1, "status": "ok", "data": {...}}` or
//! `{"id": 1, "status": "error", "error": "unknown command: foo"}`.

use serde_json::{json, Value};

/// Longest request line the master reads, newline included; a longer one
/// is answered with an error and the connection closed.
pub const MAX_REQUEST: usize = 4096;

/// Most workers one `worker add`/`worker remove` changes.
pub const MAX_STEP: usize = 100;

/// How a `shutdown` stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    /// SIGTERM's way: requests in flight finish (`--graceful-timeout`).
    Graceful,
    /// SIGINT/SIGQUIT's way: workers exit at once.
    Quick,
}

/// One command, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Help,
    ShowWorkers,
    ShowStats,
    ShowConfig,
    ShowListeners,
    /// `worker add [N]`: N more workers (TTIN N times).
    WorkerAdd(usize),
    /// `worker remove [N]`: N fewer (TTOU N times).
    WorkerRemove(usize),
    /// `worker kill PID`: stop that worker gracefully; it is replaced.
    WorkerKill(i32),
    /// HUP.
    Reload,
    /// USR1.
    Reopen,
    Shutdown(ShutdownKind),
}

/// Every command with its one-line doc, for `help`.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "show workers",
        "every worker: pid, age, requests served, memory, state, current request",
    ),
    (
        "show stats",
        "master pid, uptime, workers, requests, responses, restarts",
    ),
    ("show config", "every setting's effective value"),
    ("show listeners", "the sockets nginx connects to"),
    (
        "worker add [N]",
        "N more workers (default 1), as SIGTTIN N times",
    ),
    (
        "worker remove [N]",
        "N fewer workers (default 1, at least one stays), as SIGTTOU",
    ),
    (
        "worker kill PID",
        "stop that worker gracefully; a fresh one replaces it",
    ),
    ("reload", "new workers load the app anew, as SIGHUP"),
    ("reopen", "reopen the log files, as SIGUSR1"),
    (
        "shutdown [graceful|quick]",
        "stop: graceful as SIGTERM, quick (the default) as SIGINT",
    ),
    ("help", "this list"),
];

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Help => f.write_str("help"),
            Command::ShowWorkers => f.write_str("show workers"),
            Command::ShowStats => f.write_str("show stats"),
            Command::ShowConfig => f.write_str("show config"),
            Command::ShowListeners => f.write_str("show listeners"),
            Command::WorkerAdd(n) => write!(f, "worker add {n}"),
            Command::WorkerRemove(n) => write!(f, "worker remove {n}"),
            Command::WorkerKill(pid) => write!(f, "worker kill {pid}"),
            Command::Reload => f.write_str("reload"),
            Command::Reopen => f.write_str("reopen"),
            Command::Shutdown(ShutdownKind::Graceful) => f.write_str("shutdown graceful"),
            Command::Shutdown(ShutdownKind::Quick) => f.write_str("shutdown quick"),
        }
    }
}

impl Command {
    /// Whether the command changes something (logged at info; `show` and
    /// `help` only at debug).
    pub fn acts(&self) -> bool {
        !matches!(
            self,
            Command::Help
                | Command::ShowWorkers
                | Command::ShowStats
                | Command::ShowConfig
                | Command::ShowListeners
        )
    }

    /// Parses `show workers`, `worker add 2`... (words separated by blanks,
    /// case-insensitive).
    pub fn parse(text: &str) -> Result<Command, String> {
        let words: Vec<String> = text
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let count = |n: Option<&&str>| -> Result<usize, String> {
            match n {
                None => Ok(1),
                Some(n) => n
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_STEP).contains(n))
                    .ok_or_else(|| {
                        format!("expected a number of workers from 1 to {MAX_STEP}, not {n:?}")
                    }),
            }
        };
        Ok(match words.as_slice() {
            ["help"] => Command::Help,
            ["show", "workers"] => Command::ShowWorkers,
            ["show", "stats"] => Command::ShowStats,
            ["show", "config"] => Command::ShowConfig,
            ["show", "listeners"] => Command::ShowListeners,
            ["worker", "add", rest @ ..] if rest.len() <= 1 => {
                Command::WorkerAdd(count(rest.first())?)
            }
            ["worker", "remove", rest @ ..] if rest.len() <= 1 => {
                Command::WorkerRemove(count(rest.first())?)
            }
            ["worker", "kill", pid] => Command::WorkerKill(
                pid.parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("expected a worker pid, not {pid:?}"))?,
            ),
            ["reload"] => Command::Reload,
            ["reopen"] => Command::Reopen,
            ["shutdown"] | ["shutdown", "quick"] => Command::Shutdown(ShutdownKind::Quick),
            ["shutdown", "graceful"] => Command::Shutdown(ShutdownKind::Graceful),
            [] => return Err("empty command (try help)".into()),
            _ => return Err(format!("unknown command: {} (try help)", words.join(" "))),
        })
    }
}

/// A request line, parsed: the id to echo, and the command or why not.
pub fn parse_request(line: &[u8]) -> (Value, Result<Command, String>) {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return (Value::Null, Err(format!("not a JSON request: {e}"))),
    };
    let id = match value.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    let command = match value.get("command") {
        Some(Value::String(text)) => Command::parse(text),
        Some(_) => Err("\"command\" must be a string".into()),
        None if value.is_object() => {
            Err("missing \"command\", e.g. {\"command\": \"show workers\"}".into())
        }
        None => Err("expected a JSON object with a \"command\"".into()),
    };
    (id, command)
}

/// A request line for `command` (what the client sends).
pub fn request_line(id: u64, command: &str) -> Vec<u8> {
    line(json!({"id": id, "command": command}))
}

/// A success reply line.
pub fn ok_reply(id: &Value, data: Value) -> Vec<u8> {
    line(json!({"id": id, "status": "ok", "data": data}))
}

/// An error reply line.
pub fn error_reply(id: &Value, error: &str) -> Vec<u8> {
    line(json!({"id": id, "status": "error", "error": error}))
}

/// The `help` reply's data, in [`COMMANDS`] order.
pub fn help() -> Value {
    let commands = COMMANDS
        .iter()
        .map(|(c, doc)| json!({"command": c, "doc": doc}))
        .collect();
    json!({ "commands": Value::Array(commands) })
}

fn line(v: Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(&v).expect("a Value always serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_arguments() {
        for (text, want) in [
            ("show workers", Command::ShowWorkers),
            ("  SHOW   Stats ", Command::ShowStats),
            ("show config", Command::ShowConfig),
            ("show listeners", Command::ShowListeners),
            ("worker add", Command::WorkerAdd(1)),
            ("worker add 3", Command::WorkerAdd(3)),
            ("worker remove 2", Command::WorkerRemove(2)),
            ("worker kill 1234", Command::WorkerKill(1234)),
            ("reload", Command::Reload),
            ("reopen", Command::Reopen),
            ("shutdown", Command::Shutdown(ShutdownKind::Quick)),
            ("shutdown quick", Command::Shutdown(ShutdownKind::Quick)),
            (
                "shutdown graceful",
                Command::Shutdown(ShutdownKind::Graceful),
            ),
            ("help", Command::Help),
        ] {
            assert_eq!(Command::parse(text), Ok(want), "{text}");
            // What the log shows parses back to the same command.
            assert_eq!(Command::parse(&want.to_string()), Ok(want));
        }
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty command"),
            ("show", "unknown command: show"),
            ("frobnicate now", "unknown command: frobnicate now"),
            ("worker add 0", "from 1 to 100"),
            ("worker add 101", "from 1 to 100"),
            ("worker add two", "not \"two\""),
            ("worker add 1 2", "unknown command"),
            ("worker kill", "unknown command"),
            ("worker kill -5", "expected a worker pid"),
            ("worker kill 0", "expected a worker pid"),
            ("shutdown now", "unknown command"),
        ] {
            let err = Command::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn requests_echo_their_id_and_reject_garbage() {
        let (id, cmd) = parse_request(br#"{"id": 7, "command": "reload"}"#);
        assert_eq!((id, cmd), (json!(7), Ok(Command::Reload)));
        let (id, cmd) = parse_request(br#"{"command": "help"}"#);
        assert_eq!((id, cmd), (Value::Null, Ok(Command::Help)));
        for (line, says) in [
            (&b"show workers"[..], "not a JSON request"),
            (b"\xff\xfe", "not a JSON request"),
            (br#"{"id": "a"}"#, "missing \"command\""),
            (br#"{"command": 5}"#, "must be a string"),
            (br#"[1, 2]"#, "expected a JSON object"),
        ] {
            let (_, cmd) = parse_request(line);
            let err = cmd.unwrap_err();
            assert!(err.contains(says), "{line:?}: {err}");
        }
    }

    #[test]
    fn replies_are_one_json_line_each() {
        let ok = ok_reply(&json!(3), json!({"added": 1}));
        assert_eq!(
            ok,
            b"{\"data\":{\"added\":1},\"id\":3,\"status\":\"ok\"}\n".to_vec()
        );
        let err = error_reply(&Value::Null, "no such worker: 9\nx");
        assert_eq!(err.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Value = serde_json::from_slice(&err).unwrap();
        assert_eq!(back["status"], "error");
        assert_eq!(back["error"], "no such worker: 9\nx");
        let req: Value = serde_json::from_slice(&request_line(2, "show stats")).unwrap();
        assert_eq!(req, json!({"id": 2, "command": "show stats"}));
    }
}
