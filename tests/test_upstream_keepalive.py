"""Kept-alive connections between nginx and the worker: when they are reused.

A worker says on its last `response_end` that it closes the connection
(`close`), so nginx takes it out of its pool; and nginx never sends a
request it would not retry (a POST) on a pooled connection the worker has
already closed: the module checks such a connection for end of file first.
Both against the fake worker behind `/fake-pool/` (upstream `keepalive 4`;
the race also behind `/fake/`, the plain address `ferrocorn_keepalive` keeps
alive), which keeps its connections open unless a test closes them.
"""

import os
import signal
import socket
import time

import pytest
import requests

import fake_upstream as wire
from httpraw import RawResponse
from servers import children_of, wait_until

REPLY = wire.response_head(200, b"OK", [(b"Content-Type", b"text/plain"), (b"Content-Length", b"7")]) + wire.response_body(b"pooled\n")


@pytest.mark.parametrize("close", [False, True], ids=["plain-end", "end-with-close"])
def test_response_end_with_close_takes_the_connection_out_of_the_pool(fake_upstream, nginx, close):
    fake_upstream.keep_open = True
    fake_upstream.reply = REPLY + wire.response_end(close=close)
    for _ in range(3):
        response = requests.get(nginx.url("/fake-pool/x"), timeout=30)
        assert response.status_code == 200
        assert response.content == b"pooled\n"
    assert fake_upstream.requests_seen == 3
    # The fake never closes: only the flag makes nginx open new connections.
    assert fake_upstream.connections == (3 if close else 1)


def _read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "nginx closed the client connection: %r" % data
        data += chunk
    response = RawResponse(data)
    while len(response.body) < int(response.header("Content-Length")):
        response.body += sock.recv(65536)
    return response


@pytest.mark.parametrize("prefix", ["/fake-pool/", "/fake/"], ids=["upstream-block", "plain-address"])
def test_a_post_is_not_sent_on_a_pooled_connection_the_worker_closed(fake_upstream, nginx, prefix):
    """The race of a worker closing an idle connection (stop, reload, idle
    limit) while nginx picks it for a POST, made deterministic: nginx's
    worker is paused while the client's POST arrives and then the worker
    closes, so nginx handles the POST before it learns of the close. Both
    for an upstream block with `keepalive` and for the plain address, kept
    alive by `ferrocorn_keepalive`."""
    fake_upstream.keep_open = True
    fake_upstream.reply = REPLY + wire.response_end()
    (nginx_worker,) = wait_until(lambda: children_of(nginx.proc.pid) or None, 10)
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=30) as client:
        client.sendall(b"GET %sfirst HTTP/1.1\r\nHost: localhost\r\n\r\n" % prefix.encode())
        assert _read_response(client).status == 200
        assert fake_upstream.connections == 1

        mark = nginx.error_log.mark()
        os.kill(nginx_worker, signal.SIGSTOP)
        try:
            client.sendall(
                b"POST %ssecond HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody" % prefix.encode()
            )
            time.sleep(0.2)
            fake_upstream.close_open()  # the worker closes its idle connection
            time.sleep(0.2)
        finally:
            os.kill(nginx_worker, signal.SIGCONT)
        response = _read_response(client)
    assert response.status == 200, (response.status_line, nginx.error_log.text(since=mark))
    nginx.error_log.wait_for("kept-alive upstream connection closed by the worker, connecting anew", since=mark)
    assert response.body == b"pooled\n"
    assert fake_upstream.connections == 2, "the POST went out on a new connection"
    assert fake_upstream.requests_seen == 2
