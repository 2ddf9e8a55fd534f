"""The control socket and `ferrocorn ctl` (Gunicorn's `gunicornc`), against a real master.

Each test runs its own ferrocorn (basic:app) behind /dedicated/ of the shared nginx, with its
control socket at <workdir>/dedicated.ctl (tests/servers.py gives every server its own), and
drives it with the real `ferrocorn ctl` binary or raw JSON lines on the unix socket.
"""

import json
import os
import pwd
import re
import select
import signal
import socket
import stat
import subprocess
import threading
import time

import requests

from servers import APPS_DIR, FERROCORN_BIN, START_TIMEOUT, STOP_TIMEOUT, Ferrocorn, free_port, kill_group, wait_until


def ctl(server, *words, json_out=True, path=None, user=None):
    """Runs `ferrocorn ctl` against server's socket; returns (exit code, stdout, stderr)."""
    cmd = [str(FERROCORN_BIN), "ctl", "--control-socket", str(path or server.ctl)]
    cmd += ["--json"] if json_out else []
    result = subprocess.run(cmd + list(words), capture_output=True, text=True, timeout=30, user=user)
    return result.returncode, result.stdout, result.stderr


def data(server, *words):
    """The `data` of a successful command's reply."""
    code, out, err = ctl(server, *words)
    assert code == 0, (code, out, err)
    reply = json.loads(out)
    assert reply["status"] == "ok", reply
    return reply["data"]


def raw_exchange(path, payload, read=True):
    """Sends payload on a fresh connection to the control socket; returns every byte it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while read:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def all_idle(server):
    """Every worker has loaded the app and waits for a request."""
    return all(w["state"] == "idle" for w in data(server, "show workers")["workers"])


def in_flight(stack, scratch, name):
    """Starts a request that holds a worker until the returned release() is called;
    returns (release, result holder) once the app runs it."""
    gate = scratch / name
    result = {}
    path = "/dedicated/gate?path=%s" % gate

    def get():
        result["response"] = requests.get(stack.url(path), timeout=60)

    thread = threading.Thread(target=get)
    thread.start()

    def release():
        gate.touch()
        thread.join(60)
        return result["response"]

    return release, path


def test_show_workers_names_the_request_in_flight(start_dedicated, scratch):
    stack = start_dedicated()
    server = stack.ferrocorn
    assert wait_until(lambda: all_idle(server), 30), data(server, "show workers")
    for _ in range(3):
        assert requests.get(stack.url("/dedicated/hello"), timeout=30).status_code == 200
    # A request is counted once its response is out: wait for the third.
    assert wait_until(lambda: sum(w["requests"] for w in data(server, "show workers")["workers"]) == 3, 10)
    release, path = in_flight(stack, scratch, "gate1")
    try:
        busy = wait_until(
            lambda: [w for w in data(server, "show workers")["workers"] if w["state"] == "busy"], 30
        )
        assert len(busy) == 1, busy
        shown = data(server, "show workers")
        table = ctl(server, "show", "workers", json_out=False)
    finally:
        response = release()
    assert response.status_code == 200 and response.text == "first\nreleased\n"

    workers = shown["workers"]
    assert shown["target"] == 2
    assert sorted(w["pid"] for w in workers) == sorted(server.worker_pids())
    busy = [w for w in workers if w["state"] == "busy"]
    assert len(busy) == 1 and busy[0]["request"] == "GET " + path, shown
    assert busy[0]["request_seconds"] >= 0
    idle = [w for w in workers if w["state"] == "idle"]
    assert len(idle) == 1 and idle[0]["request"] is None and idle[0]["request_seconds"] is None
    assert sum(w["requests"] for w in workers) == 3  # the one in flight is not done yet
    assert all(w["rss_bytes"] > 1 << 20 and w["uptime_seconds"] >= 0 for w in workers)
    assert sorted(w["age"] for w in workers) == [1, 2]

    code, text, _ = table
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["PID", "AGE", "UPTIME", "REQUESTS", "RSS", "STATE", "REQUEST"]
    busy_line = next(line for line in lines if " busy " in line)
    assert busy_line.startswith(str(busy[0]["pid"])) and ("GET " + path + " (") in busy_line
    assert lines[-1] == "Total: 2 workers (target 2)"

    assert wait_until(lambda: all_idle(server), 10)
    assert sum(w["requests"] for w in data(server, "show workers")["workers"]) == 4


def test_show_stats_config_listeners_and_help(start_dedicated):
    stack = start_dedicated(extra_args=["--max-requests", "1000"])
    server = stack.ferrocorn
    for path in ("/dedicated/hello", "/dedicated/hello", "/dedicated/nope"):
        requests.get(stack.url(path), timeout=30)
    stats = wait_until(
        lambda: (lambda s: s["requests"] == 3 and s["workers_booted"] == 2 and s)(data(server, "show stats")), 10
    )
    assert stats, data(server, "show stats")
    assert stats["pid"] == server.proc.pid
    assert stats["workers"] == stats["workers_booted"] == stats["workers_target"] == 2
    assert stats["workers_spawned"] == 2 and stats["reloads"] == 0
    assert stats["responses"] == {"2xx": 2, "4xx": 1}
    assert stats["restarts"]["crash"] == 0
    assert stats["listeners"] == ["unix:%s" % server.sock]
    assert stats["control_socket"] == str(server.ctl)

    config = data(server, "show config")
    assert config["app"] == "basic:app"
    settings = config["settings"]
    assert settings["bind"] == ["unix:%s" % server.sock]
    assert settings["workers"] == "2" and settings["max_requests"] == "1000"
    assert settings["control_socket"] == str(server.ctl) and settings["control_socket_disable"] == "false"
    assert settings["pidfile"] is None

    assert data(server, "show listeners") == {"listeners": ["unix:%s" % server.sock]}
    commands = [c["command"] for c in data(server, "help")["commands"]]
    assert "show workers" in commands and "shutdown [graceful|quick]" in commands

    code, text, _ = ctl(server, "show", "stats", json_out=False)
    assert code == 0
    assert "pid: %d\n" % server.proc.pid in text and "responses: 2xx=2 4xx=1\n" in text


def test_worker_add_remove_and_kill(start_dedicated):
    stack = start_dedicated()
    server = stack.ferrocorn
    marks = server.log_marks()
    assert data(server, "worker", "add", "2") == {"added": 2, "previous": 2, "target": 4}
    assert wait_until(lambda: len(server.worker_pids()) == 4, 30), server.worker_pids()
    server.wait_for_log(r"Control: worker add 2", since=marks)
    server.wait_for_log(r"Number of workers: 4", since=marks)

    assert data(server, "worker", "remove", "5") == {"removed": 3, "previous": 4, "target": 1}
    assert wait_until(lambda: len(server.worker_pids()) == 1, 30), server.worker_pids()

    [victim] = server.worker_pids()
    assert data(server, "worker", "kill", str(victim)) == {"killed": victim}
    replaced = wait_until(lambda: (lambda p: len(p) == 1 and victim not in p and p)(server.worker_pids()), 30)
    assert replaced, server.worker_pids()
    server.wait_for_log(r"Worker exiting \(pid: %d\)" % victim, since=marks)
    assert requests.get(stack.url("/dedicated/hello"), timeout=30).status_code == 200

    # Only this master's workers: not the master itself, not some other process.
    for pid in (server.proc.pid, os.getpid()):
        code, out, err = ctl(server, "worker", "kill", str(pid))
        assert code == 1 and json.loads(out)["error"] == "%d is not a worker of this server" % pid
    code, _, err = ctl(server, "worker", "kill", str(os.getpid()), json_out=False)
    assert code == 1 and err == "Error: %d is not a worker of this server\n" % os.getpid()
    assert server.worker_pids() == replaced


def test_commands_from_standard_input_and_a_terminal_prompt(start_dedicated):
    """No command: one per line from stdin (gunicornc's interactive mode), a mistyped one explained
    and skipped, nothing after `quit` run; on a terminal, a banner and a prompt."""
    stack = start_dedicated()
    server = stack.ferrocorn
    script = "show listeners\n\nworker   add\nshow everything\nquit\nworker add\n"
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "-s", str(server.ctl)], input=script,
                            capture_output=True, text=True, timeout=30)
    # The mistyped line makes the exit status 1; the others ran, in order.
    assert result.returncode == 1, result
    assert result.stdout == "listeners: unix:%s\nadded: 1\nprevious: 2\ntarget: 3\n" % server.sock, result
    assert result.stderr == "Error: unknown command: show everything (try help)\n", result
    assert wait_until(lambda: len(server.worker_pids()) == 3, 30), server.worker_pids()
    # gunicornc's -c takes the command as one argument.
    code, out, err = ctl(server, "-c", "worker remove")
    assert (code, json.loads(out)["data"]) == (0, {"removed": 1, "previous": 3, "target": 2}), err

    # On a terminal: the banner, then a prompt before each command.
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(FERROCORN_BIN), "ctl", "-s", str(server.ctl)], stdin=follower,
                            stdout=follower, stderr=follower)
    os.close(follower)
    seen = bytearray()

    def until_prompts(count):
        """Reads what the terminal shows until `count` prompts are there."""
        deadline = time.monotonic() + 30
        while seen.count(b"ferrocorn> ") < count:
            ready, _, _ = select.select([leader], [], [], max(0, deadline - time.monotonic()))
            assert ready, bytes(seen)
            seen.extend(os.read(leader, 4096))

    # Typed as a user types, each line once its prompt is shown: the
    # terminal echoes a line the moment it is typed, wherever ctl is.
    until_prompts(1)
    os.write(leader, b"show listeners\n")
    until_prompts(2)
    os.write(leader, b"quit\n")
    assert proc.wait(timeout=30) == 0
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        seen.extend(chunk)
    os.close(leader)
    text = seen.decode().replace("\r\n", "\n")
    assert "Connected to %s\nType 'help' for available commands, 'quit' to exit.\n" % server.ctl in text, text
    assert "ferrocorn> show listeners\nlisteners: unix:%s\nferrocorn> quit\n" % server.sock in text, text

    # A wrong path is said at once, before any command is read.
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "-s", str(server.ctl) + ".missing"], input="show stats\n",
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stdout == "" and "no control socket at" in result.stderr, result


def test_reload_and_reopen_act_as_hup_and_usr1(start_dedicated, scratch):
    stack = start_dedicated()
    server = stack.ferrocorn
    old = set(server.worker_pids())
    marks = server.log_marks()
    assert data(server, "reload") == {"reloading": True, "reloads": 1}
    server.wait_for_log(r"Hang up: Master", since=marks)
    new = wait_until(lambda: (lambda p: len(p) == 2 and not p & old and p)(set(server.worker_pids())), 30)
    assert new, (old, server.worker_pids())
    assert requests.get(stack.url("/dedicated/hello"), timeout=30).status_code == 200
    assert data(server, "show stats")["reloads"] == 1

    # logrotate's move, then `reopen`: the master and the workers write to a new file.
    os.rename(server.log.path, scratch / "rotated.log")
    assert data(server, "reopen") == {"reopened": True}
    assert wait_until(lambda: server.log.path.exists(), 10), "reopen did not reopen the error log"
    assert data(server, "worker", "add") == {"added": 1, "previous": 2, "target": 3}
    server.wait_for_log(r"Number of workers: 3")


def test_the_control_and_metrics_sockets_are_there_once_the_app_socket_answers(scratch):
    """A deploy script that waits until the app socket answers, then runs
    `ferrocorn ctl` or scrapes the metrics, finds both (the master used to
    listen on the app socket first and bind the others a moment later)."""
    port = free_port()
    for attempt in range(5):
        server = Ferrocorn(scratch, "ready%d" % attempt, "basic:app", workers=1,
                           extra_args=["--metrics-bind", "127.0.0.1:%d" % port])
        server.start()
        try:
            # The first moment the socket answers: no pause between tries.
            deadline = time.monotonic() + START_TIMEOUT
            while not server.answers():
                assert server.proc.poll() is None and time.monotonic() < deadline, server.logs()
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(server.ctl))
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        finally:
            server.stop()


def test_shutdown_graceful_finishes_the_request_in_flight(start_dedicated, scratch):
    stack = start_dedicated()
    server = stack.ferrocorn
    workers = server.wait_workers()
    release, _ = in_flight(stack, scratch, "gate2")
    try:
        assert wait_until(
            lambda: any(w["state"] == "busy" for w in data(server, "show workers")["workers"]), 30
        )
        code, out, _ = ctl(server, "shutdown", "graceful", json_out=False)
        assert (code, out) == (0, "stopping: graceful\n")
        # The control socket goes first; the master waits for the request in flight.
        assert wait_until(lambda: not server.ctl.exists(), 10), "the control socket file stayed"
        assert server.proc.poll() is None
    finally:
        response = release()
    assert response.status_code == 200 and response.text == "first\nreleased\n"
    assert server.proc.wait(STOP_TIMEOUT) == 0
    assert not server.sock.exists()
    assert wait_until(lambda: not any(os.path.exists("/proc/%d" % p) for p in workers), 10)
    server.wait_for_log(r"Control: shutdown graceful")


def test_shutdown_quick_stops_at_once(start_dedicated):
    server = start_dedicated().ferrocorn
    assert data(server, "shutdown") == {"stopping": "quick"}
    assert server.proc.wait(STOP_TIMEOUT) == 0
    assert not server.ctl.exists() and not server.sock.exists()
    code, _, err = ctl(server, "show", "stats")
    assert code == 1 and "no control socket at %s" % server.ctl in err


def as_nobody_connect(path):
    """Connects to path as `nobody` in a child process; returns what it got (an errno name or the bytes answered)."""
    code = (
        "import errno, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.settimeout(30)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno]); sys.exit(0)\n"
        # The master may answer and close before the request is even sent.
        "try:\n"
        "    s.sendall(b'{\"command\": \"shutdown\"}\\n')\n"
        "except BrokenPipeError:\n"
        "    pass\n"
        "out = b''\n"
        "while True:\n"
        "    try:\n"
        "        chunk = s.recv(4096)\n"
        "    except ConnectionResetError:\n"
        "        break\n"
        "    if not chunk: break\n"
        "    out += chunk\n"
        "sys.stdout.write(out.decode())\n"
    )
    result = subprocess.run(
        ["/usr/bin/python3", "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        user="nobody",
        group="nogroup",
        extra_groups=[],
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_socket_is_0600_and_other_users_are_refused(start_dedicated):
    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to act as another user")
    stack = start_dedicated(extra_args=["--umask", "0"])
    server = stack.ferrocorn
    st = os.stat(server.ctl)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0

    # The file's mode keeps `nobody` out at connect().
    assert as_nobody_connect(server.ctl).strip() == "EACCES"
    code, _, err = ctl(server, "show", "stats", user="nobody")
    assert code == 1 and "permission denied on %s" % server.ctl in err

    # Loosened by hand, the master itself refuses: SO_PEERCRED names another uid.
    os.chmod(server.ctl, 0o666)
    marks = server.log_marks()
    reply = json.loads(as_nobody_connect(server.ctl))
    nobody = pwd.getpwnam("nobody").pw_uid
    assert reply["status"] == "error"
    assert reply["error"] == "permission denied: uid %d is neither the server's user (uid 0) nor root" % nobody
    server.wait_for_log(r"control socket: refused a connection from uid %d" % nobody, since=marks)
    code, out, err = ctl(server, "show", "stats", json_out=False, user="nobody")
    assert (code, out) == (1, "")
    assert err == "Error: permission denied: uid %d is neither the server's user (uid 0) nor root\n" % nobody
    # Its shutdown was not obeyed.
    assert server.proc.poll() is None
    assert data(server, "show stats")["workers"] == 2


def test_garbage_and_oversized_input_do_not_hurt_the_master(start_dedicated):
    stack = start_dedicated()
    server = stack.ferrocorn
    replies = raw_exchange(server.ctl, b'not json\n{"id": 5}\n{"id": "x", "command": "frob"}\n\xff\xfe\n').splitlines()
    errors = [json.loads(line) for line in replies]
    assert [e["status"] for e in errors] == ["error"] * 4
    assert errors[0]["error"].startswith("not a JSON request")
    assert errors[1] == {"id": 5, "status": "error", "error": 'missing "command", e.g. {"command": "show workers"}'}
    assert errors[2] == {"id": "x", "status": "error", "error": "unknown command: frob (try help)"}

    # A line past 4 KiB: an error, then the connection is closed.
    answer = raw_exchange(server.ctl, b"x" * 16384)
    assert json.loads(answer) == {"id": None, "status": "error", "error": "request longer than 4096 bytes"}

    # Several requests on one connection are answered in order.
    lines = raw_exchange(server.ctl, b'{"id": 1, "command": "show listeners"}\n{"id": 2, "command": "help"}\n')
    assert [json.loads(line)["id"] for line in lines.splitlines()] == [1, 2]

    # Stalled clients (a request never finished) and a crowd beyond the 16 served at once:
    # the others still get answers, and the app still serves.
    stalled = []
    try:
        for i in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(str(server.ctl))
            if i < 16:
                s.sendall(b'{"command": "show')
            stalled.append(s)
        turned_away = [json.loads(s.recv(4096)) for s in stalled[16:]]
        assert turned_away == [{"id": None, "status": "error", "error": "too many control clients (at most 16)"}] * 4
        # Freeing one slot lets a new client in while the other 15 still stall.
        stalled[0].close()
        assert wait_until(lambda: ctl(server, "show", "stats")[0] == 0, 10)
        assert requests.get(stack.url("/dedicated/hello"), timeout=30).status_code == 200
    finally:
        for s in stalled:
            s.close()
    # Once the master has seen them go, every slot is free again.
    assert wait_until(lambda: ctl(server, "show", "stats")[0] == 0, 10)
    assert data(server, "show stats")["workers"] == 2
    assert server.proc.poll() is None


def test_no_control_socket_makes_none(start_dedicated):
    server = start_dedicated(extra_args=["--no-control-socket"]).ferrocorn
    assert not server.ctl.exists()
    assert "Control socket" not in server.log.text()
    code, out, err = ctl(server, "show", "stats", json_out=False)
    assert code == 1 and out == ""
    assert err.startswith("Error: no control socket at %s: is ferrocorn running with this one?" % server.ctl)


def run_ferrocorn(*args, cwd):
    return subprocess.run(
        [str(FERROCORN_BIN), *args], capture_output=True, text=True, timeout=30, cwd=cwd, stdin=subprocess.DEVNULL
    )


def test_bad_control_socket_values_stop_the_start(scratch):
    missing_dir = scratch / "no" / "such" / "dir.ctl"
    result = run_ferrocorn("--control-socket", str(missing_dir), "-b", "unix:%s" % (scratch / "a.sock"), "basic:app",
                           cwd=APPS_DIR)
    assert result.returncode == 1
    assert "cannot create the control socket --control-socket %s: No such file or directory" % missing_dir in result.stderr
    assert not (scratch / "a.sock").exists()

    keep = scratch / "not-a-socket"
    keep.write_text("keep me")
    result = run_ferrocorn("--control-socket", str(keep), "-b", "unix:%s" % (scratch / "b.sock"), "basic:app",
                           cwd=APPS_DIR)
    assert result.returncode == 1 and "%s exists and is not a socket" % keep in result.stderr
    assert keep.read_text() == "keep me"

    result = run_ferrocorn("--control-socket", "", "basic:app", cwd=APPS_DIR)
    assert result.returncode == 2
    assert "invalid value '' for --control-socket: expected a file path" in result.stderr
    result = run_ferrocorn("--no-control-socket=maybe", "basic:app", cwd=APPS_DIR)
    assert result.returncode == 2 and "--no-control-socket" in result.stderr


def test_client_mistakes_and_a_stale_socket(scratch):
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "-c"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.startswith("Error: -c needs a value (COMMAND)\n\nusage: ferrocorn ctl")
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "show", "everything"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "unknown command: show everything" in result.stderr
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "worker kill PID" in result.stdout
    # The binary linked as ferrocornctl (scripts/build.sh makes the link) is the client.
    linked = subprocess.run([str(FERROCORN_BIN.parent / "ferrocornctl"), "--help"], capture_output=True, text=True,
                            timeout=30)
    assert (linked.returncode, linked.stdout) == (0, result.stdout)

    stale = scratch / "stale.ctl"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "-s", str(stale), "show", "stats"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == "Error: nothing answers on %s: the server that made it is gone\n" % stale


def test_default_socket_in_the_chdir_replaces_a_stale_one_and_is_not_stolen(workdir, scratch):
    """`ferrocorn.ctl` in the --chdir directory, as Gunicorn's `gunicorn.ctl` in its own: a stale file
    is replaced; a second server there leaves the first one's socket alone and serves without one."""
    stale = scratch / "ferrocorn.ctl"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()

    class InScratch(Ferrocorn):
        """No --control-socket (tests/servers.py otherwise gives each server a path of its own)."""

        def command(self):
            return [str(FERROCORN_BIN), "-b", "unix:%s" % self.sock, "-w", "1", "--error-logfile", str(self.log.path),
                    "--chdir", str(scratch), "--pythonpath", str(APPS_DIR), self.app]

    first = InScratch(workdir, "ctl-first", "basic:app")
    second = InScratch(workdir, "ctl-second", "basic:app")
    try:
        first.start().wait_ready()
        first.wait_for_log(r"Control socket at: %s\n" % re.escape(str(stale)))
        second.start().wait_ready()
        second.wait_for_log(
            r"\[WARNING\] no control socket: cannot create %s: another ferrocorn's control socket is there"
            % re.escape(str(stale))
        )
        kill_group(second.proc, signal.SIGTERM)
        assert stale.exists(), "the second server removed the first one's socket"
        # Asked for by name, a path another server answers on stops the start.
        third = run_ferrocorn("--control-socket", str(stale), "-b", "unix:%s" % (scratch / "third.sock"),
                              "basic:app", cwd=APPS_DIR)
        assert third.returncode == 1
        assert "cannot create the control socket --control-socket %s: another ferrocorn answers on it" % stale in (
            third.stderr
        )
        # The client's default is ./ferrocorn.ctl too.
        reply = subprocess.run(
            [str(FERROCORN_BIN), "ctl", "--json", "show", "stats"], capture_output=True, text=True, timeout=30,
            cwd=scratch,
        )
        assert json.loads(reply.stdout)["data"]["pid"] == first.proc.pid
    finally:
        second.stop()
        first.stop()
    assert not stale.exists()
