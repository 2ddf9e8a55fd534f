"""Running as a system service: systemd's `Type=notify` and socket activation, socket permissions.

No systemd runs here (PID 1 is not systemd, so `systemd-run` cannot start
units): the tests play systemd's part with the same kernel interfaces it
uses. `NOTIFY_SOCKET` is a unix datagram socket this test reads, and
socket activation is a socket this test binds and hands to ferrocorn as
descriptor 3 with `LISTEN_FDS=1`/`LISTEN_PID`/`LISTEN_FDNAMES`, through a
small exec wrapper so that `LISTEN_PID` is the supervisor's own pid (as
systemd sets it between fork and exec).
"""

import configparser
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from servers import APPS_DIR, FERROCORN_BIN, REPO, Ferrocorn, ServerLog, kill_group, unix_connections, wait_until

ENV_APP = """\
import json, os

def application(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "env": sorted(os.environ)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""


class FakeSystemd:
    """The notification side of systemd: a datagram socket ferrocorn writes `KEY=VALUE` lines to."""

    def __init__(self, path=None, abstract=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.sock.bind("\0" + abstract)
            self.address = "@" + abstract
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def collect(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.messages

    def wait_for(self, predicate, timeout=30):
        """The first message (from the start) matching predicate, waiting for it."""
        found = wait_until(lambda: next((m for m in self.collect() if predicate(m)), None), timeout)
        assert found, "no such notification; got %r" % self.messages
        return found

    def close(self):
        self.sock.close()


def fields(message):
    return dict(line.split("=", 1) for line in message.splitlines())


@pytest.fixture
def service(workdir, nginx, scratch):
    """Starts a ferrocorn behind /dedicated/ with extra args and environment."""
    started = []
    (scratch / "envapp.py").write_text(ENV_APP)

    def start(extra_args=(), env=None, app="envapp:application"):
        server = Ferrocorn(
            workdir, "dedicated", app, extra_args=["--pythonpath", str(scratch)] + list(extra_args), env=env
        )
        started.append(server)
        server.start().wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def test_notify_ready_reloading_status_stopping_in_order(service, nginx, scratch):
    systemd = FakeSystemd(scratch / "notify.sock")
    try:
        master = service(env={"NOTIFY_SOCKET": systemd.address})
        ready = fields(systemd.wait_for(lambda m: "READY=1" in m))
        # READY only once both workers have loaded the app.
        assert master.log.text().count("Booting worker") >= 2
        assert ready["MAINPID"] == str(master.proc.pid)
        assert ready["STATUS"] == "Serving with 2 workers on unix:%s" % master.sock
        response = requests.get(nginx.url("/dedicated/"), timeout=30)
        env = response.json()["env"]
        assert "NOTIFY_SOCKET" not in env, "the app must not inherit NOTIFY_SOCKET"

        mark = master.log_marks()
        master.proc.send_signal(signal.SIGHUP)
        master.wait_for_log(r"stopping 2 old workers", since=mark, timeout=30)
        systemd.wait_for(lambda m: m.startswith("READY=1") and "MAINPID" not in m)
        master.proc.send_signal(signal.SIGTTIN)
        systemd.wait_for(lambda m: m == "STATUS=Number of workers: 3")
        master.proc.send_signal(signal.SIGTERM)
        assert master.proc.wait(timeout=30) == 0
        messages = systemd.collect()
    finally:
        systemd.close()
    print("\nnotifications:", messages)
    kinds = [m.splitlines()[0].split("=")[0] for m in messages]
    assert kinds == ["READY", "RELOADING", "READY", "STATUS", "STOPPING"], messages
    reloading = fields(messages[1])
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert reloading["STATUS"].startswith("Reloading")
    assert fields(messages[4]) == {"STOPPING": "1", "STATUS": "Stopping gracefully"}


def test_notify_to_an_abstract_socket_and_a_failed_start(service, scratch):
    name = "ferrocorn-test-%d" % os.getpid()
    systemd = FakeSystemd(abstract=name)
    try:
        service(env={"NOTIFY_SOCKET": systemd.address})
        assert "READY=1" in systemd.wait_for(lambda m: "READY=1" in m)
    finally:
        systemd.close()
    # An app that cannot load: never READY, STOPPING with the reason, exit 4.
    systemd = FakeSystemd(scratch / "notify2.sock")
    (scratch / "broken_import.py").write_text("raise ImportError('nope')\n")
    try:
        server = Ferrocorn(
            scratch,
            "failing",
            "broken_import:app",
            extra_args=["--pythonpath", str(scratch)],
            env={"NOTIFY_SOCKET": systemd.address},
        )
        server.start()
        assert server.proc.wait(timeout=30) == 4
        messages = systemd.collect()
    finally:
        systemd.close()
        server.stop()
    assert not any("READY=1" in m for m in messages), messages
    assert messages and messages[-1].startswith("STOPPING=1\nSTATUS=Stopping: "), messages


# A stand-in for systemd's exec step: put the socket at descriptor 3, set
# LISTEN_PID to our own pid (which exec keeps), exec the supervisor.
ACTIVATE = """\
import os, sys
fd = int(os.environ.pop("TEST_SOCKET_FD"))
os.dup2(fd, 3)
os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"""


def activated_ferrocorn(listener, log, *args, fdnames="dedicated", argv=None, env_extra=None):
    """Starts ferrocorn (or `argv`) the way systemd starts a socket-activated service."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(TEST_SOCKET_FD=str(listener.fileno()), LISTEN_FDS="1", LISTEN_FDNAMES=fdnames)
    env.update(env_extra or {})
    out = open(log.path.with_suffix(".stderr"), "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", ACTIVATE] + (argv or [str(FERROCORN_BIN), *args]),
            env=env,
            pass_fds=[listener.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(REPO),
        )
    finally:
        out.close()


def test_socket_activation_adopts_the_socket_and_keeps_its_file(workdir, nginx, scratch):
    path = workdir / "dedicated.sock"
    if path.exists():
        path.unlink()
    # What ferrocorn@.socket does: bind with SocketMode=0660, group nginx's.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chown(path, -1, _nginx_gid())
    os.chmod(path, 0o660)
    listener.listen(128)
    (scratch / "envapp.py").write_text(ENV_APP)
    log = ServerLog(scratch / "activated.log", "socket-activated ferrocorn")
    args = [
        "-w", "2", "--error-logfile", str(log.path), "--chdir", str(APPS_DIR),
        "--pythonpath", str(scratch),
        # Ignored under socket activation, as with Gunicorn:
        "--bind", "unix:%s" % (scratch / "ignored.sock"),
        "envapp:application",
    ]
    first = activated_ferrocorn(listener, log, *args)
    second = None
    try:
        log.wait_for(r"Listening at: unix:%s \(%d\), from systemd dedicated" % (re.escape(str(path)), first.pid))
        response = requests.get(nginx.url("/dedicated/"), timeout=30)
        assert response.status_code == 200, response.text
        env = response.json()["env"]
        assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & set(env), env
        assert not (scratch / "ignored.sock").exists()
        mode = os.stat(path)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        # The file is systemd's: still there, same mode and owner.
        after = os.stat(path)
        assert stat.S_ISSOCK(after.st_mode)
        assert (after.st_mode, after.st_gid) == (mode.st_mode, mode.st_gid)

        # While no ferrocorn runs, systemd's socket still accepts: a request
        # sent now waits in the queue and is served by the next ferrocorn.
        result = {}
        waiting = threading.Thread(
            target=lambda: result.setdefault("r", requests.get(nginx.url("/dedicated/"), timeout=60))
        )
        waiting.start()
        assert wait_until(lambda: unix_connections(path) == (0, 1), 30), unix_connections(path)
        assert "r" not in result
        second = activated_ferrocorn(listener, log, *args)
        waiting.join(60)
        assert result["r"].status_code == 200
        assert result["r"].json()["pid"] in children(second.pid)
    finally:
        for proc in (first, second):
            if proc is not None:
                kill_group(proc)
        listener.close()
        if path.exists():
            path.unlink()


def children(pid):
    from servers import children_of

    return children_of(pid)


def _nginx_gid():
    import grp

    return grp.getgrnam("nogroup").gr_gid


def test_bind_mode_and_group(service, nginx, workdir):
    sock = workdir / "dedicated.sock"
    # Default without --bind-group: 0666, anyone (nginx's nobody) connects.
    master = service()
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
    master.stop()
    # --bind-group nginx's group: 0660, and nginx still gets in.
    master = service(extra_args=["--bind-group", "nogroup"])
    st = os.stat(sock)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, _nginx_gid())
    assert requests.get(nginx.url("/dedicated/"), timeout=30).status_code == 200
    master.stop()
    # --bind-mode 0600: only the owner (root); nginx's workers are refused.
    master = service(extra_args=["--bind-mode", "0600"])
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    mark = nginx.error_log.mark()
    assert requests.get(nginx.url("/dedicated/"), timeout=30).status_code == 502
    assert "Permission denied" in nginx.error_log.text(mark)


def test_bind_mode_refuses_a_bad_value(workdir):
    result = subprocess.run(
        [str(FERROCORN_BIN), "--bind-mode", "0999", "app:app"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "invalid value '0999' for --bind-mode: expected an octal mode" in result.stderr
    result = subprocess.run(
        [str(FERROCORN_BIN), "--bind-group", "no-such-group-x", "-b", "unix:%s/x.sock" % workdir, "app:app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no such group" in result.stderr and "--bind-group" in result.stderr


DEPLOY = REPO / "deploy"


def unit(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_deploy_units_pass_systemd_analyze(tmp_path):
    """`systemd-analyze verify` on the shipped units (it needs no running systemd)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    fake_bin = tmp_path / "ferrocorn"
    fake_bin.write_text("#!/bin/sh\n")
    fake_bin.chmod(0o755)
    for name in ("ferrocorn.service", "ferrocorn@.service", "ferrocorn@.socket"):
        text = (DEPLOY / name).read_text()
        text = text.replace("/usr/local/bin/ferrocorn", str(fake_bin)).replace("/usr/bin/ferrocorn", str(fake_bin))
        (tmp_path / name.replace("@.", "@demo.")).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify"] + [str(p) for p in tmp_path.glob("ferrocorn*.s*")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [l for l in (result.stdout + result.stderr).splitlines() if "ferrocorn" in l]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_instance_units_as_systemd_runs_them(workdir, nginx, scratch):
    """ferrocorn@dedicated.socket + .service with deploy/example.conf.py, played the way systemd plays them.

    The socket unit's ListenStream/SocketMode are applied by this test (its
    SocketGroup is swapped for the group this nginx's workers run as), the
    service's ExecStart runs with the socket as fd 3 and a NOTIFY_SOCKET,
    ExecReload and the KillSignal are sent as systemd sends them.
    """
    socket_unit = unit(DEPLOY / "ferrocorn@.socket")["Socket"]
    service_unit = unit(DEPLOY / "ferrocorn@.service")["Service"]
    assert service_unit["Type"] == "notify"
    instance = "dedicated"
    run_dir = "%s/" % workdir
    path = Path(socket_unit["ListenStream"].replace("%i", instance).replace("/run/ferrocorn/", run_dir))
    assert path == workdir / "dedicated.sock"
    if path.exists():
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chown(path, -1, _nginx_gid())
    os.chmod(path, int(socket_unit["SocketMode"], 8))
    listener.listen(int(socket_unit["Backlog"]))

    # /etc/ferrocorn/dedicated.conf.py from the example, with this machine's paths.
    project = scratch / "srv/myproject"
    (project / "myproject").mkdir(parents=True)
    (project / "myproject/__init__.py").write_text("")
    (project / "myproject/wsgi.py").write_text(ENV_APP)
    conf = (DEPLOY / "example.conf.py").read_text()
    conf = conf.replace("/srv/myproject/venv", sys.prefix).replace("/srv/myproject", str(project))
    etc = scratch / "etc"
    etc.mkdir()
    (etc / ("%s.conf.py" % instance)).write_text(conf)
    # RuntimeDirectory=: the instance's own directory (its control socket), here under scratch.
    runtime = scratch / "run"
    (runtime / service_unit["RuntimeDirectory"].replace("%i", instance)).mkdir(parents=True)
    os.chmod(runtime / service_unit["RuntimeDirectory"].replace("%i", instance), int(service_unit["RuntimeDirectoryMode"], 8))
    exec_start = service_unit["ExecStart"].replace("%i", instance)
    exec_start = exec_start.replace("/usr/bin/ferrocorn", str(FERROCORN_BIN)).replace("/etc/ferrocorn/", "%s/" % etc)
    exec_start = exec_start.replace("/run/", "%s/" % runtime)
    systemd = FakeSystemd(scratch / "notify.sock")
    log = ServerLog(scratch / "instance.log", "ferrocorn@dedicated")
    master = activated_ferrocorn(
        listener,
        log,
        argv=shlex.split(exec_start),
        fdnames=socket_unit["FileDescriptorName"].replace("%i", instance),
        env_extra={"NOTIFY_SOCKET": systemd.address},
    )
    try:
        ready = fields(systemd.wait_for(lambda m: "READY=1" in m))
        assert ready["MAINPID"] == str(master.pid)
        assert (runtime / "ferrocorn" / instance / "ctl").is_socket(), "the control socket in RuntimeDirectory="
        response = requests.get(nginx.url("/dedicated/"), timeout=30)
        assert response.status_code == 200
        assert "DJANGO_SETTINGS_MODULE" in response.json()["env"], "raw_env from the example config"
        # ExecReload, as systemd runs it.
        reload_cmd = service_unit["ExecReload"].replace("$MAINPID", str(master.pid))
        subprocess.run(shlex.split(reload_cmd), check=True, timeout=10)
        systemd.wait_for(lambda m: m.startswith("RELOADING=1"))
        systemd.wait_for(lambda m: m.startswith("READY=1") and "MAINPID" not in m)
        # Stop: KillSignal to the main process (KillMode=mixed).
        master.send_signal(getattr(signal, service_unit["KillSignal"]))
        assert master.wait(timeout=int(service_unit["TimeoutStopSec"])) == 0
        assert systemd.collect()[-1].startswith("STOPPING=1")
        assert path.exists(), "the socket file is systemd's"
        # The access log went to standard output (the journal): one line per request.
        assert '"GET /dedicated/ HTTP/1.1" 200' in log.path.with_suffix(".stderr").read_text()
    finally:
        kill_group(master)
        systemd.close()
        listener.close()
        if path.exists():
            path.unlink()


def test_daemon_detaches_like_gunicorn(workdir, nginx, scratch):
    """-D: the command returns at once, the master runs on in a session of
    its own with no terminal and null standard streams, writes its pidfile,
    serves, and TERM stops it and removes the pidfile."""
    server = Ferrocorn(workdir, "dedicated", "basic:app", workers=1)
    pidfile = scratch / "daemon.pid"
    started = subprocess.run(
        server.command()[:-1] + ["--daemon", "--pid", str(pidfile), server.app],
        capture_output=True,
        timeout=30,
    )
    assert (started.returncode, started.stdout, started.stderr) == (0, b"", b"")
    pid = wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() and int(pidfile.read_text()), 20)
    assert pid, server.log.tail()
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        session, tty = int(fields[3]), int(fields[4])
        assert session != os.getsid(0), "a session of its own"
        assert session != pid, "not a session leader: it cannot take a terminal again"
        assert tty == 0, "no controlling terminal"
        for fd in (0, 1, 2):
            assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
        wait_until(lambda: server.sock.exists(), 20)
        response = requests.get(nginx.url("/dedicated/pid"), timeout=30)
        assert response.status_code == 200 and int(response.content) != pid, "a worker answered"
    finally:
        os.kill(pid, signal.SIGTERM)
        assert wait_until(lambda: not os.path.exists("/proc/%d" % pid), 30), server.log.tail()
    assert not pidfile.exists()
    assert "Listening at" in server.log.text()
