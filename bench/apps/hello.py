"""The WSGI app every server in the benchmark serves (`hello:application`).

Plain PEP 3333, one route per workload, so the figures measure the server and
the hop from nginx, not a framework:

    GET  /hello        b"Hello, World!\\n"
    GET  /bytes        1 MiB of b"x" (one bytes object, built once)
    POST /echo         the request body, read from wsgi.input, sent back
    GET  /headers      reads the 14 request headers in BENCH_HEADERS
    GET  /stream-64k   1 MiB yielded by a generator in 16 chunks of 64 KiB
    GET  /stream-8k    the same 1 MiB in 128 chunks of 8 KiB
    GET  /stream-1k    the same 1 MiB in 1,024 chunks of 1 KiB
    GET  /stream-10m   10 MiB yielded in 160 chunks of 64 KiB
    GET  /write-64k    1 MiB through start_response's write(), 16 calls of 64 KiB
    GET  /flask/...    handed to the Flask app in flask_app.py

The nginx-only rows of the benchmark answer the same paths with the same
bytes (see bench/driver/nginx_conf.py), so every row sends the same response.
"""

from flask_app import app as flask_app

HELLO = b"Hello, World!\n"
ONE_MIB = b"x" * (1024 * 1024)
TEN_MIB = b"x" * (10 * 1024 * 1024)

# The streamed routes: (chunk size, chunk count). No Content-Length, as
# Django's StreamingHttpResponse and Flask's stream_with_context send them:
# the client gets the body chunked.
STREAMS = {
    "/stream-64k": (64 * 1024, 16),
    "/stream-8k": (8 * 1024, 128),
    "/stream-1k": (1024, 1024),
    "/stream-10m": (64 * 1024, 160),
}

# The extra headers the /headers workload sends (what a browser sends, give or
# take), as (name, value). The driver imports this list to build its request.
BENCH_HEADERS = (
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.7,fr;q=0.3"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Referer", "https://shop.example.com/catalogue/page/2/?sort=price"),
    ("Cookie", "sessionid=4f2a9c1e8b7d6a5f3e2d1c0b9a8f7e6d; csrftoken=Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Ji0Hg"),
    ("Cache-Control", "max-age=0"),
    ("Pragma", "no-cache"),
    ("DNT", "1"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("X-Request-Id", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
)
_HEADER_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name, _ in BENCH_HEADERS)


def _reply(start_response, body, content_type=b"text/plain"):
    start_response(
        "200 OK",
        [("Content-Type", content_type.decode()), ("Content-Length", str(len(body)))],
    )
    return [body]


def hello(environ, start_response):
    return _reply(start_response, HELLO)


def one_mib(environ, start_response):
    return _reply(start_response, ONE_MIB)


def echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    return _reply(start_response, body, b"application/octet-stream")


def headers(environ, start_response):
    seen = sum(1 for key in _HEADER_KEYS if environ.get(key))
    return _reply(start_response, b"%d headers\n" % seen)


def _streamed(size, count):
    chunk = ONE_MIB[:size]  # built once, like a file read into a reused buffer

    def chunks():
        for _ in range(count):
            yield chunk

    def route(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return chunks()

    return route


def write_64k(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    chunk = ONE_MIB[:64 * 1024]
    for _ in range(16):
        write(chunk)
    return []


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]


ROUTES = {"/hello": hello, "/bytes": one_mib, "/echo": echo, "/headers": headers,
          "/write-64k": write_64k}
ROUTES.update({path: _streamed(size, count) for path, (size, count) in STREAMS.items()})


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/flask/"):
        return flask_app(environ, start_response)
    return ROUTES.get(path, not_found)(environ, start_response)
