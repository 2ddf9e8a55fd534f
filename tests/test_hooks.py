"""Gunicorn's worker-side server hooks from a -c config file, run in the
workers (with and without --preload): post_fork, post_worker_init,
pre_request, post_request, worker_int, worker_exit. Master-side hooks are
refused with the reason (test_config.py)."""

import os
import re
import signal

import pytest
import requests

from servers import APPS_DIR, STOP_TIMEOUT, Ferrocorn, wait_until

HOOKS_CONF = '''\
def post_fork(server, worker):
    worker.log.info("hook post_fork pid=%s age=%s master=%s booted=%s", worker.pid, worker.age, server.pid, worker.booted)

def post_worker_init(worker):
    worker.log.info("hook post_worker_init pid=%s booted=%s", worker.pid, worker.booted)
    worker.log.info("hook cfg workers=%r preload_app=%r bind=%r", worker.cfg.workers, worker.cfg.preload_app,
                    worker.cfg.bind)

def pre_request(worker, req):
    names = sorted(name for name, _ in req.headers)
    worker.log.info("hook pre_request %s %s %s %s", req.method, req.path, req.uri, "X-HOOK-TEST" in names)
    if req.path.endswith("/refuse"):
        raise RuntimeError("refused by pre_request")

def post_request(worker, req, environ, resp):
    worker.log.info("hook post_request %s %s %s nr=%s app=%s", req.path, resp.status, resp.status_code,
                    worker.nr, environ.get("wsgi.version"))

def worker_int(worker):
    worker.log.info("hook worker_int pid=%s", worker.pid)

def worker_exit(server, worker):
    worker.log.info("hook worker_exit pid=%s alive=%s", worker.pid, worker.alive)
'''


@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-import", "preload"])
def test_worker_hooks_run_in_the_workers(start_dedicated, scratch, preload):
    conf = scratch / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    stack = start_dedicated(extra_args=["-c", str(conf)] + (["--preload"] if preload else []))
    master = stack.ferrocorn
    workers = wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20)
    for pid in workers:
        master.wait_for_log(r"\[%d\] \[INFO\] hook post_worker_init pid=%d booted=True" % (pid, pid))
    log = master.logs()
    # cfg holds every setting, from the command line too, typed as in Gunicorn.
    assert "hook cfg workers=2 preload_app=%r bind=['unix:%s']" % (preload, master.sock) in log, log
    ages = sorted(int(a) for a in re.findall(r"hook post_fork pid=\d+ age=(\d+) master=%d booted=False"
                                                           % master.proc.pid, log))
    assert ages == [1, 2], log

    response = requests.get(stack.url("/dedicated/pid?x=1"), headers={"X-Hook-Test": "1"}, timeout=30)
    assert response.status_code == 200
    served_by = int(response.text)
    master.wait_for_log(r"\[%d\] \[INFO\] hook pre_request GET /dedicated/pid /dedicated/pid\?x=1 True" % served_by)
    master.wait_for_log(r"\[%d\] \[INFO\] hook post_request /dedicated/pid 200 OK 200 nr=1 app=\(1, 0\)" % served_by)

    # pre_request raising: that request is a 500 with the traceback logged, the worker carries on.
    mark = master.log_marks()
    assert requests.get(stack.url("/dedicated/refuse"), timeout=30).status_code == 500
    master.wait_for_log(r"RuntimeError: refused by pre_request", since=mark)
    assert requests.get(stack.url("/dedicated/pid"), timeout=30).status_code == 200
    assert set(master.worker_pids()) == set(workers)

    # INT to one worker: worker_int, then worker_exit, and it is replaced.
    victim = workers[0]
    os.kill(victim, signal.SIGINT)
    master.wait_for_log(r"\[%d\] \[INFO\] hook worker_int pid=%d" % (victim, victim))
    master.wait_for_log(r"\[%d\] \[INFO\] hook worker_exit pid=%d alive=False" % (victim, victim))
    assert wait_until(lambda: len(master.worker_pids()) == 2 and victim not in master.worker_pids(), 20)

    # TERM to the master: every worker runs worker_exit.
    remaining = master.worker_pids()
    master.proc.send_signal(signal.SIGTERM)
    assert master.proc.wait(timeout=STOP_TIMEOUT) == 0
    for pid in remaining:
        assert "[%d] [INFO] hook worker_exit pid=%d alive=False" % (pid, pid) in master.logs()


def test_a_failing_post_fork_is_a_worker_boot_error(scratch):
    conf = scratch / "badhook.conf.py"
    conf.write_text("def post_fork(server, worker):\n    raise ValueError('no database')\n")
    server = Ferrocorn(scratch, "badhook", "basic:app", extra_args=["-c", str(conf)])
    server.start()
    try:
        code = server.proc.wait(timeout=30)
        assert code == 3, server.logs()
        assert "ValueError: no database" in server.logs()
        assert "a server hook failed" in server.logs()
    finally:
        server.stop()
