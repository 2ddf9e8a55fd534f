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

use crate::config_file::Entry;
use crate::logging::Level;
use crate::settings_compat as compat;

/// The validated configuration of one `ferrocorn` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The WSGI application, `MODULE[:EXPRESSION]`.
    pub app: String,
    /// Sockets to listen on, in command-line order.
    pub bind: Vec<BindAddr>,
    /// Target number of worker processes.
    pub workers: usize,
    /// Requests each worker serves at once, one per thread (`--threads`).
    pub threads: usize,
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
    /// `-c`: the config file read.
    pub config: Option<PathBuf>,
    /// `--check-config`: validate, print, exit.
    pub check_config: bool,
    /// `raw_env`: `KEY=VALUE` put in the environment of the workers.
    pub raw_env: Vec<(String, String)>,
    /// `--pid`: a file holding the master's pid while it runs.
    pub pidfile: Option<PathBuf>,
    /// `--umask`: the master's umask (files and sockets it creates).
    pub umask: u32,
    /// `--user`/`--group`: what workers switch to after fork.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `--bind-mode`: permissions of unix socket files; `None` is 0660
    /// when `--bind-group` is given, else 0666.
    pub bind_mode: Option<u32>,
    /// `--bind-group`: the group unix socket files are given to (nginx's).
    pub bind_group: Option<String>,
    /// `--access-logfile`: where workers write one line per request.
    pub access_logfile: Option<LogTarget>,
    /// `--access-logformat`: Gunicorn's `access_log_format`.
    pub access_log_format: String,
    /// `--statsd-host`: `HOST:PORT` of a statsd server (UDP).
    pub statsd_host: Option<String>,
    /// `--statsd-prefix`: put in front of every statsd metric name.
    pub statsd_prefix: String,
    /// `--metrics-bind`: `HOST:PORT` where the master serves Prometheus
    /// metrics.
    pub metrics_bind: Option<String>,
    /// `--control-socket`: where the master listens for `ferrocorn ctl`
    /// (relative to the directory after `--chdir`).
    pub control_socket: PathBuf,
    /// `--no-control-socket`: no control socket at all.
    pub control_socket_disable: bool,
    /// `wsgi_app` from a config file, when no app is on the command line.
    pub wsgi_app: Option<String>,
    /// `--preload`: import the app in the master before forking workers.
    pub preload_app: bool,
    /// `-D`/`--daemon`: detach from the terminal before starting.
    pub daemon: bool,
    /// `--allow-root` (or `FERROCORN_ALLOW_ROOT=1`): started as root with no
    /// `--user`, run the app as root anyway instead of refusing.
    pub allow_root: bool,
    /// Server hooks the config file defines that workers run
    /// (`post_fork`, `pre_request`...); the worker reads them from the file.
    pub hooks: Vec<String>,
    /// Server hooks the config file defines that the master calls
    /// (`on_starting`, `pre_fork`...), run by the hook runner process.
    pub master_hooks: Vec<String>,
    /// `--hook-timeout`: seconds a master-side hook may run before the
    /// master logs it, kills the hook runner and goes on.
    pub hook_timeout: u64,
    /// `--reload`: workers restart when a loaded Python file changes.
    pub reload: bool,
    /// `--reload-engine`: how `--reload` notices a change.
    pub reload_engine: ReloadEngine,
    /// `--reload-extra-file`: more files whose change restarts workers.
    pub reload_extra_files: Vec<PathBuf>,
    /// Settings accepted without effect, logged as warnings at start.
    pub warnings: Vec<String>,
    /// Every setting's values after all sources, for `--check-config`.
    pub effective: Vec<(&'static str, Vec<String>)>,
}

impl Settings {
    /// Every setting as server hooks see it in `cfg`: name, whether it is
    /// repeatable (a list), and its values in command-line spelling.
    pub fn for_hooks(&self) -> Vec<(&'static str, bool, Vec<String>)> {
        self.effective
            .iter()
            .map(|(name, values)| {
                let repeatable = SETTINGS.iter().any(|s| s.name == *name && s.repeatable);
                (*name, repeatable, values.clone())
            })
            .collect()
    }
}

/// `--reload-engine`: how `--reload` notices that a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadEngine {
    /// inotify, else polling.
    Auto,
    /// Modification times, once a second.
    Poll,
    /// inotify watches on the files' directories.
    Inotify,
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
    /// `-` for the access log (Gunicorn writes it to standard output).
    Stdout,
    File(PathBuf),
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Box<Settings>),
    Help,
    Version,
    /// `--help-markdown`: the README's settings table.
    Markdown,
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
              socket file is replaced; see `--bind-mode` and `--bind-group` for \
              who may connect) or `HOST:PORT` (IPv4, `[IPv6]` or a \
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
              and serves one request at a time (`--threads` at a time with \
              threads); a common start is 2-4 per core.",
        apply: |s, v| {
            s.workers = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        name: "threads",
        flags: &["--threads"],
        meta: "INT",
        default: Some("1"),
        repeatable: false,
        doc: "Threads per worker, each serving one request: a worker serves up to \
              this many at once (Gunicorn's `gthread`). Its main thread polls for \
              requests and hands them to the threads; the GIL is released around \
              all socket I/O, so threads help apps that wait (on databases, other \
              services) and `wsgi.multithread` is true. While all threads are busy, \
              the worker takes no more, leaving them to the other workers. \
              `--timeout` applies per request: one request stuck that long aborts \
              the whole worker (its other requests fail with 502). 1 keeps the \
              single-threaded worker.",
        apply: |s, v| {
            s.threads = parse_positive(v)?;
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
              request) are killed and replaced: first SIGABRT, then SIGKILL \
              (with a `worker_abort` hook, a signal that runs it comes a \
              second before). 0 disables the check.",
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
        default: Some("75"),
        repeatable: false,
        doc: "How long a worker keeps an idle connection from nginx open for the \
              next request (nginx's `ferrocorn_keepalive`, or `keepalive` in an \
              `upstream {}` block). 0 closes every \
              connection after its response. The default outlasts nginx's \
              upstream `keepalive_timeout` (60s), so nginx, not the worker, \
              closes idle connections: a request is never sent on one the \
              worker is closing. Idle connections cost a worker nothing.",
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
        doc: "A virtualenv whose packages the app uses. Defaults to the \
              `VIRTUAL_ENV` environment variable when that is set, else to a \
              `.venv` or `venv` (with a `pyvenv.cfg`) inside the `--chdir` \
              directory. The binary starts Python as its `bin/python`, so its \
              site-packages load; Ferrocorn installed with pip runs on its own \
              venv's Python and adds another venv's site-packages. Either \
              refuses, naming both versions, a venv made by another Python than \
              the one serving: install Ferrocorn into that venv instead.",
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
    Setting {
        name: "config",
        flags: &["-c", "--config"],
        meta: "FILE",
        default: None,
        repeatable: false,
        doc: "A Gunicorn-style Python config file: top-level names are settings \
              (`workers = 4`, `bind = [\"unix:/run/app.sock\"]`...), read by a \
              python subprocess, so none of its code runs in the master. \
              `FERROCORN_CMD_ARGS` (or `GUNICORN_CMD_ARGS`) overrides it, the \
              command line overrides both. Names starting with `_` are helpers; \
              any other unknown name stops the start.",
        apply: |s, v| {
            // Absolute: workers read the file's hooks after --chdir.
            s.config = Some(std::path::absolute(v).map_err(|e| e.to_string())?);
            Ok(())
        },
    },
    Setting {
        name: "check_config",
        flags: &["--check-config"],
        meta: "",
        default: Some("false"),
        repeatable: false,
        doc: "Validate the configuration, load the app once in a child process, \
              print the effective settings and exit (0 when all is well, 4 when \
              the app fails to load).",
        apply: |s, v| {
            s.check_config = parse_bool(v)?;
            Ok(())
        },
    },
    Setting {
        name: "wsgi_app",
        flags: &["--wsgi-app"],
        meta: "MODULE:APP",
        default: None,
        repeatable: false,
        doc: "The application, for config files (`wsgi_app = \"pkg.wsgi:app\"`); \
              the positional argument wins.",
        apply: |s, v| {
            s.wsgi_app = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "preload_app",
        flags: &["--preload"],
        meta: "",
        default: Some("false"),
        repeatable: false,
        doc: "Import the app in the master, then fork the workers from it: \
              they share the app's memory copy-on-write and start at once. \
              As with Gunicorn, HUP then restarts the workers without \
              re-importing the app; to load new code, upgrade the master \
              (USR2) or restart it.",
        apply: |s, v| {
            s.preload_app = parse_bool(v)?;
            Ok(())
        },
    },
    Setting {
        name: "allow_root",
        flags: &["--allow-root"],
        meta: "",
        default: Some("false"),
        repeatable: false,
        doc: "Started as root without `--user`, ferrocorn refuses to run the \
              app as root; this (or `FERROCORN_ALLOW_ROOT=1` in the \
              environment) says it may. Better: `--user`/`--group`.",
        apply: |s, v| {
            s.allow_root = parse_bool(v)?;
            Ok(())
        },
    },
    Setting {
        name: "raw_env",
        flags: &["-e", "--env"],
        meta: "KEY=VALUE",
        default: None,
        repeatable: true,
        doc: "Set an environment variable for the app (repeatable).",
        apply: |s, v| {
            let (k, val) = v
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or("expected KEY=VALUE")?;
            s.raw_env.push((k.to_owned(), val.to_owned()));
            Ok(())
        },
    },
    Setting {
        name: "daemon",
        flags: &["-D", "--daemon"],
        meta: "",
        default: Some("false"),
        repeatable: false,
        doc: "Detach from the terminal and run in the background, as Gunicorn \
              does: the command returns once the master has forked itself \
              away (setsid, standard streams to /dev/null, so give \
              --error-logfile); pair it with --pid to find the master. Under \
              systemd, leave it off (Type=notify wants the master in the \
              foreground).",
        apply: |s, v| {
            s.daemon = parse_bool(v)?;
            Ok(())
        },
    },
    Setting {
        name: "pidfile",
        flags: &["-p", "--pid"],
        meta: "FILE",
        default: None,
        repeatable: false,
        doc: "Write the master's pid to this file at start; it is removed at exit.",
        apply: |s, v| {
            s.pidfile = Some(PathBuf::from(v));
            Ok(())
        },
    },
    Setting {
        name: "umask",
        flags: &["-m", "--umask"],
        meta: "INT",
        default: Some("0"),
        repeatable: false,
        doc: "The master's file mode creation mask, as Gunicorn takes it: \
              decimal, or octal as `0o22`/`022`.",
        apply: |s, v| {
            let v = v.trim();
            let parsed = if let Some(oct) = v.strip_prefix("0o").or(v.strip_prefix("0O")) {
                u32::from_str_radix(oct, 8)
            } else if v.len() > 1 && v.starts_with('0') {
                u32::from_str_radix(&v[1..], 8)
            } else {
                v.parse()
            };
            s.umask = parsed
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or("expected a mask from 0 to 0o777")?;
            Ok(())
        },
    },
    Setting {
        name: "user",
        flags: &["-u", "--user"],
        meta: "USER",
        default: None,
        repeatable: false,
        doc: "Workers switch to this user (name or uid) after fork; unix socket \
              files are given to it. The master keeps its user.",
        apply: |s, v| {
            s.user = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "group",
        flags: &["-g", "--group"],
        meta: "GROUP",
        default: None,
        repeatable: false,
        doc: "Workers switch to this group (name or gid) after fork.",
        apply: |s, v| {
            s.group = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "bind_mode",
        flags: &["--bind-mode"],
        meta: "MODE",
        default: None,
        repeatable: false,
        doc: "Permissions of the unix socket files ferrocorn creates, in octal \
              (`0660`). Unset: 0660 when `--bind-group` names nginx's group, \
              else 0666 (any local user may connect, as with Gunicorn), since \
              nginx's workers must be able to connect; less what `--umask` masks. Sockets handed over by \
              systemd keep the `SocketMode=` of their unit.",
        apply: |s, v| {
            s.bind_mode = Some(parse_mode(v)?);
            Ok(())
        },
    },
    Setting {
        name: "bind_group",
        flags: &["--bind-group"],
        meta: "GROUP",
        default: None,
        repeatable: false,
        doc: "Give the unix socket files to this group (name or gid): the group \
              nginx's workers run as (`www-data` on Debian, `nginx` on Red Hat \
              and Alpine), so a mode of 0660 lets nginx in and keeps other \
              users out.",
        apply: |s, v| {
            if v.trim().is_empty() {
                return Err("expected a group name or gid".into());
            }
            s.bind_group = Some(v.trim().to_owned());
            Ok(())
        },
    },
    Setting {
        name: "accesslog",
        flags: &["--access-logfile"],
        meta: "FILE",
        default: None,
        repeatable: false,
        doc: "Write one line per request to this file, in `--access-logformat`; \
              `-` is standard output. Workers write the lines; SIGUSR1 reopens \
              the file (log rotation). Unset: no access log (nginx's has every \
              request too).",
        apply: |s, v| {
            s.access_logfile = Some(match v {
                "" => return Err("expected a file path or -".into()),
                "-" => LogTarget::Stdout,
                path => LogTarget::File(PathBuf::from(path)),
            });
            Ok(())
        },
    },
    Setting {
        name: "access_log_format",
        flags: &["--access-logformat", "--access-log-format"],
        meta: "FORMAT",
        default: None,
        repeatable: false,
        doc: "The access log line; unset, Gunicorn's default \
              `%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"`. \
              Gunicorn's atoms: `%(h)s` client \
              address, `%(l)s` `-`, `%(u)s` user (Basic auth), `%(t)s` time, \
              `%(r)s` request line, `%(m)s` method, `%(U)s` path, `%(q)s` query, \
              `%(H)s` protocol, `%(s)s` status, `%(b)s`/`%(B)s` body bytes, \
              `%(f)s` referer, `%(a)s` user agent, `%(T)s` seconds, `%(M)s` \
              milliseconds, `%(D)s` microseconds, `%(L)s` decimal seconds, \
              `%(p)s` worker pid, `%({name}i)s` a request header, `%({name}o)s` \
              a response header, `%({NAME}e)s` an environment variable. \
              Unknown atoms print `-`.",
        apply: |s, v| {
            crate::access_log::AccessFormat::parse(v)?;
            s.access_log_format = v.to_owned();
            Ok(())
        },
    },
    Setting {
        name: "statsd_host",
        flags: &["--statsd-host"],
        meta: "HOST:PORT",
        default: None,
        repeatable: false,
        doc: "Send Gunicorn's statsd metrics over UDP to this address: \
              `gunicorn.requests`, `gunicorn.request.duration` (ms), \
              `gunicorn.request.status.NNN`, `gunicorn.workers`, \
              `gunicorn.log.critical|error|warning|exception`.",
        apply: |s, v| {
            if let BindAddr::Unix(_) = parse_bind(v)? {
                return Err("expected HOST:PORT (statsd listens on UDP)".into());
            }
            s.statsd_host = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "statsd_prefix",
        flags: &["--statsd-prefix"],
        meta: "PREFIX",
        default: None,
        repeatable: false,
        doc: "Put in front of every statsd metric name, with a dot after it \
              (`myapp` gives `myapp.gunicorn.requests`).",
        apply: |s, v| {
            let v = v.trim().trim_end_matches('.');
            if v.contains([':', '|', '@', '\n']) {
                return Err("expected a dotted name without ':', '|' or '@'".into());
            }
            s.statsd_prefix = if v.is_empty() {
                String::new()
            } else {
                format!("{v}.")
            };
            Ok(())
        },
    },
    Setting {
        name: "metrics_bind",
        flags: &["--metrics-bind"],
        meta: "HOST:PORT",
        default: None,
        repeatable: false,
        doc: "Serve Prometheus metrics at `http://HOST:PORT/metrics` from the \
              master: requests, latency histogram, responses by status, workers \
              alive, worker restarts by reason. Bind it to a local address.",
        apply: |s, v| {
            if let BindAddr::Unix(_) = parse_bind(v)? {
                return Err("expected HOST:PORT".into());
            }
            s.metrics_bind = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "reload",
        flags: &["--reload"],
        meta: "",
        default: Some("false"),
        repeatable: false,
        doc: "Development: a worker restarts when a Python file of a module it \
              has loaded (or a `--reload-extra-file`) changes, checked once a \
              second between requests; the next request is served by the new \
              code. A file that no longer imports gives 500s with the \
              traceback until it is fixed. With `--preload` the new workers \
              fork from the master's copy of the app (a warning says so).",
        apply: |s, v| {
            s.reload = parse_bool(v)?;
            Ok(())
        },
    },
    Setting {
        name: "reload_engine",
        flags: &["--reload-engine"],
        meta: "ENGINE",
        default: Some("auto"),
        repeatable: false,
        doc: "How `--reload` notices changes: `inotify` (the kernel tells each \
              worker which watched directory changed), `poll` (the \
              modification time of every loaded file, once a second), or \
              `auto`: inotify, and polling where inotify cannot be had (its \
              watch limit reached). Either way a worker looks between \
              requests, at most once a second.",
        apply: |s, v| {
            s.reload_engine = match v.trim() {
                "auto" => ReloadEngine::Auto,
                "poll" => ReloadEngine::Poll,
                "inotify" => ReloadEngine::Inotify,
                _ => return Err("auto, poll or inotify".into()),
            };
            Ok(())
        },
    },
    Setting {
        name: "reload_extra_files",
        flags: &["--reload-extra-file"],
        meta: "FILE",
        default: None,
        repeatable: true,
        doc: "With `--reload`, also restart the workers when this file changes \
              (templates, configuration; repeatable).",
        apply: |s, v| {
            let path = PathBuf::from(v);
            if !path.is_file() {
                return Err("expected an existing file".into());
            }
            s.reload_extra_files.push(path);
            Ok(())
        },
    },
    Setting {
        name: "hook_timeout",
        flags: &["--hook-timeout"],
        meta: "SECONDS",
        default: Some("30"),
        repeatable: false,
        doc: "How long a master-side server hook of the config file \
              (`on_starting`, `pre_fork`, `child_exit`...) may run. One that \
              takes longer is logged, the process running it is killed and \
              restarted, and the master goes on.",
        apply: |s, v| {
            s.hook_timeout = parse_positive(v)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "control_socket",
        flags: &["--control-socket"],
        meta: "PATH",
        default: Some(DEFAULT_CONTROL_SOCKET),
        repeatable: false,
        doc: "The unix socket `ferrocorn ctl` talks to (Gunicorn's `gunicornc`): \
              show workers, stats and config, add, remove or stop workers, \
              reload, reopen the logs, shut down. A relative path is taken in \
              the directory after `--chdir`. The file is made mode 0600 and \
              the master answers only its own user and root; it is removed at \
              exit, and a stale one is replaced. The default is best effort: \
              where it cannot be made (a directory the master may not write \
              to, another server's socket there) the server starts without \
              one and logs a warning; a path given here must work.",
        apply: |s, v| {
            if v.trim().is_empty() {
                return Err("expected a file path".into());
            }
            s.control_socket = PathBuf::from(v);
            Ok(())
        },
    },
    Setting {
        name: "control_socket_disable",
        flags: &["--no-control-socket"],
        meta: "",
        default: Some("false"),
        repeatable: false,
        doc: "Do not create the control socket.",
        apply: |s, v| {
            s.control_socket_disable = parse_bool(v)?;
            Ok(())
        },
    },
];

/// Where the control socket goes unless told: Gunicorn's `gunicorn.ctl`.
pub const DEFAULT_CONTROL_SOCKET: &str = "ferrocorn.ctl";

impl Settings {
    /// The control socket's path, unless `--no-control-socket`.
    pub fn control_socket(&self) -> Option<&Path> {
        (!self.control_socket_disable).then_some(self.control_socket.as_path())
    }

    /// Settings before any value is applied; every field is then set from a
    /// default or the command line.
    fn empty() -> Self {
        Settings {
            app: String::new(),
            bind: Vec::new(),
            workers: 0,
            threads: 0,
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
            config: None,
            check_config: false,
            raw_env: Vec::new(),
            pidfile: None,
            umask: 0,
            user: None,
            group: None,
            bind_mode: None,
            bind_group: None,
            access_logfile: None,
            access_log_format: crate::access_log::DEFAULT_FORMAT.to_owned(),
            statsd_host: None,
            statsd_prefix: String::new(),
            metrics_bind: None,
            control_socket: PathBuf::new(),
            control_socket_disable: false,
            wsgi_app: None,
            preload_app: false,
            daemon: false,
            allow_root: false,
            hooks: Vec::new(),
            master_hooks: Vec::new(),
            hook_timeout: 0,
            reload: false,
            reload_engine: ReloadEngine::Auto,
            reload_extra_files: Vec::new(),
            warnings: Vec::new(),
            effective: Vec::new(),
        }
    }
}

/// Where the process's own settings come from besides its arguments.
#[derive(Debug, Default, Clone, Copy)]
pub struct Environment<'a> {
    /// `VIRTUAL_ENV`, the fallback of `--virtualenv`.
    pub virtual_env: Option<&'a str>,
    /// `FERROCORN_CMD_ARGS` or `GUNICORN_CMD_ARGS`: (variable, value).
    pub cmd_args: Option<(&'a str, &'a str)>,
    /// `FERROCORN_ALLOW_ROOT`: `1`/`true`/`yes` acts as `--allow-root`.
    pub allow_root: Option<&'a str>,
}

impl<'a> Environment<'a> {
    /// Reads the variables from the process environment (`vars` holds them).
    pub fn from_vars(vars: &'a [(String, String)]) -> Environment<'a> {
        let get = |k: &str| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        let cmd_args = ["FERROCORN_CMD_ARGS", "GUNICORN_CMD_ARGS"]
            .into_iter()
            .find_map(|name| get(name).map(|v| (name, v)));
        Environment {
            virtual_env: get("VIRTUAL_ENV"),
            cmd_args,
            allow_root: get("FERROCORN_ALLOW_ROOT"),
        }
    }
}

/// Evaluates a config file with a python: the real one runs
/// [`crate::config_file::evaluate`]; tests pass their own.
pub type Evaluator<'e> = &'e dyn Fn(&Path, &Path, &[&str]) -> Result<Vec<Entry>, String>;

/// Parses the command line (without the program name), with `VIRTUAL_ENV`
/// only. See [`parse_all`].
#[cfg(test)]
pub fn parse(args: &[OsString], virtual_env: Option<&str>) -> Result<Command, SettingsError> {
    let env = Environment {
        virtual_env,
        ..Environment::default()
    };
    parse_all(args, env, &crate::config_file::evaluate)
}

/// Values given for settings by one source.
type Given = Vec<(&'static Setting, String)>;

/// What one list of arguments says.
#[derive(Default)]
struct Scanned {
    given: Given,
    positional: Vec<String>,
    help: bool,
    version: bool,
    markdown: bool,
}

/// Parses every source, Gunicorn's precedence from lowest to highest:
/// defaults, the `-c` config file, `FERROCORN_CMD_ARGS`/`GUNICORN_CMD_ARGS`,
/// the command line. A repeatable setting takes all its values from the
/// highest source that gives it.
pub fn parse_all(
    args: &[OsString],
    env: Environment<'_>,
    evaluate: Evaluator<'_>,
) -> Result<Command, SettingsError> {
    let cli = scan(args.iter().map(|a| a.to_str()), "command line")?;
    if cli.help {
        return Ok(Command::Help);
    }
    if cli.version {
        return Ok(Command::Version);
    }
    if cli.markdown {
        return Ok(Command::Markdown);
    }
    let from_env = match env.cmd_args {
        Some((var, value)) => {
            let words = split_words(value)
                .map_err(|e| SettingsError(format!("{var} (environment): {e}")))?;
            let scanned = scan(words.iter().map(|w| Some(w.as_str())), var)?;
            if let Some(extra) = scanned.positional.first() {
                return Err(SettingsError(format!(
                    "{var} (environment): unexpected argument '{extra}': give the app on the command line"
                )));
            }
            scanned.given
        }
        None => Vec::new(),
    };
    let mut warnings = Vec::new();
    let mut hooks = Vec::new();
    let mut master_hooks = Vec::new();
    let config = [&cli.given, &from_env]
        .into_iter()
        .find_map(|g| g.iter().rev().find(|(s, _)| s.name == "config"))
        .map(|(_, v)| PathBuf::from(v));
    let from_file = match &config {
        Some(file) => {
            let venv = [&cli.given, &from_env]
                .into_iter()
                .find_map(|g| g.iter().find(|(s, _)| s.name == "virtualenv"))
                .map(|(_, v)| v.as_str())
                .or(env.virtual_env.filter(|v| !v.is_empty()));
            let python = crate::config_file::python_for(venv.map(Path::new));
            let repeatable: Vec<&str> = SETTINGS
                .iter()
                .filter(|s| s.repeatable)
                .map(|s| s.name)
                .collect();
            let entries = evaluate(file, &python, &repeatable).map_err(SettingsError)?;
            file_values(file, entries, &mut warnings, &mut hooks, &mut master_hooks)?
        }
        None => Vec::new(),
    };
    for (source, given) in [("command line", &cli.given), ("environment", &from_env)] {
        for (setting, value) in given {
            if let Some(why) = compat::refusal(setting.name, value) {
                return Err(SettingsError(format!(
                    "{} {value} ({source}) is not supported: {why}",
                    setting.long_flag()
                )));
            }
            if let Some(why) = compat::no_effect(setting.name) {
                warnings.push(format!("{} has no effect: {why}", setting.long_flag()));
            }
        }
    }

    let mut settings = Settings::empty();
    settings.warnings = warnings;
    settings.hooks = hooks;
    settings.master_hooks = master_hooks;
    for setting in SETTINGS {
        let of = |g: &Given| -> Vec<String> {
            g.iter()
                .filter(|(s, _)| s.name == setting.name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let values = [of(&cli.given), of(&from_env), of(&from_file)]
            .into_iter()
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| setting.default.map(String::from).into_iter().collect());
        let from_default = values.len() == 1 && setting.default == Some(values[0].as_str());
        for value in &values {
            (setting.apply)(&mut settings, value).map_err(|expected| {
                if from_default {
                    panic!("default of {} is invalid: {expected}", setting.name)
                }
                SettingsError(format!(
                    "invalid value '{value}' for {}: {expected}",
                    setting.long_flag()
                ))
            })?;
        }
        settings.effective.push((setting.name, values));
    }
    if let Some(v) = env.allow_root.filter(|v| !v.is_empty()) {
        settings.allow_root |= parse_bool(v).map_err(|expected| {
            SettingsError(format!(
                "invalid value '{v}' for FERROCORN_ALLOW_ROOT (environment): {expected}"
            ))
        })?;
    }
    if settings.virtualenv.is_none() {
        if let Some(venv) = env.virtual_env.filter(|v| !v.is_empty()) {
            settings.virtualenv = Some(virtualenv_dir(venv).map_err(|expected| {
                SettingsError(format!(
                    "invalid value '{venv}' for VIRTUAL_ENV (environment): {expected}"
                ))
            })?);
        }
    }
    settings.app = match cli.positional.as_slice() {
        [] => match settings.wsgi_app.take() {
            Some(app) => app,
            None => {
                return Err(SettingsError(
                    "missing the application: ferrocorn [OPTIONS] MODULE:APP (see --help)".into(),
                ))
            }
        },
        [app] => app.clone(),
        [_, extra, ..] => {
            return Err(SettingsError(format!(
                "unexpected argument '{extra}': only one MODULE:APP is accepted"
            )))
        }
    };
    if settings.reload && settings.preload_app {
        // Gunicorn documents the two as incompatible; say it at start.
        settings.warnings.push(
            "--reload with --preload: workers fork from the app the master imported, \
             so edited Python code is not loaded by the restarted workers (extra files \
             and templates are); restart the master to load new code"
                .into(),
        );
    }
    check_app(&settings.app)
        .map_err(|e| SettingsError(format!("invalid application '{}': {e}", settings.app)))?;
    Ok(Command::Run(Box::new(settings)))
}

/// Scans one list of arguments (the command line, or the words of an
/// environment variable named `source`).
fn scan<'a>(
    args: impl Iterator<Item = Option<&'a str>>,
    source: &str,
) -> Result<Scanned, SettingsError> {
    let mut out = Scanned::default();
    let mut args = args.peekable();
    let utf8 = |a: Option<&'a str>| {
        a.ok_or_else(|| SettingsError(format!("an argument of the {source} is not valid UTF-8")))
    };
    while let Some(arg) = args.next() {
        let arg = utf8(arg)?;
        if arg == "-h" || arg == "--help" {
            out.help = true;
            continue;
        }
        if arg == "-v" || arg == "--version" {
            out.version = true;
            continue;
        }
        if arg == "--help-markdown" {
            out.markdown = true;
            continue;
        }
        if arg == "--" {
            for rest in args.by_ref() {
                out.positional.push(utf8(rest)?.to_owned());
            }
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            out.positional.push(arg.to_owned());
            continue;
        }
        let (flag, inline) = split_flag(arg);
        let setting = match find_flag(flag) {
            Some(s) => s,
            // `-k sync`, `-k gthread`: the default (or `--threads`) anyway.
            None if compat::refused_flag(flag).is_some()
                && inline
                    .or_else(|| args.peek().copied().flatten())
                    .is_some_and(|v| compat::harmless_flag_value(flag, v)) =>
            {
                if inline.is_none() {
                    args.next();
                }
                continue;
            }
            None => {
                let place = match source {
                    "command line" => String::new(),
                    var => format!(" in {var}"),
                };
                return Err(SettingsError(match compat::refused_flag(flag) {
                    Some((name, why)) => {
                        format!("{flag} ({name}){place} is not supported: {why}")
                    }
                    None => format!("unknown option '{flag}' (see --help)"),
                }));
            }
        };
        let value = if setting.meta.is_empty() {
            // A switch: `--preload`, or `--preload=false`.
            inline.unwrap_or("true").to_owned()
        } else {
            match inline {
                Some(v) => v.to_owned(),
                None => utf8(args.next().ok_or_else(|| {
                    SettingsError(format!(
                        "{} needs a value ({})",
                        setting.long_flag(),
                        setting.meta
                    ))
                })?)?
                .to_owned(),
            }
        };
        if !setting.repeatable && out.given.iter().any(|(s, _)| s.name == setting.name) {
            return Err(SettingsError(format!(
                "{} is given more than once",
                setting.long_flag()
            )));
        }
        out.given.push((setting, value));
    }
    Ok(out)
}

/// Turns a config file's names into setting values: known settings are
/// taken, inapplicable Gunicorn settings refused with the reason, settings
/// without effect here noted, anything else refused by name.
fn file_values(
    file: &Path,
    entries: Vec<Entry>,
    warnings: &mut Vec<String>,
    hooks: &mut Vec<String>,
    master_hooks: &mut Vec<String>,
) -> Result<Given, SettingsError> {
    let at = |name: &str| format!("{name} in {}", file.display());
    let mut given = Vec::new();
    for entry in entries {
        match entry {
            Entry::Value { name, value } => {
                if let Some(why) = compat::refusal(&name, &value) {
                    return Err(SettingsError(format!(
                        "{name} = {value:?} in {} is not supported: {why}",
                        file.display()
                    )));
                }
                if let Some(why) = compat::no_effect(&name) {
                    warnings.push(format!("{} has no effect: {why}", at(&name)));
                    if find_name(&name).is_none() {
                        continue;
                    }
                }
                match find_name(&name) {
                    Some(setting) if setting.name != "config" => given.push((setting, value)),
                    Some(_) => {}
                    // A Gunicorn setting at a value that changes nothing.
                    None if compat::is_known(&name) => {}
                    None => {
                        return Err(SettingsError(format!(
                            "unknown setting {} (a helper variable must start with '_')",
                            at(&name)
                        )))
                    }
                }
            }
            Entry::Callable { name } if compat::is_worker_hook(&name) => hooks.push(name),
            Entry::Callable { name } if compat::is_master_hook(&name) => master_hooks.push(name),
            Entry::Callable { name } => {
                if let Some(why) = compat::hook_refusal(&name) {
                    return Err(SettingsError(format!(
                        "server hook {} is not supported: {why}",
                        at(&name)
                    )));
                }
                // Other callables are helpers (imported functions...).
            }
            Entry::Unsupported { name, type_name } => {
                if find_name(&name).is_some() || compat::is_known(&name) {
                    return Err(SettingsError(format!(
                        "invalid value for {}: a {type_name} is not a setting value",
                        at(&name)
                    )));
                }
            }
        }
    }
    Ok(given)
}

/// Splits an environment variable into words as Gunicorn does (Python's
/// `shlex.split`, POSIX rules, by the `shlex` crate): whitespace
/// separates, quotes group, a backslash escapes the next character outside
/// quotes, and inside double quotes only a backslash, a double quote, `$`
/// or a backquote (`-e "A=C:\dir"` keeps its backslash).
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    shlex::split(text).ok_or_else(|| "an unclosed quote or a trailing backslash".into())
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

fn find_name(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

fn parse_positive(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a positive integer".into()),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// An octal file mode: `660`, `0660` or `0o660`.
fn parse_mode(v: &str) -> Result<u32, String> {
    let v = v.trim();
    let digits = v.strip_prefix("0o").or(v.strip_prefix("0O")).unwrap_or(v);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !digits.is_empty())
        .ok_or_else(|| "expected an octal mode from 0 to 0777, e.g. 0660".into())
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
    if crate::python::host::python_of(&path).exists() {
        Ok(path)
    } else {
        Err("expected a virtualenv directory (it has no bin/python)".into())
    }
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
        out.push_str(&format!("  {flags}"));
        if !s.meta.is_empty() {
            out.push_str(&format!(" {}", s.meta));
        }
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

/// The README's settings table (markdown), generated from [`SETTINGS`]:
/// `ferrocorn --help-markdown` prints it; a unit test keeps the README in
/// step.
pub fn markdown() -> String {
    let mut out = String::from("| option | config file | default | meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let flags = s
            .flags
            .iter()
            .map(|f| match s.meta {
                "" => format!("`{f}`"),
                meta => format!("`{f} {meta}`"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let default = s.default.map_or(String::new(), |d| format!("`{d}`"));
        let doc = s.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| {flags} | `{}` | {default} | {} |\n",
            s.name,
            doc.replace('|', "\\|")
        ));
    }
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
        assert_eq!(s.keep_alive, 75);
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
    fn threads_and_gunicorns_worker_class_flag() {
        assert_eq!(run(&["a"]).unwrap().threads, 1);
        let s = run(&["-k", "gthread", "--threads", "4", "a"]).unwrap();
        assert_eq!((s.threads, s.app.as_str()), (4, "a"));
        assert_eq!(run(&["--worker-class=sync", "a"]).unwrap().threads, 1);
        assert_eq!(
            run(&["-k", "gevent", "a"]).unwrap_err(),
            format!(
                "-k (worker_class) is not supported: {}",
                compat::refused_flag("-k").unwrap().1
            )
        );
        assert_eq!(
            run(&["--threads", "0", "a"]).unwrap_err(),
            "invalid value '0' for --threads: expected a positive integer"
        );
    }

    #[test]
    fn defaults_are_valid() {
        // parse() panics on an invalid default; this exercises all of them.
        run(&["a"]).unwrap();
    }

    #[test]
    fn readme_settings_table_is_generated_from_the_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown()),
            "README.md's options table is stale: paste `ferrocorn --help-markdown`"
        );
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#" -w 4  --bind 'unix:/a b.sock' -e "X=1 2" a\ b "#).unwrap(),
            vec!["-w", "4", "--bind", "unix:/a b.sock", "-e", "X=1 2", "a b"]
        );
        assert!(split_words("'open").is_err());
        // As Python's shlex.split: a backslash inside double quotes stays
        // unless it escapes one of \\ " $ `.
        assert_eq!(
            split_words(r#"-e "A=C:\dir""#).unwrap(),
            vec!["-e", r"A=C:\dir"]
        );
        assert_eq!(split_words(r"-e A=C:\dir").unwrap(), vec!["-e", "A=C:dir"]);
        assert_eq!(split_words(r#"-e "a\"b""#).unwrap(), vec!["-e", "a\"b"]);
        assert_eq!(split_words("''").unwrap(), vec![""]);
    }

    #[test]
    fn sources_take_precedence_file_then_environment_then_command_line() {
        let file = |_: &Path, _: &Path, _: &[&str]| -> Result<Vec<Entry>, String> {
            let v = |n: &str, v: &str| Entry::Value {
                name: n.into(),
                value: v.into(),
            };
            Ok(vec![
                v("workers", "3"),
                v("timeout", "20"),
                v("keepalive", "9"),
                v("bind", "unix:/a.sock"),
                v("bind", "unix:/b.sock"),
                v("worker_class", "sync"),
                v("wsgi_app", "conf:app"),
            ])
        };
        let args: Vec<OsString> = ["-c", "x.py", "--timeout", "7"]
            .iter()
            .map(OsString::from)
            .collect();
        let env = Environment {
            cmd_args: Some(("GUNICORN_CMD_ARGS", "-w 5 --timeout 6")),
            ..Environment::default()
        };
        let Command::Run(s) = parse_all(&args, env, &file).unwrap() else {
            panic!()
        };
        assert_eq!((s.workers, s.timeout, s.keep_alive), (5, 7, 9));
        assert_eq!(s.bind.len(), 2);
        assert_eq!(s.app, "conf:app");
        // A repeatable setting takes all its values from one source.
        let args: Vec<OsString> = ["-c", "x.py", "-b", "unix:/c.sock", "a:b"]
            .iter()
            .map(OsString::from)
            .collect();
        let Command::Run(s) = parse_all(&args, Environment::default(), &file).unwrap() else {
            panic!()
        };
        assert_eq!(s.bind, vec![BindAddr::Unix("/c.sock".into())]);
        assert_eq!(s.app, "a:b");
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
