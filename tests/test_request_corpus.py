"""Gunicorn's request corpus replayed raw through nginx + ferrocorn.

Gunicorn's sdist carries `tests/requests/valid/*.http` and `invalid/*.http`
(raw requests, `\\r\\n` written out) with a `.py` each: the request Gunicorn's
parser must produce, or the error it must raise. The sdist is fetched from
PyPI at test time (`pip download`) into a cache directory
(`$FERROCORN_CACHE`, default `~/.cache/ferrocorn-tests`); without network
the test is skipped with the reason. Nothing of the corpus is committed.

Each file goes to nginx on its own connection; apps/corpus.py records what
reached the app, tagged with the client port. Then:

- valid: every request reaches the app with the method, path, query,
  headers and body the `.py` expects, mapped through what nginx does on the
  way (header names with `_` dropped, chunked bodies decoded, hop-by-hop
  headers consumed). A file whose `.py` needs a non-default Gunicorn setting
  (obs-fold, `header_map = dangerous`, lowercase methods...) may instead be
  refused by nginx; so may the few listed in NGINX_REFUSES_VALID, with why.
- invalid: refused by nginx (a 4xx, or the connection closed unanswered),
  or it reaches the app in a form one reading of the bytes gives: the body
  is what Content-Length or the chunked framing says (never a mix), and no
  header value carries CR, LF or NUL.

The summary line (`corpus: ...`) is what bench/reliability.md records.
"""

import builtins
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import _start, _stop
from servers import Ferrocorn, Nginx, free_port, recording_dir

GUNICORN_VERSION = "23.0.0"
CACHE = Path(os.environ.get("FERROCORN_CACHE", Path.home() / ".cache" / "ferrocorn-tests"))

CORPUS_LOCATIONS = """\
        client_header_timeout 2s;
        client_body_timeout 2s;
        keepalive_timeout 1s;
        location / {{
            ferrocorn_pass unix:{sock};
            ferrocorn_param CORPUS_SEEN {seen};
            ferrocorn_param CORPUS_CLIENT $remote_port;
        }}
"""

# The same site behind `listen ... proxy_protocol` (for pp_*.http).
PROXY_SERVER = """\
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        client_header_timeout 2s;
        keepalive_timeout 1s;
        location / {{
            ferrocorn_pass unix:{sock};
            ferrocorn_param CORPUS_SEEN {seen};
            ferrocorn_param CORPUS_CLIENT $remote_port;
        }}
    }}
"""

# Gunicorn settings under which a valid file is only valid in Gunicorn's
# lenient modes; nginx may refuse those requests.
NON_DEFAULT = {
    "permit_obsolete_folding",
    "header_map",
    "permit_unconventional_http_method",
    "casefold_http_method",
    "strip_header_spaces",
}

# Valid in Gunicorn's default configuration, refused by nginx: stricter, never ambiguous.
NGINX_REFUSES_VALID = {
    "009": "Transfer-Encoding: identity: nginx answers 501 (it knows only chunked)",
    "017": "If-Match twice: nginx refuses a repeated If-Match (400)",
    "025": "Transfer-Encoding twice (gzip, chunked): nginx refuses a repeated Transfer-Encoding (400)",
    "025_line": "Transfer-Encoding: gzip,chunked: nginx answers 501 (it knows only chunked)",
    "029": "Transfer-Encoding twice (identity, chunked): 400",
    "030": "Transfer-Encoding twice (identity, chunked): 400",
    "031": "method -BLARGH: nginx takes methods of letters, '_' and '-' not in first place (400)",
    "099": "its body is 8599 bytes, its Content-Length 17914: nginx waits for the rest, times out and closes; "
    "nothing reaches the app",
}

# Differences that are bugs, each with its own failing test below.
KNOWN_BUGS: dict = {}

# Headers nginx consumes on the way (hop-by-hop) instead of passing them on.
HOP_BY_HOP = {"CONNECTION", "KEEP-ALIVE", "TRANSFER-ENCODING", "TE", "UPGRADE", "PROXY-CONNECTION"}


# ---- the corpus ----------------------------------------------------------------------


def fetch_corpus():
    """tests/requests of Gunicorn's sdist, from the cache or PyPI; None when offline."""
    target = CACHE / ("gunicorn-%s-requests" % GUNICORN_VERSION)
    if (target / "valid").is_dir() and (target / "invalid").is_dir():
        return target, None
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                "-d",
                tmp,
                "gunicorn==%s" % GUNICORN_VERSION,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        sdists = list(Path(tmp).glob("gunicorn-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            return None, (result.stderr or result.stdout).strip()[-500:]
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        prefix = "gunicorn-%s/tests/requests/" % GUNICORN_VERSION
        with tarfile.open(sdists[0]) as tar:
            for m in tar.getmembers():
                name = m.name[len(prefix) :]
                if m.isfile() and m.name.startswith(prefix) and re.fullmatch(r"(valid|invalid)/[\w.-]+", name):
                    (staging / name).parent.mkdir(exist_ok=True)
                    (staging / name).write_bytes(tar.extractfile(m).read())
        if not target.exists():
            staging.rename(target)
    return target, None


def load_http(path):
    """The raw bytes of a corpus .http file, decoded as Gunicorn's tests do."""
    data = path.read_bytes().replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    return data.replace(b"\\0", b"\000").replace(b"\\n", b"\n").replace(b"\\t", b"\t")


class _Config:
    """Stands in for gunicorn.config.Config: records the settings a file sets."""

    def __init__(self):
        self.settings = {}

    def set(self, name, value):
        self.settings[name] = value


def _uri(raw):
    if raw.startswith("//"):
        parts = urlsplit("." + raw)
        path = parts.path[1:]
    else:
        parts = urlsplit(raw)
        path = parts.path
    return {"raw": raw, "path": path, "query": parts.query, "fragment": parts.fragment}


def load_expectation(path):
    """Runs a corpus .py with Gunicorn's imports stubbed: (request(s) or error name, settings)."""
    errors = types.SimpleNamespace()
    config = _Config()

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "gunicorn.config":
            return types.SimpleNamespace(Config=lambda: config)
        if name == "gunicorn.http.errors":
            return types.SimpleNamespace(**{n: type(n, (Exception,), {}) for n in fromlist})
        return builtins.__import__(name, globals, locals, fromlist, level)

    scope = {"__builtins__": dict(vars(builtins), __import__=fake_import), "uri": _uri, "cfg": config}
    exec(compile(path.read_text(), str(path), "exec"), scope)
    del errors
    expected = scope["request"]
    if isinstance(expected, type):
        expected = expected.__name__
    settings = scope["cfg"].settings if isinstance(scope["cfg"], _Config) else {}
    return expected, settings


# ---- sending -----------------------------------------------------------------------------


def with_host(data):
    """Adds `Host: corpus` to each HTTP/1.1 request head without one (nginx
    refuses those with a 400, as RFC 9112 says; Gunicorn's parser tests do not
    need it). Walks pipelined requests by their framing so a body that looks
    like a request is left alone. Returns (bytes, number of heads changed)."""
    out = bytearray()
    added = 0
    pos = 0
    if data.startswith(b"PROXY "):  # the PROXY protocol line goes first, unchanged
        pos = data.find(b"\r\n") + 2
        out += data[:pos]
    while pos < len(data):
        line = re.match(rb"[A-Za-z]+ [^ \r\n]+ HTTP/1\.[01]\r\n", data[pos:])
        head_end = data.find(b"\r\n\r\n", pos)
        if not line or head_end < 0:
            break
        head = data[pos : head_end + 4]
        if line.group(0).endswith(b"1.1\r\n") and not re.search(rb"(?im)^host[ \t]*:", head):
            head = head[: line.end()] + b"Host: corpus\r\n" + head[line.end() :]
            added += 1
        out += head
        pos = head_end + 4
        lengths = re.findall(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r$", head)
        if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
            end = data.find(b"0\r\n\r\n", pos)
            body_end = end + 5 if end >= 0 else len(data)
        elif len(lengths) == 1:
            body_end = pos + int(lengths[0])
        else:
            body_end = pos
        out += data[pos:body_end]
        pos = body_end
    out += data[pos:]
    return bytes(out), added


def exchange(port, data, timeout=8.0):
    """Sends data on a fresh connection; (client port, bytes until close or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        client = s.getsockname()[1]
        try:
            s.sendall(data)
        except OSError:
            pass
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return client, b"".join(chunks)


def statuses(response):
    return [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.[01] (\d{3}) ", response)]


# ---- what nginx makes of a request ---------------------------------------------------------


def environ_key(name):
    if name == "CONTENT-TYPE":
        return "CONTENT_TYPE"
    if name == "CONTENT-LENGTH":
        return "CONTENT_LENGTH"
    return "HTTP_" + name.replace("-", "_")


def mismatches(expected, seen):
    """How a recorded request differs from the corpus's expectation, mapped through nginx."""
    problems = []
    if seen["method"] != expected["method"]:
        problems.append("method %r, expected %r" % (seen["method"], expected["method"]))
    uri = expected["uri"]
    if seen["query"] != uri["query"]:
        problems.append("query %r, expected %r" % (seen["query"], uri["query"]))
    want_path = unquote(uri["path"], encoding="latin-1")
    want_path = re.sub("/+", "/", want_path)  # nginx's merge_slashes
    if seen["path"] != want_path:
        problems.append("path %r, expected %r" % (seen["path"], want_path))
    body = expected.get("body", b"")
    if isinstance(body, str):
        body = body.encode("latin-1")
    if seen["body"].encode("latin-1") != body:
        problems.append("body %r, expected %r" % (seen["body"][:200], body[:200]))
    grouped = {}
    for name, value in expected["headers"]:
        grouped.setdefault(name.upper(), []).append(value)
    chunked = "chunked" in ",".join(grouped.get("TRANSFER-ENCODING", [])).lower()
    for name, values in grouped.items():
        if "_" in name or name in HOP_BY_HOP:
            continue  # dropped by nginx (ignore_invalid_headers) / consumed by nginx
        key = environ_key(name)
        got = seen["headers"].get(key)
        if name == "CONTENT-LENGTH" and chunked:
            continue
        if got is None:
            problems.append("%s missing (expected %r)" % (key, values))
        elif got not in {", ".join(values), ",".join(values), "; ".join(values)}:
            problems.append("%s %r, expected %r" % (key, got, values))
    if chunked and seen["headers"].get("CONTENT_LENGTH") not in (None, str(len(body))):
        problems.append("CONTENT_LENGTH %r for a %d-byte decoded body" % (seen["headers"]["CONTENT_LENGTH"], len(body)))
    for key in seen["headers"]:
        if key.startswith("HTTP_") and key not in {environ_key(n.upper()) for n, _ in expected["headers"]}:
            if key != "HTTP_HOST":  # the Host with_host() added
                problems.append("unexpected %s" % key)
    return problems


def readings(data):
    """The bodies one consistent reading of raw request bytes gives: by
    Content-Length, by chunked framing (when it parses), or none."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    bodies = {b""}
    for m in re.finditer(rb"(?im)^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", head):
        bodies.add(rest[: int(m.group(1))])
    decoded = bytearray()
    pos = 0
    while True:
        line_end = rest.find(b"\r\n", pos)
        if line_end < 0:
            break
        size_text = rest[pos:line_end].split(b";")[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]+", size_text or b"x"):
            break
        size = int(size_text, 16)
        if size == 0:
            bodies.add(bytes(decoded))
            break
        decoded += rest[line_end + 2 : line_end + 2 + size]
        pos = line_end + 2 + size + 2
    return bodies


# ---- the test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    path, why = fetch_corpus()
    if path is None:
        pytest.skip(
            "Gunicorn's request corpus (sdist gunicorn==%s from PyPI) could not be fetched: %s"
            % (GUNICORN_VERSION, why)
        )
    return path


@pytest.fixture(scope="module")
def corpus_stack(workdir):
    base, seen = recording_dir(workdir, "corpus")
    ferrocorn = Ferrocorn(base, "corpus", "corpus:app", workers=2)
    proxy_port = free_port()
    nginx = Nginx(
        base,
        "nginx",
        free_port(),
        CORPUS_LOCATIONS.format(sock=ferrocorn.sock, seen=seen),
        PROXY_SERVER.format(port=proxy_port, sock=ferrocorn.sock, seen=seen),
    )
    _start(ferrocorn)
    try:
        _start(nginx)
    except Exception:
        _stop(ferrocorn)
        raise
    yield types.SimpleNamespace(port=nginx.port, proxy_port=proxy_port, seen=seen, nginx=nginx, ferrocorn=ferrocorn)
    _stop(nginx)
    _stop(ferrocorn)


def replay(corpus, stack):
    """Every corpus file sent on its own connection (16 at a time); what reached the app, by file."""
    cases = []
    for kind in ("valid", "invalid"):
        for http in sorted((corpus / kind).glob("*.http")):
            expected, settings = load_expectation(http.with_suffix(".py"))
            data, added = with_host(load_http(http))
            cases.append((kind, http.stem, data, expected, settings))

    def send(case):
        kind, name, data, expected, settings = case
        port = stack.proxy_port if settings.get("proxy_protocol") else stack.port
        return exchange(port, data)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, cases))
    time.sleep(0.5)
    by_client = {}
    for line in stack.seen.read_text().splitlines():
        record = json.loads(line)
        by_client.setdefault(int(record["client"]), []).append(record)
    return [(case, response, by_client.get(client, [])) for case, (client, response) in zip(cases, answers)]


def judge(case, response, seen):
    """(outcome, problem or None) of one corpus file."""
    kind, name, data, expected, settings = case
    codes = statuses(response)
    if kind == "valid":
        wanted = expected if isinstance(expected, list) else [expected]
        lenient = bool(NON_DEFAULT & set(settings))
        if not seen and (lenient or name in NGINX_REFUSES_VALID) and all(c >= 400 for c in codes):
            return "valid-refused", None
        if name in KNOWN_BUGS:
            return "known-bug", KNOWN_BUGS[name]
        if len(seen) != len(wanted):
            return "fail", "%d requests reached the app, expected %d; statuses %s" % (len(seen), len(wanted), codes)
        problems = [p for w, s in zip(wanted, seen) for p in mismatches(w, s)]
        return ("valid-passed", None) if not problems else ("fail", "; ".join(problems))
    if not seen:
        if all(c >= 400 for c in codes):
            return "invalid-refused", None
        return "fail", "nothing reached the app but the client got %s" % codes
    bodies = readings(data)
    for s in seen:
        if s["body"].encode("latin-1") not in bodies:
            return "fail", "reached the app with body %r, not one reading of the bytes" % s["body"][:200]
        for key, value in s["headers"].items():
            if any(c in value for c in "\r\n\0"):
                return "fail", "reached the app with %s=%r" % (key, value)
    return "invalid-passed-unambiguous", None


def test_gunicorn_request_corpus(corpus, corpus_stack):
    results = [(case, judge(case, response, seen)) for case, response, seen in replay(corpus, corpus_stack)]
    counts = {}
    for _, (outcome, _) in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = (
        "corpus: gunicorn %s, %d valid: %d passed, %d refused by nginx (lenient-only or listed); "
        "%d invalid: %d refused, %d passed unambiguous; %d failed"
        % (
            GUNICORN_VERSION,
            sum(1 for (c, _) in results if c[0] == "valid"),
            counts.get("valid-passed", 0),
            counts.get("valid-refused", 0),
            sum(1 for (c, _) in results if c[0] == "invalid"),
            counts.get("invalid-refused", 0),
            counts.get("invalid-passed-unambiguous", 0),
            counts.get("fail", 0),
        )
    )
    summary += "; known bugs: %s" % (", ".join(n for n in KNOWN_BUGS) or "none")
    print(summary)
    for case, (outcome, _) in results:
        print("  %s/%s: %s" % (case[0], case[1], outcome))
    failures = ["%s/%s: %s" % (case[0], case[1], why) for case, (outcome, why) in results if outcome == "fail"]
    assert not failures, summary + "\n" + "\n".join(failures)


def test_tabs_around_a_header_value_are_not_part_of_it(corpus_stack):
    """RFC 9110 5.5: leading and trailing OWS (SP and HTAB) is not part of a
    field value; Gunicorn strips both (corpus valid/padding_01). nginx strips
    only spaces: the module trims HTAB too (found by the corpus, fixed in
    a366856)."""
    client, response = exchange(
        corpus_stack.port, b"GET /pad HTTP/1.1\r\nHost: x\r\nX-Pad: \t value \t \r\nConnection: close\r\n\r\n"
    )
    assert statuses(response) == [200], response[:300]
    seen = [json.loads(line) for line in corpus_stack.seen.read_text().splitlines()]
    record = [r for r in seen if int(r["client"]) == client][0]
    assert record["headers"]["HTTP_X_PAD"] == "value"
