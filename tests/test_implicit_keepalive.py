"""The README's own config, `ferrocorn_pass unix:PATH;` with no `upstream {}`
block, keeps its connections to the supervisor alive (`ferrocorn_keepalive`,
default 32 per nginx worker process); `ferrocorn_keepalive off` closes each
one after its request; an `upstream {}` block keeps what its author wrote.

The signal is the kernel's: the connections the worker has accepted on its
socket, with their inodes, as `ss -x` lists them. One kept-alive connection
is the same inode, still open, after every request.
"""

import subprocess

import pytest
import requests

from servers import Ferrocorn, Nginx, free_port, wait_until


def accepted_inodes(path):
    """Inodes of the connections accepted on unix socket `path` and open."""
    out = subprocess.run(["ss", "-xHa", "src", str(path)], capture_output=True, text=True, check=True).stdout
    return {line.split()[5] for line in out.splitlines() if line.split()[1] == "ESTAB"}


@pytest.fixture
def app(scratch):
    server = Ferrocorn(scratch, "app", "basic:app", workers=1)
    try:
        yield server.start().wait_ready()
    finally:
        server.stop()


def start_nginx(scratch, location, http_extra=""):
    return Nginx(scratch, "nginx", free_port(), "        location / { %s }\n" % location, http_extra).start().wait_ready()


def get_hellos(nginx, sock, count=5):
    """`count` requests one after the other; the worker's open connections
    after each."""
    seen = []
    for i in range(count):
        response = requests.get(nginx.url("/hello/%d" % i), timeout=30)
        assert response.status_code == 200, response.text
        seen.append(accepted_inodes(sock))
    return seen


def test_plain_pass_reuses_one_connection(scratch, app):
    nginx = start_nginx(scratch, "ferrocorn_pass unix:%s;" % app.sock)
    try:
        seen = get_hellos(nginx, app.sock)
    finally:
        nginx.stop()
    assert len(seen[0]) == 1, seen
    assert all(s == seen[0] for s in seen), "a new connection per request: %s" % seen


def test_locations_passing_to_one_address_share_its_connections(scratch, app):
    """Two locations, one address: one implicit upstream, one cache."""
    locations = "ferrocorn_pass unix:%s; } location /two/ { ferrocorn_pass unix:%s;" % (app.sock, app.sock)
    nginx = start_nginx(scratch, locations, "ferrocorn_keepalive 4;")
    try:
        for path in ("/hello/a", "/two/hello/b", "/hello/c", "/two/hello/d"):
            assert requests.get(nginx.url(path), timeout=30).status_code == 200
        first = accepted_inodes(app.sock)
        assert requests.get(nginx.url("/two/hello/e"), timeout=30).status_code == 200
        assert accepted_inodes(app.sock) == first
    finally:
        nginx.stop()
    assert len(first) == 1, first


def test_keepalive_off_closes_each_connection(scratch, app):
    nginx = start_nginx(scratch, "ferrocorn_pass unix:%s;" % app.sock, "ferrocorn_keepalive off;")
    try:
        for i in range(3):
            assert requests.get(nginx.url("/hello/%d" % i), timeout=30).status_code == 200
            assert wait_until(lambda: not accepted_inodes(app.sock), 10), accepted_inodes(app.sock)
    finally:
        nginx.stop()


def test_upstream_block_without_keepalive_stays_without(scratch, app):
    """The user's block is theirs: no `keepalive` there, none added."""
    nginx = start_nginx(scratch, "ferrocorn_pass mine;", "upstream mine { server unix:%s; }" % app.sock)
    try:
        for i in range(3):
            assert requests.get(nginx.url("/hello/%d" % i), timeout=30).status_code == 200
            assert wait_until(lambda: not accepted_inodes(app.sock), 10), accepted_inodes(app.sock)
    finally:
        nginx.stop()


def test_keepalive_requests_bounds_a_connection(scratch, app):
    """`ferrocorn_keepalive_requests 2`: nginx closes a connection after its
    second request, so the third goes out on a new one."""
    extra = "ferrocorn_keepalive 8; ferrocorn_keepalive_timeout 30s; ferrocorn_keepalive_time 10m; ferrocorn_keepalive_requests 2;"
    nginx = start_nginx(scratch, "ferrocorn_pass unix:%s;" % app.sock, extra)
    try:
        (first,) = get_hellos(nginx, app.sock, count=1)
        get_hellos(nginx, app.sock, count=2)
        later = wait_until(lambda: (lambda s: s if len(s) == 1 and s != first else None)(accepted_inodes(app.sock)), 10)
    finally:
        nginx.stop()
    assert len(first) == 1, first
    assert later and later.isdisjoint(first), (first, accepted_inodes(app.sock))


BAD = {
    "zero": ("ferrocorn_keepalive 0;", "ferrocorn_keepalive"),
    "negative": ("ferrocorn_keepalive -1;", "ferrocorn_keepalive"),
    "word": ("ferrocorn_keepalive many;", "ferrocorn_keepalive"),
    "duplicate": ("ferrocorn_keepalive 4; ferrocorn_keepalive 8;", "ferrocorn_keepalive"),
    "timeout": ("ferrocorn_keepalive_timeout soon;", "ferrocorn_keepalive_timeout"),
    "time": ("ferrocorn_keepalive_time later;", "ferrocorn_keepalive_time"),
    "requests": ("ferrocorn_keepalive_requests lots;", "ferrocorn_keepalive_requests"),
}


@pytest.mark.parametrize("http_extra,directive", BAD.values(), ids=BAD.keys())
def test_bad_keepalive_values_fail_naming_the_directive(scratch, http_extra, directive):
    nginx = Nginx(scratch, "conf", free_port(), "        location / { ferrocorn_pass unix:/tmp/x.sock; }\n", http_extra)
    code, output = nginx.check_config()
    assert code != 0, output
    assert "[emerg]" in output and '"%s"' % directive in output, output


def test_keepalive_belongs_to_the_http_level(scratch):
    """The cache belongs to the address, shared by every location passing
    to it: one setting for all, in http {}."""
    location = "        location / { ferrocorn_pass unix:/tmp/x.sock; ferrocorn_keepalive 4; }\n"
    code, output = Nginx(scratch, "conf", free_port(), location).check_config()
    assert code != 0, output
    assert '"ferrocorn_keepalive" directive is not allowed here' in output, output
