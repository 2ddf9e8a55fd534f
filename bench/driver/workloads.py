"""What is measured: each Workload is one request shape sent by wrk to nginx.

Every server row answers the same paths with the same bytes (bench/apps/hello.py;
the nginx-only rows answer from memory, see nginx_conf.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .settings import APPS

sys.path.insert(0, str(APPS))
import hello  # noqa: E402  (bench/apps/hello.py: the app and its header list)

ONE_MIB = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    # Short key used in tables, the chart and --workloads.
    name: str
    # What the page calls it.
    title: str
    method: str
    path: str
    # Concurrent wrk connections.
    connections: int
    # Request body bytes (POST only).
    body_bytes: int = 0
    # Extra request headers sent with every request, as (name, value).
    headers: tuple = field(default_factory=tuple)
    # Connections that trickle POST bodies to /echo while wrk measures (0 = none).
    slow_clients: int = 0
    doc: str = ""


WORKLOADS = (
    Workload("hello", "hello, 64 conns", "GET", "/hello", 64,
             doc="throughput: a 14-byte plain WSGI answer, 64 keep-alive connections"),
    Workload("hello-1c", "hello, 1 conn", "GET", "/hello", 1,
             doc="latency: the same request over one connection, one at a time"),
    Workload("get-1m", "1 MiB response", "GET", "/bytes", 16,
             doc="a 1 MiB response body, 16 connections"),
    Workload("post-1m", "1 MiB POST echo", "POST", "/echo", 16, body_bytes=ONE_MIB,
             doc="a 1 MiB request body read from wsgi.input and sent back, 16 connections"),
    Workload("headers", "14 headers", "GET", "/headers", 64, headers=hello.BENCH_HEADERS,
             doc="14 browser-like request headers, each read from environ by the app, 64 connections"),
    Workload("flask", "Flask JSON", "GET", "/flask/json", 64,
             doc="a Flask view returning jsonify(...), 64 connections"),
    Workload("stream-64k", "1 MiB streamed, 64 KiB chunks", "GET", "/stream-64k", 64,
             doc="a 1 MiB body yielded by a generator as 16 chunks of 64 KiB, no Content-Length "
                 "(the client gets it chunked), 64 connections"),
    Workload("stream-8k", "1 MiB streamed, 8 KiB chunks", "GET", "/stream-8k", 64,
             doc="the same 1 MiB yielded as 128 chunks of 8 KiB, 64 connections"),
    Workload("stream-1k", "1 MiB streamed, 1 KiB chunks", "GET", "/stream-1k", 64,
             doc="the same 1 MiB yielded as 1,024 chunks of 1 KiB, 64 connections"),
    Workload("stream-10m", "10 MiB streamed", "GET", "/stream-10m", 64,
             doc="10 MiB yielded by a generator as 160 chunks of 64 KiB, 64 connections"),
    Workload("write-64k", "1 MiB by write()", "GET", "/write-64k", 64,
             doc="1 MiB sent through the write() callable start_response returns, 16 calls "
                 "of 64 KiB, 64 connections"),
    Workload("slow", "hello + 1000 slow clients", "GET", "/hello", 64, slow_clients=1000,
             doc="hello at 64 connections while 1,000 other connections trickle POST bodies "
                 "to /echo (10 bytes every 0.5 s): nginx buffers them, the workers never see them"),
)

BY_NAME = {w.name: w for w in WORKLOADS}


def request_body(workload: Workload) -> bytes:
    return b"x" * workload.body_bytes


def expected_body(workload: Workload) -> bytes:
    """The exact response body every row must send for this workload."""
    if workload.path == "/hello":
        return hello.HELLO
    if workload.path in ("/bytes", "/write-64k"):
        return hello.ONE_MIB
    if workload.path in hello.STREAMS:
        size, count = hello.STREAMS[workload.path]
        return hello.ONE_MIB[:size] * count
    if workload.path == "/echo":
        return request_body(workload)
    if workload.path == "/headers":
        return b"%d headers\n" % len(hello.BENCH_HEADERS)
    if workload.path == "/flask/json":
        return _flask_json()
    raise ValueError("no expected body for " + workload.path)


def _flask_json() -> bytes:
    """What the Flask view answers, computed by calling it in this process."""
    from werkzeug.test import EnvironBuilder

    out = []
    environ = EnvironBuilder("/flask/json").get_environ()
    body = b"".join(hello.application(environ, lambda status, headers: out.append(status)))
    assert out == ["200 OK"], out
    return body
