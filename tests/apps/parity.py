"""App for the nginx-parity tests (caching, X-Accel-*, streaming, balancing).

Routing: the last path segment names the endpoint, so any location prefix
works (/cache/hits, /plain/whoami...). Files the app shares with the tests
(hit counters, markers) live in the directory given by the `PARITY_DIR`
param (ferrocorn_param), so every worker process of every supervisor sees
the same counts.
"""

import json
import os
import time
from urllib.parse import parse_qs

TEXT = [("Content-Type", "text/plain")]


def query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def record_hit(environ, name):
    """One byte appended per call: the file size is the hit count."""
    with open(os.path.join(environ["PARITY_DIR"], "hits-" + name), "ab") as f:
        f.write(b".")


def wait_for_file(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def respond(start_response, status, body, headers=TEXT):
    start_response(status, list(headers) + [("Content-Length", str(len(body)))])
    return [body]


def counted(environ, start_response, q):
    """A cacheable page; every call that reaches Python is counted."""
    record_hit(environ, q.get("name", "counted"))
    extra = [(k[2:].replace("_", "-"), v) for k, v in q.items() if k.startswith("h_")]
    return respond(start_response, "200 OK", b"counted " + q.get("name", "").encode(), TEXT + extra)


def accel_redirect(environ, start_response, q):
    """Delegates the download to nginx (a protected internal location)."""
    start_response("200 OK", TEXT + [("X-Accel-Redirect", "/protected/" + q["file"])])
    return [b"app body, replaced by nginx"]


def accel_limit(environ, start_response, q):
    body = b"x" * int(q["size"])
    return respond(start_response, "200 OK", body, TEXT + [("X-Accel-Limit-Rate", q["rate"])])


def status(environ, start_response, q):
    code = q.get("code", "404")
    return respond(start_response, "%s App Says" % code, b"page from the app\n")


def response_headers(environ, start_response, q):
    """Headers the hide/pass tests look for."""
    headers = TEXT + [("X-Secret", "s3cr3t"), ("X-Public", "yes"), ("X-Accel-Charset", "utf-8")]
    return respond(start_response, "200 OK", b"headers", headers)


def events(environ, start_response, q):
    """Server-sent events: the second event waits until the client has the first."""
    marker = os.path.join(environ["PARITY_DIR"], "got-first-" + q["id"])
    headers = [("Content-Type", "text/event-stream")]
    if q.get("accel_buffering"):
        headers.append(("X-Accel-Buffering", q["accel_buffering"]))
    start_response("200 OK", headers)

    def stream():
        yield b"data: first\n\n"
        if wait_for_file(marker):
            yield b"data: second\n\n"
        else:
            yield b"data: timeout (the first event never reached the client)\n\n"

    return stream()


def upload(environ, start_response, q):
    """Reads the body line by line (read(n) would wait for n bytes); after
    the first line it drops a marker the client waits for before it sends
    the rest."""
    marker = os.path.join(environ["PARITY_DIR"], "first-bytes-" + q["id"])
    stream = environ["wsgi.input"]
    total = 0
    pieces = 0
    digest = 0
    while True:
        piece = stream.readline(65536)
        if not piece:
            break
        if pieces == 0:
            open(marker, "wb").close()
        pieces += 1
        total += len(piece)
        digest = (digest * 31 + sum(piece)) % 1000000007
    data = {
        "total": total,
        "content_length": environ.get("CONTENT_LENGTH"),
        "digest": digest,
    }
    body = json.dumps(data).encode()
    return respond(start_response, "200 OK", body, [("Content-Type", "application/json")])


def whoami(environ, start_response, q):
    """Which supervisor (parent pid) and worker served, and the sockets the
    worker holds open: the nginx connection changes unless it is reused."""
    sockets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets.append(target)
    data = {
        "supervisor": os.getppid(),
        "worker": os.getpid(),
        "sockets": sorted(sockets),
        "server": environ.get("PARITY_NAME", ""),
    }
    return respond(start_response, "200 OK", json.dumps(data).encode(), [("Content-Type", "application/json")])


def environ_dump(environ, start_response, q):
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["body"] = environ["wsgi.input"].read().decode("latin-1")
    return respond(start_response, "200 OK", json.dumps(data).encode(), [("Content-Type", "application/json")])


def slow(environ, start_response, q):
    """A response of many small pieces spread over time (failover test)."""
    start_response("200 OK", TEXT)

    def stream():
        for i in range(int(q.get("n", "5"))):
            yield b"piece %d\n" % i
            time.sleep(float(q.get("delay", "0.05")))

    return stream()


ENDPOINTS = {
    "counted": counted,
    "accel-redirect": accel_redirect,
    "accel-limit": accel_limit,
    "status": status,
    "response-headers": response_headers,
    "events": events,
    "upload": upload,
    "whoami": whoami,
    "environ": environ_dump,
    "slow": slow,
}


def app(environ, start_response):
    name = environ.get("PATH_INFO", "/").rstrip("/").rsplit("/", 1)[-1]
    handler = ENDPOINTS.get(name)
    if handler is None:
        return respond(start_response, "404 Not Found", b"no endpoint %s\n" % name.encode())
    return handler(environ, start_response, query(environ))
