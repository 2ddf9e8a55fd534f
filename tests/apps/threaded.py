"""An app for --threads: endpoints that show which requests run at once.

- /meet?n=N&token=T[&wait=W]: waits (W seconds at most, 20 by default)
  until N requests of token T are inside the app at the same time, then
  answers; with fewer threads than N it can never happen, and the request
  fails with a 503 after the bound.
- /overlap?seconds=S&token=T: sleeps S seconds and records how many
  requests of token T were inside the app at once; /overlap/report?token=T
  answers that peak.
- /env: wsgi.multithread, wsgi.multiprocess, the pid and thread name.
- /echo: the request body, read in pieces of a random-ish size.
- /read_once?how=all|length: the request body from one wsgi.input.read()
  (no size, or CONTENT_LENGTH); a 500 if a further read finds more.
- /stream?seed=S&count=C: C chunks derived from S, yielded one by one.
- /local: a threading.local counter: how many requests this thread served.
- /slow?seconds=S: sleeps (the GIL released), then answers.
- /pid: the pid.
"""

import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

LOCK = threading.Lock()
CONDITION = threading.Condition(LOCK)
INSIDE = {}  # token -> requests inside the app now
PEAK = {}  # token -> most inside at once
LOCAL = threading.local()


def query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def respond(start_response, body, status="200 OK", ctype="text/plain"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def enter(token):
    with CONDITION:
        INSIDE[token] = INSIDE.get(token, 0) + 1
        PEAK[token] = max(PEAK.get(token, 0), INSIDE[token])
        CONDITION.notify_all()


def leave(token):
    with CONDITION:
        INSIDE[token] -= 1


def meet(environ, start_response):
    q = query(environ)
    token, n = q["token"], int(q["n"])
    enter(token)
    try:
        with CONDITION:
            met = CONDITION.wait_for(lambda: PEAK[token] >= n, timeout=float(q.get("wait", "20")))
    finally:
        leave(token)
    if not met:
        return respond(start_response, b"only %d at once\n" % PEAK[token], "503 Service Unavailable")
    return respond(start_response, b"met\n")


def overlap(environ, start_response):
    q = query(environ)
    token = q["token"]
    enter(token)
    try:
        time.sleep(float(q.get("seconds", "0.5")))
    finally:
        leave(token)
    return respond(start_response, b"slept\n")


def overlap_report(environ, start_response):
    with LOCK:
        peak = PEAK.get(query(environ)["token"], 0)
    return respond(start_response, str(peak).encode())


def env(environ, start_response):
    data = {
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
    }
    return respond(start_response, json.dumps(data).encode(), ctype="application/json")


def echo(environ, start_response):
    stream = environ["wsgi.input"]
    pieces = []
    size = 1
    while True:
        piece = stream.read(size)
        if not piece:
            break
        pieces.append(piece)
        size = size * 7 % 65521 + 1
    return respond(start_response, b"".join(pieces), ctype="application/octet-stream")


def read_once(environ, start_response):
    stream = environ["wsgi.input"]
    if query(environ).get("how") == "length":
        body = stream.read(int(environ["CONTENT_LENGTH"]))
    else:
        body = stream.read()
    if stream.read(10):
        return respond(start_response, b"more after the body\n", status="500 Internal Server Error")
    return respond(start_response, body, ctype="application/octet-stream")


def stream_chunks(seed, count):
    for i in range(count):
        yield hashlib.sha256(b"%s-%d" % (seed.encode(), i)).hexdigest().encode() * (1 + i % 50)


def stream(environ, start_response):
    q = query(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return stream_chunks(q["seed"], int(q["count"]))


def local(environ, start_response):
    LOCAL.served = getattr(LOCAL, "served", 0) + 1
    return respond(start_response, str(LOCAL.served).encode())


def slow(environ, start_response):
    q = query(environ)
    if "token" in q:
        environ["wsgi.errors"].write("slow request started %s\n" % q["token"])
        environ["wsgi.errors"].flush()
    time.sleep(float(q.get("seconds", "3")))
    return respond(start_response, b"slept\n")


def pid(environ, start_response):
    return respond(start_response, str(os.getpid()).encode())


ROUTES = {
    "/meet": meet,
    "/overlap": overlap,
    "/overlap/report": overlap_report,
    "/env": env,
    "/echo": echo,
    "/read_once": read_once,
    "/stream": stream,
    "/local": local,
    "/slow": slow,
    "/pid": pid,
}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    for prefix in ("/dedicated-pool", "/dedicated"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return ROUTES[path](environ, start_response)
