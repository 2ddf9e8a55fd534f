"""Streaming both ways: `ferrocorn_buffering off` and `X-Accel-Buffering: no`
deliver each chunk at once; `ferrocorn_request_buffering off` hands the
body to the app while the client is still sending it.

The checks are causal, not timed: the app holds its second event until the
test has read the first one, and the client holds the rest of its upload
until the app has seen the first bytes. Each side gives up after 10 s, so a
buffering nginx fails the test instead of hanging it.
"""

import json
import socket
import time
import uuid

import pytest

from httpraw import RawResponse as Response
from httpraw import decode_chunked
from parity import alerts_checked, quit_promptly, start_parity, wait_file  # noqa: F401

LOCATIONS = """\
        location /unbuffered/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_buffering off;
        }}
        location /buffered/ {{
            ferrocorn_pass unix:{w}/app.sock;
        }}
        location /stream-up/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_request_buffering off;
        }}
        location /stream-up-tcp/ {{
            ferrocorn_pass 127.0.0.1:{port_tcp};
            ferrocorn_request_buffering off;
            client_body_buffer_size 1k;
        }}
"""

HTTP = """\
    ferrocorn_param PARITY_DIR {shared};
"""


@pytest.fixture(scope="module")
def stack(module_servers, workdir):
    stack = start_parity(
        module_servers,
        workdir,
        "streaming",
        LOCATIONS,
        http_extra=HTTP,
        ferrocorns={"app": ["-b", ("port", "tcp", "127.0.0.1:%d")]},
    )
    yield stack
    quit_promptly(stack.nginx)


def connect(stack):
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=20)
    return s


def read_until(sock, needle, data=b""):
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_events(stack, path):
    """GETs an event stream; after the first event, tells the app (marker
    file) to send the second. Returns (head+first bytes, full body)."""
    ident = uuid.uuid4().hex
    sep = "&" if "?" in path else "?"
    with connect(stack) as s:
        s.sendall(("GET %s%sid=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (path, sep, ident)).encode())
        first = read_until(s, b"data: first")
        assert b"data: first" in first, first
        (stack.shared / ("got-first-" + ident)).touch()
        data = first
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return Response(data)


def test_unbuffered_location_delivers_each_event_at_once(alerts_checked):
    r = read_events(alerts_checked, "/unbuffered/events")
    assert r.status == 200
    assert decode_chunked(r.body) == b"data: first\n\ndata: second\n\n"


def test_x_accel_buffering_no_turns_buffering_off_per_response(alerts_checked):
    r = read_events(alerts_checked, "/buffered/events?accel_buffering=no")
    assert decode_chunked(r.body) == b"data: first\n\ndata: second\n\n"
    assert r.header("X-Accel-Buffering") is None


def send_slow_upload(stack, path, pieces, chunked):
    """Sends the first piece, waits for the app to have seen it, then the
    rest. Returns the app's JSON answer and whether the app saw the first
    bytes before the client sent the last ones."""
    ident = uuid.uuid4().hex
    marker = stack.shared / ("first-bytes-" + ident)
    total = sum(len(p) for p in pieces)
    with connect(stack) as s:
        head = "POST %s?id=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % (path, ident)
        head += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % total
        s.sendall((head + "\r\n").encode())

        def send(piece):
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)

        send(pieces[0])
        seen_early = wait_file(marker, timeout=10.0)
        for piece in pieces[1:]:
            send(piece)
            time.sleep(0.01)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        data = read_until(s, b"\r\n\r\n")
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    r = Response(data)
    body = r.body if r.header("Content-Length") else decode_chunked(r.body)
    return r.status, json.loads(body), bool(seen_early)


PIECES = [b"first line of the upload\n"] + [(b"%06d " % i) * 200 + b"\n" for i in range(40)]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_request_body_reaches_the_app_while_the_client_sends(alerts_checked, chunked):
    status, answer, seen_early = send_slow_upload(alerts_checked, "/stream-up/upload", PIECES, chunked)
    assert status == 200
    assert seen_early, "the app saw no body bytes before the client sent the rest"
    total = sum(len(p) for p in PIECES)
    assert answer["total"] == total
    assert answer["content_length"] == (None if chunked else str(total))


def test_streamed_body_over_tcp_with_small_buffers(alerts_checked):
    pieces = [b"x" * 10 + b"\n"] + [bytes([65 + i % 26]) * 3000 + b"\n" for i in range(60)]
    status, answer, seen_early = send_slow_upload(alerts_checked, "/stream-up-tcp/upload", pieces, True)
    assert status == 200 and seen_early
    assert answer["total"] == sum(len(p) for p in pieces)


def test_buffered_location_waits_for_the_whole_body(alerts_checked):
    # The contrast: with request buffering on (the default) the app sees
    # nothing until the client has sent everything.
    ident_pieces = [b"a" * 100, b"b" * 100]
    status, answer, seen_early = send_slow_upload_quick(alerts_checked, "/buffered/upload", ident_pieces)
    assert status == 200 and not seen_early and answer["total"] == 200


def send_slow_upload_quick(stack, path, pieces):
    """Like send_slow_upload, but gives the app only 1 s to show it saw the
    first piece early (it must not, so the wait always runs out)."""
    ident = uuid.uuid4().hex
    marker = stack.shared / ("first-bytes-" + ident)
    total = sum(len(p) for p in pieces)
    with connect(stack) as s:
        s.sendall(
            ("POST %s?id=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (path, ident, total)).encode()
        )
        s.sendall(pieces[0])
        seen_early = wait_file(marker, timeout=1.0)
        for piece in pieces[1:]:
            s.sendall(piece)
        data = read_until(s, b"\r\n\r\n")
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    r = Response(data)
    return r.status, json.loads(r.body), bool(seen_early)
