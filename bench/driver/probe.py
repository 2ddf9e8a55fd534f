"""Before any load, one real request per workload through the front nginx, its
answer checked byte for byte: a row that answers wrong is not measured."""

from __future__ import annotations

import http.client

from . import workloads
from .workloads import Workload


def check(port: int, workload: Workload) -> str | None:
    """None when the answer is right, else what was wrong."""
    body = workloads.request_body(workload) if workload.method == "POST" else None
    headers = dict(workload.headers)
    if body is not None:
        headers["Content-Type"] = "application/octet-stream"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(workload.method, workload.path, body=body, headers=headers)
        resp = conn.getresponse()
        got = resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        return f"{workload.method} {workload.path}: {e!r}"
    want = workloads.expected_body(workload)
    if resp.status != 200:
        return f"{workload.method} {workload.path}: status {resp.status}: {got[:200]!r}"
    if got != want:
        return (f"{workload.method} {workload.path}: {len(got)} bytes {got[:80]!r}, "
                f"want {len(want)} bytes {want[:80]!r}")
    return None
