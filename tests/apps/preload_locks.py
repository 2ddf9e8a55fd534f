"""An app for chaos scenario 12 (--preload fork safety).

Importing it starts a daemon thread that keeps taking logging's module
lock, a logging handler's lock and the import lock, each for a moment,
forever. A master that imports the app once (--preload) and then forks
must not hand a worker a lock held by a thread that does not exist in the
child: every worker has to boot and serve.
"""

import importlib
import logging
import os
import threading
import time

_handler = logging.StreamHandler()
logging.getLogger("preload_locks").addHandler(_handler)


def _hold_locks():
    while True:
        with logging._lock:  # logging's module lock (what logging.getLogger takes)
            time.sleep(0.0005)
        _handler.acquire()
        try:
            time.sleep(0.0005)
        finally:
            _handler.release()
        importlib.import_module("json")  # takes the import machinery's locks
        import _imp

        _imp.acquire_lock()
        try:
            time.sleep(0.0005)
        finally:
            _imp.release_lock()


threading.Thread(target=_hold_locks, name="lock-holder", daemon=True).start()


def app(environ, start_response):
    logging.getLogger("preload_locks.request").debug("request")  # needs logging's lock in the worker
    importlib.import_module("decimal")  # needs the import lock in the worker
    body = b"ok %d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
