"""Ferrocorn's example WSGI app: what `scripts/run.sh` serves.

Plain PEP 3333, no framework, so it shows what the server hands an app:

    /          a page with links
    /environ   the WSGI environ this request produced
    /echo      POST a body, get it back
    /stream    a response streamed from a generator (no Content-Length)
"""

import html
import os
import time


def _page(title, body):
    return (
        "<!doctype html><meta charset=utf-8><title>%s</title>"
        "<h1>%s</h1>%s" % (html.escape(title), html.escape(title), body)
    ).encode("utf-8")


def index(environ, start_response):
    body = _page(
        "Hello from Ferrocorn",
        "<p>This page came from a Python WSGI app (pid %d) behind nginx.</p>"
        "<ul><li><a href='environ?x=1'>environ</a></li>"
        "<li><a href='stream'>stream</a></li></ul>"
        "<form method=post action=echo><input name=msg value=hi>"
        "<button>echo</button></form>" % os.getpid(),
    )
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def show_environ(environ, start_response):
    rows = "".join(
        "<tr><td>%s<td>%s" % (html.escape(k), html.escape(repr(v)))
        for k, v in sorted(environ.items())
    )
    body = _page("WSGI environ", "<table>%s</table>" % rows)
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body]


def echo(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [
            ("Content-Type", environ.get("CONTENT_TYPE") or "application/octet-stream"),
            ("Content-Length", str(len(data))),
        ],
    )
    return [data]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def lines():
        for i in range(5):
            yield ("chunk %d at %.3f\n" % (i, time.time())).encode()
            time.sleep(0.2)

    return lines()


ROUTES = {"/": index, "/environ": show_environ, "/echo": echo, "/stream": stream}


def application(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", "/"))
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    return handler(environ, start_response)
