"""One row from start to stop: start the server (its own process group, polled
until its socket accepts), start the front nginx, check every workload's answer,
measure, read the workers' memory, stop everything whatever happened."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import nginx_conf, probe, wrk
from .processes import Group, StartError, free_port
from .servers import UWSGI_PARAMS, Server
from .settings import APPS, BENCH, Context
from .slow_clients import SlowClients
from .workloads import Workload


@dataclass
class Point:
    """One (row, workload) measurement."""

    runs: list = field(default_factory=list)
    # Why the point has no figures (wrong answer, server died, ...), else None.
    error: str | None = None
    # For the slow-clients workload: connections open when wrk started, failed
    # to connect, still open at the end, dropped by the server.
    slow: dict | None = None


@dataclass
class RowResult:
    server: str
    workers: int
    points: dict = field(default_factory=dict)
    # The measured processes' workers after the row's load.
    memory: list = field(default_factory=list)
    # Why the row did not run at all, else None.
    skipped: str | None = None
    # The exact server command and nginx snippet that ran (for the page).
    command: str = ""
    nginx_snippet: str = ""
    # [error]/[crit]/[alert] lines the front nginx logged during the row.
    nginx_errors: list = field(default_factory=list)


def log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _formatter(ctx: Context, row_dir: Path, sock: Path):
    def fmt(template: str) -> str:
        return template.format(sock=sock, workers=ctx.workers, apps=APPS, venv=ctx.venv,
                               dist=ctx.dist, nginx=ctx.nginx, row_dir=row_dir)
    return fmt


def run_row(server: Server, ctx: Context, workloads: list[Workload]) -> RowResult:
    result = RowResult(server.name, ctx.workers)
    row_dir = ctx.run_dir / f"{server.name}-w{ctx.workers}"
    sock = row_dir / "app.sock"
    fmt = _formatter(ctx, row_dir, sock)
    result.command = " ".join(fmt(a) for a in server.command)
    result.nginx_snippet = "\n".join(filter(None, [fmt(server.upstream), fmt(server.location)]))
    missing = [fmt(p) for p in server.requires if not Path(fmt(p)).exists()]
    if missing:
        result.skipped = "not built: " + ", ".join(missing)
        log(f"{server.name}: skipped ({result.skipped})")
        return result

    for sub in ("", "logs", "front", "backend"):
        (row_dir / sub).mkdir(mode=0o755, exist_ok=True)
        (row_dir / sub).chmod(0o755)
    nginx_conf.write_static_files(row_dir / "www")
    (row_dir / "uwsgi_params").write_text(UWSGI_PARAMS)

    groups: list[Group] = []
    try:
        measured = None
        if server.command:
            if server.kind == "ceiling":
                (row_dir / "backend.conf").write_text(
                    nginx_conf.backend_config(row_dir, sock, ctx.workers))
            started = time.monotonic()
            measured = Group(server.name, [fmt(a) for a in server.command],
                             row_dir / "logs" / "server.log", cwd=APPS)
            groups.append(measured)
            measured.wait_for_socket(sock)
            log(f"{server.name}: socket ready in {time.monotonic() - started:.2f} s")
        port = free_port()
        (row_dir / "front.conf").write_text(
            nginx_conf.front_config(server, fmt, row_dir, port, ctx.dist))
        front = Group("nginx", [str(ctx.nginx), "-p", f"{row_dir}/front/", "-e",
                                f"{row_dir}/logs/front-error.log", "-c", f"{row_dir}/front.conf"],
                      row_dir / "logs" / "front.log")
        groups.append(front)
        front.wait_for_http(port, "/hello")
        measured = measured or front

        for workload in workloads:
            result.points[workload.name] = point = Point()
            point.error = probe.check(port, workload)
            if point.error is None:
                _measure(point, workload, ctx, row_dir, port)
            if measured.proc.poll() is not None:
                point.error = (point.error or "") + f" ({server.name} exited with " \
                    f"{measured.proc.returncode}: {measured.log_tail(5)})"
            _log_point(server.name, workload, point)
            if measured.proc.poll() is not None:
                break
        result.memory = measured.worker_memory()
    except StartError as e:
        result.skipped = f"failed to start: {e}"
        log(f"{server.name}: {result.skipped}")
    finally:
        for group in reversed(groups):
            group.stop()
        result.nginx_errors = _nginx_errors(row_dir / "logs" / "front-error.log")
    return result


def _measure(point: Point, workload: Workload, ctx: Context, row_dir: Path, port: int) -> None:
    script = wrk.write_script(workload, row_dir)
    slow = None
    try:
        if workload.slow_clients:
            slow = SlowClients(ctx.venv_bin("python"), port, workload.slow_clients, BENCH,
                               row_dir / "logs" / "slow-clients.log")
            opened, failed = slow.wait_ready()
            point.slow = {"opened": opened, "failed": failed}
        if ctx.mode.warmup:
            wrk.run(workload, script, port, ctx.mode.warmup)
        for _ in range(ctx.mode.runs):
            point.runs.append(wrk.run(workload, script, port, ctx.mode.duration))
    except RuntimeError as e:
        point.error = str(e)
    finally:
        if slow is not None:
            still_open, dropped = slow.stop()
            if point.slow is not None:
                point.slow.update(still_open=still_open, dropped=dropped)


def _log_point(name: str, workload: Workload, point: Point) -> None:
    if point.error:
        log(f"{name} {workload.name}: ERROR {point.error}")
        return
    rps = sorted(r.good_rps for r in point.runs)
    errors = sum(r.errors for r in point.runs)
    extra = f" slow={point.slow}" if point.slow else ""
    log(f"{name} {workload.name}: {rps[len(rps) // 2]:,.0f} req/s (runs "
        f"{', '.join(f'{r:,.0f}' for r in rps)}), p99 {point.runs[0].p99_ms:.2f} ms, "
        f"errors {errors}{extra}")


def _nginx_errors(path: Path, keep: int = 5) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    bad = [line for line in lines if any(f"[{lvl}]" in line for lvl in ("error", "crit", "alert", "emerg"))]
    return bad[:keep] + ([f"... {len(bad) - keep} more"] if len(bad) > keep else [])
