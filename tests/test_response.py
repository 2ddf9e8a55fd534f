"""Responses reach the client as the app made them: bodies, framing, headers."""

import hashlib
import os
import socket
import uuid

import pytest
import requests

from apps.patterns import stream_blocks
from httpraw import RawResponse, decode_chunked, gated_exchange, get_request, raw_exchange

STREAM_BYTES = 20 * 1024 * 1024


def expected_stream_sha256(total):
    digest = hashlib.sha256()
    for block in stream_blocks(total):
        digest.update(block)
    return digest.hexdigest()


@pytest.mark.parametrize("with_length", [False, True], ids=["no-content-length", "content-length"])
@pytest.mark.parametrize(
    "location", ["", "/unbuffered", "/tinybuffers"], ids=["buffering-on", "buffering-off", "small-buffers"]
)
def test_twenty_mib_streamed_from_a_generator(basic, location, with_length):
    url = basic.url("%s/stream?bytes=%d%s" % (location, STREAM_BYTES, "&cl=1" if with_length else ""))
    digest = hashlib.sha256()
    size = 0
    with requests.get(url, stream=True, timeout=60) as response:
        assert response.status_code == 200
        if with_length:
            assert response.headers["Content-Length"] == str(STREAM_BYTES)
        else:
            assert "Content-Length" not in response.headers
        for chunk in response.iter_content(1024 * 1024):
            size += len(chunk)
            digest.update(chunk)
    assert size == STREAM_BYTES
    assert digest.hexdigest() == expected_stream_sha256(STREAM_BYTES)


def test_write_callable(basic):
    response = requests.get(basic.url("/write"), timeout=30)
    assert response.status_code == 200
    assert response.content == b"part one, part two, returned tail\n"


def test_write_callable_large(basic):
    response = requests.get(basic.url("/write?big=3000000"), timeout=60)
    assert response.status_code == 200
    assert response.content == b"part one, part two, " + b"w" * 3_000_000 + b"returned tail\n"


@pytest.mark.parametrize("stack_name,prefix", [("basic", ""), ("raw", "/raw")])
def test_file_wrapper_serves_a_real_file(request, scratch, stack_name, prefix):
    stack = request.getfixturevalue(stack_name)
    path = scratch / "served.bin"
    data = os.urandom(3 * 1024 * 1024 + 123)
    path.write_bytes(data)
    response = requests.get(stack.url("%s/file" % prefix), params={"path": str(path)}, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(data))
    assert response.content == data


def test_head_keeps_headers_and_sends_no_body(basic):
    raw = raw_exchange(basic.port, get_request("/hello", method="HEAD"))
    response = RawResponse(raw)
    assert response.status == 200
    assert response.header("Content-Length") == "14"
    assert response.header("X-Hello") == "yes"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.body == b""


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(basic, code):
    response = RawResponse(raw_exchange(basic.port, get_request("/status/%d" % code)))
    assert response.status == code
    assert response.header("X-Status-Test") == str(code)
    assert response.header("Transfer-Encoding") is None
    assert response.body == b""


def test_response_without_length_is_chunked_for_http11(basic):
    response = RawResponse(raw_exchange(basic.port, get_request("/nolength")))
    assert response.status == 200
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.header("Content-Length") is None
    assert decode_chunked(response.body) == b"first;second;third\n"


def test_response_without_length_to_http10_client_ends_at_close(basic):
    response = RawResponse(raw_exchange(basic.port, get_request("/nolength", version="HTTP/1.0")))
    assert response.status == 200
    assert response.header("Transfer-Encoding") is None
    assert response.body == b"first;second;third\n"


def test_repeated_set_cookie_headers_are_kept(basic):
    response = RawResponse(raw_exchange(basic.port, get_request("/cookies")))
    assert response.status == 200
    assert response.header_values("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.body == b"cookies\n"


@pytest.mark.parametrize("stack_name,prefix", [("basic", ""), ("raw", "/raw")])
def test_iterable_close_is_called_and_wsgi_errors_is_logged(request, stack_name, prefix):
    stack = request.getfixturevalue(stack_name)
    token = uuid.uuid4().hex
    marks = stack.ferrocorn.log_marks()
    response = requests.get(stack.url("%s/close_marker?token=%s" % (prefix, token)), timeout=30)
    assert response.status_code == 200
    assert response.content == b"body before close\n"
    stack.ferrocorn.wait_for_log("iterable closed %s" % token, since=marks)


def test_start_response_with_exc_info_replaces_the_status(basic):
    response = requests.get(basic.url("/exc_info"), timeout=30)
    assert response.status_code == 500
    assert response.headers["X-Error-Page"] == "app"
    assert response.content == b"the app's own error page\n"


def test_custom_reason_phrase_reaches_the_client(basic):
    response = RawResponse(raw_exchange(basic.port, get_request("/reason")))
    assert response.status_line == "HTTP/1.1 299 Custom Reason"
    assert response.body == b"custom reason\n"


def test_unbuffered_stream_reaches_the_client_while_the_app_still_runs(basic, scratch):
    """With ferrocorn_buffering off, a yielded chunk is delivered before the app returns."""
    gate_file = scratch / "open-the-gate"
    received = gated_exchange(basic.port, "/unbuffered/gate?path=%s" % gate_file, b"first\n", gate_file)
    response = RawResponse(received)
    assert response.status == 200
    assert decode_chunked(response.body) == b"first\nreleased\n"


def test_many_small_chunks(basic):
    response = requests.get(basic.url("/many_chunks?count=20000&size=7"), timeout=60)
    assert response.status_code == 200
    assert response.content == b"".join(bytes([65 + i % 26]) * 7 for i in range(20000))


def test_latin1_response_header_value(basic):
    response = RawResponse(raw_exchange(basic.port, get_request("/latin1_header")))
    assert response.status == 200
    assert response.header("X-Latin").encode("latin-1") == b"caf\xe9 \xff"


def test_head_on_a_streamed_response_keeps_the_pooled_connection_in_step(basic):
    with requests.Session() as session:
        for _ in range(3):
            head = session.head(basic.url("/pool/stream?bytes=%d" % (2 * 1024 * 1024)), timeout=30)
            assert head.status_code == 200
            assert head.content == b""
            hello = session.get(basic.url("/pool/hello"), timeout=30)
            assert hello.status_code == 200
            assert hello.content == b"Hello, world!\n"


@pytest.mark.parametrize("location", ["", "/unbuffered", "/pool"])
def test_client_hanging_up_mid_stream_leaves_the_workers_serving(basic, location):
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", basic.port), timeout=30) as s:
            s.sendall(get_request("%s/stream?bytes=%d" % (location, STREAM_BYTES)))
            received = 0
            while received < 256 * 1024:
                data = s.recv(65536)
                assert data
                received += len(data)
    for _ in range(6):
        response = requests.get(basic.url("%s/hello" % location), timeout=30)
        assert response.status_code == 200
        assert response.content == b"Hello, world!\n"
