//! Replies for people: `show workers` as a table, `help` as a list, the
//! rest as `key: value` lines. `ferrocorn ctl --json` skips this.

use std::fmt::Write as _;

use serde_json::Value;

/// The text printed for a successful reply's `data`.
pub fn render(data: &Value) -> String {
    if let Some(workers) = data.get("workers").and_then(Value::as_array) {
        return workers_table(workers, data.get("target"));
    }
    if let Some(commands) = data.get("commands").and_then(Value::as_array) {
        let mut out = String::new();
        for c in commands {
            let name = c["command"].as_str().unwrap_or_default();
            let doc = c["doc"].as_str().unwrap_or_default();
            let _ = writeln!(out, "{name:<28}{doc}");
        }
        return out;
    }
    let mut out = String::new();
    if let Some(app) = data.get("app").and_then(Value::as_str) {
        let _ = writeln!(out, "app: {app}");
    }
    let fields = data.get("settings").unwrap_or(data);
    if let Some(map) = fields.as_object() {
        for (key, value) in map {
            if data.get("settings").is_none() || key != "app" {
                let _ = writeln!(out, "{key}: {}", scalar(key, value));
            }
        }
    }
    out
}

fn workers_table(workers: &[Value], target: Option<&Value>) -> String {
    let mut rows = vec![[
        "PID", "AGE", "UPTIME", "REQUESTS", "RSS", "STATE", "REQUEST",
    ]
    .map(String::from)];
    for w in workers {
        let request = match (w["request"].as_str(), w["request_seconds"].as_f64()) {
            (Some(line), Some(secs)) => format!("{line} ({})", duration(secs)),
            (Some(line), None) => line.to_owned(),
            _ => "-".to_owned(),
        };
        rows.push([
            w["pid"].to_string(),
            w["age"].to_string(),
            w["uptime_seconds"].as_f64().map_or("-".into(), duration),
            w["requests"].to_string(),
            w["rss_bytes"].as_u64().map_or("-".into(), bytes),
            w["state"].as_str().unwrap_or("?").to_owned(),
            request,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == row.len() - 1 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let _ = write!(out, "\nTotal: {} workers", workers.len());
    if let Some(t) = target {
        let _ = write!(out, " (target {t})");
    }
    out.push('\n');
    out
}

/// One value on a `key: value` line.
fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Object(map) if map.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if key.ends_with("_seconds") => n.as_f64().map_or(n.to_string(), duration),
        Value::Array(items) => items
            .iter()
            .map(|i| scalar("", i))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(k, v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// `0.25s`, `12.0s`, `5m03s`, `2h15m`.
pub fn duration(secs: f64) -> String {
    let whole = secs as u64;
    match whole {
        0..=59 => format!("{secs:.1}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole / 60 % 60),
    }
}

/// `812K`, `41.2M`, `1.1G`.
pub fn bytes(n: u64) -> String {
    let k = n as f64 / 1024.0;
    if k < 1024.0 {
        format!("{k:.0}K")
    } else if k < 1024.0 * 1024.0 {
        format!("{:.1}M", k / 1024.0)
    } else {
        format!("{:.1}G", k / 1024.0 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workers_are_a_table_with_the_request_in_progress() {
        let data = json!({"target": 2, "workers": [
            {"pid": 101, "age": 1, "uptime_seconds": 65.2, "state": "busy", "requests": 7,
             "rss_bytes": 43_200_000u64, "request": "GET /slow", "request_seconds": 2.345},
            {"pid": 102, "age": 2, "uptime_seconds": 3.0, "state": "idle", "requests": 0,
             "rss_bytes": null, "request": null, "request_seconds": null},
        ]});
        let text = render(&data);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "PID  AGE  UPTIME  REQUESTS  RSS    STATE  REQUEST"
        );
        assert_eq!(
            lines[1],
            "101  1    1m05s   7         41.2M  busy   GET /slow (2.3s)"
        );
        assert_eq!(lines[2], "102  2    3.0s    0         -      idle   -");
        assert_eq!(lines[4], "Total: 2 workers (target 2)");
    }

    #[test]
    fn other_replies_are_key_value_lines() {
        let text = render(&json!({
            "pid": 9, "uptime_seconds": 7300.0, "listeners": ["unix:/a", "127.0.0.1:1"],
            "responses": {"2xx": 3, "5xx": 1}, "restarts": {}, "none": []
        }));
        assert!(text.contains("pid: 9\n"), "{text}");
        assert!(text.contains("uptime_seconds: 2h01m\n"), "{text}");
        assert!(text.contains("listeners: unix:/a, 127.0.0.1:1\n"), "{text}");
        assert!(text.contains("responses: 2xx=3 5xx=1\n"), "{text}");
        assert!(
            text.contains("restarts: -\n") && text.contains("none: -\n"),
            "{text}"
        );
        let config =
            render(&json!({"app": "m:app", "settings": {"bind": ["unix:/s"], "pidfile": null}}));
        assert_eq!(config, "app: m:app\nbind: unix:/s\npidfile: -\n");
    }
}
