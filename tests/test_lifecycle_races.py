"""Races between the supervisor's life cycle and connections nginx just made.

scripts/chaos.sh scenario 1 (HUP every second under load) saw 2 requests
in ~300,000 answered 502 (before 7009880), nginx logging `writev() failed (32: Broken pipe)
while sending request to upstream` right as old workers stopped. nginx
connects, then writes the request; a worker can accept in between, find
nothing to read yet and park the connection as idle. When that worker is
then told to stop (HUP retiring it, or TERM), it serves only idle
connections that were readable at that instant and closed the rest, so
the request nginx wrote a moment later met a closed socket: a 502 (and a
POST is not retried). These tests widen the window to make it certain: a
raw client connects, waits until the worker has accepted, the worker is
stopped (TERM, HUP, or recycled by --max-requests), then the request is
written. It must be served, as a connection still in the listen queue is.
"""

import os
import signal
import socket
import time

import pytest
from conftest import _start, _stop
from fake_upstream import field_bytes, field_varint, frame
from servers import Ferrocorn, unix_connections, wait_until

REQUEST_HEAD = 1
REQUEST_END = 3


def request_frames(path=b"/ok"):
    msg = field_varint(1, 1) + field_bytes(2, b"GET") + field_bytes(3, path) + field_bytes(4, path)
    msg += field_bytes(6, b"HTTP/1.1") + field_bytes(7, field_bytes(1, b"Host") + field_bytes(2, b"x"))
    msg += field_bytes(8, b"localhost") + field_varint(9, 80) + field_bytes(10, b"127.0.0.1")
    msg += field_bytes(12, b"http") + field_varint(14, 1)  # content_length -1, zigzag
    return frame(REQUEST_HEAD, msg) + frame(REQUEST_END, b"")


def read_until_closed(s):
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize("stop", ["none", "TERM", "HUP", "recycle"])
def test_a_connection_accepted_just_before_a_stop_is_served(scratch, stop):
    """`none` is the control: the same slow-to-write client, no stop.
    `recycle`: --max-requests 1, and a request on another connection ends the worker."""
    args = ["--graceful-timeout", "10", "--keep-alive", "0"] + (["--max-requests", "1"] if stop == "recycle" else [])
    server = Ferrocorn(scratch, "race", "faults:app", workers=1, extra_args=args)
    _start(server)
    try:
        marks = server.log_marks()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(str(server.sock))
        # The worker (once booted) accepts and parks the silent connection.
        assert wait_until(lambda: unix_connections(server.sock) == (1, 0), 30), unix_connections(server.sock)
        if stop == "TERM":
            os.kill(server.proc.pid, signal.SIGTERM)
        elif stop == "HUP":
            os.kill(server.proc.pid, signal.SIGHUP)
            server.wait_for_log("New workers booted", since=marks, timeout=20)
        elif stop == "recycle":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
                other.settimeout(15)
                other.connect(str(server.sock))
                other.sendall(request_frames())
                assert b"ok " in read_until_closed(other)
            server.wait_for_log("Autorestarting worker", since=marks, timeout=20)
        time.sleep(0.5)  # the old worker has begun to stop
        try:
            s.sendall(request_frames())
        except OSError:
            pass
        answer = read_until_closed(s)
        s.close()
        assert b"ok " in answer, (
            "the request written on a connection the worker had accepted before the %s got %r instead of an "
            "answer (nginx: a 502)" % (stop, answer[:200])
        )
    finally:
        _stop(server)
