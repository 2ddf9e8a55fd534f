"""What every chaos scenario uses: client load, process probes, the stacks.

`Load` drives client threads (keep-alive, loopback) and counts statuses;
`Stack` is nginx in front of one ferrocorn, `Pair` nginx in front of an
upstream of two ferrocorns. The processes are the e2e suite's
(tests/servers.py); the app is tests/apps/faults.py (hostile.py plus a
slow endpoint and a POST counter).
"""

import http.client
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import Ferrocorn, Nginx, free_port, wait_until  # noqa: E402

WORKERS = 4
APP = "faults:app"

# ferrocorn refuses to run an app as root without --user; these runs do so
# on purpose (scripts/lib.sh says the same for chaos.sh).
if os.geteuid() == 0:
    os.environ.setdefault("FERROCORN_ALLOW_ROOT", "1")

LOCATIONS = """\
        location / {{
            ferrocorn_pass unix:{sock};
            ferrocorn_read_timeout 3s;
        }}
"""

PAIR_UPSTREAM = """\
    upstream pair {{
        server unix:{a} max_fails=1 fail_timeout=2s;
        server unix:{b} max_fails=1 fail_timeout=2s;
        keepalive 16;
    }}
"""

PAIR_LOCATIONS = """\
        location / {{
            ferrocorn_pass pair;
            ferrocorn_next_upstream error timeout;
            ferrocorn_read_timeout 5s;
            ferrocorn_param FAULTS_COUNTER {counter};
        }}
"""


class Request:
    """One kind of request a Load sends, and the body prefix that means success."""

    def __init__(self, path="/ok", method="GET", body=None, expect=b"ok "):
        self.path = path
        self.method = method
        self.body = body
        self.expect = expect


class Load:
    """Client threads sending `requests` (picked at random) through nginx until stopped.

    statuses counts 200s with the expected body as 200, other 200s as
    "200-bad-body", other statuses by number and client errors by name.
    With keep_times, `times` holds (start, end, status) of every request.
    """

    def __init__(self, port, requests=None, threads=4, keep_times=False, seed=1):
        self.port = port
        self.requests = requests or [Request()]
        self.statuses = Counter()
        self.times = [] if keep_times else None
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(random.Random(seed + i),), daemon=True) for i in range(threads)
        ]

    def run(self, rng):
        conn = None
        while not self.stop_flag.is_set():
            req = rng.choice(self.requests)
            start = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request(req.method, req.path, body=req.body)
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200 and body.startswith(req.expect)
                status = response.status if ok or response.status != 200 else "200-bad-body"
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status = "error:%s" % type(e).__name__
                conn = None
            with self.lock:
                self.statuses[status] += 1
                if self.times is not None:
                    self.times.append((start, time.monotonic(), status))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=60)

    def figures(self):
        return figures(self.statuses)


def figures(statuses):
    """(sent, succeeded, {status: count} of the failed ones) of a Counter."""
    sent = sum(statuses.values())
    ok = statuses.get(200, 0)
    failed = {str(k): v for k, v in sorted(statuses.items(), key=str) if k != 200}
    return sent, ok, failed


def one_request(port, path, timeout=60, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as e:
        return "error:%s" % type(e).__name__
    finally:
        conn.close()


def fd_count(pids):
    counts = {}
    for pid in pids:
        try:
            counts[pid] = len(os.listdir("/proc/%d/fd" % pid))
        except FileNotFoundError:
            pass
    return counts


def rss_mib(pid):
    """Resident memory of a process in MiB (None when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def make_workdir(base, name):
    work = Path(base) / name
    work.mkdir(mode=0o755, exist_ok=True)
    os.chmod(work, 0o755)
    return work


def restart(ferrocorn):
    """Start a ferrocorn again after it was killed, leaving its stale socket file in place."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    out = open(ferrocorn.stderr.path, "ab")
    ferrocorn.proc = subprocess.Popen(
        ferrocorn.command(), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    return wait_until(ferrocorn.answers, 30, 0.01)


class Stack:
    """nginx in front of one ferrocorn serving faults:app with WORKERS workers."""

    def __init__(self, work, extra_args=(), workers=WORKERS, locations=LOCATIONS, http_extra="", app=APP):
        self.work = work
        self.workers = workers
        self.ferrocorn = Ferrocorn(work, "chaos", app, workers=workers, extra_args=list(extra_args))
        self.nginx = Nginx(
            work,
            "nginx",
            free_port(),
            locations.format(sock=self.ferrocorn.sock),
            http_extra.format(sock=self.ferrocorn.sock),
        )

    def __enter__(self):
        self.ferrocorn.start().wait_ready()
        self.nginx.start().wait_ready()
        wait_until(lambda: len(self.ferrocorn.worker_pids()) == self.workers, 30)
        return self

    def __exit__(self, *exc):
        self.nginx.stop()
        self.ferrocorn.stop()


class Pair:
    """nginx in front of `upstream pair`: two ferrocorns, failover on error/timeout.

    The app's POST counter file is shared by both (`counter`).
    """

    def __init__(self, work, extra_args=(), workers=2):
        self.work = work
        self.workers = workers
        self.counter = Path(work) / "counter.log"
        self.counter.touch()
        os.chmod(self.counter, 0o666)
        self.supervisors = [
            Ferrocorn(work, name, APP, workers=workers, extra_args=list(extra_args)) for name in ("a", "b")
        ]
        a, b = (s.sock for s in self.supervisors)
        self.nginx = Nginx(
            work,
            "nginx",
            free_port(),
            PAIR_LOCATIONS.format(counter=self.counter),
            PAIR_UPSTREAM.format(a=a, b=b),
        )

    def __enter__(self):
        for s in self.supervisors:
            s.start().wait_ready()
        self.nginx.start().wait_ready()
        for s in self.supervisors:
            wait_until(lambda: len(s.worker_pids()) == self.workers, 30)
        return self

    def __exit__(self, *exc):
        self.nginx.stop()
        for s in self.supervisors:
            s.stop()

    def kill(self, supervisor):
        """SIGKILL a supervisor and all its workers at once (its process group)."""
        os.killpg(supervisor.proc.pid, 9)
        supervisor.proc.wait()

    def counted(self):
        """Request id -> number of times the app counted it."""
        counts = Counter()
        for line in self.counter.read_text().splitlines():
            if line.strip():
                counts[line.split()[0]] += 1
        return counts
