"""--preload: the app is imported once, in the master, and the workers are
forked from it (copy-on-write). HUP restarts the workers without
re-importing, as Gunicorn does. The memory figures (RSS and Pss per worker,
Flask) are printed; run with `-s` to see them."""

import signal
import sys

import requests

from load import Load
from servers import STOP_TIMEOUT, Ferrocorn, wait_until
from test_control import all_idle, data

IMPORT_PID_APP = """\
import os
IMPORTED_IN = os.getpid()
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%d %d' % (IMPORTED_IN, os.getpid())).encode()]
"""


def two_workers(master):
    return wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20)


def answers(stack, n=6):
    seen = set()
    for _ in range(n):
        response = requests.get(stack.url("/dedicated/"), timeout=30)
        assert response.status_code == 200
        imported_in, served_by = map(int, response.text.split())
        seen.add((imported_in, served_by))
    return seen


def test_preload_imports_once_in_the_master_and_hup_keeps_that_import(start_dedicated, scratch):
    (scratch / "importpid.py").write_text(IMPORT_PID_APP)
    stack = start_dedicated("importpid", extra_args=["--pythonpath", str(scratch), "--preload"])
    master = stack.ferrocorn
    before = set(two_workers(master))
    seen = answers(stack)
    assert {imported for imported, _ in seen} == {master.proc.pid}, seen
    assert {served for _, served in seen} <= before

    load = Load(stack.url("/dedicated/"), clients=4).start()
    try:
        load.wait_for_requests(50)
        mark = master.log_marks()
        master.proc.send_signal(signal.SIGHUP)
        master.wait_for_log(r"stopping 2 old workers", since=mark, timeout=30)
        load.wait_for_requests(50)
    finally:
        load.stop()
    print("\nHUP with --preload under load: %s" % load.summary())
    assert load.failures == [], load.summary()
    after = set(two_workers(master))
    assert not (after & before)
    # New workers, same import: forked from the master again.
    assert {imported for imported, _ in answers(stack)} == {master.proc.pid}


def test_without_preload_each_worker_imports_the_app(start_dedicated, scratch):
    (scratch / "importpid.py").write_text(IMPORT_PID_APP)
    stack = start_dedicated("importpid", extra_args=["--pythonpath", str(scratch)])
    two_workers(stack.ferrocorn)
    assert all(imported == served for imported, served in answers(stack))


def test_preload_app_load_error_stops_the_master_with_4(scratch):
    server = Ferrocorn(scratch, "preloaderr", "badimport:app", extra_args=["--preload"])
    server.start()
    try:
        code = server.proc.wait(timeout=30)
        assert code == 4, server.logs()
        assert "does_not_exist_ferrocorn_test" in server.logs()
        assert "App failed to load" in server.logs()
        assert not server.sock.exists()
    finally:
        server.stop()


def memory_kib(pid):
    """Rss and Pss (KiB) of a process from /proc/PID/smaps_rollup."""
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                values[name] = int(rest.split()[0])
    return values["Rss"], values["Pss"]


def flask_workers_memory(scratch, name, extra):
    server = Ferrocorn(scratch, name, "flaskapp:app", workers=4,
                       extra_args=["--virtualenv", sys.prefix] + extra)
    server.start().wait_ready()
    try:
        workers = wait_until(lambda: len(server.worker_pids()) == 4 and server.worker_pids(), 30)
        # Every worker has imported Flask and waits for requests (without
        # --preload a worker still importing would look small).
        assert wait_until(lambda: all_idle(server), 60), data(server, "show workers")
        return [memory_kib(pid) for pid in workers], memory_kib(server.proc.pid)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=STOP_TIMEOUT)
        server.stop()


def test_preload_shares_the_app_memory_between_workers(scratch):
    plain, plain_master = flask_workers_memory(scratch, "mem-plain", [])
    preloaded, preload_master = flask_workers_memory(scratch, "mem-preload", ["--preload"])

    def mib(kib):
        return kib / 1024.0

    def row(label, workers, master):
        rss = sum(r for r, _ in workers) / len(workers)
        pss = sum(p for _, p in workers) / len(workers)
        return "%-16s worker RSS %.1f MiB, worker Pss %.1f MiB, master RSS %.1f MiB, total Pss %.1f MiB" % (
            label, mib(rss), mib(pss), mib(master[0]), mib(sum(p for _, p in workers) + master[1]))

    print("\nFlask, 4 workers:\n  %s\n  %s" % (row("without preload", plain, plain_master),
                                               row("with --preload", preloaded, preload_master)))
    plain_pss = sum(p for _, p in plain) + plain_master[1]
    preload_pss = sum(p for _, p in preloaded) + preload_master[1]
    assert preload_pss < plain_pss, (plain, preloaded)
