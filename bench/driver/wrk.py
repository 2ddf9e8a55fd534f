"""The load generator: wrk 4.1 with a Lua script per workload whose done() hook
prints one machine-readable line (requests, errors, latency percentiles)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .workloads import Workload

_MARK = "FERROBENCH "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    MARK, summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


@dataclass
class Run:
    """One measured wrk run."""

    requests: int
    seconds: float
    # Non-2xx/3xx answers.
    status_errors: int
    # connect + read + write + timeout errors.
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def good_rps(self) -> float:
        """Requests per second that got a 2xx/3xx answer."""
        return (self.requests - self.status_errors) / self.seconds

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_script(workload: Workload, directory: Path) -> Path:
    """The workload's Lua script: method, body and headers, then the done() reporter."""
    lines = [f"MARK = {_lua_string(_MARK)}", f"wrk.method = {_lua_string(workload.method)}"]
    if workload.body_bytes:
        lines.append(f'wrk.body = string.rep("x", {workload.body_bytes})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    for name, value in workload.headers:
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    path = directory / f"{workload.name}.lua"
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def command(workload: Workload, script: Path, port: int, seconds: int) -> list[str]:
    # One thread: wrk's own CPU share stays small on a 2-core box; one epoll thread
    # drives 64 connections faster than any row here answers.
    return ["wrk", "-t", "1", "-c", str(workload.connections), "-d", f"{seconds}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{workload.path}"]


def run(workload: Workload, script: Path, port: int, seconds: int) -> Run:
    argv = command(workload, script, port, seconds)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"wrk did not finish within {seconds + 60} s") from None
    for line in out.stdout.splitlines():
        if line.startswith(_MARK):
            d = json.loads(line[len(_MARK):])
            return Run(
                requests=d["requests"],
                seconds=d["duration_us"] / 1e6,
                status_errors=d["status"],
                socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
                p50_ms=d["p50_us"] / 1000, p90_ms=d["p90_us"] / 1000, p99_ms=d["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
