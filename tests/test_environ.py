"""Requests reach the app with a PEP 3333 environ: keys, types, paths, params, headers."""

import http.client
import json
import os

import pytest
import requests

from httpraw import RawResponse, get_request, raw_exchange

# PEP 3333 keys a server must always provide (CONTENT_* only with a body).
REQUIRED_STR_KEYS = [
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
]
REQUIRED_BOOL_KEYS = ["wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]


def get_environ(url, **kwargs):
    response = requests.get(url, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def latin1_of_utf8(text):
    """How PEP 3333 carries UTF-8 path bytes: each byte as one latin-1 char."""
    return text.encode("utf-8").decode("latin-1")


def test_hello(basic):
    response = requests.get(basic.url("/hello"), timeout=30)
    assert response.status_code == 200
    assert response.content == b"Hello, world!\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == "14"
    assert response.headers["X-Hello"] == "yes"


@pytest.mark.parametrize("stack_name,prefix", [("basic", ""), ("raw", "/raw")])
def test_environ_has_every_required_key_with_its_type(request, stack_name, prefix):
    stack = request.getfixturevalue(stack_name)
    data = get_environ(stack.url(prefix + "/env"), headers={"X-Custom": "custom value"})
    environ = data["environ"]

    assert data["key_types"] == ["str"]
    for key in REQUIRED_STR_KEYS:
        assert key in environ, key
        assert environ[key]["type"] == "str", (key, environ[key])
    for key, described in environ.items():
        if "." not in key:
            assert described["type"] == "str", (key, described)
    for key in REQUIRED_BOOL_KEYS:
        assert environ[key]["type"] == "bool", (key, environ[key])
    assert environ["wsgi.run_once"]["value"] is False
    assert environ["wsgi.version"] == {"type": "tuple", "value": "(1, 0)"}
    assert environ["wsgi.url_scheme"] == {"type": "str", "value": "http"}
    assert data["input_methods"] == ["read", "readline", "readlines", "__iter__"]
    assert data["errors_methods"] == ["write", "writelines", "flush"]
    assert data["file_wrapper_callable"] is True

    assert environ["REQUEST_METHOD"]["value"] == "GET"
    assert environ["SCRIPT_NAME"]["value"] == ""
    assert environ["PATH_INFO"]["value"] == prefix + "/env"
    assert environ["QUERY_STRING"]["value"] == ""
    assert environ["SERVER_PORT"]["value"] == str(stack.port)
    assert environ["SERVER_PROTOCOL"]["value"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"]["value"] == "127.0.0.1"
    assert environ["HTTP_HOST"]["value"] == "127.0.0.1:%d" % stack.port
    assert environ["HTTP_X_CUSTOM"]["value"] == "custom value"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ


def test_post_sets_content_type_and_length(basic):
    response = requests.post(
        basic.url("/env"), data=b"hello", headers={"Content-Type": "application/x-thing"}, timeout=30
    )
    assert response.status_code == 200, response.text
    environ = response.json()["environ"]
    assert environ["REQUEST_METHOD"]["value"] == "POST"
    assert environ["CONTENT_TYPE"] == {"type": "str", "value": "application/x-thing"}
    assert environ["CONTENT_LENGTH"] == {"type": "str", "value": "5"}
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ


def test_query_string_and_percent_encoded_non_ascii_path(basic):
    target = "/env/caf%C3%A9/x%20y?q=caf%C3%A9&a=1+2&empty="
    conn = http.client.HTTPConnection("127.0.0.1", basic.port, timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    environ = json.loads(body)["environ"]
    assert environ["PATH_INFO"]["value"] == latin1_of_utf8("/env/café/x y")
    assert environ["QUERY_STRING"]["value"] == "q=caf%C3%A9&a=1+2&empty="
    assert environ["REQUEST_URI"]["value"] == target


def test_raw_utf8_bytes_in_path(basic):
    path = "/env/naïve-日本".encode("utf-8")
    response = RawResponse(raw_exchange(basic.port, get_request(path + b"?k=v")))
    assert response.status == 200, response.body
    environ = json.loads(response.body)["environ"]
    assert environ["PATH_INFO"]["value"] == latin1_of_utf8("/env/naïve-日本")
    assert environ["QUERY_STRING"]["value"] == "k=v"


def test_ferrocorn_param_reaches_environ(basic):
    environ = get_environ(basic.url("/params/env?x=42&present=yes"))["environ"]
    assert environ["FERRO_STATIC"] == {"type": "str", "value": "static value"}
    assert environ["FERRO_VAR"] == {"type": "str", "value": "GET 42"}
    assert environ["FERRO_KEPT"] == {"type": "str", "value": "yes"}
    assert environ["FERRO_EMPTY"] == {"type": "str", "value": ""}
    assert "FERRO_SKIPPED" not in environ  # if_not_empty and $arg_missing is empty
    assert environ["REMOTE_ADDR"]["value"] == "10.9.8.7"  # params override derived values


def test_if_not_empty_param_skipped_only_when_empty(basic):
    environ = get_environ(basic.url("/params/env?x=1"))["environ"]
    assert "FERRO_KEPT" not in environ
    assert "FERRO_SKIPPED" not in environ
    assert environ["FERRO_VAR"]["value"] == "GET 1"


def test_script_name_param_splits_path_info(basic):
    environ = get_environ(basic.url("/mount/env/sub?y=1"))["environ"]
    assert environ["SCRIPT_NAME"]["value"] == "/mount"
    assert environ["PATH_INFO"]["value"] == "/env/sub"
    assert environ["QUERY_STRING"]["value"] == "y=1"
    assert environ["REQUEST_URI"]["value"] == "/mount/env/sub?y=1"


def test_sixty_request_headers_reach_the_app(basic):
    sent = {"X-Test-%02d" % i: "value-%d-%s" % (i, "v" * i) for i in range(60)}
    response = requests.get(basic.url("/headers"), headers=sent, timeout=30)
    assert response.status_code == 200, response.text
    got = response.json()
    for name, value in sent.items():
        assert got["HTTP_" + name.upper().replace("-", "_")] == value


def test_eight_kib_header_reaches_the_app(basic):
    big = os.urandom(4096).hex()  # 8192 characters
    response = requests.get(basic.url("/headers"), headers={"X-Big": big}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["HTTP_X_BIG"] == big


def test_tcp_bind_serves_through_host_port_pass(basic):
    response = requests.get(basic.url("/tcp/hello"), timeout=30)
    assert response.status_code == 200
    assert response.content == b"Hello, world!\n"


def test_upstream_block_with_keepalive_serves_a_sequence(basic):
    """ferrocorn_pass <upstream> with keepalive: reused connections stay in step."""
    with requests.Session() as session:
        for i in range(20):
            body = os.urandom(i * 997)
            echoed = session.post(basic.url("/pool/echo"), data=body, timeout=30)
            assert echoed.status_code == 200
            assert echoed.content == body
            hello = session.get(basic.url("/pool/hello"), timeout=30)
            assert hello.status_code == 200
            assert hello.content == b"Hello, world!\n"


def test_repeated_request_headers_are_joined(basic):
    request = get_request("/headers", extra=b"X-Dup: first\r\nX-Dup: second\r\n")
    response = RawResponse(raw_exchange(basic.port, request))
    assert response.status == 200
    assert json.loads(response.body)["HTTP_X_DUP"] in ("first,second", "first, second")


def test_http10_request_protocol(basic):
    response = RawResponse(raw_exchange(basic.port, get_request("/env", version="HTTP/1.0")))
    assert response.status == 200
    assert json.loads(response.body)["environ"]["SERVER_PROTOCOL"]["value"] == "HTTP/1.0"


def test_ferrocorn_pass_inside_if(basic, broken):
    alternative = requests.get(basic.url("/iftest/ok?alt=1"), timeout=30)
    assert alternative.status_code == 200
    assert alternative.content.startswith(b"ok ")
    default = requests.get(basic.url("/iftest/hello"), timeout=30)
    assert default.status_code == 200
    assert default.content == b"Hello, world!\n"


def test_long_query_string(basic):
    query = "&".join("k%d=%s" % (i, "v" * 50) for i in range(110))  # about 6 KiB
    environ = get_environ(basic.url("/env?" + query))["environ"]
    assert environ["QUERY_STRING"]["value"] == query
