"""A real Flask app (tests/apps/flaskapp.py) from the project venv: a JSON API, streaming, sessions and cookies.

The app runs on the suite's flask ferrocorn; this module puts its own nginx
site in front of it, as a user would write it: `/flask/` buffered (the
default) and `/flask/live/` with `ferrocorn_buffering off` for a response
that must reach the client while the app is still producing it.
"""

import json
import re

import pytest
import requests

from httpraw import RawResponse, decode_chunked, gated_exchange, get_request, raw_exchange
from servers import Nginx, free_port

SITE_LOCATIONS = """\
        location /flask/ {{
            ferrocorn_pass unix:{sock};
        }}
        location /flask/live/ {{
            ferrocorn_pass unix:{sock};
            ferrocorn_buffering off;
        }}
"""


@pytest.fixture(scope="module")
def site(workdir, flask_server, module_servers):
    return module_servers(Nginx(workdir, "nginx-flask", free_port(), SITE_LOCATIONS.format(sock=flask_server.sock)))


def flask_json_bytes(value):
    """The bytes Flask's JSON provider writes outside debug mode: compact, sorted keys, ASCII, a final newline."""
    return (json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")) + "\n").encode()


def test_json_list_byte_for_byte(site):
    response = requests.get(site.url("/flask/api/squares?n=5000"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    expected = flask_json_bytes([{"n": i, "square": i * i, "label": "nº%d" % i} for i in range(5000)])
    assert response.headers["Content-Length"] == str(len(expected))
    assert response.content == expected


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_json_echo_with_query_and_unicode(site, method):
    payload = {"name": "Zoë", "tags": ["a", "b"], "nested": {"ok": True, "n": None}, "emoji": "🦀"}
    response = requests.request(method, site.url("/flask/api/echo?x=1&x=2&y=%C3%A9"), json=payload, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"method": method, "data": payload, "args": {"x": ["1", "2"], "y": ["é"]}}


def test_malformed_json_is_a_400(site):
    response = requests.post(
        site.url("/flask/api/echo"), data=b'{"oops": ', headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 400
    assert b"Bad Request" in response.content


def test_api_404_is_json_and_405_names_the_allowed_methods(site):
    missing = requests.get(site.url("/flask/api/nothing-here"), timeout=30)
    assert missing.status_code == 404
    assert missing.content == flask_json_bytes({"error": "not found", "path": "/flask/api/nothing-here"})
    wrong_method = requests.get(site.url("/flask/api/echo"), timeout=30)
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["Allow"].split(", ")) == {"POST", "PUT", "PATCH", "OPTIONS"}


def test_streamed_lines_arrive_chunked_and_complete(site):
    count = 2000
    raw = RawResponse(raw_exchange(site.port, get_request("/flask/stream/lines?count=%d&tag=t%%C3%%A9" % count)))
    assert raw.status == 200
    assert raw.header("Content-Type") == "text/plain; charset=utf-8"
    assert raw.header("Content-Length") is None
    assert raw.header("Transfer-Encoding") == "chunked"
    expected = "".join("line %d of %d (té)\n" % (i + 1, count) for i in range(count)).encode()
    assert decode_chunked(raw.body) == expected


def test_stream_reaches_the_client_while_the_app_still_runs(site, scratch):
    gate_file = scratch / "open-the-gate"
    received = gated_exchange(site.port, "/flask/live/gate?path=%s" % gate_file, b"first\n", gate_file)
    response = RawResponse(received)
    assert response.status == 200
    assert decode_chunked(response.body) == b"first\nreleased\n"


def test_session_survives_requests_on_any_worker(site):
    session = requests.Session()
    for item in ("apple", "pear", "fig", "kiwi"):
        added = session.post(site.url("/flask/session/cart"), data={"item": item}, timeout=30)
        assert added.status_code == 200
    shown = session.get(site.url("/flask/session/cart"), timeout=30)
    assert shown.json() == {"cart": ["apple", "pear", "fig", "kiwi"]}
    assert requests.get(site.url("/flask/session/cart"), timeout=30).json() == {"cart": []}, "no cookie, no cart"

    tampered = requests.get(
        site.url("/flask/session/cart"), cookies={"session": session.cookies["session"][:-2] + "xx"}, timeout=30
    )
    assert tampered.json() == {"cart": []}, "a forged signature must not be trusted"

    cleared = session.post(site.url("/flask/session/clear"), timeout=30)
    assert cleared.json() == {"cart": []}
    assert session.get(site.url("/flask/session/cart"), timeout=30).json() == {"cart": []}


def test_cookies_with_attributes_round_trip(site):
    session = requests.Session()
    first = session.get(site.url("/flask/cookies/set?theme=dark"), timeout=30)
    assert first.json() == {"seen": None}
    set_cookies = first.raw.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 2, set_cookies
    theme = next(c for c in set_cookies if c.startswith("theme="))
    assert re.fullmatch(
        r"theme=dark; Expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT; Max-Age=3600; HttpOnly; "
        r"Path=/flask/; SameSite=Lax",
        theme,
    ), theme
    assert "visits=1; Path=/flask/" in set_cookies

    second = session.get(site.url("/flask/cookies/set?theme=light"), timeout=30)
    assert second.json() == {"seen": "dark"}
    assert session.get(site.url("/flask/cookies/show"), timeout=30).json() == {"theme": "light", "visits": "2"}

    forgotten = session.get(site.url("/flask/cookies/forget"), timeout=30)
    deletion = forgotten.headers["Set-Cookie"]
    assert deletion.startswith("theme=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0;"), deletion
    assert session.get(site.url("/flask/cookies/show"), timeout=30).json() == {"visits": "2"}
