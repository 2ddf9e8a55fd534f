"""What nginx answers when the upstream is down, slow, or speaks nonsense."""

import struct

import pytest
import requests

import fake_upstream as wire
from httpraw import curl


def test_socket_missing_is_502_with_cause_logged(nginx):
    mark = nginx.error_log.mark()
    response = requests.get(nginx.url("/down/hello"), timeout=30)
    assert response.status_code == 502
    nginx.error_log.wait_for(
        r"missing\.sock.*No such file or directory|No such file or directory.*missing\.sock", since=mark
    )


def test_connection_refused_is_502_with_cause_logged(nginx):
    mark = nginx.error_log.mark()
    response = requests.get(nginx.url("/refused/hello"), timeout=30)
    assert response.status_code == 502
    nginx.error_log.wait_for("Connection refused", since=mark)


def test_read_timeout_is_504(basic):
    mark = basic.nginx.error_log.mark()
    response = requests.get(basic.url("/timeout/slow?seconds=3"), timeout=30)
    assert response.status_code == 504
    basic.nginx.error_log.wait_for("upstream timed out", since=mark)
    # The same app answers within the timeout in time.
    quick = requests.get(basic.url("/timeout/slow?seconds=0"), timeout=30)
    assert quick.status_code == 200
    assert quick.content == b"slept\n"


def test_fake_upstream_valid_answer_is_relayed(fake_upstream, nginx):
    """The fake speaks protocol v1 correctly: nginx relays it (proves the fake is right)."""
    fake_upstream.reply = (
        wire.response_head(201, b"Created", [(b"X-Fake", b"yes"), (b"Content-Type", b"text/plain")])
        + wire.response_body(b"fake ")
        + wire.response_body(b"body\n")
        + wire.response_end()
    )
    response = requests.get(nginx.url("/fake/anything"), timeout=30)
    assert response.status_code == 201
    assert response.headers["X-Fake"] == "yes"
    assert response.content == b"fake body\n"


GARBAGE = {
    "http-instead-of-frames": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    "undecodable-protobuf": struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff",
    "oversize-length": struct.pack(">I", 64 * 1024 * 1024) + b"\x22" * 64,
    "zero-length": struct.pack(">I", 0),
    "body-before-head": wire.response_body(b"no head first") + wire.response_end(),
}


VALID_REPLY = (
    wire.response_head(200, b"OK", [(b"Content-Type", b"text/plain")])
    + wire.response_body(b"valid\n")
    + wire.response_end()
)


@pytest.mark.parametrize("reply", GARBAGE.values(), ids=GARBAGE.keys())
def test_malformed_frame_is_502_and_logged(fake_upstream, nginx, reply):
    fake_upstream.reply = reply
    mark = nginx.error_log.mark()
    response = requests.get(nginx.url("/fake/anything"), timeout=30)
    assert response.status_code == 502
    nginx.error_log.wait_for("upstream sent invalid", since=mark)
    # nginx (its one worker process) is still there and serves the next request.
    fake_upstream.reply = VALID_REPLY
    after = requests.get(nginx.url("/fake/again"), timeout=30)
    assert after.status_code == 200
    assert after.content == b"valid\n"


def test_error_frame_is_502_and_its_message_logged(fake_upstream, nginx):
    fake_upstream.reply = wire.error_frame(wire.ERROR_INTERNAL, "fake worker exploded")
    mark = nginx.error_log.mark()
    response = requests.get(nginx.url("/fake/anything"), timeout=30)
    assert response.status_code == 502
    nginx.error_log.wait_for("fake worker exploded", since=mark)


def test_other_protocol_version_is_502(fake_upstream, nginx):
    fake_upstream.reply = wire.response_head(200, version=2) + wire.response_body(b"v2 body") + wire.response_end()
    response = requests.get(nginx.url("/fake/anything"), timeout=30)
    assert response.status_code == 502
    assert b"v2 body" not in response.content


def test_version_mismatch_error_frame_is_502(fake_upstream, nginx):
    fake_upstream.reply = wire.error_frame(wire.ERROR_VERSION_MISMATCH, "worker speaks version 9, module 1")
    mark = nginx.error_log.mark()
    response = requests.get(nginx.url("/fake/anything"), timeout=30)
    assert response.status_code == 502
    nginx.error_log.wait_for("version 9", since=mark)


def test_upstream_closing_before_head_is_502(fake_upstream, nginx):
    fake_upstream.reply = b""
    mark = nginx.error_log.mark()
    response = requests.get(nginx.url("/fake/anything"), timeout=30)
    assert response.status_code == 502
    nginx.error_log.wait_for("prematurely closed", since=mark)


@pytest.mark.parametrize(
    "ending",
    [wire.error_frame(wire.ERROR_INTERNAL, "app raised mid-body"), b""],
    ids=["error-frame", "connection-closed"],
)
@pytest.mark.parametrize("location", ["/fake/", "/fake-unbuffered/"], ids=["buffering-on", "buffering-off"])
def test_upstream_failing_mid_body_cuts_the_client_response(fake_upstream, nginx, ending, location):
    fake_upstream.reply = (
        wire.response_head(200, b"OK", [(b"Content-Type", b"text/plain")])
        + wire.response_body(b"partial body " * 1000)
        + ending
    )
    result = curl("-o", "/dev/null", nginx.url(location + "cut"))
    # curl 18 (body cut short) once nginx sent the head, 52 (empty reply) when
    # nginx still held it: either way the client never sees a complete response.
    assert result.returncode in (18, 52, 56), (result.returncode, result.stderr)
