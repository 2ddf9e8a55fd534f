"""The main test app: one endpoint per WSGI feature the suite checks.

`app` is `raw_app` wrapped in wsgiref.validate.validator, with every
WSGIWarning turned into an exception, so any PEP 3333 slip by the server
becomes a 500 (and a "WSGIWarning" traceback in the log) that a test sees.
`raw_app` is served unwrapped too, for what the validator cannot pass
through (wsgi.input.read() without a size, the server's own file_wrapper
object, iterating the server's own wsgi.input).

Routing: the first path segment of PATH_INFO names the endpoint; when it is
not an endpoint (a location prefix such as /raw/ or /params/), the second
one is tried. The remaining segments are the endpoint's arguments.
"""

import json
import os
import sys
import time
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

from patterns import stream_blocks

warnings.simplefilter("error", WSGIWarning)

TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def query(environ):
    """QUERY_STRING as a dict of first values."""
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def respond(start_response, status, body, headers=TEXT):
    start_response(status, list(headers) + [("Content-Length", str(len(body)))])
    return [body]


def json_response(start_response, data):
    body = json.dumps(data, sort_keys=True).encode("utf-8")
    return respond(start_response, "200 OK", body, [("Content-Type", "application/json")])


def latin1(pieces):
    return [p.decode("latin-1") for p in pieces]


def hello(environ, start_response, args):
    return respond(start_response, "200 OK", b"Hello, world!\n", TEXT + [("X-Hello", "yes")])


def describe(value):
    """A JSON-friendly description of one environ value: its type and value."""
    described = {"type": type(value).__name__}
    if isinstance(value, (str, bool, int)) or value is None:
        described["value"] = value
    else:
        described["value"] = repr(value)
    return described


def env(environ, start_response, args):
    """Every environ key with its type and value (repr for non-scalars)."""
    data = {"environ": {key: describe(value) for key, value in environ.items()}}
    data["key_types"] = sorted({type(k).__name__ for k in environ})
    data["input_methods"] = [
        m for m in ("read", "readline", "readlines", "__iter__") if hasattr(environ["wsgi.input"], m)
    ]
    data["errors_methods"] = [m for m in ("write", "writelines", "flush") if hasattr(environ["wsgi.errors"], m)]
    data["file_wrapper_callable"] = callable(environ.get("wsgi.file_wrapper"))
    return json_response(start_response, data)


def headers(environ, start_response, args):
    """Every HTTP_* key of the environ."""
    return json_response(start_response, {k: v for k, v in environ.items() if k.startswith("HTTP_")})


def read_body(environ):
    """The whole request body, read with read(size) until EOF."""
    stream = environ["wsgi.input"]
    parts = []
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def echo(environ, start_response, args):
    """The request body, byte for byte, plus what the server said about its length."""
    body = read_body(environ)
    seen = environ.get("CONTENT_LENGTH") or "absent"
    return respond(
        start_response,
        "200 OK",
        body,
        [("Content-Type", "application/octet-stream"), ("X-Content-Length-Seen", seen)],
    )


def read_once(environ, start_response, args):
    """The body from one wsgi.input.read: read() (args "all"), read(CONTENT_LENGTH)
    ("length") or read(CONTENT_LENGTH + 1000) ("more"); then one more read, whose
    length (0 at the end of the body) goes in X-Next-Read."""
    stream = environ["wsgi.input"]
    how = args[0] if args else "all"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    size = {"all": None, "length": length, "more": length + 1000}[how]
    body = stream.read() if size is None else stream.read(size)
    after = stream.read(10)
    return respond(
        start_response,
        "200 OK",
        body,
        [("Content-Type", "application/octet-stream"), ("X-Next-Read", str(len(after)))],
    )


def input_method(environ, start_response, args):
    """Reads the body with one wsgi.input method; returns the pieces as JSON."""
    stream = environ["wsgi.input"]
    method = args[0] if args else ""
    n = int(query(environ).get("n", "0"))
    pieces = []
    if method == "read_all":
        pieces.append(stream.read())
        pieces.append(stream.read())  # at EOF: must be b"" and must not block
    elif method == "read_n":
        while True:
            piece = stream.read(n)
            pieces.append(piece)
            if not piece:
                break
    elif method == "readline":
        while True:
            line = stream.readline()
            pieces.append(line)
            if not line:
                break
    elif method == "readline_n":
        while True:
            line = stream.readline(n)
            pieces.append(line)
            if not line:
                break
    elif method == "readlines":
        pieces = stream.readlines()
    elif method == "iter":
        pieces = [line for line in stream]
    else:
        return respond(start_response, "404 Not Found", b"unknown input method\n")
    return json_response(start_response, {"method": method, "pieces": latin1(pieces)})


def stream(environ, start_response, args):
    """A large body from a generator; Content-Length only when ?cl=1."""
    q = query(environ)
    total = int(q.get("bytes", str(20 * 1024 * 1024)))
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(total)))
    start_response("200 OK", headers)
    return stream_blocks(total)


def write(environ, start_response, args):
    """Body through the legacy write() callable, then the returned iterable."""
    write_body = start_response("200 OK", TEXT)
    write_body(b"part one, ")
    write_body(b"part two, ")
    big = int(query(environ).get("big", "0"))
    if big:
        write_body(b"w" * big)
    return [b"returned tail\n"]


def file(environ, start_response, args):
    """A real file through wsgi.file_wrapper."""
    path = query(environ)["path"]
    handle = open(path, "rb")
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(os.path.getsize(path)))],
    )
    return environ["wsgi.file_wrapper"](handle, 32768)


def status(environ, start_response, args):
    """/status/CODE: an empty response with that status (no Content-Type for 204/304)."""
    code = args[0]
    reasons = {"204": "No Content", "304": "Not Modified"}
    start_response("%s %s" % (code, reasons.get(code, "Whatever")), [("X-Status-Test", code)])
    return []


def nolength(environ, start_response, args):
    """Three chunks, no Content-Length: nginx must frame it for the client."""
    start_response("200 OK", TEXT)
    return [b"first;", b"second;", b"third\n"]


def cookies(environ, start_response, args):
    start_response(
        "200 OK",
        TEXT + [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"), ("Content-Length", "8")],
    )
    return [b"cookies\n"]


def slow(environ, start_response, args):
    q = query(environ)
    if "token" in q:
        environ["wsgi.errors"].write("slow request started %s\n" % q["token"])
        environ["wsgi.errors"].flush()
    time.sleep(float(q.get("seconds", "3")))
    return respond(start_response, "200 OK", b"slept\n")


def pid(environ, start_response, args):
    return respond(start_response, "200 OK", str(os.getpid()).encode())


class ClosingBody:
    """An iterable whose close() reports itself on wsgi.errors."""

    def __init__(self, errors, token):
        self.errors = errors
        self.token = token

    def __iter__(self):
        yield b"body before close\n"

    def close(self):
        self.errors.write("iterable closed %s\n" % self.token)
        self.errors.flush()


def close_marker(environ, start_response, args):
    start_response("200 OK", TEXT)
    return ClosingBody(environ["wsgi.errors"], query(environ)["token"])


def exc_info(environ, start_response, args):
    """The PEP 3333 error-page pattern: start_response again with exc_info before any body."""
    start_response("200 OK", TEXT)
    try:
        raise ValueError("handled by the app")
    except ValueError:
        start_response("500 Internal Server Error", TEXT + [("X-Error-Page", "app")], sys.exc_info())
    return [b"the app's own error page\n"]


def reason(environ, start_response, args):
    return respond(start_response, "299 Custom Reason", b"custom reason\n")


def gate(environ, start_response, args):
    """Yields a first chunk, then waits (bounded) for the test to create ?path."""
    path = query(environ)["path"]
    start_response("200 OK", TEXT)
    yield b"first\n"
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            yield b"gave up waiting\n"
            return
        time.sleep(0.02)
    yield b"released\n"


def many_chunks(environ, start_response, args):
    q = query(environ)
    count, size = int(q["count"]), int(q["size"])
    start_response("200 OK", TEXT)
    return (bytes([65 + i % 26]) * size for i in range(count))


def python(environ, start_response, args):
    """Which Python runs the app: version, prefixes, executable, and where
    the interpreter loads the standard library from."""
    return json_response(
        start_response,
        {
            "version": sys.version,
            "version_info": list(sys.version_info[:3]),
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "executable": sys.executable,
            "stdlib": os.path.dirname(os.__file__),
            "pid": os.getpid(),
        },
    )


def latin1_header(environ, start_response, args):
    return respond(start_response, "200 OK", b"latin-1 header\n", TEXT + [("X-Latin", "caf\u00e9 \u00ff")])


ROUTES = {
    "hello": hello,
    "env": env,
    "headers": headers,
    "echo": echo,
    "input": input_method,
    "read_once": read_once,
    "stream": stream,
    "write": write,
    "file": file,
    "status": status,
    "nolength": nolength,
    "cookies": cookies,
    "slow": slow,
    "pid": pid,
    "close_marker": close_marker,
    "exc_info": exc_info,
    "reason": reason,
    "gate": gate,
    "many_chunks": many_chunks,
    "latin1_header": latin1_header,
    "python": python,
}


def raw_app(environ, start_response):
    segments = [s for s in environ.get("PATH_INFO", "").split("/") if s]
    for index in range(min(2, len(segments))):
        handler = ROUTES.get(segments[index])
        if handler is not None:
            return handler(environ, start_response, segments[index + 1 :])
    return respond(start_response, "404 Not Found", b"no such endpoint\n")


app = validator(raw_app)
