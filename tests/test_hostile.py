"""Hostile input on every boundary, against real nginx + module + ferrocorn.

- A peer that is not nginx on the supervisor's unix socket: garbage, huge
  and zero length prefixes, frames out of order, half frames then silence,
  random mutated frame streams. Each such connection is dropped with a log
  line, memory stays bounded, and requests through nginx go on meanwhile.
- HTTP-level: header spoofing (underscore vs dash), request smuggling
  (conflicting Content-Length / Transfer-Encoding, bad chunk sizes,
  duplicate Content-Length), oversized URIs and headers, invalid methods:
  refused by nginx, or passed so that the app sees one unambiguous body.
- Response side: CR/LF in app headers → 500 and a log line; a body longer
  or shorter than its Content-Length over a kept-alive upstream connection
  → the client's response is cut or capped and the next request on that
  connection is answered correctly; an error after the first body byte
  only cuts the response; start_response twice → 500.

This module runs its own nginx (two servers: the default one, and one with
`underscores_in_headers on`) and its own ferrocorn serving apps/hostile.py.
"""

import json
import os
import random
import socket
import struct
import threading
import time

import pytest
import requests
from conftest import _start, _stop
from fake_upstream import field_bytes, field_varint
from httpraw import RawResponse, curl, raw_exchange
from servers import Ferrocorn, Nginx, free_port, recording_dir, wait_until

# Frame members (protocol/proto/ferrocorn.proto).
REQUEST_HEAD = 1
REQUEST_BODY = 2
REQUEST_END = 3

HOSTILE_LOCATIONS = """\
        location / {{
            ferrocorn_pass unix:{sock};
            ferrocorn_param HOSTILE_SEEN {seen};
        }}
        location /pool/ {{
            ferrocorn_pass hostile_pool;
            ferrocorn_param HOSTILE_SEEN {seen};
        }}
        location /unbuffered/ {{
            ferrocorn_pass unix:{sock};
            ferrocorn_buffering off;
        }}
"""

HOSTILE_HTTP_EXTRA = """\
    upstream hostile_pool {{
        server unix:{sock};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{underscore_port};
        server_name underscores;
        underscores_in_headers on;
        location / {{
            ferrocorn_pass unix:{sock};
            ferrocorn_param HOSTILE_SEEN {seen};
        }}
    }}
"""

# The I/O timeout (--timeout) of the hostile ferrocorn: how long a half
# frame may sit before the worker gives up on it.
IO_TIMEOUT = 3


class HostileStack:
    def __init__(self, nginx, ferrocorn, underscore_port, seen):
        self.nginx = nginx
        self.ferrocorn = ferrocorn
        self.port = nginx.port
        self.underscore_port = underscore_port
        self.seen_path = seen

    def url(self, path, underscores=False):
        port = self.underscore_port if underscores else self.port
        return "http://127.0.0.1:%d%s" % (port, path)

    def seen(self):
        """Every request /seen/ recorded, in order."""
        try:
            with open(self.seen_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


@pytest.fixture(scope="module")
def hostile(workdir):
    base, seen = recording_dir(workdir, "hostile")
    sock = base / "hostile.sock"
    underscore_port = free_port()
    ferrocorn = Ferrocorn(base, "hostile", "hostile:app", workers=2, extra_args=["--timeout", str(IO_TIMEOUT)])
    nginx = Nginx(
        base,
        "nginx",
        free_port(),
        HOSTILE_LOCATIONS.format(sock=sock, seen=seen),
        HOSTILE_HTTP_EXTRA.format(sock=sock, seen=seen, underscore_port=underscore_port),
    )
    _start(ferrocorn)
    try:
        # Tests compare worker pids before and after: both must be forked first.
        ferrocorn.wait_workers()
        _start(nginx)
    except Exception:
        _stop(ferrocorn)
        raise
    yield HostileStack(nginx, ferrocorn, underscore_port, seen)
    _stop(nginx)
    _stop(ferrocorn)


def assert_serving(stack, times=4, prefix=""):
    for i in range(times):
        response = requests.get(stack.url("%s/ok?%d" % (prefix, i)), timeout=30)
        assert response.status_code == 200, response.text
        assert response.content.startswith(b"ok ") and response.content.endswith(b" %d\n" % i)


# ---- a peer that is not nginx, on the unix socket ------------------------------


def frame(member, payload):
    body = field_bytes(member, payload)
    return struct.pack(">I", len(body)) + body


def request_head(path=b"/ok", method=b"GET", content_length=-1, version=1):
    msg = field_varint(1, version) + field_bytes(2, method) + field_bytes(3, path) + field_bytes(4, path)
    msg += field_bytes(6, b"HTTP/1.1") + field_bytes(7, field_bytes(1, b"Host") + field_bytes(2, b"x"))
    msg += field_bytes(8, b"localhost") + field_varint(9, 80) + field_bytes(10, b"127.0.0.1")
    msg += field_bytes(12, b"http")
    zigzag = (content_length << 1) ^ (content_length >> 63)
    msg += field_varint(14, zigzag & (2**64 - 1))
    return frame(REQUEST_HEAD, msg)


def request_end():
    return frame(REQUEST_END, b"")


def unix_connect(stack):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(IO_TIMEOUT * 4 + 10)
    s.connect(str(stack.ferrocorn.sock))
    return s


def read_until_closed(s):
    """Everything the worker sends until it closes; (bytes, seconds waited)."""
    start = time.monotonic()
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks), time.monotonic() - start


class BackgroundClients:
    """GETs through nginx in a loop while a test attacks; counts failures."""

    def __init__(self, stack):
        self.stack = stack
        self.ok = 0
        self.failed = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = requests.Session()
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                r = session.get(self.stack.url("/ok?%d" % i), timeout=30)
                if r.status_code == 200 and r.content.endswith(b" %d\n" % i):
                    self.ok += 1
                else:
                    self.failed.append((r.status_code, r.content[:100]))
            except requests.RequestException as e:
                self.failed.append(repr(e))
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.failed, self.failed[:5]
        assert self.ok > 0


GARBAGE = {
    "http_request": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", r"exceeds the 1048576-byte limit"),
    "huge_length": (b"\xff\xff\xff\xff" + b"x" * 16, r"frame of 4294967295 bytes exceeds"),
    "zero_length": (b"\x00\x00\x00\x00", r"frame with zero length"),
    "not_protobuf": (struct.pack(">I", 3) + b"\x0f\xff\xff", r"malformed frame"),
    "no_member": (struct.pack(">I", 2) + b"\x78\x01", r"no frame member set"),
    "end_before_head": (request_end(), r"request_end frame before request_head"),
    "body_before_head": (frame(REQUEST_BODY, b"abc"), r"request_body frame before request_head"),
    "version_2": (request_head(version=2) + request_end(), r"this worker speaks 1"),
    "head_inside_body": (
        request_head(b"/seen/x", b"POST", 3) + request_head() + request_end(),
        r"request_head frame inside a request body",
    ),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_socket_garbage_drops_the_connection_with_a_log_line(hostile, name):
    data, log_pattern = GARBAGE[name]
    pids = hostile.ferrocorn.worker_pids()
    marks = hostile.ferrocorn.log_marks()
    with BackgroundClients(hostile):
        with unix_connect(hostile) as s:
            s.sendall(data)
            _, waited = read_until_closed(s)
        assert waited < IO_TIMEOUT * 3
        hostile.ferrocorn.wait_for_log(log_pattern, since=marks)
    assert hostile.ferrocorn.worker_pids() == pids, "a worker died"
    assert_serving(hostile)


@pytest.mark.parametrize("where", ["in_prefix", "in_head", "in_body"])
def test_half_frame_then_silence_is_dropped_with_a_log_line(hostile, where):
    """Slowloris on the unix socket: the connection is closed after the I/O
    timeout with a log line, and it never holds up other requests."""
    head = request_head(b"/seen/slow", b"POST", 100)
    data = {
        "in_prefix": head[:2],
        "in_head": head[: len(head) // 2],
        "in_body": head + frame(REQUEST_BODY, b"x" * 100)[:50],
    }[where]
    pids = hostile.ferrocorn.worker_pids()
    marks = hostile.ferrocorn.log_marks()
    with BackgroundClients(hostile):
        sockets = [unix_connect(hostile) for _ in range(4)]
        for s in sockets:
            s.sendall(data)
        for s in sockets:
            _, waited = read_until_closed(s)
            assert waited < IO_TIMEOUT * 4 + 5, "a half frame was kept %.1fs" % waited
            s.close()
    assert hostile.ferrocorn.worker_pids() == pids
    # The drop is logged (the connection was not an idle keep-alive one).
    hostile.ferrocorn.wait_for_log(r"(?i)(timed out|incomplete|half|closing connection)", since=marks)


def worker_rss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def test_nearly_whole_max_frames_keep_memory_bounded(hostile):
    """Connections that each send all but one byte of a 1 MiB frame: each
    worker buffers at most one frame per connection, and gives it back."""
    max_frame = 1 << 20
    conns = 12
    pids = hostile.ferrocorn.worker_pids()
    prefix = struct.pack(">I", max_frame) + field_bytes(REQUEST_BODY, b"")[:1]
    filler = b"z" * (max_frame - 1 - 1)
    rss = []
    for burst in range(3):
        before = worker_rss_kib(pids)
        sockets = []
        with BackgroundClients(hostile):
            for _ in range(conns):
                s = unix_connect(hostile)
                s.sendall(prefix + filler)
                sockets.append(s)
            time.sleep(0.5)
            during = worker_rss_kib(pids)
            for s in sockets:
                s.close()
            time.sleep(0.5)
        after = worker_rss_kib(pids)
        rss.append((before, during, after))
        # At most one frame plus one read chunk per connection, plus slack.
        assert during - before < conns * (max_frame + 64 * 1024) * 1.5 / 1024 + 16 * 1024, rss
    # Repeated bursts do not pile up: what was freed is reused.
    assert rss[-1][2] - rss[0][2] < 16 * 1024, rss
    assert hostile.ferrocorn.worker_pids() == pids
    assert_serving(hostile)


def test_random_frame_streams_never_kill_a_worker(hostile):
    """Mutated request frame streams straight to the workers: each connection
    ends (answered, refused or timed out) and no worker dies."""
    rng = random.Random(1135)
    pids = hostile.ferrocorn.worker_pids()
    valid = request_head(b"/seen/fuzz", b"POST", 5) + frame(REQUEST_BODY, b"hello") + request_end()
    valid_get = request_head(b"/ok") + request_end()
    with BackgroundClients(hostile):
        for i in range(300):
            data = bytearray(rng.choice([valid, valid_get, valid + valid_get]))
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(data))
                choice = rng.randrange(4)
                if choice == 0:
                    data[at] ^= 1 << rng.randrange(8)
                elif choice == 1:
                    data[at] = rng.choice([0, 0x7F, 0x80, 0xFF])
                elif choice == 2:
                    del data[at]
                else:
                    data.insert(at, rng.randrange(256))
            with unix_connect(hostile) as s:
                s.settimeout(IO_TIMEOUT + 35)
                s.sendall(bytes(data))
                s.shutdown(socket.SHUT_WR)
                read_until_closed(s)
    assert hostile.ferrocorn.worker_pids() == pids, "a worker died"
    assert_serving(hostile)


# ---- header spoofing ------------------------------------------------------------

SPOOF_HEADERS = [
    ("Content_Length", "999"),
    ("Content_Type", "text/evil"),
    ("Script-Name", "/evil"),
    ("Script_Name", "/evil"),
    ("Path-Info", "/evil"),
    ("Path_Info", "/evil"),
    ("Remote-Addr", "6.6.6.6"),
    ("Remote_Addr", "6.6.6.6"),
    ("Request-Method", "DELETE"),
    ("Server-Name", "evil.example"),
    ("Https", "on"),
    ("X-Auth-User", "real"),
    ("X-Auth_User", "spoofed"),
    ("X_Auth_User", "spoofed"),
]

# Keys the app may trust: never set from a client header.
TRUSTED = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/seen/spoof",
    "REMOTE_ADDR": "127.0.0.1",
    "SERVER_NAME": None,
    "wsgi.url_scheme": "http",
}


@pytest.mark.parametrize("underscores", [False, True], ids=["default", "underscores_in_headers"])
def test_underscore_and_dash_headers_never_become_trusted_keys(hostile, underscores):
    response = requests.get(hostile.url("/seen/spoof", underscores), headers=dict(SPOOF_HEADERS), timeout=30)
    assert response.status_code == 200
    env = response.json()["environ"]
    for key, value in TRUSTED.items():
        if value is not None:
            assert env.get(key) == value, (key, env.get(key))
    assert env.get("SERVER_NAME") != "evil.example"
    for key in ("CONTENT_LENGTH", "CONTENT_TYPE", "HTTPS", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"):
        assert key not in env, (key, env[key])
    # The underscore spellings never merge into (or replace) the dash one.
    assert env.get("HTTP_X_AUTH_USER") == "real"
    assert "spoofed" not in json.dumps(env)
    assert "evil" not in json.dumps({k: v for k, v in env.items() if not k.startswith("HTTP_")})


# ---- request smuggling and malformed requests -------------------------------------

SMUGGLED = b"GET /seen/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

SMUGGLING = {
    # CVE-2024-1135 style: both framings; the second request hides in the body.
    "cl_and_te": b"Content-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te_and_cl": b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "duplicate_cl": b"Content-Length: 5\r\nContent-Length: 45\r\n\r\nhello" + SMUGGLED,
    "cl_list": b"Content-Length: 5, 5\r\n\r\nhello",
    "cl_plus": b"Content-Length: +5\r\n\r\nhello",
    "cl_negative": b"Content-Length: -1\r\n\r\nhello",
    "cl_hex": b"Content-Length: 0x5\r\n\r\nhello",
    "cl_space_before_colon": b"Content-Length : 5\r\n\r\nhello",
    "te_identity_chunked": b"Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_chunked_identity": b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_xchunked": b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_vertical_tab": b"Transfer-Encoding:\x0bchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_obs_fold": b"Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    # CVE-2024-6827 / bad chunk sizes.
    "chunk_not_hex": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk_overflow": b"Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk_negative": b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "chunk_0x": b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "chunk_size_too_short": b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_lf_only": b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    "chunk_bad_ext": b"Transfer-Encoding: chunked\r\n\r\n5;\x00\r\nhello\r\n0\r\n\r\n",
    "chunk_no_crlf_after_data": b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    "bare_cr_header": b"X-A: 1\rContent-Length: 5\r\n\r\nhello",
    "nul_in_header": b"X-A: 1\x00\r\nContent-Length: 5\r\n\r\nhello",
    "space_in_name": b"Content Length: 5\r\n\r\nhello",
}


def smuggle_request(name):
    return b"POST /seen/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % name.encode() + SMUGGLING[name]


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_is_refused_or_passed_unambiguously(hostile, name):
    before = len(hostile.seen())
    data = raw_exchange(hostile.port, smuggle_request(name), timeout=30)
    seen = hostile.seen()[before:]
    responses = data.split(b"HTTP/1.1 ")[1:]
    statuses = [int(r[:3]) for r in responses]
    assert statuses, data[:500]
    # nginx answers the one request it saw (Connection: close): nothing pipelined.
    assert len(statuses) == 1, data[:2000]
    for record in seen:
        # The app never sees a hidden request, as a request or inside a body.
        assert record["path"] != "/seen/smuggled", record
        assert "/seen/smuggled" not in record["body"], record
        # One framing: nginx decoded any chunked body; wsgi.input is the plain
        # body (Transfer-Encoding: chunked may remain, as with Gunicorn, and
        # tells frameworks to read to the end), and a length matches it.
        assert record["transfer_encoding"] in (None, "chunked"), record
        assert "0\r\n\r\n" not in record["body"], record
        if record["content_length"] is not None:
            assert int(record["content_length"]) == len(record["body"].encode("latin-1")), record
    if statuses[0] in (400, 411, 413, 501):
        assert not seen, seen
    else:
        assert statuses[0] == 200, data[:500]
        assert len(seen) == 1 and seen[0]["path"] == "/seen/%s" % name, seen
        assert seen[0]["body"] in ("hello", ""), seen


def test_pipelined_request_after_a_chunked_body_is_its_own_request(hostile):
    """A chunked body then a pipelined request on one keep-alive client
    connection: two requests, the body ends at its last chunk."""
    before = len(hostile.seen())
    data = (
        b"POST /seen/first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
        b"GET /seen/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    out = raw_exchange(hostile.port, data, timeout=30)
    assert out.count(b"HTTP/1.1 200") == 2, out[:1000]
    seen = hostile.seen()[before:]
    assert [(r["method"], r["path"], r["body"]) for r in seen] == [
        ("POST", "/seen/first", "hello"),
        ("GET", "/seen/second", ""),
    ]
    assert seen[0]["content_length"] in (None, "5")


OVERSIZE = {
    "uri_64k": (b"GET /seen/" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (414,)),
    "header_64k": (
        b"GET /seen/big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 65536 + b"\r\nConnection: close\r\n\r\n",
        (400, 431, 494),
    ),
    "headers_total": (
        b"GET /seen/many HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 8000) for i in range(20))
        + b"Connection: close\r\n\r\n",
        (400, 431, 494),
    ),
    "method_lowercase": (b"get /seen/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (400,)),
    "method_ctl": (b"G\x01T /seen/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (400,)),
    "method_space": (b"GE T /seen/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (400,)),
    "version_bad": (b"GET /seen/m HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n", (400, 505)),
    "no_host_11": (b"GET /seen/m HTTP/1.1\r\nConnection: close\r\n\r\n", (400,)),
    "two_hosts": (b"GET /seen/m HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", (400,)),
    "traversal": (b"GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (400,)),
}


@pytest.mark.parametrize("name", sorted(OVERSIZE))
def test_oversized_and_invalid_requests_are_refused_before_the_app(hostile, name):
    data, allowed = OVERSIZE[name]
    before = len(hostile.seen())
    out = raw_exchange(hostile.port, data, timeout=30)
    status = RawResponse(out).status
    assert status in allowed, out[:300]
    assert hostile.seen()[before:] == []


def test_unknown_but_valid_method_reaches_the_app_verbatim(hostile):
    out = raw_exchange(hostile.port, b"FROB /seen/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=30)
    response = RawResponse(out)
    assert response.status == 200
    assert json.loads(response.body)["method"] == "FROB"


def open_files(pid):
    """What a process holds open but sockets: nginx's connections to a worker
    come and go on their own time (one may still be closing after its
    response reached the client)."""
    fd_dir = "/proc/%d/fd" % pid
    links = []
    for fd in os.listdir(fd_dir):
        try:
            links.append(os.readlink(os.path.join(fd_dir, fd)))
        except FileNotFoundError:  # closed meanwhile
            pass
    return sorted(link for link in links if not link.startswith("socket:"))


def test_no_request_names_a_file_the_worker_opens(hostile):
    """The protocol carries no file name: a request asking for one (encoded
    traversal, X-Sendfile / X-Accel-Redirect request headers) is only data
    for the app, and the worker opens nothing."""
    pids = hostile.ferrocorn.worker_pids()
    files = {pid: open_files(pid) for pid in pids}
    for path in ("/seen/%2e%2e/%2e%2e/etc/passwd", "/seen/..%2f..%2fetc%2fpasswd", "/seen/x?file=/etc/passwd"):
        response = requests.get(
            hostile.url(path),
            headers={"X-Sendfile": "/etc/passwd", "X-Accel-Redirect": "/etc/passwd", "X-File": "/etc/shadow"},
            timeout=30,
        )
        assert b"root:" not in response.content
        if response.status_code == 200:
            assert response.json()["body"] == ""
    assert {pid: open_files(pid) for pid in pids} == files


# ---- the app's response ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["crlf_value", "cr_value", "crlf_name", "crlf_status"])
def test_cr_lf_in_response_head_is_500_with_a_log_line(hostile, endpoint):
    pids = hostile.ferrocorn.worker_pids()
    marks = hostile.ferrocorn.log_marks()
    out = raw_exchange(hostile.port, b"GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % endpoint.encode())
    response = RawResponse(out)
    assert response.status == 500, out[:500]
    assert not response.header_values("Set-Cookie"), response.headers
    assert b"evil" not in out
    hostile.ferrocorn.wait_for_log(r"(?i)\[ERROR\].*(header|status|newline|control|CR|LF)", since=marks)
    assert hostile.ferrocorn.worker_pids() == pids
    assert_serving(hostile)


def test_start_response_twice_without_exc_info_is_500(hostile):
    marks = hostile.ferrocorn.log_marks()
    response = requests.get(hostile.url("/start_twice"), timeout=30)
    assert response.status_code == 500
    assert b"start_response twice" not in response.content
    hostile.ferrocorn.wait_for_log(r"\[ERROR\].*start_response", since=marks)
    assert_serving(hostile)


@pytest.mark.parametrize("endpoint", ["length_short", "length_long", "length_long_split"])
def test_body_disagreeing_with_content_length_never_desyncs_the_upstream_connection(hostile, endpoint):
    """Over an `upstream { keepalive 4; }` connection: a body shorter than
    its Content-Length is cut (the client sees an incomplete response), a
    longer one is capped at it; the next requests on the pooled connections
    are answered exactly."""
    for round_ in range(3):
        result = curl("-sS", "-o", "-", "-w", "\n%{http_code} %{size_download}", hostile.url("/pool/%s" % endpoint))
        if endpoint == "length_short":
            # Cut: curl reports a transfer closed with bytes remaining (18),
            # or nginx had nothing to send yet (52).
            assert result.returncode in (18, 52), (result.returncode, result.stdout[-200:], result.stderr)
        else:
            assert result.returncode == 0, result.stderr
            body, _, tail = result.stdout.rpartition(b"\n")
            assert tail == b"200 100", tail
            assert len(body) == 100 and body.strip(b"Lab") == b"", body
        for i in range(6):
            response = requests.get(hostile.url("/pool/ok?%d-%d" % (round_, i)), timeout=30)
            assert response.status_code == 200
            assert response.content.endswith(b" %d-%d\n" % (round_, i)), response.content
            assert len(response.content) == int(response.headers["Content-Length"])


@pytest.mark.parametrize("location", ["", "/unbuffered", "/pool"])
def test_error_after_the_first_body_byte_only_cuts_the_response(hostile, location):
    marks = hostile.ferrocorn.log_marks()
    request = b"GET %s/raise_after_body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % location.encode()
    out = raw_exchange(hostile.port, request)
    head, _, body = out.partition(b"\r\n\r\n")
    if head:
        assert head.startswith(b"HTTP/1.1 200"), out[:300]
    # Never a 500 page written into the body, never a complete chunked body.
    assert b"500" not in body and b"Internal Server Error" not in body
    assert not body.endswith(b"0\r\n\r\n"), body[-50:]
    hostile.ferrocorn.wait_for_log(r"raised after the first body bytes", since=marks)
    assert_serving(hostile, prefix=location)


def test_huge_exception_message_after_the_head_does_not_kill_the_worker(hostile):
    """An app exception whose text is over the 1 MiB frame limit, after the
    head went out: the response is cut, the worker logs it and lives on."""
    pids = hostile.ferrocorn.worker_pids()
    marks = hostile.ferrocorn.log_marks()
    result = curl("-o", "/dev/null", hostile.url("/unbuffered/raise_huge_after_body"))
    assert result.returncode in (18, 52, 56), (result.returncode, result.stderr)
    hostile.ferrocorn.wait_for_log(r"hostile huge message", since=marks)
    time.sleep(0.5)
    died = hostile.ferrocorn.logs(marks).replace("x" * 200, "")[-1500:]
    assert wait_until(lambda: hostile.ferrocorn.worker_pids() == pids, 2), "a worker died: " + died
    assert_serving(hostile)
