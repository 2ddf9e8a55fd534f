"""Chaos scenarios about the supervisor's life cycle (issue 7: 1, 7, 9-13).

Reloads (HUP), graceful stops (TERM), failover between two supervisors,
the nginx/supervisor keep-alive boundary, at-most-once POSTs, --preload
fork safety and a compressed soak. Each returns one or more result dicts
(scenario, sent, ok, failed, notes[, details]) for scripts/chaos.py.
"""

import http.client
import os
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter

from chaos_harness import (
    WORKERS,
    Load,
    Pair,
    Request,
    Stack,
    fd_count,
    figures,
    make_workdir,
    restart,
    rss_mib,
)
from servers import FERROCORN_BIN, children_of, wait_until


def result(scenario, statuses, notes, details=None):
    sent, ok, failed = figures(statuses)
    r = {"scenario": scenario, "sent": sent, "ok": ok, "failed": failed, "notes": notes}
    if details:
        r["details"] = details
    return r


def log_count(ferrocorn, needle):
    return ferrocorn.logs().count(needle)


# ---- 1. HUP every second ------------------------------------------------------


def scenario_hup(work, seconds=30):
    """HUP the master every second for `seconds` under load: nothing may fail."""
    with Stack(work) as s, Load(s.nginx.port) as load:
        master = s.ferrocorn.proc.pid
        pids = set(s.ferrocorn.worker_pids())
        for _ in range(seconds):
            time.sleep(1)
            os.kill(master, signal.SIGHUP)
            pids |= set(s.ferrocorn.worker_pids())
        settled = wait_until(lambda: len(s.ferrocorn.worker_pids()) == WORKERS, 30)
        time.sleep(1)
        alive = s.ferrocorn.proc.poll() is None
        hups = log_count(s.ferrocorn, "Hang up: Master")
        swaps = log_count(s.ferrocorn, "New workers booted")
        failed_reloads = log_count(s.ferrocorn, "Reload failed")
    return result(
        "1. HUP every second for %d s (%d workers)" % (seconds, WORKERS),
        load.statuses,
        "%d HUPs logged, %d worker generations swapped in, %d reloads failed; %d worker pids seen; "
        "master alive: %s; worker count back to %d: %s"
        % (hups, swaps, failed_reloads, len(pids), alive, WORKERS, "yes" if settled else "NO"),
    )


# ---- 7. failover between two supervisors ---------------------------------------


def scenario_failover(work, kills=4, spacing=5.0):
    """Two supervisors behind `ferrocorn_next_upstream error timeout`; SIGKILL one
    (its whole process group: master and workers, requests in flight included)
    every `spacing` seconds, alternately, restarting it 1 s later."""
    with Pair(work) as p, Load(p.nginx.port, threads=4) as load:
        time.sleep(1)
        for i in range(kills):
            victim = p.supervisors[i % 2]
            p.kill(victim)
            time.sleep(1)
            restart(victim)
            time.sleep(spacing - 1)
        failovers = sum(1 for line in p.nginx.error_log.text().splitlines() if "[error]" in line and "upstream" in line)
    return result(
        "7. two supervisors in one upstream (next_upstream error timeout), one SIGKILLed (master + workers) "
        "every %.0f s, %d kills" % (spacing, kills),
        load.statuses,
        "GET load; %d upstream errors in nginx's error log, each retried on the other supervisor" % failovers,
    )


# ---- 9. graceful stop ------------------------------------------------------------


def scenario_term_pair(work, stops=4, spacing=4.0):
    """TERM one of two supervisors under load (slow and fast requests), restart it, alternate."""
    mix = [Request("/ok"), Request("/slow?300"), Request("/slow?50")]
    codes = []
    with Pair(work, extra_args=["--graceful-timeout", "10"]) as p, Load(p.nginx.port, mix, threads=8) as load:
        time.sleep(1)
        for i in range(stops):
            victim = p.supervisors[i % 2]
            victim.proc.send_signal(signal.SIGTERM)
            codes.append(victim.proc.wait(timeout=20))
            restart(victim)
            wait_until(lambda: len(victim.worker_pids()) == p.workers, 10)
            time.sleep(spacing)
    return result(
        "9a. graceful stop (TERM) of one of two supervisors under load, %d stops, restarted each time" % stops,
        load.statuses,
        "8 clients, /ok and /slow (50, 300 ms); exit codes %s" % codes,
    )


def scenario_term_single(work, slow_ms=200, margin=0.05):
    """TERM the only supervisor while 8 clients keep 4 workers busy with /slow:
    every request sent before the TERM must complete with 200."""
    with Stack(work, ["--graceful-timeout", "10"]) as s:
        load = Load(s.nginx.port, [Request("/slow?%d" % slow_ms)], threads=8, keep_times=True)
        with load:
            time.sleep(2)
            term_at = time.monotonic()
            s.ferrocorn.proc.send_signal(signal.SIGTERM)
            code = s.ferrocorn.proc.wait(timeout=30)
            exit_took = time.monotonic() - term_at
            time.sleep(1)
        socket_gone = not s.ferrocorn.sock.exists()
    before = Counter(st for start, end, st in load.times if start < term_at - margin)
    straddling = sum(1 for start, end, st in load.times if start < term_at - margin and end > term_at)
    after = Counter(st for start, end, st in load.times if start >= term_at - margin)
    sent, ok, failed = figures(before)
    return {
        "scenario": "9b. graceful stop (TERM) of the only supervisor, 8 clients on 4 workers busy with /slow?%d"
        % slow_ms,
        "sent": sent,
        "ok": ok,
        "failed": failed,
        "notes": "counted: requests sent before the TERM (%d of them still in flight or queued at the TERM); "
        "master exited %s after %.1f s, socket file removed: %s; requests sent after the TERM: %s "
        "(nobody listens: 502 expected)" % (straddling, code, exit_took, socket_gone, dict(after)),
    }


# ---- 10. keep-alive boundary -----------------------------------------------------

KEEPALIVE_UPSTREAM = """\
    upstream ka {{
        server unix:{sock};
        keepalive 1;
TIMEOUT_LINE    }}
"""

KEEPALIVE_LOCATIONS = """\
        location / {{
            ferrocorn_pass ka;
            ferrocorn_read_timeout 5s;
            ferrocorn_param FAULTS_COUNTER COUNTER_PATH;
        }}
"""


def boundary_client(port, plan, keep_alive, ids):
    """One client, so nginx's pool holds one connection to the one worker:
    for each (offset, method) of the plan it waits keep_alive + offset after
    the last response, then sends, i.e. nginx reuses a connection idle for
    just about the worker's --keep-alive. Returns {method: Counter(status)}."""
    out = {"GET": Counter(), "POST": Counter()}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i, (offset, method) in enumerate(plan):
        time.sleep(max(0.0, keep_alive + offset))
        rid = "ka-%d-%d" % (port, i)
        try:
            if method == "GET":
                conn.request("GET", "/ok")
            else:
                conn.request("POST", "/count", body=b"x" * 100, headers={"X-Request-Id": rid})
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as e:
            status = "error:%s" % type(e).__name__
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out[method][status] += 1
        if method == "POST":
            ids.append((rid, status))
    conn.close()
    return out


def keepalive_variant(work, worker_keepalive, nginx_timeout, plan):
    """One stack (1 worker, nginx `keepalive 1`), one boundary client."""
    counter = work / "counter.log"
    counter.touch()
    os.chmod(counter, 0o666)
    timeout_line = "        keepalive_timeout %s;\n" % nginx_timeout if nginx_timeout else ""
    stack = Stack(
        work,
        ["--keep-alive", str(worker_keepalive)],
        workers=1,
        locations=KEEPALIVE_LOCATIONS.replace("COUNTER_PATH", str(counter)),
        http_extra=KEEPALIVE_UPSTREAM.replace("TIMEOUT_LINE", timeout_line),
    )
    ids = []
    with stack as s:
        by_method = boundary_client(s.nginx.port, plan, worker_keepalive, ids)
        errors = s.nginx.error_log.text()
    counted = Counter(line.split()[0] for line in counter.read_text().splitlines() if line.strip())
    failed_posts_counted = sum(1 for rid, st in ids if st != 200 and counted.get(rid))
    lines = [line for line in errors.splitlines() if "[error]" in line]
    return by_method, lines, failed_posts_counted


def scenario_keepalive(base, stacks=4, span_ms=15, rounds=6):
    """The supervisor's idle timeout (--keep-alive) against nginx's upstream
    keepalive_timeout, at the boundary: a client per stack reuses the one
    pooled connection after exactly the worker's idle time, offset from
    -span_ms to +span_ms in 1 ms steps, `rounds` times (spread over `stacks`
    stacks per setting, all running at once)."""
    variants = [
        ("10a", 1, "1s", "--keep-alive 1, nginx keepalive_timeout 1s (equal)"),
        ("10b", 1, None, "--keep-alive 1, nginx keepalive_timeout default 60s (the worker closes first)"),
        ("10c", 2, "1s", "--keep-alive 2, nginx keepalive_timeout 1s (nginx closes first)"),
    ]
    offsets = [ms / 1000 for ms in range(-span_ms, span_ms + 1)]
    runs = {}

    def run(key, n, worker_ka, nginx_timeout):
        # For 10c the boundary that matters is nginx's 1 s: pace around it.
        pace = offsets if worker_ka == 1 else [o - 1 for o in offsets]
        work = make_workdir(base, "%s-%d" % (key, n))
        share = pace[n::stacks]
        # Every offset gets GETs and POSTs: the method alternates along the
        # offsets and flips each round.
        plan = [(o, ("GET", "POST")[(j + r) % 2]) for r in range(rounds) for j, o in enumerate(share)]
        runs[key, n] = keepalive_variant(work, worker_ka, nginx_timeout, plan)

    threads = [threading.Thread(target=run, args=(k, n, w, t)) for k, w, t, _ in variants for n in range(stacks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = []
    details = []
    for key, _, _, label in variants:
        by_method = {"GET": Counter(), "POST": Counter()}
        lines = []
        failed_counted = 0
        for n in range(stacks):
            got, errors, ran = runs[key, n]
            by_method["GET"] += got["GET"]
            by_method["POST"] += got["POST"]
            lines += errors
            failed_counted += ran
        kinds = Counter()
        for line in lines:
            for needle in ("prematurely closed", "reset by peer", "Broken pipe", "timed out", "connect()"):
                if needle in line:
                    kinds[needle] += 1
        notes = (
            "GET %s, POST %s; upstream errors in nginx's log: %s (a GET hit by one is retried); failed POSTs "
            "the app did run: %d"
            % (dict(by_method["GET"]), dict(by_method["POST"]), dict(kinds) or "none", failed_counted)
        )
        r = result(
            "%s. keep-alive boundary: %s; requests reuse the pooled connection %d..+%d ms around the idle limit "
            "(%d times each)" % (key, label, -span_ms, span_ms, rounds),
            by_method["GET"] + by_method["POST"],
            notes,
        )
        if lines:
            details.append("%s, first 3:\n\n```\n%s\n```" % (key, "\n".join(lines[:3])))
        out.append(r)
    if details:
        out[0]["details"] = "10a. keep-alive boundary: nginx's error lines\n\n" + "\n\n".join(details)
    return out


# ---- 11. at-most-once POSTs --------------------------------------------------------


class PostLoad:
    """Client threads POSTing /count with a unique X-Request-Id each; `sent` maps id -> status."""

    def __init__(self, port, threads=4):
        self.port = port
        self.sent = {}
        self.failed_at = {}
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)]

    def run(self, n):
        conn = None
        i = 0
        while not self.stop_flag.is_set():
            rid = "p%d-%d" % (n, i)
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/count", body=b"payload %s" % rid.encode(), headers={"X-Request-Id": rid})
                response = conn.getresponse()
                body = response.read()
                status = (
                    response.status
                    if response.status != 200 or body == b"counted %s\n" % rid.encode()
                    else "200-bad-body"
                )
            except (OSError, http.client.HTTPException) as e:
                status = "error:%s" % type(e).__name__
                conn = None
            with self.lock:
                self.sent[rid] = status
                if status != 200:
                    self.failed_at[rid] = time.monotonic()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=60)


def scenario_no_replay(work, rounds=3):
    """POSTs with unique ids while supervisors are SIGKILLed, HUPed, TERMed and
    workers SIGKILLed: the app's counter file must never hold an id twice."""
    faults = []  # (time, kind)

    def fault(kind):
        faults.append((time.monotonic(), kind))

    with Pair(work, extra_args=["--graceful-timeout", "10"]) as p, PostLoad(p.nginx.port) as load:
        time.sleep(1)
        for i in range(rounds):
            a, b = p.supervisors[i % 2], p.supervisors[(i + 1) % 2]
            fault("supervisor SIGKILL")
            p.kill(a)
            time.sleep(1)
            restart(a)
            time.sleep(3)
            fault("HUP")
            os.kill(b.proc.pid, signal.SIGHUP)
            time.sleep(1)
            for pid in b.worker_pids()[:1]:
                fault("worker SIGKILL")
                os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            fault("TERM")
            b.proc.send_signal(signal.SIGTERM)
            b.proc.wait(timeout=20)
            restart(b)
            time.sleep(3)
        time.sleep(0.5)
    # Each failed request blamed on the last fault before its answer.
    blame = Counter()
    for rid, at in load.failed_at.items():
        before = [kind for t, kind in faults if t <= at]
        blame[before[-1] if before else "none"] += 1
    counted = p.counted()
    twice = {rid: n for rid, n in counted.items() if n > 1}
    statuses = Counter(load.sent.values())
    lost = [rid for rid, st in load.sent.items() if st == 200 and counted.get(rid, 0) != 1]
    failed_but_ran = sum(1 for rid, st in load.sent.items() if st != 200 and counted.get(rid))
    unknown = [rid for rid in counted if rid not in load.sent]
    return result(
        "11. POST counter (unique request ids) while supervisors and workers are killed, HUPed and TERMed",
        statuses,
        "faults: %s; failed requests by the fault just before them: %s; ids counted twice: %d%s; 200 answers "
        "not counted exactly once: %d; failed answers whose request the app did run (at most once, never "
        "replayed): %d; ids counted but never sent: %d"
        % (
            dict(Counter(kind for _, kind in faults)),
            dict(blame) or "none",
            len(twice),
            (" %s" % list(twice)[:5]) if twice else "",
            len(lost),
            failed_but_ran,
            len(unknown),
        ),
    )


# ---- 12. --preload fork safety -----------------------------------------------------


def has_preload():
    out = subprocess.run([str(FERROCORN_BIN), "--help"], capture_output=True, text=True).stdout
    return "--preload" in out


def scenario_preload(work, workers=100):
    """--preload with an app whose import starts a thread that keeps taking the
    logging and import locks, while the master forks `workers` workers."""
    if not has_preload():
        return None
    extra = ["--preload", "--timeout", "20"]
    with Stack(work, extra, workers=workers, app="preload_locks:app") as s:
        booted = wait_until(lambda: len(s.ferrocorn.worker_pids()) == workers, 60)
        load = Load(s.nginx.port, [Request("/")], threads=16)
        pids = set()
        with load:
            time.sleep(5)
        for _ in range(400):
            conn = http.client.HTTPConnection("127.0.0.1", s.nginx.port, timeout=30)
            try:
                conn.request("GET", "/")
                body = conn.getresponse().read()
                if body.startswith(b"ok "):
                    pids.add(body.split()[1])
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        timeouts = log_count(s.ferrocorn, "WORKER TIMEOUT")
        alive = len(s.ferrocorn.worker_pids())
    return result(
        "12. --preload, app thread holding the logging and import locks at import, %d workers forked" % workers,
        load.statuses,
        "all %d workers up: %s (alive at the end: %d); worker timeouts: %d; distinct workers answering 400 "
        "sequential requests: %d" % (workers, "yes" if booted else "NO", alive, timeouts, len(pids)),
    )


# ---- 13. compressed soak ----------------------------------------------------------


def scenario_soak(work, minutes=2.0, sample_every=30):
    """Mixed load with --max-requests recycling; RSS and fds of master, workers and nginx sampled."""
    mix = [
        Request("/ok"),
        Request("/slow?5"),
        Request("/upload", "POST", b"u" * 65536, b"65536\n"),
        Request("/seen/soak?q=1", "POST", b"field=value", b"{"),
    ]
    args = ["--max-requests", "300", "--max-requests-jitter", "50"]
    samples = []
    with Stack(work, args) as s, Load(s.nginx.port, mix, threads=4) as load:
        master = s.ferrocorn.proc.pid
        ngx_master = s.nginx.proc.pid
        deadline = time.monotonic() + minutes * 60
        start = time.monotonic()
        while True:
            workers = s.ferrocorn.worker_pids()
            ngx_workers = children_of(ngx_master)
            wr = [rss_mib(p) for p in workers]
            wr = [r for r in wr if r is not None]
            wfd = list(fd_count(workers).values())
            samples.append(
                {
                    "t": time.monotonic() - start,
                    "requests": sum(load.statuses.values()),
                    "master_rss": rss_mib(master),
                    "master_fds": fd_count([master]).get(master),
                    "worker_rss": (min(wr), statistics.median(wr), max(wr)) if wr else None,
                    "worker_fds": (min(wfd), max(wfd)) if wfd else None,
                    "nginx_rss": sum(filter(None, (rss_mib(p) for p in [ngx_master] + ngx_workers))),
                    "nginx_fds": sum(fd_count([ngx_master] + ngx_workers).values()),
                }
            )
            if time.monotonic() >= deadline:
                break
            time.sleep(min(sample_every, max(0, deadline - time.monotonic())))
        boots = log_count(s.ferrocorn, "Booting worker")
    rows = [
        "| t (s) | requests | master RSS MiB | master fds | worker RSS MiB min/median/max | worker fds min/max "
        "| nginx RSS MiB | nginx fds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in samples:
        rows.append(
            "| %.0f | %d | %.1f | %s | %s | %s | %.1f | %d |"
            % (
                x["t"],
                x["requests"],
                x["master_rss"],
                x["master_fds"],
                "%.1f / %.1f / %.1f" % x["worker_rss"] if x["worker_rss"] else "-",
                "%d / %d" % x["worker_fds"] if x["worker_fds"] else "-",
                x["nginx_rss"],
                x["nginx_fds"],
            )
        )
    first = samples[1] if len(samples) > 2 else samples[0]  # after warm-up
    last = samples[-1]
    notes = (
        "%.0f min, 4 clients (/ok, /slow?5, 64 KiB upload, form POST), --max-requests 300 (jitter 50): "
        "%d workers booted in all; master RSS %.1f → %.1f MiB, fds %s → %s; worker median RSS %.1f → %.1f MiB, "
        "max fds %s → %s; nginx RSS %.1f → %.1f MiB, fds %d → %d (from the sample at %.0f s to the last)"
        % (
            minutes,
            boots,
            first["master_rss"],
            last["master_rss"],
            first["master_fds"],
            last["master_fds"],
            first["worker_rss"][1],
            last["worker_rss"][1],
            first["worker_fds"][1],
            last["worker_fds"][1],
            first["nginx_rss"],
            last["nginx_rss"],
            first["nginx_fds"],
            last["nginx_fds"],
            first["t"],
        )
    )
    return result(
        "13. soak: %.0f min of mixed load with --max-requests recycling" % minutes,
        load.statuses,
        notes,
        "13. soak: samples every %d s\n\n%s" % (sample_every, "\n".join(rows)),
    )
