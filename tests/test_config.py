"""Gunicorn-compatible configuration: -c FILE, GUNICORN_CMD_ARGS/FERROCORN_CMD_ARGS,
refused settings with their reason, --check-config, pidfile, raw_env, --user."""

import os
import pwd
import signal
import subprocess

import pytest
import requests

from servers import APPS_DIR, FERROCORN_BIN, STOP_TIMEOUT, Ferrocorn, require_binary, wait_until


def run_ferrocorn(*args, env_extra=None, cwd=None):
    require_binary(FERROCORN_BIN)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "GUNICORN_CMD_ARGS", "FERROCORN_CMD_ARGS")}
    env.update(env_extra or {})
    result = subprocess.run(
        [str(FERROCORN_BIN), *args], capture_output=True, timeout=60, stdin=subprocess.DEVNULL, env=env, cwd=cwd
    )
    return result.returncode, (result.stdout + result.stderr).decode()


def effective(output):
    """`name = value` lines of --check-config output as a dict."""
    values = {}
    for line in output.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and name.strip().isidentifier():
            values[name.strip()] = value.strip()
    return values


GUNICORN_CONF = """\
import multiprocessing

bind = ["unix:{sock}"]
workers = 3
timeout = 20
graceful_timeout = 10
keepalive = 5
max_requests = 1000
max_requests_jitter = 50
raw_env = ["FERRO_FROM_CONFIG=yes"]
loglevel = "debug"
worker_class = "sync"
forwarded_allow_ips = "*"
_cores = multiprocessing.cpu_count()
"""


def write_conf(scratch, text=GUNICORN_CONF, name="gunicorn.conf.py"):
    path = scratch / name
    path.write_text(text.format(sock=scratch / "c.sock"))
    return path


def test_check_config_prints_the_settings_of_a_gunicorn_config_file(scratch):
    conf = write_conf(scratch)
    code, out = run_ferrocorn("-c", str(conf), "--check-config", "--chdir", str(APPS_DIR), "basic:app")
    assert code == 0, out
    values = effective(out)
    assert values["bind"] == "unix:%s" % (scratch / "c.sock")
    assert values["workers"] == "3"
    assert values["timeout"] == "20"
    assert values["max_requests_jitter"] == "50"
    assert values["raw_env"] == "FERRO_FROM_CONFIG=yes"
    assert "forwarded_allow_ips" in out and "no effect" in out
    assert "configuration OK" in out
    assert not (scratch / "c.sock").exists(), "--check-config must not bind"


def test_precedence_config_then_environment_then_command_line(scratch):
    conf = write_conf(scratch)
    for var in ("GUNICORN_CMD_ARGS", "FERROCORN_CMD_ARGS"):
        code, out = run_ferrocorn(
            "-c", str(conf), "--check-config", "--timeout", "7", "--chdir", str(APPS_DIR), "basic:app",
            env_extra={var: "--workers 5 --timeout 6 --graceful-timeout '4'"},
        )
        assert code == 0, out
        values = effective(out)
        assert (values["workers"], values["timeout"], values["graceful_timeout"], values["keepalive"]) == (
            "5", "7", "4", "5"), out


def test_threads_and_gthread_are_taken_from_gunicorn_configs(scratch):
    conf = write_conf(scratch, "worker_class = 'gthread'\nthreads = 8\n", "gthread.conf.py")
    code, out = run_ferrocorn("-c", str(conf), "--check-config", "--chdir", str(APPS_DIR), "basic:app")
    assert code == 0, out
    assert effective(out)["threads"] == "8"
    code, out = run_ferrocorn("--check-config", "--chdir", str(APPS_DIR), "basic:app",
                              env_extra={"GUNICORN_CMD_ARGS": "-k gthread --threads 3"})
    assert code == 0, out
    assert effective(out)["threads"] == "3"


def test_check_config_fails_with_4_when_the_app_does_not_load(scratch):
    code, out = run_ferrocorn("--check-config", "--chdir", str(APPS_DIR), "badimport:app")
    assert code == 4, out
    assert "does_not_exist_ferrocorn_test" in out


REFUSED = [
    ("worker_class = 'gevent'\n", "worker_class", "gevent"),
    ("certfile = '/etc/ssl/x.pem'\n", "certfile", "TLS"),
    ("wrokers = 4\n", "wrokers", "unknown setting"),
    ("workers = 'many'\n", "--workers", "positive integer"),
    ("def ssl_context(config, default):\n    pass\n", "ssl_context", "TLS"),
    ("reload_engine = 'fsevents'\n", "--reload-engine", "auto, poll or inotify"),
    ("reload_extra_files = ['/nonexistent/x.html']\n", "--reload-extra-file", "existing file"),
    ("workers = 1 / 0\n", "ZeroDivisionError", "failed"),
    ("threads = 0\n", "--threads", "positive integer"),
]


@pytest.mark.parametrize("text,named,why", REFUSED, ids=[r[1] for r in REFUSED])
def test_inapplicable_or_invalid_settings_stop_the_start_with_a_reason(scratch, text, named, why):
    conf = write_conf(scratch, text, "bad.conf.py")
    code, out = run_ferrocorn("-c", str(conf), "-b", "unix:%s/never.sock" % scratch, "--chdir", str(APPS_DIR), "basic:app")
    assert code == 2, out
    assert named in out and why in out, out
    assert not (scratch / "never.sock").exists()


@pytest.mark.parametrize("args,named", [(["-k", "gevent"], "worker_class"), (["--certfile", "x.pem"], "certfile"),
                                        (["--worker-connections", "10"], "worker_connections")])
def test_inapplicable_gunicorn_flags_are_refused(args, named):
    code, out = run_ferrocorn(*args, "basic:app")
    assert code == 2 and named in out and "not supported" in out, out
    code, out = run_ferrocorn("basic:app", env_extra={"GUNICORN_CMD_ARGS": " ".join(args)})
    assert code == 2 and "GUNICORN_CMD_ARGS" in out, out


def test_config_file_serves_with_raw_env_pidfile_and_user(scratch):
    """A config file drives a real server: its env reaches the app, the pidfile lives as long as the master."""
    app = scratch / "envapp.py"
    app.write_text(
        "import os\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [('%s %d' % (os.environ.get('FERRO_FROM_CONFIG'), os.getuid())).encode()]\n"
    )
    pidfile = scratch / "master.pid"
    conf = write_conf(scratch, 'raw_env = ["FERRO_FROM_CONFIG=yes"]\npidfile = %r\nuser = "nobody"\nworkers = 1\n'
                      'wsgi_app = "envapp:application"\n' % str(pidfile), "serve.conf.py")
    server = Ferrocorn(scratch, "cfg", "", workers=1, extra_args=["-c", str(conf), "--pythonpath", str(scratch)])
    server.command = lambda: [str(FERROCORN_BIN), "-b", "unix:%s" % server.sock, "--error-logfile",
                              str(server.log.path), "-c", str(conf), "--pythonpath", str(scratch)]
    server.start().wait_ready()
    try:
        assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(server.proc.pid), 10)
        workers = server.wait_workers()
        # A worker logs its boot once it has switched users; just forked, it is still root.
        server.wait_for_log(r"\[%d\] \[INFO\] Booting worker with pid: %d" % (workers[0], workers[0]))
        nobody = pwd.getpwnam("nobody").pw_uid
        with open("/proc/%d/status" % workers[0]) as f:
            uid_line = [line for line in f if line.startswith("Uid:")][0]
        assert int(uid_line.split()[1]) == nobody
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(server.sock))  # the socket file is reachable; served through nginx elsewhere
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=STOP_TIMEOUT) == 0
        assert not pidfile.exists()
    finally:
        server.stop()
