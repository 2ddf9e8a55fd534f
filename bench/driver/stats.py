"""Medians and ratios over the measured runs, shared by the page and the chart."""

from __future__ import annotations

import math
import statistics

CEILING = "ceiling"
RIVAL = "uwsgi"


def good_rps(run: dict) -> float:
    return (run["requests"] - run["status_errors"]) / run["seconds"]


def summary(point: dict | None) -> dict | None:
    """Median req/s, p50, p99 and summed errors of a point's runs; None when it has none."""
    if not point or point.get("error") or not point.get("runs"):
        return None
    runs = point["runs"]
    return {
        "rps": statistics.median(good_rps(r) for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "status_errors": sum(r["status_errors"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "runs": len(runs),
        "spread": (min(good_rps(r) for r in runs), max(good_rps(r) for r in runs)),
    }


def rps_of(rows: list[dict], server: str, workload: str) -> float | None:
    for row in rows:
        if row["server"] == server:
            s = summary(row["points"].get(workload))
            return s["rps"] if s else None
    return None


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def geomean(values: list) -> float | None:
    """Geometric mean of the ratios that exist; None when none does."""
    present = [v for v in values if v]
    if not present:
        return None
    return math.exp(sum(math.log(v) for v in present) / len(present))
