//! Every setting as data: name, flags, default, validator and doc, in one
//! table ([`SETTINGS`]). The command-line parser and `--help` are generated
//! from it; a config file (a later issue) can reuse the same table, keyed by
//! [`Setting::name`].
//!
//! Names and defaults follow Gunicorn's, so a Gunicorn command line mostly
//! works unchanged.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::logging::Level;

/// The validated configuration of one `ferrocorn` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The WSGI application, `MODULE[:EXPRESSION]`.
    pub app: String,
    /// Sockets to listen on, in command-line order.
    pub bind: Vec<BindAddr>,
    /// Target number of worker processes.
    pub workers: usize,
    /// Seconds a worker may stay silent (busy on one request) before the
    /// master kills it; 0 disables the check.
    pub timeout: u64,
    /// Seconds workers get to finish their requests on a graceful stop.
    pub graceful_timeout: u64,
    /// Seconds a worker keeps an idle connection open for the next request.
    pub keep_alive: u64,
    /// Directory to change to before loading the app.
    pub chdir: Option<PathBuf>,
    /// Directories put in front of `sys.path`.
    pub pythonpath: Vec<PathBuf>,
    /// Lowest level written to the error log.
    pub log_level: Level,
    /// Where log lines and `wsgi.errors` go.
    pub error_logfile: LogTarget,
    /// A virtualenv whose site-packages the workers use.
    pub virtualenv: Option<PathBuf>,
    /// Requests after which a worker is recycled; 0 never.
    pub max_requests: u64,
    /// Up to this many more requests, random per worker, so workers do
    /// not all recycle at once.
    pub max_requests_jitter: u64,
    /// Resident memory (MiB) past which a worker is recycled after its
    /// current request; 0 never.
    pub max_worker_memory: u64,
}

/// A listening address given with `--bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `HOST:PORT`; `host` is a name or an address (IPv6 without brackets).
    Tcp { host: String, port: u16 },
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            BindAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            BindAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Destination of the error log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Box<Settings>),
    Help,
    Version,
}

/// A command-line problem, shown as `Error: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

/// One setting. `apply` validates a value and stores it; its error says
/// what was expected, and the parser adds the value and the flag.
pub struct Setting {
    /// Config-file key (Gunicorn's name).
    pub name: &'static str,
    /// Short and long command-line flags, short first.
    pub flags: &'static [&'static str],
    /// Placeholder for the value in `--help`.
    pub meta: &'static str,
    /// Default as a user would write it; `None` when unset by default.
    pub default: Option<&'static str>,
    /// May be given several times (each value is applied in turn).
    pub repeatable: bool,
    /// One paragraph for `--help` and the docs.
    pub doc: &'static str,
    /// Validates one value and stores it.
    pub apply: fn(&mut Settings, &str) -> Result<(), String>,
}

impl Setting {
    /// The flag used in messages: the long one.
    pub fn long_flag(&self) -> &'static str {
        self.flags.last().expect("every setting has a flag")
    }
}

/// The positional application argument, documented like a setting.
pub const APP_DOC: &str = "The WSGI application to serve, as Gunicorn takes it: \
`pkg.module:app` names a callable in a module; `module` alone means \
`module:application`; `module:create_app()` or `module:make(\"x\", debug=True)` \
calls a factory with literal arguments and serves what it returns.";

pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "bind",
        flags: &["-b", "--bind"],
        meta: "ADDRESS",
        default: Some("127.0.0.1:8000"),
        repeatable: true,
        doc: "The socket to listen on for the nginx module: `unix:PATH` (a stale \
              socket file is replaced; the socket is created with mode 0666 so \
              nginx's workers can reach it) or `HOST:PORT` (IPv4, `[IPv6]` or a \
              host name). Repeat the flag to listen on several sockets.",
        apply: |s, v| {
            if s.bind.iter().any(|b| b.to_string() == v) {
                return Err("the same address is given twice".into());
            }
            s.bind.push(parse_bind(v)?);
            Ok(())
        },
    },
    Setting {
        name: "workers",
        flags: &["-w", "--workers"],
        meta: "INT",
        default: Some("1"),
        repeatable: false,
        doc: "The number of worker processes. Each runs its own Python interpreter \
              and serves one request at a time; a common start is 2-4 per core.",
        apply: |s, v| {
            s.workers = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        name: "timeout",
        flags: &["-t", "--timeout"],
        meta: "SECONDS",
        default: Some("30"),
        repeatable: false,
        doc: "Workers silent for more than this many seconds (stuck in one \
              request) are killed and replaced: first SIGABRT, then SIGKILL. \
              0 disables the check.",
        apply: |s, v| {
            s.timeout = parse_seconds(v)?;
            Ok(())
        },
    },
    Setting {
        name: "graceful_timeout",
        flags: &["--graceful-timeout"],
        meta: "SECONDS",
        default: Some("30"),
        repeatable: false,
        doc: "On SIGTERM, workers stop accepting and finish the requests they \
              have; those still running after this many seconds are killed.",
        apply: |s, v| {
            s.graceful_timeout = parse_seconds(v)?;
            Ok(())
        },
    },
    Setting {
        name: "keepalive",
        flags: &["--keep-alive"],
        meta: "SECONDS",
        default: Some("2"),
        repeatable: false,
        doc: "How long a worker keeps an idle connection from nginx open for the \
              next request (nginx's upstream `keepalive`). 0 closes every \
              connection after its response.",
        apply: |s, v| {
            s.keep_alive = parse_seconds(v)?;
            Ok(())
        },
    },
    Setting {
        name: "chdir",
        flags: &["--chdir"],
        meta: "DIR",
        default: None,
        repeatable: false,
        doc: "Change to this directory before binding and loading the app; it \
              is also put on `sys.path`. By default the current directory is \
              used.",
        apply: |s, v| {
            s.chdir = Some(existing_dir(v)?);
            Ok(())
        },
    },
    Setting {
        name: "pythonpath",
        flags: &["--pythonpath"],
        meta: "DIRS",
        default: None,
        repeatable: false,
        doc: "Comma-separated directories put in front of `sys.path`, in the \
              given order, before the app is imported.",
        apply: |s, v| {
            let dirs: Vec<PathBuf> = v
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect();
            if dirs.is_empty() {
                return Err("expected comma-separated directories".into());
            }
            s.pythonpath = dirs;
            Ok(())
        },
    },
    Setting {
        name: "loglevel",
        flags: &["--log-level"],
        meta: "LEVEL",
        default: Some("info"),
        repeatable: false,
        doc: "The lowest level written to the error log: debug, info, warning, \
              error or critical.",
        apply: |s, v| {
            s.log_level =
                Level::parse(v).ok_or("expected one of debug, info, warning, error, critical")?;
            Ok(())
        },
    },
    Setting {
        name: "errorlog",
        flags: &["--error-logfile"],
        meta: "FILE",
        default: Some("-"),
        repeatable: false,
        doc: "The error log of the master and the workers, which also receives \
              what apps write to `wsgi.errors`. `-` is standard error. SIGUSR1 \
              reopens the file (log rotation).",
        apply: |s, v| {
            s.error_logfile = match v {
                "" => return Err("expected a file path or -".into()),
                "-" => LogTarget::Stderr,
                path => LogTarget::File(PathBuf::from(path)),
            };
            Ok(())
        },
    },
    Setting {
        name: "virtualenv",
        flags: &["--virtualenv"],
        meta: "DIR",
        default: None,
        repeatable: false,
        doc: "A virtualenv whose packages the app uses: workers start Python as \
              its `bin/python`, so its site-packages load. Defaults to the \
              `VIRTUAL_ENV` environment variable when that is set.",
        apply: |s, v| {
            s.virtualenv = Some(virtualenv_dir(v)?);
            Ok(())
        },
    },
    Setting {
        name: "max_requests",
        flags: &["--max-requests"],
        meta: "INT",
        default: Some("0"),
        repeatable: false,
        doc: "A worker that has served this many requests finishes the current \
              one and is replaced by a fresh one (a bound on leaks). Requests \
              keep being served meanwhile. 0 disables recycling.",
        apply: |s, v| {
            s.max_requests = parse_count(v)?;
            Ok(())
        },
    },
    Setting {
        name: "max_requests_jitter",
        flags: &["--max-requests-jitter"],
        meta: "INT",
        default: Some("0"),
        repeatable: false,
        doc: "Each worker adds a random number of requests between 0 and this \
              to `--max-requests`, so workers do not all recycle at once.",
        apply: |s, v| {
            s.max_requests_jitter = parse_count(v)?;
            Ok(())
        },
    },
    Setting {
        name: "max_worker_memory",
        flags: &["--max-worker-memory"],
        meta: "MB",
        default: Some("0"),
        repeatable: false,
        doc: "A worker whose resident memory passes this many MiB after a \
              request is recycled (uWSGI's reload-on-rss). 0 disables it.",
        apply: |s, v| {
            s.max_worker_memory = parse_count(v)?;
            Ok(())
        },
    },
];

impl Settings {
    /// Settings before any value is applied; every field is then set from a
    /// default or the command line.
    fn empty() -> Self {
        Settings {
            app: String::new(),
            bind: Vec::new(),
            workers: 0,
            timeout: 0,
            graceful_timeout: 0,
            keep_alive: 0,
            chdir: None,
            pythonpath: Vec::new(),
            log_level: Level::Info,
            error_logfile: LogTarget::Stderr,
            virtualenv: None,
            max_requests: 0,
            max_requests_jitter: 0,
            max_worker_memory: 0,
        }
    }
}

/// Parses the command line (without the program name). `virtual_env` is the
/// `VIRTUAL_ENV` environment variable, the fallback of `--virtualenv`.
pub fn parse(args: &[OsString], virtual_env: Option<&str>) -> Result<Command, SettingsError> {
    let mut given: Vec<(&Setting, String)> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| SettingsError(format!("argument {arg:?} is not valid UTF-8")))?;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "-v" || arg == "--version" {
            return Ok(Command::Version);
        }
        if arg == "--" {
            positional.extend(iter.by_ref().map(|a| a.to_string_lossy().into_owned()));
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            positional.push(arg.to_owned());
            continue;
        }
        let (flag, inline) = split_flag(arg);
        let setting = find_flag(flag)
            .ok_or_else(|| SettingsError(format!("unknown option '{flag}' (see --help)")))?;
        let value = match inline {
            Some(v) => v.to_owned(),
            None => iter
                .next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    SettingsError(format!(
                        "{} needs a value ({})",
                        setting.long_flag(),
                        setting.meta
                    ))
                })?,
        };
        if !setting.repeatable && given.iter().any(|(s, _)| s.name == setting.name) {
            return Err(SettingsError(format!(
                "{} is given more than once",
                setting.long_flag()
            )));
        }
        given.push((setting, value));
    }

    let mut settings = Settings::empty();
    for setting in SETTINGS {
        let mut values = given
            .iter()
            .filter(|(s, _)| s.name == setting.name)
            .peekable();
        if values.peek().is_none() {
            if let Some(default) = setting.default {
                (setting.apply)(&mut settings, default)
                    .unwrap_or_else(|e| panic!("default of {} is invalid: {e}", setting.name));
            }
        }
        for (_, value) in values {
            (setting.apply)(&mut settings, value).map_err(|expected| {
                SettingsError(format!(
                    "invalid value '{value}' for {}: {expected}",
                    setting.long_flag()
                ))
            })?;
        }
    }
    if settings.virtualenv.is_none() {
        if let Some(venv) = virtual_env.filter(|v| !v.is_empty()) {
            settings.virtualenv = Some(virtualenv_dir(venv).map_err(|expected| {
                SettingsError(format!(
                    "invalid value '{venv}' for VIRTUAL_ENV (environment): {expected}"
                ))
            })?);
        }
    }
    settings.app = match positional.as_slice() {
        [] => {
            return Err(SettingsError(
                "missing the application: ferrocorn [OPTIONS] MODULE:APP (see --help)".into(),
            ))
        }
        [app] => {
            check_app(app)
                .map_err(|e| SettingsError(format!("invalid application '{app}': {e}")))?;
            app.clone()
        }
        [_, extra, ..] => {
            return Err(SettingsError(format!(
                "unexpected argument '{extra}': only one MODULE:APP is accepted"
            )))
        }
    };
    Ok(Command::Run(Box::new(settings)))
}

/// Splits `--flag=value` and `-wVALUE`; a bare flag has no inline value.
fn split_flag(arg: &str) -> (&str, Option<&str>) {
    if let Some(long) = arg.strip_prefix("--") {
        match long.find('=') {
            Some(i) => (&arg[..i + 2], Some(&long[i + 1..])),
            None => (arg, None),
        }
    } else if arg.len() > 2 && arg.is_char_boundary(2) {
        (&arg[..2], Some(arg[2..].trim_start_matches('=')))
    } else {
        (arg, None)
    }
}

fn find_flag(flag: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.flags.contains(&flag))
}

fn parse_positive(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a positive integer".into()),
    }
}

fn parse_count(v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| "expected a whole number (0 or more)".into())
}

fn parse_seconds(v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| "expected a whole number of seconds (0 or more)".into())
}

fn existing_dir(v: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(v);
    if path.is_dir() {
        Ok(path)
    } else {
        Err("expected an existing directory".into())
    }
}

fn virtualenv_dir(v: &str) -> Result<PathBuf, String> {
    let path = existing_dir(v)?;
    if python_of(&path).exists() {
        Ok(path)
    } else {
        Err("expected a virtualenv directory (it has no bin/python)".into())
    }
}

/// The interpreter a virtualenv's scripts run with.
pub fn python_of(virtualenv: &Path) -> PathBuf {
    virtualenv.join("bin").join("python")
}

/// Parses `unix:PATH`, `HOST:PORT`, `[V6]:PORT`, or `HOST` (port 8000).
pub fn parse_bind(v: &str) -> Result<BindAddr, String> {
    const EXPECTED: &str = "expected unix:PATH or HOST:PORT";
    if let Some(path) = v.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("{EXPECTED} (the path is empty)"));
        }
        return Ok(BindAddr::Unix(PathBuf::from(path)));
    }
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(EXPECTED)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or(EXPECTED)?)),
        }
    } else {
        match v.rsplit_once(':') {
            Some((_, _)) if v.matches(':').count() > 1 => {
                return Err(format!("{EXPECTED} (put IPv6 addresses in brackets)"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (v, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{EXPECTED} (the host is empty or has spaces)"));
    }
    let port = match port {
        None => 8000,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{EXPECTED} (port must be 0-65535)"))?,
    };
    Ok(BindAddr::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// Checks the shape of `MODULE[:EXPR]` without Python: a dotted module
/// name, and a non-empty expression when a colon is present. The
/// expression itself is parsed by the worker, with Python's `ast`.
fn check_app(app: &str) -> Result<(), String> {
    let (module, expr) = match app.split_once(':') {
        Some((m, e)) => (m, Some(e)),
        None => (app, None),
    };
    let identifier = |part: &str| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    if !module.split('.').all(identifier) {
        return Err(
            "expected MODULE:APP with a dotted module name, e.g. myproject.wsgi:application".into(),
        );
    }
    if expr.is_some_and(|e| e.trim().is_empty()) {
        return Err("nothing after ':' (expected an attribute name or factory call)".into());
    }
    Ok(())
}

/// `--help`, generated from [`SETTINGS`].
pub fn help() -> String {
    let mut out = format!(
        "ferrocorn {} - a pre-fork WSGI server behind nginx's ferrocorn module\n\n\
         Usage: ferrocorn [OPTIONS] MODULE:APP\n\n\
         Arguments:\n  MODULE:APP\n",
        env!("CARGO_PKG_VERSION")
    );
    wrap_into(&mut out, APP_DOC);
    out.push_str("\nOptions:\n");
    for s in SETTINGS {
        let flags = match s.flags {
            [short, long] => format!("{short}, {long}"),
            [long] => format!("    {long}"),
            _ => s.flags.join(", "),
        };
        out.push_str(&format!("  {flags} {}", s.meta));
        match s.default {
            Some(d) => out.push_str(&format!("  [default: {d}]")),
            None => out.push_str("  [default: unset]"),
        }
        if s.repeatable {
            out.push_str("  [repeatable]");
        }
        out.push('\n');
        wrap_into(&mut out, s.doc);
    }
    out.push_str("  -h, --help\n        Print this help and exit.\n");
    out.push_str("  -v, --version\n        Print the version and exit.\n");
    out.push_str(
        "\nSignals to the master: TERM graceful stop, INT/QUIT quick stop, HUP restart\n\
         the workers (reloading the app), TTIN/TTOU one worker more/less, USR1 reopen\n\
         the log file.\n\
         Exit codes: 0 stopped, 1 startup error, 2 bad command line, 3 a worker failed\n\
         to boot, 4 the app failed to load.\n",
    );
    out
}

/// Appends `text` as an indented paragraph wrapped at 78 columns.
fn wrap_into(out: &mut String, text: &str) {
    const INDENT: &str = "        ";
    let mut line = String::from(INDENT);
    for word in text.split_whitespace() {
        if line.len() > INDENT.len() && line.len() + 1 + word.len() > 78 {
            out.push_str(&line);
            out.push('\n');
            line = String::from(INDENT);
        }
        if line.len() > INDENT.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Settings, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse(&args, None).map_err(|e| e.0)? {
            Command::Run(s) => Ok(*s),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_gunicorn() {
        let s = run(&["app:application"]).unwrap();
        assert_eq!(s.app, "app:application");
        assert_eq!(
            s.bind,
            vec![BindAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 8000
            }]
        );
        assert_eq!(s.workers, 1);
        assert_eq!(s.timeout, 30);
        assert_eq!(s.graceful_timeout, 30);
        assert_eq!(s.keep_alive, 2);
        assert_eq!(s.log_level, Level::Info);
        assert_eq!(s.error_logfile, LogTarget::Stderr);
        assert_eq!(s.chdir, None);
        assert!(s.pythonpath.is_empty());
    }

    #[test]
    fn every_flag_form_is_accepted() {
        let s = run(&[
            "-w4",
            "--timeout=10",
            "--graceful-timeout",
            "5",
            "-b",
            "unix:/tmp/f.sock",
            "--bind=[::1]:9000",
            "--keep-alive",
            "0",
            "--pythonpath",
            "/a, /b",
            "--log-level",
            "DEBUG",
            "--error-logfile",
            "/tmp/err.log",
            "pkg.mod:make('x', n=2)",
        ])
        .unwrap();
        assert_eq!(s.workers, 4);
        assert_eq!(s.timeout, 10);
        assert_eq!(s.graceful_timeout, 5);
        assert_eq!(s.keep_alive, 0);
        assert_eq!(
            s.bind,
            vec![
                BindAddr::Unix("/tmp/f.sock".into()),
                BindAddr::Tcp {
                    host: "::1".into(),
                    port: 9000
                }
            ]
        );
        assert_eq!(s.pythonpath, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(s.log_level, Level::Debug);
        assert_eq!(s.error_logfile, LogTarget::File("/tmp/err.log".into()));
        assert_eq!(s.app, "pkg.mod:make('x', n=2)");
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert_eq!(
            run(&["-w", "x", "a:b"]).unwrap_err(),
            "invalid value 'x' for --workers: expected a positive integer"
        );
        assert_eq!(
            run(&["--workers=0", "a:b"]).unwrap_err(),
            "invalid value '0' for --workers: expected a positive integer"
        );
        assert_eq!(
            run(&["--timeout", "-1", "a:b"]).unwrap_err(),
            "invalid value '-1' for --timeout: expected a whole number of seconds (0 or more)"
        );
        assert!(run(&["--log-level", "loud", "a:b"])
            .unwrap_err()
            .starts_with("invalid value 'loud' for --log-level: expected one of debug"));
        assert!(run(&["-b", "localhost:http", "a:b"])
            .unwrap_err()
            .starts_with("invalid value 'localhost:http' for --bind:"));
        assert!(run(&["-b", "::1:80", "a:b"])
            .unwrap_err()
            .contains("brackets"));
        assert_eq!(
            run(&["--chdir", "/nonexistent/dir", "a:b"]).unwrap_err(),
            "invalid value '/nonexistent/dir' for --chdir: expected an existing directory"
        );
        assert!(run(&["--virtualenv", "/tmp", "a:b"])
            .unwrap_err()
            .contains("no bin/python"));
    }

    #[test]
    fn command_line_mistakes_are_explained() {
        assert_eq!(
            run(&["--workerz", "2", "a:b"]).unwrap_err(),
            "unknown option '--workerz' (see --help)"
        );
        assert_eq!(
            run(&["a:b", "-w"]).unwrap_err(),
            "--workers needs a value (INT)"
        );
        assert!(run(&[]).unwrap_err().starts_with("missing the application"));
        assert!(run(&["a:b", "c:d"])
            .unwrap_err()
            .starts_with("unexpected argument 'c:d'"));
        assert_eq!(
            run(&["-w", "2", "--workers", "3", "a:b"]).unwrap_err(),
            "--workers is given more than once"
        );
        assert!(run(&["my-app:x"])
            .unwrap_err()
            .starts_with("invalid application 'my-app:x'"));
        assert!(run(&["app:"]).unwrap_err().contains("nothing after ':'"));
    }

    #[test]
    fn help_and_version_win() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(parse(&args(&["--help"]), None), Ok(Command::Help));
        assert_eq!(parse(&args(&["-w", "x", "-h"]), None), Ok(Command::Help));
        assert_eq!(parse(&args(&["--version"]), None), Ok(Command::Version));
        let help = help();
        for s in SETTINGS {
            assert!(help.contains(s.long_flag()), "{} missing from help", s.name);
        }
        assert!(
            help.lines().all(|l| l.len() <= 80),
            "help wraps at 80 columns"
        );
    }

    #[test]
    fn virtual_env_variable_is_the_fallback() {
        let args = vec![OsString::from("a:b")];
        let err = parse(&args, Some("/nonexistent-venv")).unwrap_err();
        assert!(err.0.contains("VIRTUAL_ENV"), "{err}");
        match parse(&args, Some("")).unwrap() {
            Command::Run(s) => assert_eq!(s.virtualenv, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        // parse() panics on an invalid default; this exercises all of them.
        run(&["a"]).unwrap();
    }

    #[test]
    fn bind_display_round_trips() {
        for v in [
            "unix:/run/x.sock",
            "127.0.0.1:80",
            "[::1]:9000",
            "localhost:1",
        ] {
            assert_eq!(parse_bind(v).unwrap().to_string(), v);
        }
        assert_eq!(parse_bind("example").unwrap().to_string(), "example:8000");
    }
}
