"""httpbin (PyPI), unchanged, behind nginx + ferrocorn: what a user of each endpoint sees.

httpbin echoes requests and serves bytes it defines (seeded random bytes,
drips, its own files); each test checks them through the whole stack. The
site is the plainest one a user writes: `location / { ferrocorn_pass ...; }`.
"""

import base64
import gzip
import json
import random
import sys
import zlib
from pathlib import Path

import httpbin
import pytest
import requests
from httpbin.helpers import ASCII_ART

from httpraw import RawResponse, decode_chunked, get_request, raw_exchange
from servers import Ferrocorn, Nginx, free_port

HTTPBIN_TEMPLATES = Path(httpbin.__file__).parent / "templates"

SITE_LOCATIONS = """\
        location / {{
            ferrocorn_pass unix:{sock};
        }}
"""


@pytest.fixture(scope="module")
def site(workdir, module_servers):
    app = module_servers(Ferrocorn(workdir, "httpbin", "httpbin:app", extra_args=["--virtualenv", sys.prefix]))
    return module_servers(Nginx(workdir, "nginx-httpbin", free_port(), SITE_LOCATIONS.format(sock=app.sock)))


def host(site):
    return "127.0.0.1:%d" % site.port


def test_anything_echoes_method_query_headers_and_body(site):
    body = "plain text body, ünïcode\n".encode()
    response = requests.put(
        site.url("/anything/some/path?a=1&a=2&b=%C3%A9&empty="),
        data=body,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Custom": "custom value", "User-Agent": "e2e/1.0"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["url"] == "http://%s/anything/some/path?a=1&a=2&b=é&empty=" % host(site)
    assert seen["args"] == {"a": ["1", "2"], "b": "é", "empty": ""}
    assert seen["data"] == body.decode()
    assert seen["json"] is None
    assert seen["form"] == {} and seen["files"] == {}
    assert seen["origin"] == "127.0.0.1"
    headers = seen["headers"]
    assert headers["Host"] == host(site)
    assert headers["X-Custom"] == "custom value"
    assert headers["User-Agent"] == "e2e/1.0"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == str(len(body))


def test_anything_sees_exactly_the_headers_sent(site):
    extra = b"X-One: 1\r\nX-Repeated: first\r\nX-Repeated: second\r\nAccept: */*\r\n"
    raw = RawResponse(raw_exchange(site.port, get_request("/anything", extra=extra)))
    assert raw.status == 200
    headers = json.loads(raw.body)["headers"]
    assert headers.pop("X-Repeated") in ("first,second", "first, second")  # both are RFC 9110 joins
    assert headers == {"Host": "localhost", "Connection": "close", "X-One": "1", "Accept": "*/*"}


def test_anything_json_form_and_files(site):
    as_json = requests.post(site.url("/anything"), json={"k": ["v", 1, None]}, timeout=30).json()
    assert as_json["json"] == {"k": ["v", 1, None]}
    assert as_json["data"] == '{"k": ["v", 1, null]}'

    as_form = requests.post(site.url("/anything"), data={"f": ["x", "y"], "g": "a&b=c"}, timeout=30).json()
    assert as_form["form"] == {"f": ["x", "y"], "g": "a&b=c"}

    upload = bytes(range(256)) * 40
    multipart = requests.post(
        site.url("/anything"), files={"doc": ("doc.bin", upload)}, data={"note": "n"}, timeout=30
    ).json()
    assert multipart["form"] == {"note": "n"}
    assert multipart["files"]["doc"] == "data:application/octet-stream;base64," + base64.b64encode(upload).decode()

    binary = requests.post(site.url("/anything"), data=upload, timeout=30).json()
    assert binary["data"] == "data:application/octet-stream;base64," + base64.b64encode(upload).decode()


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", "OPTIONS"])
def test_anything_other_methods(site, method):
    response = requests.request(method, site.url("/anything?m=1"), timeout=30)
    assert response.status_code == 200
    if method == "OPTIONS":
        assert "GET" in response.headers["Allow"]
    else:
        assert response.json()["method"] == method


@pytest.mark.parametrize("n, seed", [(0, 1), (1, 7), (4096, 42), (102400, 2026)])
def test_bytes_with_seed_are_byte_exact(site, n, seed):
    response = requests.get(site.url("/bytes/%d?seed=%d" % (n, seed)), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    generator = random.Random(seed)  # what httpbin does with the global random after random.seed(seed)
    expected = bytes(generator.randint(0, 255) for _ in range(n))
    assert response.headers["Content-Length"] == str(n)
    assert response.content == expected


def test_stream_n_lines_of_json(site):
    n = 25
    raw = RawResponse(raw_exchange(site.port, get_request("/stream/%d?q=s" % n)))
    assert raw.status == 200
    assert raw.header("Transfer-Encoding") == "chunked"
    lines = decode_chunked(raw.body).decode().splitlines()
    assert len(lines) == n
    for i, line in enumerate(lines):
        item = json.loads(line)
        assert item["id"] == i
        assert item["url"] == "http://localhost/stream/%d?q=s" % n
        assert item["args"] == {"q": "s"}


def test_stream_caps_at_100_lines(site):
    response = requests.get(site.url("/stream/500"), timeout=30)
    assert [json.loads(line)["id"] for line in response.text.splitlines()] == list(range(100))


@pytest.mark.parametrize("code", [200, 418])
def test_drip(site, code):
    response = requests.get(site.url("/drip?numbytes=20&duration=0.5&delay=0&code=%d" % code), timeout=30)
    assert response.status_code == code
    assert response.headers["Content-Length"] == "20"
    assert response.content == b"*" * 20


def test_drip_streamed_by_the_client(site):
    with requests.get(site.url("/drip?numbytes=8&duration=0.4"), stream=True, timeout=30) as response:
        assert b"".join(response.iter_content(1)) == b"*" * 8


@pytest.mark.parametrize("code", [200, 201, 202, 400, 404, 500, 503, 599])
def test_status_plain(site, code):
    response = requests.get(site.url("/status/%d" % code), allow_redirects=False, timeout=30)
    assert response.status_code == code
    assert response.content == b""


def test_status_with_bodies_and_headers(site):
    teapot = requests.get(site.url("/status/418"), timeout=30)
    assert teapot.status_code == 418
    assert teapot.content == ASCII_ART.encode()
    assert teapot.headers["X-More-Info"] == "http://tools.ietf.org/html/rfc2324"

    unauthorized = requests.get(site.url("/status/401"), timeout=30)
    assert unauthorized.status_code == 401
    assert unauthorized.headers["WWW-Authenticate"] == 'Basic realm="Fake Realm"'

    moved = requests.get(site.url("/status/301"), allow_redirects=False, timeout=30)
    assert moved.status_code == 301
    assert moved.headers["Location"] == "/redirect/1"

    for code in (204, 304):
        raw = RawResponse(raw_exchange(site.port, get_request("/status/%d" % code)))
        assert raw.status == code
        assert raw.body == b""
        assert raw.header("Transfer-Encoding") is None

    choice = requests.get(site.url("/status/201,202:0,203:0"), timeout=30)
    assert choice.status_code == 201


def test_redirect_chain_relative(site):
    response = requests.get(site.url("/redirect/3"), timeout=30)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [302, 302, 302]
    assert [r.headers["Location"] for r in response.history] == ["/relative-redirect/2", "/relative-redirect/1", "/get"]
    assert response.json()["url"] == "http://%s/get" % host(site)


def test_redirect_chain_absolute_uses_the_host(site):
    response = requests.get(site.url("/redirect/2?absolute=true"), allow_redirects=False, timeout=30)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://%s/absolute-redirect/1" % host(site)
    followed = requests.get(site.url("/absolute-redirect/3"), timeout=30)
    assert len(followed.history) == 3
    assert followed.url == site.url("/get")


def test_redirect_to_with_status(site):
    response = requests.get(site.url("/redirect-to?url=/anything/x&status_code=307"), allow_redirects=False, timeout=30)
    assert response.status_code == 307
    assert response.headers["Location"] == "/anything/x"


def test_gzip_raw_bytes_decompress_to_the_echo(site):
    with requests.get(site.url("/gzip"), headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30) as response:
        compressed = response.raw.read(decode_content=False)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(compressed))
    echo = json.loads(gzip.decompress(compressed))
    assert echo["gzipped"] is True
    assert echo["method"] == "GET"
    assert echo["headers"]["Accept-Encoding"] == "gzip"


def test_deflate(site):
    with requests.get(site.url("/deflate"), stream=True, timeout=30) as response:
        compressed = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "deflate"
    assert json.loads(zlib.decompress(compressed))["deflated"] is True


@pytest.mark.parametrize(
    "path, template, content_type",
    [
        ("/image/png", "images/pig_icon.png", "image/png"),
        ("/image/jpeg", "images/jackal.jpg", "image/jpeg"),
        ("/encoding/utf8", "UTF-8-demo.txt", "text/html; charset=utf-8"),
    ],
)
def test_files_httpbin_ships_are_byte_exact(site, path, template, content_type):
    response = requests.get(site.url(path), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    expected = (HTTPBIN_TEMPLATES / template).read_bytes()
    if template.endswith(".txt"):
        expected = expected.removesuffix(b"\n")  # rendered by Jinja, which drops a template's final newline
    assert response.content == expected


def test_range_requests(site):
    whole = requests.get(site.url("/range/1000?duration=0"), timeout=30)
    assert whole.status_code == 200
    assert len(whole.content) == 1000
    part = requests.get(site.url("/range/1000"), headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 100-199/1000"
    assert part.content == whole.content[100:200]


def test_cookies_and_basic_auth(site):
    session = requests.Session()
    cookies = session.get(site.url("/cookies/set?flavour=oat&size=xl"), timeout=30)
    assert cookies.history[0].status_code == 302
    assert cookies.json() == {"cookies": {"flavour": "oat", "size": "xl"}}
    assert session.get(site.url("/cookies/delete?size"), timeout=30).json() == {"cookies": {"flavour": "oat"}}

    assert requests.get(site.url("/basic-auth/u/p"), timeout=30).status_code == 401
    ok = requests.get(site.url("/basic-auth/u/p"), auth=("u", "p"), timeout=30)
    assert ok.json() == {"authenticated": True, "user": "u"}


def test_response_headers_from_the_query(site):
    response = requests.get(site.url("/response-headers?X-Thing=one&X-Thing=two&Cache-Control=no-store"), timeout=30)
    assert response.status_code == 200
    assert response.raw.headers.getlist("X-Thing") == ["one", "two"]
    assert response.headers["Cache-Control"] == "no-store"
