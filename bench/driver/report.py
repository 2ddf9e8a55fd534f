"""bench/results.md: the measured data as a page (tables, chart, how it ran)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from . import nginx_conf, servers, stats, workloads
from .stats import CEILING, RIVAL

NOISE = (
    "**Read the ratios, not the absolute figures.** This machine has {nproc} cores shared by wrk, "
    "the front nginx, the server under test and whatever else runs on the box; absolute req/s on "
    "a shared 2-core machine are noisy from run to run (every run is in results.json). "
    "The ratios to the upstream ceiling and to uWSGI, measured minutes apart on the same machine, "
    "are what count. The one-connection figures are the noisiest: with a single request in flight "
    "they mostly measure how fast an idle virtual CPU wakes up, which varies from round to round."
)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _title(name: str) -> str:
    server = servers.BY_NAME.get(name)
    return server.title if server else name


def _shorten(text: str, data: dict) -> str:
    return text.replace(data["run_dir"], "$RUN").replace(data["root"] + "/", "").replace(data["root"], ".")


def _spread(s: dict) -> str:
    low, high = s["spread"]
    return f"{_num(low)}–{_num(high)}"


def _errors(s: dict) -> str:
    total = s["status_errors"] + s["socket_errors"]
    if not total:
        return "0"
    return f"**{total}** ({s['status_errors']} non-2xx, {s['socket_errors']} socket)"


def _summary_table(data: dict, loads: list) -> list[str]:
    rows = data["rows"]
    out = ["| server | " + " | ".join(w.title for w in loads) + " |",
           "|---|" + "---:|" * len(loads)]
    for row in rows:
        cells = []
        for w in loads:
            if row["skipped"]:
                cells.append("not run")
                continue
            s = stats.summary(row["points"].get(w.name))
            ceiling = stats.rps_of(rows, CEILING, w.name)
            cells.append("failed" if s is None else
                         f"{_x(stats.ratio(s['rps'], ceiling))} ({_num(s['rps'])})")
        out.append(f"| {_title(row['server'])} | " + " | ".join(cells) + " |")
    return out


def _glance_table(data: dict, loads: list) -> list[str]:
    """Per row, the geometric mean over the workloads of its ratios to the ceiling and to uWSGI."""
    rows = data["rows"]
    out = ["| server | × ceiling (geometric mean) | × uWSGI (geometric mean) | workloads measured |",
           "|---|---:|---:|---:|"]
    for row in rows:
        if row["skipped"]:
            out.append(f"| {_title(row['server'])} | not run | | |")
            continue
        to_ceiling, to_rival = [], []
        for w in loads:
            s = stats.summary(row["points"].get(w.name))
            if s is None:
                continue
            to_ceiling.append(stats.ratio(s["rps"], stats.rps_of(rows, CEILING, w.name)))
            to_rival.append(stats.ratio(s["rps"], stats.rps_of(rows, RIVAL, w.name)))
        out.append(f"| {_title(row['server'])} | {_x(stats.geomean(to_ceiling))} | "
                   f"{_x(stats.geomean(to_rival))} | {len(to_ceiling)} of {len(loads)} |")
    return out


def _workload_section(data: dict, w) -> list[str]:
    rows = data["rows"]
    ceiling = stats.rps_of(rows, CEILING, w.name)
    rival = stats.rps_of(rows, RIVAL, w.name)
    out = [f"### {w.title}", "", f"{w.doc[0].upper() + w.doc[1:]}. `{w.method} {w.path}`.", "",
           "| server | req/s | × ceiling | × uWSGI | rounds min–max | p50 ms | p99 ms | errors |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row["skipped"]:
            continue
        point = row["points"].get(w.name)
        s = stats.summary(point)
        if s is None:
            why = (point or {}).get("error") or "not measured"
            out.append(f"| {_title(row['server'])} | failed | | | | | | {_shorten(why, data)[:300]} |")
            continue
        out.append(f"| {_title(row['server'])} | {_num(s['rps'])} | {_x(stats.ratio(s['rps'], ceiling))} "
                   f"| {_x(stats.ratio(s['rps'], rival))} | {_spread(s)} "
                   f"| {_num(s['p50_ms'], 2)} | {_num(s['p99_ms'], 2)} "
                   f"| {_errors(s)} |")
    return out + [""]


def _slow_section(data: dict) -> list[str]:
    slow = workloads.BY_NAME["slow"]
    out = ["## Slow clients", "",
           f"While {slow.slow_clients:,} connections each announce a 10,000-byte POST body to `/echo` and "
           "trickle it at 10 bytes every 0.5 s (they would need 500 s to finish), wrk measures "
           "hello at 64 connections. nginx buffers request bodies before it passes a request on "
           "(`*_request_buffering on`, the default), so no worker is tied up by a slow client: "
           "hello throughput should stay close to the unloaded figure. Without nginx in front, a "
           "sync worker would sit blocked on each of those connections.", "",
           "| server | hello req/s, unloaded | with slow clients | kept "
           "| slow connections open at start / at end / dropped (worst round) |",
           "|---|---:|---:|---:|---|"]
    for row in data["rows"]:
        if row["skipped"]:
            continue
        base = stats.summary(row["points"].get("hello"))
        point = row["points"].get("slow")
        loaded = stats.summary(point)
        rounds = (point or {}).get("slow") or []
        conns = "–"
        if rounds:
            # The worst round: fewest open at start and at the end, most dropped.
            conns = (f"{min(h.get('opened', 0) for h in rounds)} / "
                     f"{min(h.get('still_open', 0) for h in rounds)} / "
                     f"{max(h.get('dropped', 0) for h in rounds)}")
        out.append(f"| {_title(row['server'])} | {_num(base and base['rps'])} | "
                   f"{_num(loaded and loaded['rps'])} | "
                   f"{_x(stats.ratio(loaded and loaded['rps'], base and base['rps']))} | {conns} |")
    return out + [""]


def _memory_section(data: dict) -> list[str]:
    out = ["## Memory", "",
           "Resident memory of each worker process (every process of the server's process group but "
           "the leader: master, arbiter or supervisor), read from `/proc/PID/status` after the last round's "
           "last workload: VmRSS averaged over the workers, and the highest VmHWM (peak). For "
           "the two nginx rows these are nginx's own workers (the front one, the in-memory backend's).",
           "", "| server | worker processes | RSS per worker, MiB | peak RSS, MiB |", "|---|---:|---:|---:|"]
    for row in data["rows"]:
        mem = row["memory"]
        if row["skipped"] or not mem:
            continue
        mean = sum(m["rss_kib"] for m in mem) / len(mem) / 1024
        peak = max(m["peak_kib"] for m in mem) / 1024
        out.append(f"| {_title(row['server'])} | {len(mem)} | {mean:.1f} | {peak:.1f} |")
    return out + [""]


def _curve_section(data: dict) -> list[str]:
    curve = data.get("worker_curve") or []
    if not curve:
        return ["## Ferrocorn worker-count curve", "",
                "Run in full mode only (`scripts/bench.sh --full`): hello at 64 connections with "
                "1, 2 and 4 workers.", ""]
    out = ["## Ferrocorn worker-count curve", "",
           "hello at 64 connections, `ferrocorn_pass unix:...`, 1, 2 and 4 workers (nginx keeps 1). On "
           f"{data['machine']['nproc']} cores, past 2 workers they only take turns with nginx and wrk.", "",
           "| workers | req/s | × 1 worker | p50 ms | p99 ms | errors |", "|---:|---:|---:|---:|---:|---:|"]
    base = None
    for row in curve:
        s = stats.summary(row["points"].get("hello"))
        if row["skipped"] or s is None:
            why = row["skipped"] or (row["points"].get("hello") or {}).get("error")
            out.append(f"| {row['workers']} | failed: {_shorten(str(why), data)[:200]} | | | | |")
            continue
        base = base or s["rps"]
        out.append(f"| {row['workers']} | {_num(s['rps'])} | {_x(s['rps'] / base)} | "
                   f"{_num(s['p50_ms'], 2)} | {_num(s['p99_ms'], 2)} | {_errors(s)} |")
    return out + [""]


def _problems_section(data: dict) -> list[str]:
    out = []
    for row in data["rows"] + (data.get("worker_curve") or []):
        label = f"{_title(row['server'])} ({row['workers']} workers)"
        if row["skipped"]:
            out.append(f"- **{label}: did not run.** {_shorten(row['skipped'], data)}")
        for name, point in row["points"].items():
            if point.get("error"):
                out.append(f"- **{label}, {name}: failed.** {_shorten(point['error'], data)}")
        if row["nginx_errors"]:
            lines = "\n".join("      " + _shorten(line, data) for line in row["nginx_errors"])
            out.append(f"- {label}: the front nginx logged errors:\n\n{lines}\n")
    if not out:
        return []
    return ["## Failures and errors", ""] + out + [""]


def _how_section(data: dict) -> list[str]:
    mode = data["mode"]
    out = ["## How it ran", "",
           f"`{' '.join(data['argv'])}` ({mode['name']} mode, {data['elapsed_s'] // 60} min "
           f"{data['elapsed_s'] % 60} s): {mode['rounds']} rounds; in each round every row in turn is "
           f"started, warmed up with {mode['row_warmup']} s of hello, checked, measured once per workload "
           f"for {mode['duration']} s"
           + (f" (after {mode['point_warmup']} s of unreported warm-up)" if mode['point_warmup'] else "")
           + " and stopped. Taking turns spreads background load over every row. Each figure is the "
           "median over the rounds; req/s counts 2xx answers only; errors are non-2xx answers plus "
           "socket errors (connect, read, write, timeout) summed over the rounds.", "",
           "- Every row serves the same app, `bench/apps/hello.py` (`hello:application`; the Flask "
           "endpoint is `bench/apps/flask_app.py`, mounted by it), from the bench venv "
           "(`.venv-bench`, Debian's Python 3.11, pinned in `bench/requirements.txt`). Every answer is "
           "checked byte for byte once before a row is measured.",
           f"- Each application server runs {data['workers']} workers; the front nginx runs 1 worker "
           f"(`{_shorten(data.get('nginx', 'dist/sbin/nginx'), data)}`, the build the module is compiled "
           "against), `sendfile on`, "
           "`client_max_body_size 2m`, every other setting at nginx's default (so 1 MiB request bodies "
           "are buffered to a temporary file before any row sees them).",
           "- Every server listens on a **unix socket** in a private scratch dir (mode 0755, `$RUN` "
           "below; sockets 0666), starts in its own process group, is polled until its socket "
           "accepts, and is stopped with its whole group after its row.",
           "- The upstream ceiling is a second nginx (same build, "
           f"{data['workers']} workers) answering every path from memory: `return 200` with the app's "
           "exact bytes, the 1 MiB file from the page cache (for `/bytes` and the 1 MiB streamed paths, "
           "sent whole with a Content-Length where the app streams it chunked), a 10 MiB file for "
           "`/stream-10m`, and for the echo a `return 405` whose "
           "`error_page 405 =200` serves that file (nginx reads and drops the 1 MiB body, then "
           "sends 1 MiB back). The nginx-alone row answers the same way in the front nginx itself.",
           "- Gunicorn's own uwsgi channel exists in the pinned "
           f"{data['versions'].get('Gunicorn', 'Gunicorn')}: `--protocol uwsgi` (\"uWSGI binary "
           "protocol (for nginx uwsgi_pass)\" in its settings reference; unix-socket peers are always "
           "allowed), so its row is included, with sync workers.",
           "- Load: wrk, one thread, `--timeout 10s`, a Lua script per workload (method, body, headers) "
           "whose `done()` prints the counts and latency percentiles: "
           "`wrk -t 1 -c CONNS -d SECONDSs --timeout 10s -s WORKLOAD.lua http://127.0.0.1:PORT/PATH`.",
           "- Slow clients: `.venv-bench/bin/python -m driver.slow_clients --port PORT --connections 1000` "
           "(from `bench/`, asyncio), started and ready before wrk starts, stopped after the last run.",
           "", "Per row, the server's command line and the lines the front nginx's `location / { }` "
           "(and `http { }`, for an `upstream`) held; `$RUN` is the scratch dir:", ""]
    for row in data["rows"]:
        server = servers.BY_NAME.get(row["server"])
        out += [f"**{_title(row['server'])}** — {server.transport if server else ''}", ""]
        if row["command"]:
            out += ["```sh", _shorten(row["command"], data), "```"]
        if row["nginx_snippet"]:
            out += ["```nginx", _shorten(row["nginx_snippet"], data), "```"]
        if not row["command"] and not row["nginx_snippet"]:
            out += ["The front nginx answers itself, with the same locations as the ceiling's "
                    "backend nginx:", "", "```nginx",
                    textwrap.dedent(nginx_conf.memory_locations(Path("$RUN/ROW/www"))), "```"]
        out.append("")
    return out + [""]


def _machine_section(data: dict) -> list[str]:
    m = data["machine"]
    out = ["## Machine and versions", "",
           f"- Machine: {m['nproc']} cores (`nproc`), {m['cpu']}, {m['memory']} RAM, Linux {m['kernel']}, "
           f"{m['os']}; open-files limit {data['open_files_limit']:,}.",
           f"- Run started {data['started']}."]
    out += [f"- {name}: {value}" for name, value in data["versions"].items()]
    return out + [""]


HISTORY = "## History"


def _kept_history(path: Path) -> list[str]:
    """The History section of the results.md being replaced: hand-written notes of
    what each change bought, kept across regenerations (it ends the file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    at = text.find("\n" + HISTORY + "\n")
    return text[at + 1:].rstrip().splitlines() + [""] if at >= 0 else []


def write(data: dict, path: Path, png_name: str) -> None:
    loads = [w for w in workloads.WORKLOADS
             if any(w.name in row["points"] for row in data["rows"])]
    lines = [
        "# Ferrocorn benchmark", "",
        f"Generated by `scripts/bench.sh` ({data['mode']['name']} mode) on {data['started']}. Every "
        "row is the same WSGI app behind the same nginx build; only what sits behind nginx changes. "
        "The **upstream ceiling** row is nginx `proxy_pass` (keep-alive, unix socket) to a second "
        "nginx answering from memory: no application server behind nginx can beat it on this machine, "
        "so every figure is also given as a multiple of it. Where an application server lands above "
        "1.0 on some workload, the rounds disagreed by more than the gap: the min–max column of each "
        "table shows how far apart they were.", "",
        "> " + NOISE.format(nproc=data["machine"]["nproc"]), "",
        f"![req/s per server and workload, as a multiple of the upstream ceiling]({png_name})", "",
        "## Summary", "",
        "At a glance: each row's req/s over the workloads as one figure, the geometric mean of its "
        "ratios (a row that fails a workload is averaged over the others; the tables below say which).", "",
        *_glance_table(data, loads), "",
        "req/s as a multiple of the upstream ceiling (median req/s in brackets).", "",
        *_summary_table(data, loads), "",
        "## Per workload", "",
        *[line for w in loads for line in _workload_section(data, w)],
    ]
    if "slow" in [w.name for w in loads]:
        lines += _slow_section(data)
    lines += _memory_section(data)
    lines += _curve_section(data)
    lines += _problems_section(data)
    lines += _how_section(data)
    lines += _machine_section(data)
    lines += _kept_history(path)
    path.write_text("\n".join(lines).rstrip() + "\n")
