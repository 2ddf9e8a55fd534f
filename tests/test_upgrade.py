"""USR2 + WINCH + TERM: the zero-downtime binary upgrade, as with Gunicorn,
under steady load through nginx. The new master is exec'd from the binary
on disk and inherits the listening socket (FERROCORN_FD); the old one
keeps serving until WINCH stops its workers and TERM ends it, leaving the
socket file to the new master. The figures (sent/failed) are printed; run
with `-s` to see them."""

import json
import os
import signal
import subprocess

import requests

from load import Load
from servers import FERROCORN_BIN, STOP_TIMEOUT, children_of, is_alive, wait_until


def read_pid(path):
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def ctl_master_pid(server):
    """The pid of the master answering on server's control socket (None: no answer)."""
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "-s", str(server.ctl), "--json", "show", "stats"],
                            capture_output=True, text=True, timeout=30)
    return json.loads(result.stdout)["data"]["pid"] if result.returncode == 0 else None


def ctl_states(server):
    """The states `show workers` gives, in spawn order."""
    result = subprocess.run([str(FERROCORN_BIN), "ctl", "-s", str(server.ctl), "--json", "show", "workers"],
                            capture_output=True, text=True, timeout=30)
    return [w["state"] for w in json.loads(result.stdout)["data"]["workers"]]


def test_usr2_winch_term_upgrade_under_load_loses_no_request(start_dedicated, scratch):
    pidfile = scratch / "master.pid"
    stack = start_dedicated(extra_args=["--pid", str(pidfile)])
    old = stack.ferrocorn
    old_workers = set(wait_until(lambda: len(old.worker_pids()) == 2 and old.worker_pids(), 20))
    assert wait_until(lambda: read_pid(pidfile) == old.proc.pid, 10)

    load = Load(stack.url("/dedicated/pid"), clients=4).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=2).start()
    new_pid = None
    try:
        load.wait_for_requests(50)
        mark = old.log_marks()
        old.proc.send_signal(signal.SIGUSR2)
        # The new master writes the pidfile; the old one's moved to .oldbin.
        new_pid = wait_until(lambda: (read_pid(pidfile) or old.proc.pid) != old.proc.pid and read_pid(pidfile), 30)
        assert new_pid, old.logs(mark)
        assert read_pid(scratch / "master.pid.oldbin") == old.proc.pid
        new_workers = wait_until(lambda: len(children_of(new_pid)) == 2 and children_of(new_pid), 30)
        assert new_workers, old.logs(mark)
        old.wait_for_log(r"\[%d\] \[INFO\] Listening at: unix:%s \(%d\), inherited" % (new_pid, old.sock, new_pid),
                         since=mark)
        load.wait_for_requests(50)
        # The new master took the control socket's path over.
        assert ctl_master_pid(old) == new_pid

        # WINCH: the old workers stop; only the new master is left under the old one.
        os.kill(old.proc.pid, signal.SIGWINCH)
        assert wait_until(lambda: children_of(old.proc.pid) == [new_pid], 30), children_of(old.proc.pid)
        load.wait_for_requests(50)

        # TERM: the old master ends; the socket file stays for the new one.
        old.proc.send_signal(signal.SIGTERM)
        assert old.proc.wait(timeout=STOP_TIMEOUT) == 0
        assert old.sock.exists()
        assert not (scratch / "master.pid.oldbin").exists()
        assert read_pid(pidfile) == new_pid
        assert ctl_master_pid(old) == new_pid, "the old master removed the new one's control socket"
        load.wait_for_requests(100)
    finally:
        load.stop()
        pooled.stop()
    print("\nUSR2 + WINCH + TERM under load: direct %s; pooled %s" % (load.summary(), pooled.summary()))
    assert load.failures == [], load.summary()
    assert pooled.failures == [], pooled.summary()
    served = load.served_by | pooled.served_by
    assert served & old_workers and served & set(new_workers), (served, old_workers, new_workers)

    # The new master is a full master: TERM stops it and removes the socket file and pidfile.
    os.kill(new_pid, signal.SIGTERM)
    assert wait_until(lambda: not is_alive(new_pid), STOP_TIMEOUT)
    assert not old.sock.exists()
    assert not pidfile.exists()
    assert not old.ctl.exists()


def test_a_new_master_that_fails_leaves_the_old_one_in_charge(start_dedicated, scratch):
    """USR2 while the app no longer loads: the new master exits 4, the old one keeps serving and its pidfile."""
    app = scratch / "upgradable.py"
    app.write_text("def application(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [b'v1']\n")
    pidfile = scratch / "master.pid"
    stack = start_dedicated("upgradable", extra_args=["--pythonpath", str(scratch), "--pid", str(pidfile), "--preload"])
    old = stack.ferrocorn
    workers = set(wait_until(lambda: len(old.worker_pids()) == 2 and old.worker_pids(), 20))
    app.write_text("raise RuntimeError('broken deploy')\n")
    mark = old.log_marks()
    old.proc.send_signal(signal.SIGUSR2)
    old.wait_for_log(r"The new master exited .*this master stays in charge", since=mark, timeout=30)
    assert "broken deploy" in old.logs(mark)
    assert wait_until(lambda: read_pid(pidfile) == old.proc.pid, 10)
    assert not (scratch / "master.pid.oldbin").exists()
    assert set(old.worker_pids()) == workers
    assert requests.get(stack.url("/dedicated/"), timeout=30).content == b"v1"


def test_a_failed_upgrade_gives_the_control_socket_back(start_dedicated, scratch):
    """USR2 while the app no longer loads, without --preload: the new master takes the control socket over,
    its workers fail, it exits 4 removing that socket, and the old master makes its own anew."""
    app = scratch / "upgradable.py"
    app.write_text("def application(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [b'v1']\n")
    stack = start_dedicated("upgradable", extra_args=["--pythonpath", str(scratch)])
    old = stack.ferrocorn
    assert ctl_master_pid(old) == old.proc.pid
    # Both workers have loaded v1 before the deploy breaks it.
    assert wait_until(lambda: ctl_states(old) == ["idle", "idle"], 30), ctl_states(old)
    app.write_text("raise RuntimeError('broken deploy')\n")
    mark = old.log_marks()
    old.proc.send_signal(signal.SIGUSR2)
    old.wait_for_log(r"The new master exited .*this master stays in charge", since=mark, timeout=30)
    old.wait_for_log(r"\[%d\] \[INFO\] Control socket at: %s \(again\)" % (old.proc.pid, old.ctl), since=mark)
    assert ctl_master_pid(old) == old.proc.pid
    assert requests.get(stack.url("/dedicated/"), timeout=30).content == b"v1"


def test_a_new_master_failing_after_taking_the_sockets_leaves_their_files(start_dedicated, scratch):
    """USR2, and the new master fails once it holds the inherited sockets (its when_ready raises): the
    socket file is the old master's and stays, so nginx still reaches it."""
    refuse = scratch / "refuse"
    conf = scratch / "upgrade.conf.py"
    conf.write_text("import os\n\n\ndef when_ready(server):\n"
                    "    if os.path.exists(%r):\n"
                    "        raise RuntimeError('this master refuses to start')\n" % str(refuse))
    stack = start_dedicated(extra_args=["-c", str(conf)])
    old = stack.ferrocorn
    assert wait_until(lambda: ctl_states(old) == ["idle", "idle"], 30), ctl_states(old)
    refuse.touch()
    mark = old.log_marks()
    old.proc.send_signal(signal.SIGUSR2)
    old.wait_for_log(r"The new master exited .*this master stays in charge", since=mark, timeout=30)
    assert "this master refuses to start" in old.logs(mark)
    assert old.sock.exists()
    assert requests.get(stack.url("/dedicated/hello"), timeout=30).status_code == 200
