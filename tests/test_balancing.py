"""`ferrocorn_pass UPSTREAM`: nginx's balancers, backups, max_fails,
keepalive connection reuse and failover when a supervisor dies; TCP over
IPv4 and IPv6 loopback as well as unix sockets.

apps/parity.py's `whoami` says which supervisor served (its parent pid) and
which sockets the worker holds (the nginx connection among them).
"""

import os
import signal
import socket
import threading
import time

import pytest
import requests

from parity import alerts_checked, quit_promptly, start_parity  # noqa: F401
from servers import free_port

REFUSED = free_port()

UPSTREAMS = """\
    upstream rr {{ server unix:{w}/a.sock; server unix:{w}/b.sock; }}
    upstream weighted {{ server unix:{w}/a.sock weight=3; server unix:{w}/b.sock; }}
    upstream least {{ least_conn; server unix:{w}/a.sock; server unix:{w}/b.sock; }}
    upstream hashed {{ hash $arg_k; server unix:{w}/a.sock; server unix:{w}/b.sock; }}
    upstream iphash {{ ip_hash; server 127.0.0.1:{port_a}; server 127.0.0.1:{port_b}; }}
    upstream with_backup {{ server unix:{w}/a.sock; server unix:{w}/b.sock backup; }}
    upstream dead_primary {{ server 127.0.0.1:%(refused)d; server unix:{w}/b.sock backup; }}
    upstream max_fails {{
        server 127.0.0.1:%(refused)d max_fails=1 fail_timeout=60s;
        server unix:{w}/a.sock;
    }}
    upstream pooled {{ server unix:{w}/keep.sock; keepalive 2; }}
    upstream unpooled {{ server unix:{w}/keep.sock; }}
    upstream failover {{
        server unix:{w}/fa.sock;
        server unix:{w}/fb.sock;
        keepalive 8;
    }}
""" % {"refused": REFUSED}

LOCATIONS = """\
        location /rr/ {{ ferrocorn_pass rr; }}
        location /weighted/ {{ ferrocorn_pass weighted; }}
        location /least/ {{ ferrocorn_pass least; }}
        location /hashed/ {{ ferrocorn_pass hashed; }}
        location /iphash/ {{ ferrocorn_pass iphash; }}
        location /with-backup/ {{ ferrocorn_pass with_backup; }}
        location /dead-primary/ {{ ferrocorn_pass dead_primary; }}
        location /max-fails/ {{ ferrocorn_pass max_fails; }}
        location /tcp4/ {{ ferrocorn_pass 127.0.0.1:{port_a}; }}
        location /tcp6/ {{ ferrocorn_pass [::1]:{port_v6}; }}
        location /pooled/ {{ ferrocorn_pass pooled; }}
        location /not-pooled/ {{ ferrocorn_pass unpooled; }}
        location /implicit/ {{ ferrocorn_pass unix:{w}/keep.sock; }}
        location /failover/ {{
            ferrocorn_pass failover;
            ferrocorn_next_upstream error timeout;
            ferrocorn_connect_timeout 2s;
        }}
"""

HTTP = """\
    ferrocorn_param PARITY_DIR {shared};
"""


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAVE_IPV6 = ipv6_loopback()


@pytest.fixture(scope="module")
def stack(module_servers, workdir):
    ferrocorns = {
        "a": ["-b", ("port", "a", "127.0.0.1:%d")],
        "b": ["-b", ("port", "b", "127.0.0.1:%d")],
        "keep": ["--one-worker"],
        "fa": [],
        "fb": [],
    }
    if HAVE_IPV6:
        ferrocorns["v6"] = ["-b", ("port", "v6", "[::1]:%d")]
    locations = LOCATIONS if HAVE_IPV6 else LOCATIONS.replace("location /tcp6/", "location /no-tcp6/").replace(
        "[::1]:{port_v6}", "127.0.0.1:1"
    )
    stack = start_parity(
        module_servers, workdir, "balancing", locations, upstreams=UPSTREAMS, http_extra=HTTP, ferrocorns=ferrocorns
    )
    stack.names = {server.proc.pid: name for name, server in stack.servers.items()}
    yield stack
    quit_promptly(stack.nginx)


def who(stack, path):
    r = requests.get(stack.url(path))
    assert r.status_code == 200, r.text
    data = r.json()
    data["name"] = stack.names[data["supervisor"]]
    return data


def served_by(stack, path, n):
    return [who(stack, path)["name"] for _ in range(n)]


def test_round_robin_alternates(alerts_checked):
    names = served_by(alerts_checked, "/rr/whoami", 6)
    assert sorted(names) == ["a"] * 3 + ["b"] * 3
    assert all(x != y for x, y in zip(names, names[1:]))


def test_weights(alerts_checked):
    names = served_by(alerts_checked, "/weighted/whoami", 8)
    assert names.count("a") == 6 and names.count("b") == 2


def test_least_conn_uses_both(alerts_checked):
    assert set(served_by(alerts_checked, "/least/whoami", 6)) == {"a", "b"}


def test_hash_pins_a_key_to_one_server(alerts_checked):
    stack = alerts_checked
    for key in ("alpha", "beta", "gamma", "delta"):
        assert len(set(served_by(stack, "/hashed/whoami?k=%s" % key, 4))) == 1
    spread = {who(stack, "/hashed/whoami?k=key%d" % i)["name"] for i in range(20)}
    assert spread == {"a", "b"}


def test_ip_hash_pins_a_client(alerts_checked):
    assert len(set(served_by(alerts_checked, "/iphash/whoami", 6))) == 1


def test_backup_only_when_primaries_are_down(alerts_checked):
    assert set(served_by(alerts_checked, "/with-backup/whoami", 6)) == {"a"}
    assert set(served_by(alerts_checked, "/dead-primary/whoami", 6)) == {"b"}


def test_max_fails_takes_a_dead_server_out(alerts_checked):
    stack = alerts_checked
    mark = stack.nginx.error_log.mark()
    assert set(served_by(stack, "/max-fails/whoami", 10)) == {"a"}
    log = stack.nginx.error_log.text(mark)
    refusals = [line for line in log.splitlines() if "connect() failed" in line and ":%d" % REFUSED in line]
    # One failed connect marks it down for fail_timeout; no request failed.
    assert len(refusals) == 1 and "upstream server temporarily disabled" in log


def test_tcp_ipv4(alerts_checked):
    assert who(alerts_checked, "/tcp4/whoami")["name"] == "a"


@pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6 loopback on this machine")
def test_tcp_ipv6(alerts_checked):
    assert who(alerts_checked, "/tcp6/whoami")["name"] == "v6"


def test_keepalive_reuses_the_supervisor_connection(alerts_checked):
    stack = alerts_checked
    pooled = [tuple(who(stack, "/pooled/whoami")["sockets"]) for _ in range(5)]
    assert len(set(pooled)) == 1, pooled
    # An upstream block without `keepalive` stays without: its author's choice.
    fresh = [tuple(who(stack, "/not-pooled/whoami")["sockets"]) for _ in range(3)]
    assert len(set(fresh)) == 3, fresh
    # A plain address keeps its connections alive (ferrocorn_keepalive).
    implicit = [tuple(who(stack, "/implicit/whoami")["sockets"]) for _ in range(5)]
    assert len(set(implicit)) == 1, implicit


class Load:
    """Clients looping on one URL until stopped; every outcome counted."""

    def __init__(self, url, clients):
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.cut_mid_response = 0  # 200 head received, body cut short
        self.failed = []  # anything else: a request that failed before its response
        self.threads = [threading.Thread(target=self.run) for _ in range(clients)]

    def run(self):
        while not self.stop.is_set():
            outcome = None
            try:
                r = requests.get(self.url, timeout=20)
                body_ok = r.status_code == 200 and r.content.endswith(b"piece 2\n")
                outcome = "ok" if body_ok else "status %d %r" % (r.status_code, r.content[-80:])
            except requests.exceptions.ChunkedEncodingError:
                outcome = "cut"
            except requests.RequestException as e:
                outcome = repr(e)
            with self.lock:
                self.sent += 1
                if outcome == "ok":
                    self.ok += 1
                elif outcome == "cut":
                    self.cut_mid_response += 1
                else:
                    self.failed.append(outcome)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_failover_when_a_supervisor_is_killed(alerts_checked):
    stack = alerts_checked
    victim = stack.servers["fa"]
    url = stack.url("/failover/slow?n=3&delay=0.02")
    assert set(served_by(stack, "/failover/whoami", 4)) == {"fa", "fb"}
    with Load(url, clients=6) as load:
        time.sleep(1.5)
        os.killpg(victim.proc.pid, signal.SIGKILL)  # the supervisor and its workers
        victim.proc.wait(10)
        time.sleep(2.0)
    print(
        "failover: sent=%d ok=%d cut_mid_response=%d failed=%d"
        % (load.sent, load.ok, load.cut_mid_response, len(load.failed))
    )
    assert load.sent > 50
    assert load.failed == []
    # Afterwards every request goes to the survivor.
    assert set(served_by(stack, "/failover/whoami", 4)) == {"fb"}
