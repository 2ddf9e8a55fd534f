"""The module built for Debian's own nginx package (1.22 on Debian 12) by
scripts/build-system-nginx.sh: `/usr/sbin/nginx -t` accepts it and real
requests go through it to ferrocorn, over a connection kept alive without
an upstream block (nginx's keepalive module, put on the implicit upstream by
`ferrocorn_keepalive`).

The module is built on first use (several minutes; later runs reuse it).
Skipped only when Debian's nginx cannot be installed on this machine.
"""

import shutil
import subprocess
import uuid

import pytest
import requests

from parity import alerts_checked, quit_promptly, start_parity  # noqa: F401
from servers import REPO, Ferrocorn, Nginx, free_port
from test_implicit_keepalive import get_hellos

SYSTEM_NGINX = "/usr/sbin/nginx"
SYSTEM_MODULE = REPO / "dist-system" / "modules" / "ngx_http_ferrocorn_module.so"
BUILD_SCRIPT = REPO / "scripts" / "build-system-nginx.sh"


def debian_nginx_available():
    """Debian's nginx is installed or installable."""
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        return False
    found = subprocess.run(["apt-cache", "show", "nginx-dev"], capture_output=True)
    return found.returncode == 0


@pytest.fixture(scope="module")
def system_module():
    if debian_nginx_available():
        # Always through the build script: the configured source and cargo's
        # output are cached, so an unchanged module costs seconds and a
        # changed one is never tested (or packaged) stale.
        built = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, timeout=3600)
        assert built.returncode == 0, built.stderr.decode(errors="replace")[-4000:]
    elif not SYSTEM_MODULE.exists() or not shutil.which(SYSTEM_NGINX):
        pytest.skip("Debian's nginx and nginx-dev packages are not available here")
    return SYSTEM_MODULE


class SystemNginx(Nginx):
    """Debian's /usr/sbin/nginx with the module built for it."""

    def __init__(self, workdir, name, port, locations, http_extra=""):
        super().__init__(workdir, name, port, locations, http_extra)
        conf = self.conf.read_text()
        self.conf.write_text(conf.replace(conf.splitlines()[0], "load_module %s;" % SYSTEM_MODULE, 1))

    def args(self, *extra):
        return [SYSTEM_NGINX] + super().args(*extra)[1:]


LOCATIONS = """\
        location /app/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_param PARITY_DIR {shared};
        }}
        location /cached/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_param PARITY_DIR {shared};
            ferrocorn_cache fc;
            ferrocorn_cache_key $request_uri;
            ferrocorn_cache_valid 200 1m;
            ferrocorn_limit_rate 1m;
            add_header X-Cache $upstream_cache_status always;
        }}
        location /unbuffered/ {{
            ferrocorn_pass unix:{w}/app.sock;
            ferrocorn_param PARITY_DIR {shared};
            ferrocorn_buffering off;
            ferrocorn_request_buffering off;
        }}
"""

HTTP = """\
    ferrocorn_cache_path {shared}/cache keys_zone=fc:1m;
    proxy_temp_path {shared}/proxy_temp;
    fastcgi_temp_path {shared}/fastcgi_temp;
    uwsgi_temp_path {shared}/uwsgi_temp;
    scgi_temp_path {shared}/scgi_temp;
"""


@pytest.fixture(scope="module")
def stack(system_module, module_servers, workdir, monkeypatch_module):
    monkeypatch_module.setattr("parity.Nginx", SystemNginx)
    stack = start_parity(module_servers, workdir, "system", LOCATIONS, http_extra=HTTP)
    yield stack
    quit_promptly(stack.nginx)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_debian_nginx_accepts_the_module(stack):
    assert stack.nginx.args()[0] == SYSTEM_NGINX
    version = subprocess.run([SYSTEM_NGINX, "-v"], capture_output=True, text=True).stderr
    assert "nginx/1." in version
    result = subprocess.run(stack.nginx.args("-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_requests_through_debian_nginx(alerts_checked):
    stack = alerts_checked
    env = requests.get(stack.url("/app/environ?x=1"), headers={"X-Test": "yes"}).json()
    assert env["QUERY_STRING"] == "x=1" and env["HTTP_X_TEST"] == "yes"
    body = b"payload " * 5000
    echoed = requests.post(stack.url("/unbuffered/environ"), data=body).json()
    assert echoed["body"] == body.decode() and echoed["CONTENT_LENGTH"] == str(len(body))


def test_cache_through_debian_nginx(alerts_checked):
    stack, n = alerts_checked, uuid.uuid4().hex[:10]
    first = requests.get(stack.url("/cached/counted?name=%s" % n))
    second = requests.get(stack.url("/cached/counted?name=%s" % n))
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.content == b"counted " + n.encode()
    assert stack.hits(n) == 1


def test_debian_nginx_keeps_a_plain_address_alive(system_module, scratch):
    app = Ferrocorn(scratch, "app", "basic:app", workers=1)
    nginx = SystemNginx(
        scratch, "nginx", free_port(), "        location / { ferrocorn_pass unix:%s; }\n" % app.sock,
        HTTP.format(shared=scratch),
    )
    try:
        app.start().wait_ready()
        nginx.start().wait_ready()
        seen = get_hellos(nginx, app.sock)
    finally:
        nginx.stop()
        app.stop()
    assert len(seen[0]) == 1 and all(s == seen[0] for s in seen), seen


def test_system_nginx_port_is_free_for_tests():
    # Installing Debian's nginx must not have started its service on :80.
    probe = free_port()
    assert probe != 80
    result = subprocess.run(["ss", "-ltn", "sport = :80"], capture_output=True, text=True)
    assert ":80 " not in result.stdout
