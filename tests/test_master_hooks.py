"""Gunicorn's master-side server hooks from a -c config file, run by the hook
runner process at the points Gunicorn's arbiter calls them (on_starting,
when_ready, pre_fork, child_exit, nworkers_changed, on_reload, on_exit); a
raising hook is logged (on_starting stops the start, as in Gunicorn); a hook
that hangs is cut off after --hook-timeout and the master carries on. Also
worker_abort: run in a worker stuck past --timeout, before the 504."""

import os
import signal

import requests

from servers import STOP_TIMEOUT, Ferrocorn, pids_with_cmdline, wait_until

RECORDING_HOOKS = '''\
import os
_NOTES = {notes!r}
_SOCK = {sock!r}

def _note(*fields):
    with open(_NOTES, "a") as f:
        f.write(" ".join(str(x) for x in fields) + "\\n")

def nworkers_changed(server, new_value, old_value):
    _note("nworkers_changed", server.pid, new_value, old_value)

def on_starting(server):
    _note("on_starting", server.pid, server.num_workers, server.cfg.workers, server.cfg.timeout,
          os.path.exists(_SOCK))
    server.log.info("hook on_starting says hello")

def when_ready(server):
    _note("when_ready", server.pid, os.path.exists(_SOCK))

def pre_fork(server, worker):
    _note("pre_fork", worker.age, worker.pid)

def post_fork(server, worker):
    _note("post_fork", worker.age, worker.pid)

def child_exit(server, worker):
    _note("child_exit", worker.age, worker.pid, worker.exitcode)

def on_reload(server):
    _note("on_reload", server.pid, server.num_workers)

def on_exit(server):
    _note("on_exit", server.pid)
'''


def start(scratch, conf_text, name="hooked", app="basic:app", extra_args=()):
    conf = scratch / ("%s.conf.py" % name)
    conf.write_text(conf_text)
    server = Ferrocorn(scratch, name, app, extra_args=["-c", str(conf), "--timeout", "30"] + list(extra_args))
    server.start()
    return server


def notes_of(path):
    return path.read_text().splitlines() if path.exists() else []


def wait_for_note(path, prefix, count=1, timeout=20):
    found = wait_until(lambda: len([n for n in notes_of(path) if n.startswith(prefix)]) >= count, timeout)
    assert found, "no %d x %r in %s" % (count, prefix, notes_of(path))


def test_master_hooks_run_in_gunicorns_order_with_its_arguments(scratch):
    notes = scratch / "notes.txt"
    server = start(scratch, RECORDING_HOOKS.format(notes=str(notes), sock=str(scratch / "hooked.sock")))
    try:
        server.wait_ready()
        master = server.proc.pid
        assert wait_until(lambda: len(server.worker_pids()) == 2, 20)
        wait_for_note(notes, "post_fork", 2)
        lines = notes_of(notes)
        # Set up with 2 workers, then on_starting before binding, when_ready once listening.
        assert lines[:3] == ["nworkers_changed %d 2 None" % master, "on_starting %d 2 2 30 False" % master,
                             "when_ready %d True" % master], lines
        forks = [n for n in lines if n.startswith("pre_fork")]
        assert forks == ["pre_fork 1 [booting]", "pre_fork 2 [booting]"], lines
        workers = {}
        for line in lines:
            if line.startswith("post_fork"):
                _, age, pid = line.split()
                workers[int(pid)] = int(age)
                assert lines.index("pre_fork %s [booting]" % age) < lines.index(line)
        assert set(workers) == set(server.worker_pids()), (workers, server.worker_pids())
        assert "hook on_starting says hello" in server.logs()
        assert "[%d] [INFO] hook on_starting says hello" % master in server.logs()

        # A worker killed: child_exit with its age, pid and -SIGKILL, then a replacement is forked.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_for_note(notes, "post_fork 3 ")
        lines = notes_of(notes)
        exit_line = "child_exit %d %d -9" % (workers[victim], victim)
        assert exit_line in lines, lines
        assert lines.index(exit_line) < lines.index("pre_fork 3 [booting]"), lines

        # TTIN: nworkers_changed(server, 3, 2), one more fork.
        os.kill(master, signal.SIGTTIN)
        wait_for_note(notes, "post_fork 4 ")
        lines = notes_of(notes)
        assert lines.index("nworkers_changed %d 3 2" % master) < lines.index("pre_fork 4 [booting]"), lines

        # HUP: on_reload, then three new workers; the old ones exit 0.
        old = set(server.worker_pids())
        os.kill(master, signal.SIGHUP)
        wait_for_note(notes, "child_exit", 4)
        assert wait_until(lambda: len(server.worker_pids()) == 3 and not old & set(server.worker_pids()), 30)
        lines = notes_of(notes)
        reload_at = lines.index("on_reload %d 3" % master)
        assert [n for n in lines[reload_at:] if n.startswith("pre_fork")] == [
            "pre_fork 5 [booting]", "pre_fork 6 [booting]", "pre_fork 7 [booting]"], lines
        assert {n.split()[2] + " " + n.split()[3] for n in lines[reload_at:] if n.startswith("child_exit")} == {
            "%d 0" % pid for pid in old}, lines
        assert server.answers()

        # TERM: every worker's child_exit, then on_exit last; the runner is gone with the master.
        last = set(server.worker_pids())
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=STOP_TIMEOUT) == 0
        lines = notes_of(notes)
        assert lines[-1] == "on_exit %d" % master, lines
        assert {n.split()[2] for n in lines[-4:-1]} == {str(p) for p in last}, lines
        assert wait_until(lambda: not pids_with_cmdline(str(scratch / "hooked.conf.py")), 10)
    finally:
        server.stop()


def test_a_raising_hook_is_logged_and_a_raising_on_starting_stops_the_start(scratch):
    # pre_fork raising: the traceback is in the error log; the workers start anyway.
    server = start(scratch, "def pre_fork(server, worker):\n    raise ValueError('no slot for %s' % worker.age)\n",
                   name="raising")
    try:
        server.wait_ready()
        server.wait_for_log(r"Exception in pre_fork hook\nTraceback \(most recent call last\):\n(.+\n)+"
                            r"ValueError: no slot for 2")
        assert wait_until(lambda: len(server.worker_pids()) == 2, 20)
    finally:
        server.stop()

    failing = start(scratch, "def on_starting(server):\n    raise RuntimeError('not today')\n", name="nostart")
    try:
        assert failing.proc.wait(timeout=30) == 1
        logs = failing.logs()
        assert "Exception in on_starting hook" in logs and "RuntimeError: not today" in logs, logs
        assert not failing.sock.exists()
        assert "Booting worker" not in logs
    finally:
        failing.stop()


def test_a_hanging_hook_is_cut_off_and_the_master_goes_on(scratch):
    notes = scratch / "notes.txt"
    conf = (
        "import time\n"
        "def child_exit(server, worker):\n    time.sleep(3600)\n"
        "def nworkers_changed(server, new_value, old_value):\n"
        "    open(%r, 'a').write('nworkers_changed %%s %%s\\n' %% (new_value, old_value))\n" % str(notes)
    )
    server = start(scratch, conf, name="hanging", extra_args=["--hook-timeout", "1"])
    try:
        server.wait_ready()
        assert wait_until(lambda: len(server.worker_pids()) == 2, 20)
        victim = server.worker_pids()[0]
        mark = server.log_marks()
        os.kill(victim, signal.SIGKILL)
        server.wait_for_log(r"child_exit hook: did not return within 1 s \(--hook-timeout\); killing the hook runner",
                            since=mark)
        # Replaced, and the next hook runs in a fresh runner.
        assert wait_until(lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(), 20)
        os.kill(server.proc.pid, signal.SIGTTIN)
        wait_for_note(notes, "nworkers_changed 3 2")
        assert notes_of(notes)[0] == "nworkers_changed 2 None"
        assert wait_until(lambda: len(server.worker_pids()) == 3, 20)
    finally:
        server.stop()


SPINNING_APP = '''\
def application(environ, start_response):
    while True:  # a Python loop: the interpreter keeps control
        pass
'''


def test_worker_abort_runs_in_a_worker_stuck_past_the_timeout(start_dedicated, scratch):
    (scratch / "spinning.py").write_text(SPINNING_APP)
    notes = scratch / "aborted.txt"
    conf = scratch / "abort.conf.py"
    conf.write_text(
        "def worker_abort(worker):\n"
        "    worker.log.info('hook worker_abort pid=%%s', worker.pid)\n"
        "    open(%r, 'a').write('worker_abort %%s %%s\\n' %% (worker.pid, worker.alive))\n" % str(notes)
    )
    stack = start_dedicated("spinning:application",
                            extra_args=["-c", str(conf), "--timeout", "2", "--pythonpath", str(scratch)])
    master = stack.ferrocorn
    mark = master.log_marks()
    response = requests.get(stack.url("/dedicated/"), timeout=60)
    assert response.status_code == 504
    assert b"worker was stuck" in response.content
    master.wait_for_log(r"WORKER TIMEOUT", since=mark)
    master.wait_for_log(r"hook worker_abort pid=\d+", since=mark)
    pid = int(notes.read_text().split()[1])
    assert notes.read_text() == "worker_abort %d False\n" % pid
    # Then the usual abort: the traceback of where it spun, and a replacement.
    master.wait_for_log(r"Worker \(pid:%d\) was sent SIGABRT" % pid, since=mark)
    assert "spinning.py" in master.logs(mark)
    assert wait_until(lambda: len(master.worker_pids()) == 2 and pid not in master.worker_pids(), 20)


LOCKED_APP = '''\
import ctypes

LIBC = ctypes.PyDLL(None)  # calls keep the GIL


def locked_forever_in_c():
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER
    LIBC.pthread_mutex_lock(mutex)
    LIBC.pthread_mutex_lock(mutex)  # a futex wait no signal ends


def application(environ, start_response):
    locked_forever_in_c()
'''


def test_worker_abort_cannot_run_stuck_in_c_and_the_worker_is_still_dumped_and_replaced(start_dedicated, scratch):
    (scratch / "locked.py").write_text(LOCKED_APP)
    notes = scratch / "aborted.txt"
    conf = scratch / "abort.conf.py"
    conf.write_text("def worker_abort(worker):\n    open(%r, 'a').write('ran')\n" % str(notes))
    stack = start_dedicated("locked:application",
                            extra_args=["-c", str(conf), "--timeout", "2", "--pythonpath", str(scratch)])
    master = stack.ferrocorn
    before = set(master.wait_workers())
    mark = master.log_marks()
    response = requests.get(stack.url("/dedicated/"), timeout=60)
    assert response.status_code == 504
    master.wait_for_log(r"was sent SIGABRT", since=mark)
    assert "locked_forever_in_c" in master.logs(mark)
    assert not notes.exists()
    assert wait_until(lambda: len(master.worker_pids()) == 2 and set(master.worker_pids()) != before, 20)


def test_pre_exec_runs_before_the_usr2_exec_and_on_exit_in_each_master(scratch):
    notes = scratch / "notes.txt"
    conf = (
        "import os\n"
        "def _note(*f):\n    open(%r, 'a').write(' '.join(map(str, f)) + '\\n')\n"
        "def pre_exec(server):\n    _note('pre_exec', server.pid)\n"
        "def when_ready(server):\n    _note('when_ready', server.pid)\n"
        "def on_exit(server):\n    _note('on_exit', server.pid)\n" % str(notes)
    )
    server = start(scratch, conf, name="upgraded")
    try:
        server.wait_ready()
        old = server.proc.pid
        wait_for_note(notes, "when_ready")
        server.proc.send_signal(signal.SIGUSR2)
        server.wait_for_log(r"Started a new master \(pid: (\d+)\)")
        new = int(server.wait_for_log(r"Started a new master \(pid: (\d+)\)").group(1))
        # The new master reads the same file and runs its own hooks.
        wait_for_note(notes, "when_ready %d" % new)
        lines = notes_of(notes)
        assert lines[:3] == ["when_ready %d" % old, "pre_exec %d" % old, "when_ready %d" % new], lines
        os.kill(new, signal.SIGTERM)
        wait_for_note(notes, "on_exit %d" % new)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=STOP_TIMEOUT) == 0
        assert notes_of(notes)[-1] == "on_exit %d" % old
    finally:
        server.stop()


def test_a_late_worker_abort_signal_spares_a_worker_that_is_no_longer_stuck(start_dedicated, scratch):
    notes = scratch / "aborted.txt"
    conf = scratch / "abort.conf.py"
    conf.write_text("def worker_abort(worker):\n    open(%r, 'a').write('ran')\n" % str(notes))
    stack = start_dedicated("basic:app", extra_args=["-c", str(conf), "--timeout", "30"])
    master = stack.ferrocorn
    # Both have loaded the app (and the hook) once both have answered; a
    # connection per request (/dedicated-fresh/) reaches both.
    workers = set()
    assert wait_until(lambda: workers.add(int(requests.get(stack.url("/dedicated-fresh/pid"), timeout=30).text))
                      or len(workers) == 2, 30)
    # What a worker that recovered right after the master's timeout receives: the signal, while idle.
    for pid in workers:
        os.kill(pid, signal.SIGRTMIN + 2)
    for _ in range(10):
        assert requests.get(stack.url("/dedicated/pid"), timeout=30).status_code == 200
    assert set(master.worker_pids()) == workers
    assert not notes.exists()


def test_hook_log_lines_follow_the_error_log_when_it_is_reopened(scratch):
    conf = "def nworkers_changed(server, new_value, old_value):\n    server.log.info('hook workers %s', new_value)\n"
    server = start(scratch, conf, name="rotated")
    try:
        server.wait_ready()
        server.wait_for_log(r"hook workers 2")
        rotated = scratch / "rotated.log.1"
        os.rename(server.log.path, rotated)
        os.kill(server.proc.pid, signal.SIGUSR1)
        assert wait_until(server.log.path.exists, 10)
        os.kill(server.proc.pid, signal.SIGTTIN)
        server.wait_for_log(r"\[%d\] \[INFO\] hook workers 3" % server.proc.pid)
        assert "hook workers 3" not in rotated.read_text()
    finally:
        server.stop()
