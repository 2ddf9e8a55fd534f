"""An app for hostile-input tests (tests/test_hostile.py); served unwrapped.

The path names the endpoint. `/seen/...` records every request it sees
(method, path, CONTENT_LENGTH, Transfer-Encoding, body) as one JSON line in
the file named by environ["HOSTILE_SEEN"] (a `ferrocorn_param`), so tests
can prove what reached the app and what never did.
"""

import json
import os


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def seen(environ, start_response):
    body = environ["wsgi.input"].read()
    record = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ.get("QUERY_STRING", ""),
        "content_length": environ.get("CONTENT_LENGTH"),
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
        "body": body.decode("latin-1"),
    }
    log = environ.get("HOSTILE_SEEN")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
    record["environ"] = {k: v for k, v in environ.items() if isinstance(v, str)}
    return _json(start_response, record)


def ok(environ, start_response):
    body = b"ok %d %s\n" % (os.getpid(), environ.get("QUERY_STRING", "").encode())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def crlf_value(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Injected", "a\r\nSet-Cookie: evil=1")])
    return [b"crlf value\n"]


def cr_value(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Injected", "a\rSet-Cookie: evil=1")])
    return [b"cr value\n"]


def crlf_name(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-A\r\nSet-Cookie", "evil=1")])
    return [b"crlf name\n"]


def crlf_status(environ, start_response):
    start_response("200 OK\r\nSet-Cookie: evil=1", [("Content-Type", "text/plain")])
    return [b"crlf status\n"]


def length_short(environ, start_response):
    """Content-Length says 100, the body is 50 bytes."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"s" * 50]


def length_long(environ, start_response):
    """Content-Length says 100, the body is 150 bytes (one chunk)."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"L" * 150]


def length_long_split(environ, start_response):
    """Content-Length says 100, the body is 60 + 90 bytes."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"a" * 60, b"b" * 90]


def raise_after_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first bytes\n" * 100
    raise RuntimeError("hostile: raised after the first body bytes")


def raise_huge_after_body(environ, start_response):
    """An exception whose message is larger than a frame, after the head."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first bytes\n" * 100
    raise RuntimeError("hostile huge message " + "x" * (2 << 20))


def start_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"start_response twice\n"]


ROUTES = {
    f.__name__: f
    for f in (
        ok,
        crlf_value,
        cr_value,
        crlf_name,
        crlf_status,
        length_short,
        length_long,
        length_long_split,
        raise_after_body,
        raise_huge_after_body,
        start_twice,
    )
}


def app(environ, start_response):
    parts = environ["PATH_INFO"].strip("/").split("/")
    if "seen" in parts:
        return seen(environ, start_response)
    handler = ROUTES.get(parts[-1])
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such endpoint\n"]
    return handler(environ, start_response)


# ---- fault endpoints for scripts/chaos.py -----------------------------------------


def hang(environ, start_response):
    import time

    while True:
        time.sleep(1)


def segfault(environ, start_response):
    import ctypes

    ctypes.string_at(0)


_LEAK = []


def leak(environ, start_response):
    _LEAK.append(bytearray(4 << 20))
    return ok(environ, start_response)


def big(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (b"d" * 65536 for _ in range(512))


def upload(environ, start_response):
    stream = environ["wsgi.input"]
    total = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        total += len(chunk)
    body = b"%d\n" % total
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


ROUTES.update({f.__name__: f for f in (hang, segfault, leak, big, upload)})
