"""Paths and the two benchmark modes, as data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
APPS = BENCH / "apps"
DIST = ROOT / "dist"
BENCH_VENV = ROOT / ".venv-bench"


@dataclass(frozen=True)
class Mode:
    """How long and how often each (row, workload) point is measured."""

    name: str
    # Rounds: every row is started, measured once per workload and stopped, once
    # per round; rows take turns, so background load spreads over all of them.
    # The page reports the median over the rounds.
    rounds: int
    # Seconds of one measured wrk run.
    duration: int
    # Seconds of an unreported hello run right after a row starts (connections, caches).
    row_warmup: int
    # Seconds of an unreported run before each measured one (0 = none).
    point_warmup: int
    # Whether the Ferrocorn worker-count curve (1, 2, 4 workers, hello) is run.
    worker_curve: bool
    doc: str


QUICK = Mode("quick", rounds=3, duration=1, row_warmup=1, point_warmup=0, worker_curve=False,
             doc="3 rounds, 1 s per run, no per-point warm-up (about 5 minutes)")
FULL = Mode("full", rounds=5, duration=5, row_warmup=2, point_warmup=1, worker_curve=True,
            doc="5 rounds, 5 s per run after a 1 s warm-up, plus the Ferrocorn worker-count "
                "curve (about 40 minutes)")


@dataclass(frozen=True)
class Context:
    """Everything a row needs to start its processes."""

    # The nginx binary every row runs (dist/sbin/nginx: the build the module targets).
    nginx: Path
    # The install tree holding bin/ferrocorn and modules/ngx_http_ferrocorn_module.so.
    dist: Path
    # The bench venv: gunicorn, uwsgi, granian and flask live in it.
    venv: Path
    # Private scratch dir (mode 0755) for sockets, configs, logs and nginx temp files.
    run_dir: Path
    # Worker processes for every application server (nginx in front always has 1).
    workers: int
    mode: Mode

    def venv_bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def raise_open_files_limit() -> int:
    """1,000 slow clients need file descriptors in nginx and the client: lift the soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nproc() -> int:
    return len(os.sched_getaffinity(0))
