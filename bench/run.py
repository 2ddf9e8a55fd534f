#!/usr/bin/env python3
"""Ferrocorn's benchmark: every server row behind the same nginx, every workload,
medians of several wrk runs, written to bench/results.md with a chart.

Run through scripts/bench.sh, which installs wrk and the bench venv first:

    scripts/bench.sh                  quick mode (about 5 minutes)
    scripts/bench.sh --full           full mode (longer runs, Ferrocorn worker-count curve)
    scripts/bench.sh --only ferrocorn,uwsgi --workloads hello --duration 2 --rounds 1 --out /tmp/r.md
    scripts/bench.sh --report-only    rewrite results.md and the chart from results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from driver import chart, machine, report, servers, settings, workloads
from driver.processes import stop_all
from driver.row import Row


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="full mode: " + settings.FULL.doc)
    p.add_argument("--only", help="comma-separated rows (default: all): "
                   + ", ".join(s.name for s in servers.SERVERS))
    p.add_argument("--workloads", help="comma-separated workloads (default: all): "
                   + ", ".join(w.name for w in workloads.WORKLOADS))
    p.add_argument("--workers", type=int, default=2, help="workers per application server (2)")
    p.add_argument("--duration", type=int, help="seconds per measured run (mode's default)")
    p.add_argument("--rounds", type=int, help="rounds, i.e. measured runs per point (mode's default)")
    p.add_argument("--curve", action="store_true", help="also run the Ferrocorn worker-count curve")
    p.add_argument("--nginx", type=Path, default=settings.DIST / "sbin" / "nginx")
    p.add_argument("--dist", type=Path, default=settings.DIST)
    p.add_argument("--out", type=Path, default=settings.BENCH / "results.md",
                   help="results page; results.json and results.png go beside it")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (configs, logs)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the page and chart from the results.json beside --out")
    return p.parse_args()


def _pick(names: str | None, table: dict) -> list:
    if not names:
        return list(table.values())
    unknown = [n for n in names.split(",") if n not in table]
    if unknown:
        sys.exit(f"unknown name(s): {', '.join(unknown)}; known: {', '.join(table)}")
    return [table[n] for n in names.split(",")]


def _stop_on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    args = parse_args()
    json_path = args.out.with_suffix(".json")
    png_path = args.out.with_suffix(".png")
    if args.report_only:
        data = json.loads(json_path.read_text())
        chart.write(data, png_path)
        report.write(data, args.out, png_path.name)
        return 0

    mode = settings.FULL if args.full else settings.QUICK
    mode = dataclasses.replace(mode, duration=args.duration or mode.duration,
                               rounds=args.rounds or mode.rounds,
                               worker_curve=mode.worker_curve or args.curve)
    rows = _pick(args.only, servers.BY_NAME)
    loads = _pick(args.workloads, workloads.BY_NAME)
    if not args.nginx.exists():
        sys.exit(f"{args.nginx} missing: run scripts/build.sh (scripts/bench.sh does it for you)")
    nofile = settings.raise_open_files_limit()

    run_dir = Path(tempfile.mkdtemp(prefix="ferrobench-"))
    # nginx's workers run as nobody when started as root: they must reach the sockets.
    run_dir.chmod(0o755)
    ctx = settings.Context(nginx=args.nginx.resolve(), dist=args.dist.resolve(),
                           venv=settings.BENCH_VENV, run_dir=run_dir, workers=args.workers, mode=mode)
    main_rows = [Row(server, ctx, loads) for server in rows]
    curve_rows = []
    if mode.worker_curve:
        curve_rows = [Row(servers.BY_NAME["ferrocorn"], dataclasses.replace(ctx, workers=n),
                          [workloads.BY_NAME["hello"]], label="curve-") for n in (1, 2, 4)]
    signal.signal(signal.SIGTERM, _stop_on_signal)
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"==> bench ({mode.name}: {mode.rounds} rounds, {mode.duration} s per run), "
          f"scratch dir {run_dir}", file=sys.stderr, flush=True)
    try:
        for round_no in range(1, mode.rounds + 1):
            print(f"==> round {round_no} of {mode.rounds}", file=sys.stderr, flush=True)
            for row in main_rows + curve_rows:
                row.run_round(round_no)
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)

    data = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()),
        "mode": dataclasses.asdict(mode),
        "workers": args.workers,
        "open_files_limit": nofile,
        "argv": ["scripts/bench.sh"] + sys.argv[1:],
        **machine.facts(ctx),
        "run_dir": str(run_dir),
        "nginx": str(ctx.nginx),
        "root": str(settings.ROOT),
        "rows": [dataclasses.asdict(r.result) for r in main_rows],
        "worker_curve": [dataclasses.asdict(r.result) for r in curve_rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    chart.write(data, png_path)
    report.write(data, args.out, png_path.name)
    print(f"==> wrote {args.out}, {png_path.name}, {json_path.name} in {data['elapsed_s']} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print(f"==> interrupted ({e or 'Ctrl-C'}): every server stopped, nothing written", file=sys.stderr)
        sys.exit(130)
