"""Faults under load against real nginx + module + ferrocorn (issue 7).

Run through scripts/chaos.sh. Each scenario runs a bounded client loop
(threads, keep-alive, loopback only) while it injects one fault, counts
requests sent / succeeded / failed by status, and its row is merged into
bench/reliability.md. Faults on processes (2-6, 8) are here; the life cycle
ones (HUP, failover, TERM, keep-alive boundary, POST replay, --preload,
soak: 1, 7, 9-13) in chaos_lifecycle.py; load and stacks in chaos_harness.py.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos_lifecycle  # noqa: E402
from chaos_harness import ROOT, WORKERS, Load, Stack, fd_count, make_workdir, one_request, restart  # noqa: E402
from servers import wait_until  # noqa: E402


def scenario_kill_worker(work, seconds=20):
    """SIGKILL a random worker every second under load."""
    rng = random.Random(2)
    respawn = []
    with Stack(work) as s, Load(s.nginx.port) as load:
        for _ in range(seconds):
            time.sleep(1)
            pids = s.ferrocorn.worker_pids()
            victim = rng.choice(pids)
            os.kill(victim, signal.SIGKILL)
            start = time.monotonic()
            wait_until(
                lambda: victim not in s.ferrocorn.worker_pids() and len(s.ferrocorn.worker_pids()) == WORKERS,
                10,
                0.005,
            )
            respawn.append(time.monotonic() - start)
    sent, ok, failed = load.figures()
    return {
        "scenario": "2. SIGKILL a random worker every second (%d s, %d workers)" % (seconds, WORKERS),
        "sent": sent,
        "ok": ok,
        "failed": failed,
        "notes": "%d kills; worker count back to %d after max %.0f ms (median %.0f ms)"
        % (len(respawn), WORKERS, max(respawn) * 1000, sorted(respawn)[len(respawn) // 2] * 1000),
    }


def scenario_hang(work, seconds=10):
    """One request to an endpoint that never returns, under load."""
    with Stack(work, ["--timeout", "5"]) as s, Load(s.nginx.port) as load:
        before = set(s.ferrocorn.worker_pids())
        time.sleep(1)
        start = time.monotonic()
        status = one_request(s.nginx.port, "/hang")
        took = time.monotonic() - start
        replaced = wait_until(lambda: set(s.ferrocorn.worker_pids()) != before, 15)
        time.sleep(max(0, seconds - (time.monotonic() - start)))
        count = len(s.ferrocorn.worker_pids())
    sent, ok, failed = load.figures()
    return {
        "scenario": "3. endpoint that hangs forever (nginx read timeout 3 s, --timeout 5)",
        "sent": sent,
        "ok": ok,
        "failed": failed,
        "notes": "hanging request: %s after %.1f s; stuck worker replaced: %s; workers now %d"
        % (status, took, "yes" if replaced else "NO", count),
    }


def scenario_segfault(work, seconds=8):
    with Stack(work) as s, Load(s.nginx.port) as load:
        before = set(s.ferrocorn.worker_pids())
        time.sleep(1)
        status = one_request(s.nginx.port, "/segfault")
        start = time.monotonic()
        replaced = wait_until(
            lambda: set(s.ferrocorn.worker_pids()) != before and len(s.ferrocorn.worker_pids()) == WORKERS, 10, 0.005
        )
        respawn = time.monotonic() - start
        time.sleep(seconds)
    sent, ok, failed = load.figures()
    return {
        "scenario": "4. endpoint that segfaults (ctypes.string_at(0))",
        "sent": sent,
        "ok": ok,
        "failed": failed,
        "notes": "segfaulting request: %s; respawned: %s in %.0f ms"
        % (status, "yes" if replaced else "NO", respawn * 1000),
    }


def scenario_leak(work, requests_=150):
    """Each /leak request keeps 4 MiB; --max-worker-memory recycles."""
    statuses = Counter()
    with Stack(work, ["--max-worker-memory", "150"]) as s:
        seen_pids = set(s.ferrocorn.worker_pids())
        for _ in range(requests_):
            statuses[one_request(s.nginx.port, "/leak")] += 1
            seen_pids |= set(s.ferrocorn.worker_pids())
        rss = []
        for pid in s.ferrocorn.worker_pids():
            with open("/proc/%d/status" % pid) as f:
                rss += [int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:")]
    failed = {str(k): v for k, v in statuses.items() if k != 200}
    return {
        "scenario": "5. endpoint that leaks 4 MiB per request, --max-worker-memory 150",
        "sent": sum(statuses.values()),
        "ok": statuses.get(200, 0),
        "failed": failed,
        "notes": "%d worker pids seen (%d recycled); worker RSS at the end: %s MiB"
        % (len(seen_pids), len(seen_pids) - WORKERS, ", ".join(map(str, rss))),
    }


def scenario_supervisor_restart(work, down=2.0):
    """SIGKILL the supervisor, restart it after `down` seconds (stale socket)."""
    with Stack(work) as s, Load(s.nginx.port) as load:
        time.sleep(2)
        old_workers = s.ferrocorn.worker_pids()
        os.kill(s.ferrocorn.proc.pid, signal.SIGKILL)
        s.ferrocorn.proc.wait()
        killed_at = time.monotonic()
        gone = wait_until(lambda: not any(os.path.exists("/proc/%d" % p) for p in old_workers), 10)
        orphans_gone = time.monotonic() - killed_at
        time.sleep(max(0, down - (time.monotonic() - killed_at)))
        stale = s.ferrocorn.sock.exists()
        s.ferrocorn.proc = None
        bound = restart(s.ferrocorn)  # the stale socket file stays in place
        back_after = time.monotonic() - killed_at
        time.sleep(3)
        after = Counter()
        for _ in range(20):
            after[one_request(s.nginx.port, "/ok")] += 1
    sent, ok, failed = load.figures()
    return {
        "scenario": "6. supervisor SIGKILLed, restarted %.0f s later on the stale socket file" % down,
        "sent": sent,
        "ok": ok,
        "failed": failed,
        "notes": "orphaned workers exited: %s (%.1f s); stale socket file present: %s; new supervisor bound: %s, "
        "serving %.1f s after the kill; 20 requests after: %s"
        % ("yes" if gone else "NO", orphans_gone, stale, "yes" if bound else "NO", back_after, dict(after)),
    }


def scenario_client_aborts(work, rounds=20):
    """Clients that hang up mid-download and mid-upload: no fd leak."""
    with Stack(work) as s:
        for _ in range(3):
            one_request(s.nginx.port, "/ok")
        time.sleep(3)
        pids = s.ferrocorn.worker_pids()
        before = fd_count(pids)
        for _ in range(rounds):
            c = socket.create_connection(("127.0.0.1", s.nginx.port))
            c.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            c.recv(100_000)
            c.close()
            c = socket.create_connection(("127.0.0.1", s.nginx.port))
            c.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"u" * 1_000_000)
            c.close()
        time.sleep(4)  # past --keep-alive: idle upstream connections close
        after = fd_count(pids)
        alive = s.ferrocorn.worker_pids() == pids
        status = one_request(s.nginx.port, "/ok")
    return {
        "scenario": "8. %d aborted downloads + %d aborted uploads" % (rounds, rounds),
        "sent": 2 * rounds,
        "ok": "-",
        "failed": {},
        "notes": "worker fds before %s, after %s; same workers: %s; next request: %s"
        % (sorted(before.values()), sorted(after.values()), alive, status),
    }


# Every scenario of issue 7, by key: what it is, for the "Pending" list
# while no figure exists.
DESCRIPTIONS = {
    "1": "HUP every second for 30 s",
    "2": "SIGKILL of a random worker every second",
    "3": "an endpoint that hangs forever",
    "4": "an endpoint that segfaults",
    "5": "an endpoint that leaks memory, --max-worker-memory",
    "6": "supervisor SIGKILLed and restarted on the stale socket",
    "7": "two supervisors in one upstream, one killed: failover",
    "8": "client aborts mid-upload and mid-download",
    "9": "graceful stop (TERM) under load: every accepted request completes",
    "10": "keep-alive idle-timeout race between nginx and the supervisor",
    "11": "no replay of non-idempotent requests across failover/restarts (POST counter)",
    "12": "--preload with a thread holding the import/logging lock while 100 workers fork "
    "(runs once `ferrocorn --help` lists --preload)",
    "13": "10-minute mixed-load soak with recycling: RSS and fd counts flat",
}

TABLE_HEAD = "| scenario | sent | succeeded | failed (by status) | notes |"


def row_key(scenario):
    """'9a. graceful...' -> '9a'; sorts as (9, 'a')."""
    return scenario.split(".", 1)[0].strip()


def sort_key(key):
    m = re.match(r"(\d+)(.*)", key)
    return (int(m.group(1)), m.group(2)) if m else (999, key)


def read_report(path):
    """Rows and details sections of an existing report, by scenario key."""
    rows, details = {}, {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return rows, details
    in_table = False
    for line in text.splitlines():
        if line.startswith(TABLE_HEAD):
            in_table = True
        elif in_table and not line.startswith("|"):
            break
        elif in_table and re.match(r"\| \d+[a-z]?\. ", line):
            rows[row_key(line[2:])] = line
    if "\n## Details\n" in text:
        part = text.split("\n## Details\n", 1)[1].split("\n## ", 1)[0]
        for section in part.split("\n### ")[1:]:
            details[row_key(section)] = "### " + section.strip()
    return rows, details


def write_report(results, path):
    """Merge this run's rows into the report: scenarios not run keep their figures."""
    rows, details = read_report(path)
    for r in results:
        key = row_key(r["scenario"])
        failed = ", ".join("%s: %s" % kv for kv in r["failed"].items()) or "0"
        rows[key] = "| %s | %s | %s | %s | %s |" % (r["scenario"], r["sent"], r["ok"], failed, r["notes"])
        if r.get("details"):
            details[key] = "### " + r["details"].strip()
        else:
            details.pop(key, None)
    lines = [
        "# Reliability under faults",
        "",
        "Written by `scripts/chaos.sh` (driver `scripts/chaos.py`, scenarios in `scripts/chaos.py` and",
        "`scripts/chaos_lifecycle.py`): real nginx + module + ferrocorn on this machine (2 shared cores),",
        "%d workers unless said otherwise, client threads with keep-alive on loopback, app" % WORKERS,
        "`tests/apps/faults.py` (`hostile.py` plus `/slow` and a POST counter). Each row is the latest run",
        "of that scenario; last written %s." % time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "",
        TABLE_HEAD,
        "|---|---|---|---|---|",
    ]
    lines += [rows[k] for k in sorted(rows, key=sort_key)]
    have = {re.match(r"\d+", k).group(0) for k in rows if re.match(r"\d+", k)}
    pending = [k for k in sorted(DESCRIPTIONS, key=int) if k not in have]
    if pending:
        lines += ["", "## Pending", "", "Not run yet (the feature or the harness is not there yet):", ""]
        lines += ["- %s. %s" % (k, DESCRIPTIONS[k]) for k in pending]
    if details:
        lines += ["", "## Details", ""]
        for k in sorted(details, key=sort_key):
            lines += [details[k], ""]
    lines += [
        "",
        "## Fuzzing",
        "",
        "`cargo run --release -p ferrocorn-fuzz -- --inputs 10000000 --seed 7` (stable Rust, `fuzz/`):",
        "10^7 inputs for each of `request_decoder`, `response_body`, `response_head`, no failure after",
        "the fixes in protocol/src/response_stream.rs (see git log).",
        "",
    ]
    text = "\n".join(lines)
    old = Path(path).read_text() if Path(path).exists() else ""
    if "\n## Request corpus" in old:  # written by hand from tests/test_request_corpus.py; kept
        text += "\n## Request corpus" + old.split("\n## Request corpus", 1)[1]
    Path(path).write_text(text)


SCENARIOS = {
    "hup": chaos_lifecycle.scenario_hup,
    "kill_worker": scenario_kill_worker,
    "hang": scenario_hang,
    "segfault": scenario_segfault,
    "leak": scenario_leak,
    "supervisor_restart": scenario_supervisor_restart,
    "failover": chaos_lifecycle.scenario_failover,
    "client_aborts": scenario_client_aborts,
    "term_pair": chaos_lifecycle.scenario_term_pair,
    "term_single": chaos_lifecycle.scenario_term_single,
    "keepalive": chaos_lifecycle.scenario_keepalive,
    "no_replay": chaos_lifecycle.scenario_no_replay,
    "preload": chaos_lifecycle.scenario_preload,
    "soak": chaos_lifecycle.scenario_soak,
}


def main():
    parser = argparse.ArgumentParser(description="Faults under load; figures merged into bench/reliability.md.")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="run only these: %s" % " ".join(SCENARIOS))
    parser.add_argument("--soak-minutes", type=float, default=2.0, help="length of the soak (13); issue 7 asks 10")
    parser.add_argument("--report", default=str(ROOT / "bench" / "reliability.md"), help="the report to merge into")
    args = parser.parse_args()
    # TERM/HUP unwind like Ctrl-C: every `with` stops the servers it started.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_, s=sig: sys.exit(128 + s))
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error("unknown scenario %s; known: %s" % (", ".join(unknown), " ".join(SCENARIOS)))
    options = {"soak": {"minutes": args.soak_minutes}}
    base = Path(tempfile.mkdtemp(prefix="ferrocorn-chaos-", dir="/tmp"))
    os.chmod(base, 0o755)
    results = []
    started = time.monotonic()
    try:
        for name in args.scenarios or list(SCENARIOS):
            print("==> %s" % name, flush=True)
            t0 = time.monotonic()
            out = SCENARIOS[name](make_workdir(base, name), **options.get(name, {}))
            for result in out if isinstance(out, list) else [out] if out else []:
                print("    %s" % result, flush=True)
                results.append(result)
            if not out:
                print("    skipped (the feature is not there)", flush=True)
            print("    %.0f s" % (time.monotonic() - t0), flush=True)
    finally:
        if not os.environ.get("FERROCORN_KEEP_TMP"):
            shutil.rmtree(base, ignore_errors=True)
        write_report(results, args.report)
    print("merged %d rows into %s in %.0f s" % (len(results), args.report, time.monotonic() - started))


if __name__ == "__main__":
    main()
