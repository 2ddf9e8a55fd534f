"""Apps written for uWSGI, which sends a bare `bytes` return value as the body.

PEP 3333 wants an iterable of bytes; Ferrocorn serves a bare bytes object as
its one item (and says so once per worker). Served unwrapped.

`application` is shaped like the app of nginx's own uwsgi tests: a bare
b"SEE-THIS", or the request body's length and bytes when there is one.

`app` answers by the last path segment, every body a bare bytes object:

- /pid: the worker's pid.
- /meet?dir=D&n=N: appends the pid to D/meet and waits (20 s at most) until
  the file has N lines, i.e. until N requests are inside the app at once;
  then the pid. A 503 after the bound.
- /big: 1 MiB (patterns.stream_blocks) with no Content-Length; /big-length
  the same with one.
- /empty: b"".
- /validated: a bare bytes app behind wsgiref.validate, which refuses it.
"""

import os
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

from patterns import stream_blocks

BIG = b"".join(stream_blocks(1024 * 1024))


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if not environ.get("CONTENT_LENGTH"):
        return b"SEE-THIS"
    length = int(environ["CONTENT_LENGTH"])
    return b"cl=%d '%s'" % (length, environ["wsgi.input"].read(length))


def meet(environ):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = os.path.join(q["dir"], "meet")
    with open(path, "a") as f:
        f.write("%d\n" % os.getpid())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(path) as f:
            if len(f.read().splitlines()) >= int(q["n"]):
                return True
        time.sleep(0.01)
    return False


def bare(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return b"bare bytes\n"


VALIDATED = validator(bare)


def app(environ, start_response):
    name = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    if name == "validated":
        return VALIDATED(environ, start_response)
    if name == "pid":
        body = b"%d" % os.getpid()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return body
    if name == "meet":
        if not meet(environ):
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return b"nobody came\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return b"%d" % os.getpid()
    if name == "big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return BIG
    if name == "big-length":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))])
        return BIG
    if name == "empty":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return b""
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return b"no such endpoint\n"
