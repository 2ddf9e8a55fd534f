"""Fixtures for the end-to-end suite: one nginx and a few ferrocorn servers.

One nginx (session-scoped) routes every location of the suite; each app
group has its own session-scoped ferrocorn behind a unix socket in a 0755
work directory under /tmp (nginx workers run as `nobody`). Locations whose
upstream a test starts itself (/dedicated/, /fake/) or never starts
(/down/, /refused/) are part of the same config.

On a failing test, the lines each live server logged during that test are
attached to the report. After every test, the ferrocorn logs must not
mention a WSGIWarning or an unclosed response iterable (the validator
reports both).
"""

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from fake_upstream import FakeUpstream
from servers import Ferrocorn, Nginx, free_port

# The suite runs as root in CI; its servers run the test apps as root on
# purpose (ferrocorn otherwise refuses; test_permissions checks that).
if os.geteuid() == 0:
    os.environ["FERROCORN_ALLOW_ROOT"] = "1"

# Every server started by a fixture, for failure reports and log checks.
LIVE_SERVERS = []

LOCATIONS = """\
        location / {{
            ferrocorn_pass unix:{w}/basic.sock;
        }}
        location /raw/ {{
            ferrocorn_pass unix:{w}/raw.sock;
        }}
        location /mount/ {{
            ferrocorn_pass unix:{w}/basic.sock;
            ferrocorn_param SCRIPT_NAME /mount;
        }}
        location /params/ {{
            ferrocorn_pass unix:{w}/basic.sock;
            ferrocorn_param FERRO_STATIC "static value";
            ferrocorn_param FERRO_VAR "$request_method $arg_x";
            ferrocorn_param FERRO_SKIPPED $arg_missing if_not_empty;
            ferrocorn_param FERRO_KEPT $arg_present if_not_empty;
            ferrocorn_param FERRO_EMPTY $arg_missing;
            ferrocorn_param REMOTE_ADDR 10.9.8.7;
        }}
        location /smallbody/ {{
            ferrocorn_pass unix:{w}/basic.sock;
            client_body_buffer_size 1k;
        }}
        location /unbuffered/ {{
            ferrocorn_pass unix:{w}/basic.sock;
            ferrocorn_buffering off;
        }}
        location /tinybuffers/ {{
            ferrocorn_pass unix:{w}/basic.sock;
            ferrocorn_buffer_size 4k;
            ferrocorn_buffers 4 4k;
        }}
        location /pool/ {{
            ferrocorn_pass basic_pool;
        }}
        location /pool-streamed/ {{
            ferrocorn_pass basic_pool;
            ferrocorn_request_buffering off;
        }}
        location /tcp/ {{
            ferrocorn_pass 127.0.0.1:{basic_tcp};
        }}
        location /timeout/ {{
            ferrocorn_pass unix:{w}/basic.sock;
            ferrocorn_read_timeout 1s;
        }}
        location /broken/ {{
            ferrocorn_pass unix:{w}/broken.sock;
        }}
        location /flask/ {{
            ferrocorn_pass unix:{w}/flask.sock;
        }}
        location /dedicated/ {{
            ferrocorn_pass unix:{w}/dedicated.sock;
        }}
        location /dedicated-pool/ {{
            ferrocorn_pass dedicated_pool;
        }}
        location /dedicated-fresh/ {{
            ferrocorn_pass dedicated_fresh;
        }}
        location /iftest/ {{
            if ($arg_alt) {{
                ferrocorn_pass unix:{w}/broken.sock;
            }}
            ferrocorn_pass unix:{w}/basic.sock;
        }}
        location /fake/ {{
            ferrocorn_pass unix:{w}/fake.sock;
        }}
        location /fake-unbuffered/ {{
            ferrocorn_pass unix:{w}/fake.sock;
            ferrocorn_buffering off;
        }}
        location /fake-pool/ {{
            ferrocorn_pass fake_pool;
        }}
        location /down/ {{
            ferrocorn_pass unix:{w}/missing.sock;
        }}
        location /refused/ {{
            ferrocorn_pass 127.0.0.1:{refused};
        }}
"""

UPSTREAMS = """\
    upstream basic_pool {{
        server unix:{w}/basic.sock;
        keepalive 4;
    }}
    upstream dedicated_pool {{
        server unix:{w}/dedicated.sock;
        keepalive 4;
    }}
    # No keepalive: a connection per request, so consecutive requests reach
    # every worker (a kept-alive connection stays with the worker that
    # accepted it).
    upstream dedicated_fresh {{
        server unix:{w}/dedicated.sock;
    }}
    upstream fake_pool {{
        server unix:{w}/fake.sock;
        keepalive 4;
    }}
"""


@pytest.fixture(scope="session")
def workdir():
    """A 0755 directory under /tmp: sockets and logs nginx's `nobody` can reach."""
    path = Path(tempfile.mkdtemp(prefix="ferrocorn-e2e-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    if not os.environ.get("FERROCORN_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ports():
    return {"http": free_port(), "basic_tcp": free_port(), "refused": free_port()}


def _start(server):
    LIVE_SERVERS.append(server)
    try:
        return server.start().wait_ready()
    except Exception:
        server.stop()
        raise


def _stop(server):
    """Stops a server; it stays listed until the current test's log check ran."""
    server.stop()
    server.stopped = True


@pytest.fixture(scope="session")
def nginx(workdir, ports):
    server = Nginx(
        workdir,
        "nginx",
        ports["http"],
        LOCATIONS.format(w=workdir, basic_tcp=ports["basic_tcp"], refused=ports["refused"]),
        UPSTREAMS.format(w=workdir),
    )
    yield _start(server)
    _stop(server)


def _ferrocorn_fixture(workdir, name, app, **kwargs):
    server = Ferrocorn(workdir, name, app, **kwargs)
    _start(server)
    return server


@pytest.fixture(scope="session")
def basic_server(workdir, ports):
    """basic:app (validator-wrapped), on a unix socket and on TCP."""
    server = _ferrocorn_fixture(workdir, "basic", "basic:app", tcp_port=ports["basic_tcp"])
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def raw_server(workdir):
    """basic:raw_app, the same endpoints without the validator."""
    server = _ferrocorn_fixture(workdir, "raw", "basic:raw_app")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def broken_server(workdir):
    server = _ferrocorn_fixture(workdir, "broken", "broken:app")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def flask_server(workdir):
    server = _ferrocorn_fixture(workdir, "flask", "flaskapp:app", extra_args=["--virtualenv", sys.prefix])
    yield server
    _stop(server)


class Stack:
    """nginx in front of one ferrocorn: what most tests talk to."""

    def __init__(self, nginx, ferrocorn):
        self.nginx = nginx
        self.ferrocorn = ferrocorn
        self.port = nginx.port

    def url(self, path):
        return self.nginx.url(path)


@pytest.fixture
def basic(nginx, basic_server):
    return Stack(nginx, basic_server)


@pytest.fixture
def raw(nginx, raw_server):
    return Stack(nginx, raw_server)


@pytest.fixture
def broken(nginx, broken_server):
    return Stack(nginx, broken_server)


@pytest.fixture
def flask_stack(nginx, flask_server):
    return Stack(nginx, flask_server)


@pytest.fixture(scope="module")
def module_servers():
    """Starts servers a test module brings itself (its own nginx site, its own apps); stops them after the module.

    Call it with a `Nginx` or `Ferrocorn`; it returns the server once it answers.
    """
    started = []

    def start(server):
        started.append(server)
        return _start(server)

    yield start
    for server in reversed(started):
        _stop(server)


@pytest.fixture
def start_dedicated(workdir, nginx):
    """Starts a ferrocorn of this test's own behind /dedicated/ (2 workers; other
    keywords, such as `program`, `chdir` or `env`, as for `Ferrocorn`)."""
    started = []

    def start(app="basic:app", extra_args=(), workers=2, **kwargs):
        server = Ferrocorn(workdir, "dedicated", app, workers=workers, extra_args=extra_args, **kwargs)
        started.append(server)
        _start(server)
        return Stack(nginx, server)

    yield start
    for server in started:
        _stop(server)


@pytest.fixture
def dedicated(start_dedicated):
    """basic:app on a ferrocorn of this test's own behind /dedicated/."""
    return start_dedicated()


@pytest.fixture
def fake_upstream(workdir, nginx):
    """A fake worker behind /fake/; set `.reply` to the bytes it answers."""
    upstream = FakeUpstream(workdir / "fake.sock")
    yield upstream
    upstream.stop()


@pytest.fixture
def scratch(workdir, request):
    """A fresh 0755 directory for one test's own files and processes."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:32]
    path = Path(tempfile.mkdtemp(prefix=name + "-", dir=workdir))  # short: unix socket paths max 107 bytes
    os.chmod(path, 0o755)
    return path


def _log_marks():
    marks = {}
    for server in LIVE_SERVERS:
        for log in _logs_of(server):
            marks[str(log.path)] = log.mark()
    return marks


def _logs_of(server):
    if isinstance(server, Ferrocorn):
        return [server.log, server.stderr]
    return [server.error_log, server.stderr]


@pytest.fixture(autouse=True)
def _server_logs_clean(request):
    """After each test: no WSGIWarning and no unclosed iterable in ferrocorn logs."""
    request.node._log_marks = _log_marks()
    yield
    problems = []
    for server in LIVE_SERVERS:
        if not isinstance(server, Ferrocorn):
            continue
        for log in _logs_of(server):
            text = log.text(request.node._log_marks.get(str(log.path), 0))
            for needle in ("WSGIWarning", "garbage collected without being closed"):
                if needle in text:
                    problems.append("%s mentions %r:\n%s" % (log.title, needle, text[-4000:]))
    LIVE_SERVERS[:] = [server for server in LIVE_SERVERS if not getattr(server, "stopped", False)]
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach what each live server logged during a failing test."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    marks = getattr(item, "_log_marks", {})
    for server in LIVE_SERVERS:
        for log in _logs_of(server):
            text = log.tail(60, since=marks.get(str(log.path), 0))
            if text.strip():
                report.sections.append(("%s (during this test)" % log.title, text))
