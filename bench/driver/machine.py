"""Machine and version facts printed on the results page."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from .settings import ROOT, Context, nproc


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0] if text else f"unavailable (exit {out.returncode})"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def facts(ctx: Context) -> dict:
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "worker",
                            "nginx-module", "protocol"], capture_output=True, text=True).stdout.strip()
    return {
        "machine": {
            "nproc": nproc(),
            "cpu": cpu_model(),
            "kernel": platform.release(),
            "memory": f"{mem_kib / 1024 / 1024:.0f} GiB",
            "os": _os_name(),
        },
        "versions": {
            "nginx": _first_line([str(ctx.nginx), "-v"]),
            "ferrocorn": _first_line([str(ctx.dist / "bin" / "ferrocorn"), "--version"]),
            "ferrocorn commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "uWSGI": _first_line([ctx.venv_bin("uwsgi"), "--version"]),
            "Gunicorn": _first_line([ctx.venv_bin("gunicorn"), "--version"]),
            "Granian": _first_line([ctx.venv_bin("granian"), "--version"]),
            "Flask": metadata.version("flask"),
            "Python": _first_line([ctx.venv_bin("python"), "--version"]),
            "wrk": _first_line(["wrk", "-v"]),
        },
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()
