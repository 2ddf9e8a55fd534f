"""An app that gets stuck inside C code holding the GIL (for --timeout tests).

`ctypes.PyDLL` calls keep the GIL, so the interpreter loop never runs again
while libc's sleep() waits: only a C-level dump (faulthandler) can say where
the worker is.
"""

import ctypes

LIBC = ctypes.PyDLL(None)


def stuck_in_c_holding_the_gil(seconds):
    LIBC.sleep(seconds)


def application(environ, start_response):
    stuck_in_c_holding_the_gil(60)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable\n"]
