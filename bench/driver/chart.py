"""The chart on the results page: one panel per workload, one bar per server,
req/s as a multiple of the upstream ceiling (matplotlib from the bench venv)."""

from __future__ import annotations

import math
from pathlib import Path

from . import servers, stats, workloads
from .stats import CEILING

# Bar colours by row: Ferrocorn stands out, the nginx references are grey.
_COLOURS = {"nginx": "#bbbbbb", "ceiling": "#666666", "ferrocorn": "#e8590c", "ferrocorn-ka": "#f59f00"}
_RIVAL = "#4c6ef5"


def write(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    loads = [w for w in workloads.WORKLOADS if any(w.name in r["points"] for r in rows)]
    if not rows or not loads:
        return
    names = [servers.BY_NAME[r["server"]].title if r["server"] in servers.BY_NAME else r["server"]
             for r in rows]
    ncols = 2
    nrows = math.ceil(len(loads) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 0.42 * len(rows) * nrows + 1.6),
                             squeeze=False, sharey=True)
    for ax, w in zip(axes.flat, loads):
        ceiling = stats.rps_of(data["rows"], CEILING, w.name)
        values = [stats.ratio(stats.rps_of(data["rows"], r["server"], w.name), ceiling) for r in rows]
        # nginx alone can be several times the ceiling; clip the axis to keep the rest readable.
        others = [v for r, v in zip(rows, values) if v is not None and r["server"] != "nginx"]
        limit = max([1.0] + others) * 1.35
        y = range(len(rows))
        shown = [min(v, limit) if v is not None else 0 for v in values]
        colours = [_COLOURS.get(r["server"], _RIVAL) for r in rows]
        ax.barh(list(y), shown, color=colours)
        for i, v in enumerate(values):
            rps = stats.rps_of(data["rows"], rows[i]["server"], w.name)
            label = f"{v:.2f}×  ({rps:,.0f}/s)" if v is not None else \
                "not run" if rows[i]["skipped"] else "failed"
            if v is not None and v > limit:
                label = f"{v:.2f}× →  ({rps:,.0f}/s)"
            ax.text(min(v or 0, limit) + limit * 0.01, i, label, va="center", fontsize=8)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, limit * 1.3)
        ax.set_title(w.title, fontsize=10)
        ax.set_yticks(list(y), names, fontsize=9)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(loads):]:
        ax.axis("off")
    fig.suptitle("req/s as a multiple of the upstream ceiling (nginx proxy_pass → nginx from memory; "
                 f"dashed line = 1.0)\n{data['machine']['nproc']} cores, {data['workers']} workers per "
                 f"server, {data['mode']['name']} mode, {data['started']}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    fig.savefig(path, dpi=80)
    plt.close(fig)
