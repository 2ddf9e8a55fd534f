"""An app for the faults-under-load scenarios of scripts/chaos.py.

Every endpoint of apps/hostile.py, plus:

- `/slow?MS`: answers after MS milliseconds (requests in flight when a
  supervisor is stopped).
- `/count` (POST): the non-idempotent request. Appends one line
  `REQUEST_ID PID` to the file named by environ["FAULTS_COUNTER"] (a
  `ferrocorn_param`) with O_APPEND, so several supervisors can share the
  file and the driver can prove no request id was ever handled twice.
"""

import os
import time

import hostile


def slow(environ, start_response):
    ms = int(environ.get("QUERY_STRING") or "100")
    time.sleep(ms / 1000)
    return hostile.ok(environ, start_response)


def count(environ, start_response):
    environ["wsgi.input"].read()
    request_id = environ.get("HTTP_X_REQUEST_ID", "-")
    fd = os.open(environ["FAULTS_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, b"%s %d\n" % (request_id.encode(), os.getpid()))
    finally:
        os.close(fd)
    body = b"counted %s\n" % request_id.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


ROUTES = {"slow": slow, "count": count}


def app(environ, start_response):
    handler = ROUTES.get(environ["PATH_INFO"].strip("/").split("/")[-1])
    if handler is not None:
        return handler(environ, start_response)
    return hostile.app(environ, start_response)
