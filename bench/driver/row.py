"""One row of the page (a server configuration), measured in rounds.

Each round starts the row's server in its own process group (polled until its
socket accepts), starts the front nginx, warms up, checks every workload's
answer byte for byte, runs wrk once per workload, reads the workers' memory and
stops everything, whatever happened. run.py interleaves rows round by round, so
a burst of background load on a shared machine spreads over every row instead
of sinking one."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import nginx_conf, probe, wrk
from .processes import Group, StartError, free_port
from .servers import UWSGI_PARAMS, Server
from .settings import APPS, BENCH, ROOT, Context
from .slow_clients import SlowClients
from .workloads import BY_NAME as WORKLOADS_BY_NAME
from .workloads import Workload


@dataclass
class Point:
    """One (row, workload): a run per round."""

    runs: list = field(default_factory=list)
    # Why the point is incomplete (wrong answer, server died, ...), else None.
    error: str | None = None
    # For the slow-clients workload, per round: connections open when wrk started,
    # failed to connect, still open at the end, dropped by the server.
    slow: list = field(default_factory=list)


@dataclass
class RowResult:
    server: str
    workers: int
    points: dict = field(default_factory=dict)
    # The measured processes' workers after the last round's load.
    memory: list = field(default_factory=list)
    # Why the row did not run (not built, failed to start), else None.
    skipped: str | None = None
    # The exact server command and nginx snippet that ran (for the page).
    command: str = ""
    nginx_snippet: str = ""
    # [error]/[crit]/[alert] lines the front nginx logged (all rounds).
    nginx_errors: list = field(default_factory=list)


class Row:
    """A server configuration with its worker count and workloads, and its results so far."""

    def __init__(self, server: Server, ctx: Context, workloads: list[Workload], label: str = ""):
        self.server = server
        self.ctx = ctx
        self.workloads = workloads
        self.dir = ctx.run_dir / f"{label}{server.name}-w{ctx.workers}"
        self.sock = self.dir / "app.sock"
        self.result = RowResult(server.name, ctx.workers)
        self.result.command = " ".join(self.fmt(a) for a in server.command)
        self.result.nginx_snippet = "\n".join(
            filter(None, [self.fmt(server.upstream), self.fmt(server.location)]))
        missing = [self.fmt(p) for p in server.requires if not Path(self.fmt(p)).exists()]
        if missing:
            self.result.skipped = "not built: " + ", ".join(missing)

    def fmt(self, template: str) -> str:
        """Expands a Server template for this row."""
        return template.format(sock=self.sock, workers=self.ctx.workers, apps=APPS,
                               venv=self.ctx.venv, dist=self.ctx.dist, nginx=self.ctx.nginx,
                               row_dir=self.dir, root=ROOT)

    def run_round(self, round_no: int) -> None:
        """Start, warm up, probe and measure every workload once, stop. Never raises StartError."""
        name = f"{self.server.name} (w{self.ctx.workers}, round {round_no})"
        if self.result.skipped:
            log(f"{name}: skipped ({self.result.skipped})")
            return
        self._prepare_dir()
        groups: list[Group] = []
        try:
            measured = self._start_server(groups)
            port = self._start_front(groups)
            measured = measured or groups[-1]
            hello = WORKLOADS_BY_NAME["hello"]
            wrk.run(hello, wrk.write_script(hello, self.dir), port, self.ctx.mode.row_warmup)
            for workload in self.workloads:
                point = self.result.points.setdefault(workload.name, Point())
                error = probe.check(port, workload) or self._measure(point, workload, port)
                if measured.proc.poll() is not None:
                    error = (error or "") + (f" ({self.server.name} exited with "
                                             f"{measured.proc.returncode}: {measured.log_tail(5)})")
                if error:
                    point.error = point.error or f"round {round_no}: {error}"
                _log_point(name, workload, point, error)
                if measured.proc.poll() is not None:
                    break
            self.result.memory = [vars(m) for m in measured.worker_memory()]
        except StartError as e:
            self.result.skipped = f"failed to start (round {round_no}): {e}"
            log(f"{name}: {self.result.skipped}")
        except RuntimeError as e:
            # The warm-up run failed: the row is up but does not answer under load.
            for workload in self.workloads:
                point = self.result.points.setdefault(workload.name, Point())
                point.error = point.error or f"round {round_no}: warm-up failed: {e}"
            log(f"{name}: warm-up failed: {e}")
        finally:
            for group in reversed(groups):
                group.stop()
            self.result.nginx_errors = _nginx_errors(self.dir / "logs" / "front-error.log")

    def _prepare_dir(self) -> None:
        for sub in ("", "logs", "front", "backend"):
            (self.dir / sub).mkdir(mode=0o755, exist_ok=True)
            (self.dir / sub).chmod(0o755)
        nginx_conf.write_static_files(self.dir / "www")
        (self.dir / "uwsgi_params").write_text(UWSGI_PARAMS)
        self.sock.unlink(missing_ok=True)

    def _start_server(self, groups: list[Group]) -> Group | None:
        if not self.server.command:
            return None
        if self.server.kind == "ceiling":
            (self.dir / "backend.conf").write_text(
                nginx_conf.backend_config(self.dir, self.sock, self.ctx.workers))
        started = time.monotonic()
        group = Group(self.server.name, [self.fmt(a) for a in self.server.command],
                      self.dir / "logs" / "server.log", cwd=APPS)
        groups.append(group)
        group.wait_for_socket(self.sock)
        log(f"{self.server.name}: socket ready in {time.monotonic() - started:.2f} s")
        return group

    def _start_front(self, groups: list[Group]) -> int:
        port = free_port()
        (self.dir / "front.conf").write_text(
            nginx_conf.front_config(self.server, self.fmt, self.dir, port, self.ctx.dist))
        front = Group("nginx", [str(self.ctx.nginx), "-p", f"{self.dir}/front/", "-e",
                                f"{self.dir}/logs/front-error.log", "-c", f"{self.dir}/front.conf"],
                      self.dir / "logs" / "front.log")
        groups.append(front)
        front.wait_for_http(port, "/hello")
        return port

    def _measure(self, point: Point, workload: Workload, port: int) -> str | None:
        """One measured run (after the mode's per-point warm-up); returns an error or None."""
        script = wrk.write_script(workload, self.dir)
        slow = None
        held = {}
        try:
            if workload.slow_clients:
                slow = SlowClients(self.ctx.venv_bin("python"), port, workload.slow_clients, BENCH,
                                   self.dir / "logs" / "slow-clients.log")
                held["opened"], held["failed"] = slow.wait_ready()
            if self.ctx.mode.point_warmup:
                wrk.run(workload, script, port, self.ctx.mode.point_warmup)
            point.runs.append(vars(wrk.run(workload, script, port, self.ctx.mode.duration)))
            return None
        except RuntimeError as e:
            return str(e)
        finally:
            if slow is not None:
                held["still_open"], held["dropped"] = slow.stop()
                point.slow.append(held)


def log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _log_point(name: str, workload: Workload, point: Point, error: str | None) -> None:
    if error:
        log(f"{name} {workload.name}: ERROR {error}")
        return
    run = point.runs[-1]
    rps = (run["requests"] - run["status_errors"]) / run["seconds"]
    extra = f", slow clients {point.slow[-1]}" if point.slow else ""
    log(f"{name} {workload.name}: {rps:,.0f} req/s, p99 {run['p99_ms']:.2f} ms, "
        f"errors {run['status_errors'] + run['socket_errors']}{extra}")


def _nginx_errors(path: Path, keep: int = 5) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    bad = [line for line in lines
           if any(f"[{lvl}]" in line for lvl in ("error", "crit", "alert", "emerg"))]
    return bad[:keep] + ([f"... {len(bad) - keep} more"] if len(bad) > keep else [])
