"""Request bodies reach wsgi.input byte-exact, whatever the framing and read method."""

import io
import json
import os

import pytest
import requests

from httpraw import curl

# Lines of every kind: LF, CRLF, empty, non-UTF-8 bytes, one longer than any
# buffer, and a last line without a newline.
MULTILINE = b"first line\nsecond line\r\n\nbinary \xff\xfe\x00 bytes\n" + b"L" * 100_000 + b"\nno newline at the end"


def expected_pieces(method, body, n):
    """What each wsgi.input method returns for body, per io.BytesIO semantics."""
    stream = io.BytesIO(body)
    if method == "read_all":
        return [stream.read(), stream.read()]
    if method == "readlines":
        return stream.readlines()
    if method == "iter":
        return list(stream)
    read = {"read_n": lambda: stream.read(n), "readline": stream.readline, "readline_n": lambda: stream.readline(n)}[
        method
    ]
    pieces = []
    while True:
        piece = read()
        pieces.append(piece)
        if not piece:
            return pieces


def curl_chunked_post(url, body, scratch):
    """POST body with Transfer-Encoding: chunked; returns (status, response bytes)."""
    source = scratch / "upload.bin"
    source.write_bytes(body)
    out = scratch / "response.bin"
    result = curl(
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        "@%s" % source,
        "-o",
        str(out),
        "-w",
        "%{http_code}",
        url,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout), out.read_bytes()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(
    "stack_name,prefix,method",
    [
        ("raw", "/raw", "read_all"),
        ("basic", "", "read_n"),
        ("raw", "/raw", "read_n"),
        ("basic", "", "readline"),
        ("raw", "/raw", "readline"),
        ("basic", "", "readline_n"),
        ("raw", "/raw", "readline_n"),
        ("basic", "", "readlines"),
        ("raw", "/raw", "readlines"),
        ("basic", "", "iter"),
        ("raw", "/raw", "iter"),
    ],
)
def test_wsgi_input_method(request, scratch, stack_name, prefix, method, framing):
    stack = request.getfixturevalue(stack_name)
    url = stack.url("%s/input/%s?n=1000" % (prefix, method))
    if framing == "chunked":
        status, content = curl_chunked_post(url, MULTILINE, scratch)
    else:
        response = requests.post(url, data=MULTILINE, timeout=30)
        status, content = response.status_code, response.content
    assert status == 200, content[:2000]
    got = [p.encode("latin-1") for p in json.loads(content)["pieces"]]
    assert got == expected_pieces(method, MULTILINE, 1000)


def test_one_mib_post_through_nginx_temp_file_is_echoed(basic):
    body = os.urandom(1024 * 1024)
    mark = basic.nginx.error_log.mark()
    response = requests.post(basic.url("/smallbody/echo"), data=body, timeout=60)
    assert response.status_code == 200
    assert response.headers["X-Content-Length-Seen"] == "1048576"
    assert len(response.content) == len(body)
    assert response.content == body
    # client_body_buffer_size 1k: nginx spooled the body to disk before passing it on.
    basic.nginx.error_log.wait_for("a client request body is buffered to a temporary file", since=mark)


def test_chunked_request_body_is_echoed(basic, scratch):
    body = os.urandom(300 * 1024 + 17)
    status, content = curl_chunked_post(basic.url("/echo"), body, scratch)
    assert status == 200
    assert content == body


def test_empty_post_body(basic):
    response = requests.post(basic.url("/echo"), data=b"", timeout=30)
    assert response.status_code == 200
    assert response.content == b""


def test_unread_request_body_does_not_desync_kept_alive_connection(basic):
    """An app that ignores a large body; the next request on the pool still gets its own answer."""
    with requests.Session() as session:
        for _ in range(3):
            ignored = session.post(basic.url("/pool/hello"), data=os.urandom(2 * 1024 * 1024), timeout=60)
            assert ignored.status_code == 200
            assert ignored.content == b"Hello, world!\n"
            small = os.urandom(1000)
            echoed = session.post(basic.url("/pool/echo"), data=small, timeout=30)
            assert echoed.status_code == 200
            assert echoed.content == small


@pytest.mark.parametrize("size", [1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 5])
def test_bodies_around_the_frame_size_limit_echo_both_ways(basic, size):
    """Bodies near and past the 1 MiB frame limit, as one request and one yielded chunk."""
    body = os.urandom(size)
    response = requests.post(basic.url("/echo"), data=body, timeout=60)
    assert response.status_code == 200
    assert response.content == body


def post_sizes_around_frames(session, url):
    for size in (200_000, 1024 * 1024 + 1, 3 * 1024 * 1024 + 5):
        body = os.urandom(size)
        response = session.post(url, data=body, timeout=60)
        assert response.status_code == 200
        assert response.headers["X-Next-Read"] == "0"
        assert len(response.content) == size
        assert response.content == body


@pytest.mark.parametrize("location", ["/pool", "/pool-streamed"], ids=["buffered", "streamed"])
@pytest.mark.parametrize("how", ["length", "more"])
def test_one_read_returns_a_whole_body_of_many_frames(basic, location, how):
    """read(CONTENT_LENGTH) and read(more than that) in one call return the whole
    body, however many frames carried it (large ones are read from the socket
    straight into the bytes object); the next read is empty, and the kept-alive
    connection carries the next request."""
    with requests.Session() as session:
        post_sizes_around_frames(session, basic.url("%s/read_once/%s" % (location, how)))
        small = session.post(basic.url("%s/echo" % location), data=b"after", timeout=30)
        assert small.content == b"after"


def test_read_without_a_size_returns_a_whole_body_of_many_frames(basic):
    # read() with no size: the raw app (wsgiref's validator wants a size).
    with requests.Session() as session:
        post_sizes_around_frames(session, basic.url("/raw/read_once/all"))


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_with_a_body(basic, method):
    body = b"payload for " + method.encode()
    response = requests.request(method, basic.url("/echo"), data=body, timeout=30)
    assert response.status_code == 200
    assert response.content == body
