"""Logs and metrics a Gunicorn user expects: the access log (Gunicorn's atoms, reopened on USR1),
statsd (Gunicorn's metric names) and the master's Prometheus endpoint (`--metrics-bind`).

Each test runs its own ferrocorn behind /dedicated/ (basic:app) and talks to it through nginx.
"""

import os
import re
import signal
import socket

import pytest
import requests

from servers import free_port, wait_until


def test_access_log_gunicorn_default_format(start_dedicated, scratch):
    log = scratch / "access.log"
    stack = start_dedicated(extra_args=["--access-logfile", str(log)])
    response = requests.get(
        stack.url("/dedicated/hello?x=1"),
        headers={"Referer": "http://example.com/from", "User-Agent": "probe/1.0"},
        auth=("alice", "secret"),
        timeout=30,
    )
    assert response.status_code == 200
    requests.get(stack.url("/dedicated/nope"), timeout=30)
    lines = wait_until(lambda: len(log.read_text().splitlines()) == 2 and log.read_text().splitlines(), 10)
    assert lines, log.read_text()
    # Two workers each write their line after their response: either may come first.
    (line,) = [entry for entry in lines if "/dedicated/hello" in entry]
    (missing,) = [entry for entry in lines if "/dedicated/nope" in entry]
    # 127.0.0.1 - alice [25/Nov/2026:17:00:00 +0000] "GET /dedicated/hello?x=1 HTTP/1.0" 200 ... "referer" "ua"
    match = re.fullmatch(
        r'127\.0\.0\.1 - alice \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
        r'"GET /dedicated/hello\?x=1 HTTP/1\.[01]" 200 (\d+) "http://example\.com/from" "probe/1\.0"',
        line,
    )
    assert match, line
    assert int(match.group(1)) == len(response.content)
    assert re.search(r'"GET /dedicated/nope HTTP/1\.[01]" 404 17 "-" "python-requests/', missing), missing


def test_access_log_custom_atoms_and_reopen_on_usr1(start_dedicated, scratch):
    log = scratch / "access.log"
    fmt = "%(m)s %(U)s q=%(q)s %(s)s %(B)s pid=%(p)s %(D)sus L=%(L)s ct=%({content-type}o)s x=%({x-probe}i)s %(h)s"
    stack = start_dedicated(extra_args=["--access-logfile", str(log), "--access-logformat", fmt])
    master = stack.ferrocorn
    body = requests.get(stack.url("/dedicated/pid?a=b"), headers={"X-Probe": "yes"}, timeout=30).text
    line = wait_until(lambda: log.read_text().strip(), 10)
    match = re.fullmatch(
        r"GET /dedicated/pid q=a=b 200 (\d+) pid=<(\d+)> (\d+)us L=(\d+\.\d{6}) ct=text/plain; charset=utf-8 x=yes 127\.0\.0\.1",
        line,
    )
    assert match, line
    assert int(match.group(1)) == len(body) and match.group(2) == body
    assert abs(int(match.group(3)) / 1e6 - float(match.group(4))) < 1e-5

    # logrotate: move the file, USR1 the master, the next lines go to a new file.
    os.rename(log, scratch / "access.log.1")
    master.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: log.exists(), 10), "USR1 did not reopen the access log"
    # The file exists once the first process reopened it; wait until both
    # workers have it open: the next requests land in the new file only.
    assert wait_until(lambda: all(has_open(pid, log) for pid in master.wait_workers()), 10), "a worker kept the old file"
    for _ in range(6):
        requests.get(stack.url("/dedicated/hello"), timeout=30)
    assert wait_until(lambda: log.read_text().count("\n") == 6, 10), log.read_text()
    assert (scratch / "access.log.1").read_text().count("\n") == 1


def has_open(pid, path):
    """True when process pid holds a descriptor on the file now at `path`."""
    fds = "/proc/%d/fd" % pid
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)) == str(path):
                return True
        except FileNotFoundError:
            pass
    return False


def test_access_log_format_errors_stop_the_start(start_dedicated):
    import subprocess

    from servers import FERROCORN_BIN

    result = subprocess.run(
        [str(FERROCORN_BIN), "--access-logformat", "%(h)s 100% sure", "app:app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid value '%(h)s 100% sure' for --access-log-format: expected %(name)s or %%" in result.stderr


def statsd_server():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    return sock


def received(sock, into):
    while True:
        try:
            into.append(sock.recv(2048).decode())
        except socket.timeout:
            return into


def test_statsd_gunicorn_metric_names(start_dedicated):
    server = statsd_server()
    port = server.getsockname()[1]
    try:
        stack = start_dedicated(extra_args=["--statsd-host", "127.0.0.1:%d" % port, "--statsd-prefix", "myapp"])
        for path in ("/dedicated/hello", "/dedicated/hello", "/dedicated/nope"):
            requests.get(stack.url(path), timeout=30)
        got = []
        wait_until(lambda: sum(m == "myapp.gunicorn.requests:1|c" for m in received(server, got)) == 3, 10)
    finally:
        server.close()
    print("\nstatsd:", sorted(set(got)))
    assert got.count("myapp.gunicorn.requests:1|c") == 3
    assert got.count("myapp.gunicorn.request.status.200:1|c") == 2
    assert got.count("myapp.gunicorn.request.status.404:1|c") == 1
    timers = [m for m in got if m.startswith("myapp.gunicorn.request.duration:")]
    assert len(timers) == 3 and all(re.fullmatch(r"myapp\.gunicorn\.request\.duration:\d+\.\d{3}\|ms", t) for t in timers)
    assert "myapp.gunicorn.workers:2|g" in got


def test_statsd_counts_app_errors_as_log_metrics(start_dedicated):
    server = statsd_server()
    port = server.getsockname()[1]
    try:
        stack = start_dedicated(app="broken:app", extra_args=["--statsd-host", "127.0.0.1:%d" % port])
        assert requests.get(stack.url("/dedicated/raise_before"), timeout=30).status_code == 500
        got = []
        wait_until(lambda: "gunicorn.log.exception:1|c" in received(server, got), 10)
    finally:
        server.close()
    assert "gunicorn.log.exception:1|c" in got
    assert "gunicorn.log.error:1|c" in got
    assert "gunicorn.request.status.500:1|c" in got


def metrics(port):
    text = requests.get("http://127.0.0.1:%d/metrics" % port, timeout=10).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def responses(values):
    """Requests recorded with their status, over all statuses."""
    return sum(v for k, v in values.items() if k.startswith("ferrocorn_responses_total{"))


def test_prometheus_endpoint(start_dedicated):
    port = free_port()
    stack = start_dedicated(extra_args=["--metrics-bind", "127.0.0.1:%d" % port, "--max-requests", "1000"])
    master = stack.ferrocorn
    before = metrics(port)
    assert before["ferrocorn_requests_total"] == 0
    assert wait_until(lambda: metrics(port)["ferrocorn_workers_booted"] == 2, 20)
    for path in ("/dedicated/hello",) * 5 + ("/dedicated/nope",):
        requests.get(stack.url(path), timeout=30)
    # A worker records a request after sending its response, the status last: wait for the sixth.
    m = wait_until(lambda: (lambda m: responses(m) == 6 and m)(metrics(port)), 10) or metrics(port)
    assert m["ferrocorn_requests_total"] == 6
    assert m['ferrocorn_responses_total{status="200"}'] == 5
    assert m['ferrocorn_responses_total{status="404"}'] == 1
    assert m['ferrocorn_request_duration_seconds_bucket{le="+Inf"}'] == 6
    assert m["ferrocorn_request_duration_seconds_count"] == 6
    assert 0 < m["ferrocorn_request_duration_seconds_sum"] < 6 * 30
    assert m["ferrocorn_workers"] == 2
    assert all(v == 0 for k, v in m.items() if k.startswith("ferrocorn_worker_restarts_total"))

    # A crash, then a reload: each counted under its reason.
    victim = master.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: metrics(port)['ferrocorn_worker_restarts_total{reason="crash"}'] == 1, 20)
    assert wait_until(lambda: metrics(port)["ferrocorn_workers_booted"] == 2, 20)
    master.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: metrics(port)['ferrocorn_worker_restarts_total{reason="reload"}'] == 2, 30)
    m = metrics(port)
    assert m["ferrocorn_requests_total"] == 6, "counts survive workers that are gone"
    assert requests.get("http://127.0.0.1:%d/other" % port, timeout=10).status_code == 404


# recvfrom(2), the call the master waits in for a metrics client's request.
RECVFROM = {"x86_64": 45, "aarch64": 207}.get(os.uname().machine)


@pytest.mark.skipif(RECVFROM is None, reason="recvfrom's syscall number is known for x86_64 and aarch64 only")
def test_prometheus_scrape_survives_a_signal_to_the_master(start_dedicated):
    """A worker exits (SIGCHLD to the master) while the master waits for a
    scraper's request line: the scrape is still answered (the wait used to
    end in EINTR, dropping the connection unanswered)."""
    port = free_port()
    stack = start_dedicated(extra_args=["--metrics-bind", "127.0.0.1:%d" % port])
    master = stack.ferrocorn.proc.pid

    def in_recvfrom():
        with open("/proc/%d/syscall" % master) as f:
            return f.read().split()[0] == str(RECVFROM)

    def sigchld_pending():
        with open("/proc/%d/status" % master) as f:
            pending = [int(line.split()[1], 16) for line in f if line.startswith(("SigPnd:", "ShdPnd:"))]
        return any(p & (1 << (signal.SIGCHLD - 1)) for p in pending)

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert wait_until(in_recvfrom, 10), "the master never waited for the request"
        os.kill(master, signal.SIGCHLD)
        # The request goes out once the signal has interrupted the wait, not before.
        assert wait_until(lambda: not sigchld_pending(), 10)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n"), answer
    assert b"\nferrocorn_requests_total 0\n" in answer, answer


def test_prometheus_counts_recycling_and_timeouts(start_dedicated):
    port = free_port()
    stack = start_dedicated(
        extra_args=["--metrics-bind", "127.0.0.1:%d" % port, "--max-requests", "2", "--timeout", "2"]
    )
    for _ in range(6):
        assert requests.get(stack.url("/dedicated/hello"), timeout=30).status_code == 200
    assert wait_until(lambda: metrics(port)['ferrocorn_worker_restarts_total{reason="max_requests"}'] >= 2, 20)
    requests.get(stack.url("/dedicated/slow?seconds=6"), timeout=30)
    assert wait_until(lambda: metrics(port)['ferrocorn_worker_restarts_total{reason="timeout"}'] == 1, 20)
