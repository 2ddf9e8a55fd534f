"""USR2 + WINCH + TERM: the zero-downtime binary upgrade, as with Gunicorn,
under steady load through nginx. The new master is exec'd from the binary
on disk and inherits the listening socket (FERROCORN_FD); the old one
keeps serving until WINCH stops its workers and TERM ends it, leaving the
socket file to the new master. The figures (sent/failed) are printed; run
with `-s` to see them."""

import os
import signal

import requests

from load import Load
from servers import STOP_TIMEOUT, children_of, is_alive, wait_until


def read_pid(path):
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


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
