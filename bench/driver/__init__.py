"""Ferrocorn's benchmark driver, run by scripts/bench.sh as `bench/run.py`.

# Layout

    settings.py      the two modes (quick, full) and the paths, as data
    workloads.py     what is measured: one Workload per request shape
    servers.py       who is measured: one Server row per configuration behind nginx
    nginx_conf.py    the nginx configs each row runs (front nginx, in-memory backend)
    processes.py     process groups: start, poll readiness, stop, RSS from /proc
    probe.py         one real request per workload, checked byte for byte before any load
    wrk.py           the load generator: Lua script per workload, one parsed run
    slow_clients.py  1,000 connections trickling request bodies (asyncio, own process)
    row.py           one row, measured in rounds: servers up, warm-up, probe, measure, RSS, stop
    stats.py         medians and ratios over the runs (shared by the page and the chart)
    machine.py       machine and version facts for the page
    report.py        bench/results.md from the measured data
    chart.py         the chart embedded in results.md (matplotlib, PNG)
"""
