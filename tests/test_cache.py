"""ferrocorn_cache*: nginx answers repeated requests from its cache without
reaching Python; X-Accel-Expires from the app sets the lifetime."""

import uuid

import pytest
import requests

from parity import alerts_checked, quit_promptly, start_parity  # noqa: F401

LOCATIONS = """\
        location /cache/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_cache fc;
            ferrocorn_cache_key $request_uri;
            ferrocorn_cache_valid 200 1m;
            ferrocorn_cache_bypass $arg_nocache;
            ferrocorn_cache_lock on;
            ferrocorn_cache_use_stale error timeout updating;
            add_header X-Cache $upstream_cache_status always;
        }}
        location /accel-cache/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_cache fc;
            ferrocorn_cache_key $request_uri;
            add_header X-Cache $upstream_cache_status always;
        }}
        location /uncached/ {{
            ferrocorn_pass unix:{w}/app.sock;
            add_header X-Cache $upstream_cache_status always;
        }}
"""

HTTP = """\
    ferrocorn_cache_path {shared}/cache levels=1:2 keys_zone=fc:1m inactive=10m;
    ferrocorn_param PARITY_DIR {shared};
"""


@pytest.fixture(scope="module")
def stack(module_servers, workdir):
    stack = start_parity(module_servers, workdir, "cache", LOCATIONS, http_extra=HTTP)
    yield stack
    quit_promptly(stack.nginx)


def name():
    return uuid.uuid4().hex[:12]


def test_second_request_is_served_from_cache(alerts_checked):
    stack, n = alerts_checked, name()
    first = requests.get(stack.url("/cache/counted?name=%s" % n))
    second = requests.get(stack.url("/cache/counted?name=%s" % n))
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    assert second.headers["X-Cache"] == "HIT"
    assert first.content == second.content == b"counted " + n.encode()
    assert second.headers["Content-Length"] == str(len(second.content))
    assert stack.hits(n) == 1


def test_head_after_get_is_a_hit_without_body(alerts_checked):
    stack, n = alerts_checked, name()
    requests.get(stack.url("/cache/counted?name=%s" % n))
    head = requests.head(stack.url("/cache/counted?name=%s" % n))
    assert head.status_code == 200 and head.headers["X-Cache"] == "HIT" and head.content == b""
    assert stack.hits(n) == 1


def test_cache_bypass_reaches_the_app(alerts_checked):
    stack, n = alerts_checked, name()
    requests.get(stack.url("/cache/counted?name=%s" % n))
    bypass = requests.get(stack.url("/cache/counted?name=%s&nocache=1" % n))
    assert bypass.headers["X-Cache"] == "BYPASS"
    assert stack.hits(n) == 2


def test_conditional_requests_are_answered_by_nginx(alerts_checked):
    stack, n = alerts_checked, name()
    since = {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    url = stack.url("/cache/counted?name=%s&h_Last-Modified=Mon,%%2001%%20Jan%%202024%%2000:00:00%%20GMT" % n)
    first = requests.get(url, headers=since)
    assert (first.status_code, first.headers["X-Cache"]) == (304, "MISS")
    # The app was not shown the condition, so nginx stored a full 200 ...
    full = requests.get(url)
    assert (full.status_code, full.headers["X-Cache"], full.content) == (200, "HIT", b"counted " + n.encode())
    # ... and answers conditions from it.
    again = requests.get(url, headers=since)
    assert (again.status_code, again.headers["X-Cache"]) == (304, "HIT")
    assert stack.hits(n) == 1


def test_x_accel_expires_makes_a_response_cacheable(alerts_checked):
    stack, n = alerts_checked, name()
    url = stack.url("/accel-cache/counted?name=%s&h_X-Accel-Expires=60" % n)
    first, second = requests.get(url), requests.get(url)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert "X-Accel-Expires" not in second.headers
    assert stack.hits(n) == 1


def test_x_accel_expires_zero_is_never_cached(alerts_checked):
    stack, n = alerts_checked, name()
    url = stack.url("/cache/counted?name=%s&h_X-Accel-Expires=0" % n)
    first, second = requests.get(url), requests.get(url)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "MISS")
    assert stack.hits(n) == 2


def test_without_ferrocorn_cache_every_request_reaches_the_app(alerts_checked):
    stack, n = alerts_checked, name()
    for _ in range(3):
        assert requests.get(stack.url("/uncached/counted?name=%s" % n)).status_code == 200
    assert stack.hits(n) == 3
