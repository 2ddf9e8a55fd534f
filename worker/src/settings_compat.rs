//! Gunicorn settings that do not apply to Ferrocorn, each with the reason
//! a user reads: refused ones stop the start, no-effect ones are accepted
//! with a warning. Never silently ignored.

/// A Gunicorn setting Ferrocorn does not take.
struct Refused {
    name: &'static str,
    /// Its Gunicorn command-line flags.
    flags: &'static [&'static str],
    /// Values that mean "the default" and are fine (`worker_class = "sync"`).
    harmless: &'static [&'static str],
    why: &'static str,
}

const TLS: &str = "TLS ends at nginx (ssl_certificate...); ferrocorn only talks to nginx";

static REFUSED: &[Refused] = &[
    Refused {
        name: "worker_class",
        flags: &["-k", "--worker-class"],
        // gthread is `--threads`, which says how many.
        harmless: &["sync", "gthread"],
        why: "workers are synchronous processes embedding CPython (threaded with --threads); \
              gevent, eventlet, tornado and asyncio workers do not apply (nginx buffers slow \
              clients)",
    },
    Refused {
        name: "worker_connections",
        flags: &["--worker-connections"],
        harmless: &[],
        why: "it only applies to Gunicorn's async workers",
    },
    Refused {
        name: "certfile",
        flags: &["--certfile"],
        harmless: &[],
        why: TLS,
    },
    Refused {
        name: "keyfile",
        flags: &["--keyfile"],
        harmless: &[],
        why: TLS,
    },
    Refused {
        name: "ca_certs",
        flags: &["--ca-certs"],
        harmless: &[],
        why: TLS,
    },
    Refused {
        name: "ssl_version",
        flags: &["--ssl-version"],
        harmless: &[],
        why: TLS,
    },
    Refused {
        name: "cert_reqs",
        flags: &["--cert-reqs"],
        harmless: &[],
        why: TLS,
    },
    Refused {
        name: "ciphers",
        flags: &["--ciphers"],
        harmless: &[],
        why: TLS,
    },
    Refused {
        name: "proxy_protocol",
        flags: &["--proxy-protocol"],
        harmless: &["false"],
        why: "nginx passes the client address in the protocol itself",
    },
    Refused {
        name: "paste",
        flags: &["--paste", "--paster"],
        harmless: &[],
        why: "PasteDeploy apps are not supported; give MODULE:APP",
    },
    Refused {
        name: "logconfig",
        flags: &["--log-config"],
        harmless: &[],
        why: "the error log is ferrocorn's own (--error-logfile, --log-level)",
    },
    Refused {
        name: "logconfig_dict",
        flags: &[],
        harmless: &[],
        why: "the error log is ferrocorn's own (--error-logfile, --log-level)",
    },
    Refused {
        name: "syslog",
        flags: &["--log-syslog"],
        harmless: &["false"],
        why: "not implemented; under systemd the journal collects standard error",
    },
];

/// Accepted, with a warning saying why nothing changes.
static NO_EFFECT: &[(&str, &str)] = &[
    ("forwarded_allow_ips", "nginx gives REMOTE_ADDR and wsgi.url_scheme from its own connection; there is no proxy hop to trust"),
    ("secure_scheme_headers", "nginx gives wsgi.url_scheme from its own connection"),
    ("proxy_allow_ips", "nginx passes the client address in the protocol itself"),
    ("worker_tmp_dir", "heartbeats are in-memory files (memfd), nothing is written to disk"),
    ("proc_name", "process titles are not changed; processes are named ferrocorn"),
    ("limit_request_line", "nginx limits requests (large_client_header_buffers)"),
    ("limit_request_fields", "nginx limits requests (large_client_header_buffers)"),
    ("limit_request_field_size", "nginx limits requests (large_client_header_buffers)"),
    ("backlog", "the listen queue is 2048, Gunicorn's default"),
    ("capture_output", "apps' stdout and stderr stay the master's"),
    ("sendfile", "wsgi.file_wrapper responses are sent in frames"),
    ("initgroups", "workers set only the --group"),
    ("spew", "tracing every line is not supported"),
    ("control_socket_mode", "the control socket is always 0600 and the master answers only its own user and root"),
];

/// Server hooks workers run (the worker reads them from the config file
/// itself): see `python::hooks`.
pub static WORKER_HOOKS: &[&str] = &[
    "post_fork",
    "post_worker_init",
    "pre_request",
    "post_request",
    "worker_int",
    "worker_abort",
    "worker_exit",
];

/// Server hooks the master calls, run by the hook runner process: see
/// `master_hooks`.
pub static MASTER_HOOKS: &[&str] = &[
    "on_starting",
    "on_reload",
    "when_ready",
    "pre_fork",
    "pre_exec",
    "child_exit",
    "nworkers_changed",
    "on_exit",
];

/// Server hooks Gunicorn calls that Ferrocorn refuses, with the reason.
static REFUSED_HOOKS: &[(&str, &str)] = &[("ssl_context", TLS)];

/// Why `name = value` is refused, if it is.
pub fn refusal(name: &str, value: &str) -> Option<&'static str> {
    let r = REFUSED.iter().find(|r| r.name == name)?;
    let v = value.trim().to_ascii_lowercase();
    (!r.harmless.contains(&v.as_str())).then_some(r.why)
}

/// The setting name and reason for a refused Gunicorn flag.
pub fn refused_flag(flag: &str) -> Option<(&'static str, &'static str)> {
    REFUSED
        .iter()
        .find(|r| r.flags.contains(&flag))
        .map(|r| (r.name, r.why))
}

/// Whether `value` given to a refused flag means what Ferrocorn does
/// anyway (`-k sync`, `-k gthread`), so the flag can be taken.
pub fn harmless_flag_value(flag: &str, value: &str) -> bool {
    REFUSED
        .iter()
        .find(|r| r.flags.contains(&flag))
        .is_some_and(|r| refusal(r.name, value).is_none())
}

/// Why a setting is accepted without effect, if it is.
pub fn no_effect(name: &str) -> Option<&'static str> {
    NO_EFFECT
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// Why a server hook defined in a config file is refused.
pub fn hook_refusal(name: &str) -> Option<&'static str> {
    REFUSED_HOOKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// A server hook workers run.
pub fn is_worker_hook(name: &str) -> bool {
    WORKER_HOOKS.contains(&name)
}

/// A server hook the master calls (through the hook runner).
pub fn is_master_hook(name: &str) -> bool {
    MASTER_HOOKS.contains(&name)
}

/// A Gunicorn name this table knows.
pub fn is_known(name: &str) -> bool {
    refusal(name, "\0").is_some()
        || no_effect(name).is_some()
        || is_worker_hook(name)
        || is_master_hook(name)
        || hook_refusal(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_the_rest_is_refused_with_a_reason() {
        assert_eq!(refusal("worker_class", "sync"), None);
        assert_eq!(refusal("worker_class", "SYNC"), None);
        assert!(refusal("worker_class", "gevent")
            .unwrap()
            .contains("gevent"));
        assert!(refusal("certfile", "/etc/x.pem").unwrap().contains("TLS"));
        assert_eq!(refusal("threads", "4"), None);
        assert_eq!(refusal("worker_class", "gthread"), None);
        assert!(
            harmless_flag_value("-k", "gthread") && harmless_flag_value("--worker-class", "sync")
        );
        assert!(
            !harmless_flag_value("-k", "gevent") && !harmless_flag_value("--reload", "app:app")
        );
        assert_eq!(refusal("workers", "4"), None);
        assert_eq!(refused_flag("-k"), Some(("worker_class", REFUSED[0].why)));
        assert!(no_effect("forwarded_allow_ips").is_some());
        assert!(hook_refusal("ssl_context").unwrap().contains("TLS"));
        assert!(hook_refusal("on_starting").is_none() && is_master_hook("on_starting"));
        assert!(hook_refusal("post_fork").is_none() && is_worker_hook("post_fork"));
        assert!(is_worker_hook("worker_abort") && !is_master_hook("worker_abort"));
        assert_eq!(refusal("reload", "true"), None);
        assert_eq!(hook_refusal("my_helper"), None);
        assert!(is_known("certfile") && is_known("on_exit") && !is_known("wrokers"));
    }
}
