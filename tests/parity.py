"""Shared pieces of the nginx-parity tests (test_directives, test_cache,
test_streaming, test_balancing, test_system_nginx): an nginx of the
test module's own in front of ferrocorns serving apps/parity.py, and the
checks every such test ends with.

Each module builds its stack once (module scope); after every test the
module's nginx error log must hold no `[alert]` and no `[crit]` line, and
at module end `nginx -s quit` must finish promptly (a leaked upstream
connection or request would keep the worker alive).
"""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from servers import STOP_TIMEOUT, Ferrocorn, Nginx, free_port, wait_until

QUIT_TIMEOUT = 10.0


def module_dir(workdir, name):
    """A directory every process may write: app markers and counters,
    ferrocorn_store files (written by nginx's `nobody` workers)."""
    path = Path(tempfile.mkdtemp(prefix=name + "-", dir=workdir))
    os.chmod(path, 0o777)
    return path


class ParityStack:
    """One nginx (config given by the test module) and its ferrocorns."""

    def __init__(self, nginx, servers, shared):
        self.nginx = nginx
        self.servers = servers
        self.shared = shared
        self.port = nginx.port

    def url(self, path):
        return self.nginx.url(path)

    def hits(self, name):
        """How many times apps/parity.py's counted endpoint ran for name."""
        try:
            return (self.shared / ("hits-" + name)).stat().st_size
        except FileNotFoundError:
            return 0


def start_parity(start, workdir, name, locations, upstreams="", http_extra="", ferrocorns=None):
    """Starts the ferrocorns (name -> extra args), then nginx.

    `locations`/`upstreams` are format strings; they see `{shared}` (the
    module's shared dir), `{w}` (its socket dir) and `{port_NAME}` for every
    port asked for in `ferrocorns` values as ("port", NAME, "FORMAT %d").
    """
    shared = module_dir(workdir, name)
    sockdir = module_dir(workdir, name + "-s")
    fields = {"shared": shared, "w": sockdir}
    servers = {}
    for server_name, extra in (ferrocorns or {"app": []}).items():
        args = []
        for arg in extra:
            if isinstance(arg, tuple) and arg[0] == "port":
                port = free_port()
                fields["port_" + arg[1]] = port
                args.append(arg[2] % port)
            else:
                args.append(arg)
        workers = 1 if "--one-worker" in args else 2
        args = [a for a in args if a != "--one-worker"]
        server = Ferrocorn(sockdir, server_name, "parity:app", workers=workers, extra_args=args)
        servers[server_name] = start(server)
    http = (upstreams + http_extra).format(**fields)
    nginx = Nginx(workdir, name, free_port(), locations.format(**fields), http)
    start(nginx)
    return ParityStack(nginx, servers, shared)


def assert_no_alerts(nginx, since):
    text = nginx.error_log.text(since)
    bad = [line for line in text.splitlines() if "[alert]" in line or "[crit]" in line]
    assert not bad, "nginx logged alerts:\n" + "\n".join(bad)


@pytest.fixture
def alerts_checked(request):
    """Use with a module's `stack` fixture: no [alert]/[crit] after the test."""
    stack = request.getfixturevalue("stack")
    mark = stack.nginx.error_log.mark()
    yield stack
    assert_no_alerts(stack.nginx, mark)


def quit_promptly(nginx):
    """`nginx -s quit` (SIGQUIT to the master) must end nginx within
    QUIT_TIMEOUT: nothing may hold a worker open."""
    os.kill(nginx.proc.pid, signal.SIGQUIT)
    try:
        nginx.proc.wait(timeout=QUIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("nginx did not quit within %.0fs" % QUIT_TIMEOUT)


def wait_file(path, timeout=10.0):
    return wait_until(lambda: Path(path).exists(), timeout)


__all__ = [
    "ParityStack",
    "alerts_checked",
    "assert_no_alerts",
    "module_dir",
    "quit_promptly",
    "start_parity",
    "wait_file",
    "STOP_TIMEOUT",
    "time",
]
