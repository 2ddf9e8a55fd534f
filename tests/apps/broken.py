"""Apps that break the WSGI contract on purpose; served unwrapped.

The last path segment names the misbehaviour. The query string is a token
the test puts into exception messages to find them in the log.
"""

import os


def ok(environ, start_response, token):
    body = b"ok %d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def raise_before(environ, start_response, token):
    raise RuntimeError("boom before start_response %s" % token)


def raise_after(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first chunk\n" * 100
    raise RuntimeError("boom after first chunk %s" % token)


def raise_after_length(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100000")])
    yield b"x" * 1000
    raise RuntimeError("boom after first chunk with length %s" % token)


def str_body(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["this is str, not bytes"]


def bare_str(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "a bare str"


def bare_bytearray(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return bytearray(b"a bare bytearray")


def non_iterable(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return 42


def bad_status(environ, start_response, token):
    start_response("abc", [("Content-Type", "text/plain")])
    return [b"bad status\n"]


def newline_header(environ, start_response, token):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Injected", "a\nSet-Cookie: evil=1")])
    return [b"newline header\n"]


def no_start_response(environ, start_response, token):
    return [b"start_response was never called\n"]


ROUTES = {
    f.__name__: f
    for f in (
        ok,
        raise_before,
        raise_after,
        raise_after_length,
        str_body,
        bare_str,
        bare_bytearray,
        non_iterable,
        bad_status,
        newline_header,
        no_start_response,
    )
}


def app(environ, start_response):
    name = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    handler = ROUTES.get(name)
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such endpoint\n"]
    return handler(environ, start_response, environ.get("QUERY_STRING", ""))
