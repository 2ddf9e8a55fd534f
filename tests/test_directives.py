"""The ferrocorn_* twins of the uwsgi_* directives: what nginx does for the
app (X-Accel-*, intercepted errors, hidden and passed headers, store) and
`nginx -t` accepting every directive with uwsgi's syntax."""

import time
import uuid

import pytest
import requests

from parity import alerts_checked, quit_promptly, start_parity  # noqa: F401
from servers import Nginx, free_port, wait_until

LOCATIONS = """\
        location /plain/ {{
            ferrocorn_pass unix:{w}/app.sock;
        }}
        location /protected/ {{
            internal;
            alias {shared}/protected/;
        }}
        location /errors/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_intercept_errors on;
            error_page 404 /custom-404.html;
        }}
        location = /custom-404.html {{
            internal;
            root {shared}/pages;
        }}
        location /hidden/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_hide_header X-Secret;
            ferrocorn_pass_header X-Accel-Charset;
        }}
        location /no-headers/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_pass_request_headers off;
        }}
        location /no-body/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_pass_request_body off;
        }}
        location /ignored/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_ignore_headers X-Accel-Redirect X-Accel-Limit-Rate;
        }}
        location /limited/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_limit_rate 40k;
        }}
        location /store/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_store on;
            ferrocorn_store_access user:rw group:rw all:r;
            ferrocorn_temp_path {shared}/store-temp;
            root {shared}/stored;
        }}
"""

HTTP = """\
    ferrocorn_param PARITY_DIR {shared};
"""


@pytest.fixture(scope="module")
def stack(module_servers, workdir):
    stack = start_parity(module_servers, workdir, "directives", LOCATIONS, http_extra=HTTP)
    (stack.shared / "protected").mkdir(mode=0o755)
    (stack.shared / "protected" / "report.bin").write_bytes(bytes(range(256)) * 400)
    (stack.shared / "pages").mkdir(mode=0o755)
    (stack.shared / "pages" / "custom-404.html").write_text("custom not found page\n")
    (stack.shared / "stored").mkdir()
    (stack.shared / "stored").chmod(0o777)  # nginx's workers (nobody) write there
    yield stack
    quit_promptly(stack.nginx)


def test_x_accel_redirect_serves_the_protected_file(alerts_checked):
    stack = alerts_checked
    r = requests.get(stack.url("/plain/accel-redirect?file=report.bin"))
    assert r.status_code == 200
    assert r.content == bytes(range(256)) * 400
    assert "X-Accel-Redirect" not in r.headers
    # The internal location itself is not reachable from outside.
    assert requests.get(stack.url("/protected/report.bin")).status_code == 404


def test_ignored_x_accel_redirect_reaches_the_client_untouched(alerts_checked):
    r = requests.get(alerts_checked.url("/ignored/accel-redirect?file=report.bin"))
    assert r.status_code == 200 and r.content == b"app body, replaced by nginx"


def timed_get(url):
    started = time.monotonic()
    r = requests.get(url)
    return r, time.monotonic() - started


def test_x_accel_limit_rate_slows_the_response(alerts_checked):
    # 120 KB at 40 KB/s cannot arrive in under ~2 s (lower bound only).
    r, took = timed_get(alerts_checked.url("/plain/accel-limit?size=122880&rate=40960"))
    assert r.status_code == 200 and len(r.content) == 122880
    assert "X-Accel-Limit-Rate" not in r.headers
    assert took >= 1.5


def test_ferrocorn_limit_rate_slows_the_response(alerts_checked):
    r, took = timed_get(alerts_checked.url("/limited/accel-limit?size=122880&rate=0"))
    assert r.status_code == 200 and len(r.content) == 122880
    assert took >= 1.5


def test_intercept_errors_serves_the_error_page(alerts_checked):
    stack = alerts_checked
    r = requests.get(stack.url("/errors/status?code=404"))
    assert r.status_code == 404 and r.text == "custom not found page\n"
    # Without interception the app's own page goes through.
    plain = requests.get(stack.url("/plain/status?code=404"))
    assert plain.status_code == 404 and plain.text == "page from the app\n"
    # Codes without an error_page pass through even when intercepting.
    other = requests.get(stack.url("/errors/status?code=410"))
    assert other.status_code == 410 and other.text == "page from the app\n"


def test_hide_header_and_pass_header(alerts_checked):
    stack = alerts_checked
    plain = requests.get(stack.url("/plain/response-headers"))
    assert plain.headers["X-Secret"] == "s3cr3t"
    assert "X-Accel-Charset" not in plain.headers  # hidden by default, as with uwsgi
    hidden = requests.get(stack.url("/hidden/response-headers"))
    assert "X-Secret" not in hidden.headers
    assert hidden.headers["X-Public"] == "yes"
    assert hidden.headers["X-Accel-Charset"] == "utf-8"


def test_pass_request_headers_off(alerts_checked):
    stack = alerts_checked
    r = requests.post(
        stack.url("/no-headers/environ"), data=b"abc", headers={"X-Custom": "1", "Content-Type": "text/x-test"}
    )
    env = r.json()
    assert not [k for k in env if k.startswith("HTTP_")]
    # CGI variables still come through, and so does the body.
    assert env["CONTENT_TYPE"] == "text/x-test" and env["CONTENT_LENGTH"] == "3" and env["body"] == "abc"
    with_headers = requests.get(stack.url("/plain/environ"), headers={"X-Custom": "1"}).json()
    assert with_headers["HTTP_X_CUSTOM"] == "1"


def test_pass_request_body_off(alerts_checked):
    r = requests.post(alerts_checked.url("/no-body/environ"), data=b"secret body")
    env = r.json()
    assert env["body"] == "" and "CONTENT_LENGTH" not in env
    assert env["REQUEST_METHOD"] == "POST"


def test_store_keeps_a_copy_of_the_response(alerts_checked):
    stack = alerts_checked
    name = uuid.uuid4().hex[:8]
    r = requests.get(stack.url("/store/counted?name=%s" % name))
    assert r.status_code == 200
    stored = stack.shared / "stored" / "store" / "counted"
    # nginx moves the stored copy into place when it finalizes the upstream,
    # which may be just after the client has the whole body.
    assert wait_until(stored.exists, 10), "no stored copy at %s" % stored
    assert stored.read_bytes() == b"counted " + name.encode()
    assert oct(stored.stat().st_mode & 0o777) == oct(0o664)


# Every directive of the family with a value in uwsgi's syntax.
ALL_DIRECTIVES = """\
        location / {
            ferrocorn_pass unix:/tmp/ferrocorn-config-test.sock;
            ferrocorn_param SCRIPT_NAME /app;
            ferrocorn_store off;
            ferrocorn_store_access user:rw group:r;
            ferrocorn_buffering on;
            ferrocorn_request_buffering off;
            ferrocorn_ignore_client_abort on;
            ferrocorn_bind 127.0.0.1;
            ferrocorn_socket_keepalive on;
            ferrocorn_connect_timeout 5s;
            ferrocorn_send_timeout 10s;
            ferrocorn_read_timeout 2m;
            ferrocorn_buffer_size 16k;
            ferrocorn_pass_request_headers on;
            ferrocorn_pass_request_body on;
            ferrocorn_intercept_errors on;
            ferrocorn_buffers 16 16k;
            ferrocorn_busy_buffers_size 32k;
            ferrocorn_force_ranges on;
            ferrocorn_limit_rate 100k;
            ferrocorn_cache zone1;
            ferrocorn_cache_key $scheme$host$request_uri;
            ferrocorn_cache_bypass $cookie_nocache $arg_nocache;
            ferrocorn_no_cache $http_pragma;
            ferrocorn_cache_valid 200 302 10m;
            ferrocorn_cache_valid any 1m;
            ferrocorn_cache_min_uses 2;
            ferrocorn_cache_max_range_offset 1m;
            ferrocorn_cache_use_stale error timeout updating http_500;
            ferrocorn_cache_methods GET HEAD POST;
            ferrocorn_cache_lock on;
            ferrocorn_cache_lock_timeout 3s;
            ferrocorn_cache_lock_age 4s;
            ferrocorn_cache_revalidate on;
            ferrocorn_cache_background_update on;
            ferrocorn_temp_path /tmp/ferrocorn-config-test-temp 1 2;
            ferrocorn_max_temp_file_size 10m;
            ferrocorn_temp_file_write_size 32k;
            ferrocorn_next_upstream error timeout invalid_header http_502 http_503 non_idempotent;
            ferrocorn_next_upstream_tries 3;
            ferrocorn_next_upstream_timeout 10s;
            ferrocorn_pass_header X-Accel-Charset;
            ferrocorn_hide_header X-Powered-By;
            ferrocorn_ignore_headers X-Accel-Expires Expires Cache-Control Set-Cookie Vary;
        }
        location /store/ {
            ferrocorn_pass unix:/tmp/ferrocorn-config-test.sock;
            ferrocorn_store /tmp/ferrocorn-config-test-store$uri;
        }
        location /dyncache/ {
            ferrocorn_pass unix:/tmp/ferrocorn-config-test.sock;
            ferrocorn_cache $arg_zone;
        }
"""

CACHE_PATH = """\
    ferrocorn_cache_path /tmp/ferrocorn-config-test-cache levels=1:2 keys_zone=zone1:1m max_size=10m;
"""


def check(scratch, locations, http_extra=CACHE_PATH):
    return Nginx(scratch, "conf", free_port(), locations, http_extra).check_config()


def test_every_uwsgi_twin_is_accepted(scratch):
    # http_502 is not a uwsgi value; take it out and nginx -t must pass.
    code, out = check(scratch, ALL_DIRECTIVES.replace(" http_502", ""))
    assert code == 0, out


@pytest.mark.parametrize(
    "directive, message",
    [
        ("ferrocorn_next_upstream error http_502;", 'invalid value "http_502"'),
        ("ferrocorn_cache nowhere;", '"ferrocorn_cache" zone "nowhere" is unknown'),
        ("ferrocorn_cache zone1; ferrocorn_store on;", 'is incompatible with "ferrocorn_cache"'),
        ("ferrocorn_cache zone1; ferrocorn_cache zone1;", '"ferrocorn_cache" directive is duplicate'),
        ("ferrocorn_ignore_headers X-Nothing;", 'invalid value "X-Nothing"'),
        ("ferrocorn_cache_methods PUT;", 'invalid value "PUT"'),
        ("ferrocorn_bind not-an-address;", 'invalid address "not-an-address"'),
        ("ferrocorn_request_buffering off; client_body_buffer_size 4m;", "client_body_buffer_size"),
    ],
)
def test_bad_values_fail_naming_the_directive(scratch, directive, message):
    location = "        location / {\n            ferrocorn_pass unix:/tmp/x.sock;\n            %s\n        }\n" % directive
    code, out = check(scratch, location)
    assert code != 0 and message in out, out


def test_no_cache_key_is_a_warning_not_an_error(scratch):
    location = "        location / {\n            ferrocorn_pass unix:/tmp/x.sock;\n            ferrocorn_cache zone1;\n        }\n"
    code, out = check(scratch, location)
    assert code == 0 and 'no "ferrocorn_cache_key" for "ferrocorn_cache"' in out, out


def test_cache_path_only_at_http_level(scratch):
    location = "        location / {\n            ferrocorn_cache_path /tmp/c keys_zone=z:1m;\n        }\n"
    code, out = check(scratch, location)
    assert code != 0 and '"ferrocorn_cache_path" directive is not allowed here' in out, out
