"""The ferrocorn supervisor: worker replacement, load errors, shutdown, CLI."""

import concurrent.futures
import os
import re
import signal
import subprocess
import uuid

import pytest
import requests

from servers import (
    APPS_DIR,
    FERROCORN_BIN,
    STOP_TIMEOUT,
    Ferrocorn,
    is_alive,
    pids_with_cmdline,
    require_binary,
    unix_connections,
    wait_until,
)


def run_ferrocorn(*args, timeout=STOP_TIMEOUT):
    require_binary(FERROCORN_BIN)
    return subprocess.run([str(FERROCORN_BIN), *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_killed_worker_is_replaced_and_requests_keep_being_served(dedicated):
    master = dedicated.ferrocorn
    workers = wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20)
    assert workers, "expected 2 workers, found %s" % master.worker_pids()
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = master.worker_pids()
        return len(now) == 2 and victim not in now and now

    new_workers = wait_until(replaced, 20)
    assert new_workers, "no replacement worker; children now: %s" % master.worker_pids()
    assert master.proc.poll() is None
    served_by = set()
    for _ in range(10):
        response = requests.get(dedicated.url("/dedicated/pid"), timeout=30)
        assert response.status_code == 200
        served_by.add(int(response.content))
    assert served_by <= set(new_workers)
    assert victim not in served_by


@pytest.mark.parametrize(
    "app,greeting",
    [
        ("factory", b"module-level application\n"),
        ("factory:create_app()", b"made by create_app()\n"),
        ("factory:make('hello')", b"hello!\n"),
    ],
)
def test_app_spec_forms(start_dedicated, app, greeting):
    stack = start_dedicated(app)
    response = requests.get(stack.url("/dedicated/"), timeout=30)
    assert response.status_code == 200
    assert response.content == greeting


def test_worker_silent_past_timeout_is_replaced(start_dedicated):
    stack = start_dedicated(extra_args=["--timeout", "2"])
    master = stack.ferrocorn
    before = wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20)
    assert before
    # The app sleeps far past --timeout: the master aborts that worker, which answers 504 as it dies.
    response = requests.get(stack.url("/dedicated/slow?seconds=40"), timeout=50)
    assert response.status_code == 504
    after = wait_until(
        lambda: len(master.worker_pids()) == 2 and set(master.worker_pids()) != set(before) and master.worker_pids(), 20
    )
    assert after, "no replacement worker: before %s, now %s" % (before, master.worker_pids())
    for _ in range(4):
        hello = requests.get(stack.url("/dedicated/hello"), timeout=30)
        assert hello.status_code == 200
        assert hello.content == b"Hello, world!\n"


def test_term_lets_the_in_flight_request_finish(dedicated):
    master = dedicated.ferrocorn
    token = uuid.uuid4().hex
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.get, dedicated.url("/dedicated/slow?seconds=2&token=%s" % token), timeout=30)
        master.wait_for_log("slow request started %s" % token)
        master.proc.send_signal(signal.SIGTERM)
        response = pending.result(timeout=40)
    assert response.status_code == 200
    assert response.content == b"slept\n"
    assert master.proc.wait(timeout=STOP_TIMEOUT) == 0


def test_idle_kept_alive_connection_closed_by_the_worker_is_not_an_error(start_dedicated):
    """--keep-alive 1: the worker drops idle pooled connections; nginx must not serve a 502 for it."""
    stack = start_dedicated(extra_args=["--keep-alive", "1"])
    first = requests.get(stack.url("/dedicated-pool/hello"), timeout=30)
    assert first.status_code == 200
    master = stack.ferrocorn
    # The worker closes the idle pooled connection after its keep-alive (1 s),
    # not after the longer wait (30 s) a connection gets for its first request:
    # the request came with the connect.
    assert wait_until(lambda: unix_connections(master.sock)[0] == 0, 15), unix_connections(master.sock)
    for _ in range(4):
        again = requests.get(stack.url("/dedicated-pool/hello"), timeout=30)
        assert again.status_code == 200
        assert again.content == b"Hello, world!\n"
    assert master.proc.poll() is None


def test_term_does_not_wait_for_idle_kept_alive_connections(start_dedicated):
    stack = start_dedicated(extra_args=["--graceful-timeout", "120"])
    for _ in range(3):
        assert requests.get(stack.url("/dedicated-pool/hello"), timeout=30).status_code == 200
    stack.ferrocorn.proc.send_signal(signal.SIGTERM)
    # Bound far below --graceful-timeout: idle connections carry no request to wait for.
    assert stack.ferrocorn.proc.wait(timeout=STOP_TIMEOUT) == 0


def test_term_stops_cleanly(scratch):
    server = Ferrocorn(scratch, "term", "basic:app")
    server.start().wait_ready()
    try:
        workers = wait_until(lambda: len(server.worker_pids()) == 2 and server.worker_pids(), 20)
        assert workers
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=STOP_TIMEOUT)
        assert code == 0, server.logs()
        assert not server.sock.exists(), "socket file left behind"
        assert wait_until(lambda: not any(is_alive(p) for p in workers), 5), "workers outlived the master"
        assert pids_with_cmdline(str(server.sock)) == []
    finally:
        server.stop()


LOAD_ERRORS = [
    ("badimport:app", r"does_not_exist_ferrocorn_test"),
    ("no_such_module_xyz:app", r"no_such_module_xyz"),
    ("basic:no_such_attribute", r"no_such_attribute"),
]


@pytest.mark.parametrize("app,named", LOAD_ERRORS, ids=[a for a, _ in LOAD_ERRORS])
def test_app_load_error_exits_4_with_clear_message(scratch, app, named):
    server = Ferrocorn(scratch, "loaderr", app)
    server.start()
    try:
        code = server.proc.wait(timeout=30)
        output = server.logs()
        assert code == 4, output
        assert re.search(named, output), output
        assert wait_until(lambda: pids_with_cmdline(str(server.sock)) == [], 5), "processes left behind"
    finally:
        server.stop()


def test_version():
    result = run_ferrocorn("--version")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "ferrocorn" in text.lower()
    assert re.search(r"\d+\.\d+\.\d+", text), text


def test_help_lists_the_gunicorn_style_options():
    result = run_ferrocorn("--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    for flag in (
        "--bind",
        "--workers",
        "--timeout",
        "--graceful-timeout",
        "--keep-alive",
        "--chdir",
        "--pythonpath",
        "--log-level",
        "--error-logfile",
        "--virtualenv",
        "--version",
    ):
        assert flag in text, flag


def test_bad_workers_value_is_rejected_naming_the_flag(scratch):
    result = run_ferrocorn("-b", "unix:%s/never.sock" % scratch, "-w", "abc", "--chdir", str(APPS_DIR), "basic:app")
    assert result.returncode != 0
    assert "--workers" in (result.stdout + result.stderr).decode(), result.stderr
    assert not (scratch / "never.sock").exists()
