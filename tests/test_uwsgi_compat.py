"""Apps written for uWSGI: a bare `bytes` return value is served as the body.

uWSGI sends it; PEP 3333 wants an iterable. Ferrocorn sends it as the one
item of the response (the framing a one-item list gets), and writes one
warning per worker naming the app, not one per request. A bare str or
bytearray stays an error (test_app_errors.py), and an app behind
wsgiref.validate still gets the validator's verdict.
"""

import concurrent.futures
import hashlib
import re

import requests

from apps.patterns import stream_blocks
from httpraw import RawResponse, decode_chunked, get_request, raw_exchange
from servers import wait_until

MIB = 1024 * 1024


BIG_SHA256 = hashlib.sha256(b"".join(stream_blocks(MIB))).hexdigest()  # uwsgi_style.BIG


def warned_pids(master, spec, since=(0, 0)):
    """Pids of the workers that logged the bare-bytes warning for `spec`, one entry per line."""
    line = r"^\[[^]]+\] \[(\d+)\] \[WARNING\] app '%s' returned a bytes object, not an iterable of bytes" % re.escape(
        spec
    )
    return [int(pid) for pid in re.findall(line, master.logs(since), re.MULTILINE)]


def get_all(urls):
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(lambda u: requests.get(u, timeout=60), urls))


def test_nginx_uwsgi_test_app_is_served(start_dedicated):
    """The app of nginx's own uwsgi tests, as it is: `return b"SEE-THIS"`."""
    stack = start_dedicated("uwsgi_style", workers=1)
    master = stack.ferrocorn
    response = requests.get(stack.url("/dedicated/"), timeout=30)
    assert (response.status_code, response.content) == (200, b"SEE-THIS")
    assert response.headers["Content-Type"] == "text/plain"
    response = requests.post(stack.url("/dedicated/"), data=b"hello", timeout=30)
    assert (response.status_code, response.content) == (200, b"cl=5 'hello'")
    (pid,) = master.wait_workers(1)
    assert warned_pids(master, "uwsgi_style") == [pid]
    assert "PEP 3333 wants an iterable" in master.logs()


def test_bare_bytes_bodies_arrive_byte_exact_with_their_framing(start_dedicated):
    stack = start_dedicated("uwsgi_style:app", workers=1)
    port = stack.port
    digest = BIG_SHA256

    # 1 MiB with Content-Length: exactly that.
    response = RawResponse(raw_exchange(port, get_request("/dedicated/big-length")))
    assert response.status == 200
    assert response.header("Content-Length") == str(MIB)
    assert response.header("Transfer-Encoding") is None
    assert hashlib.sha256(response.body).hexdigest() == digest

    # Without one: chunked for HTTP/1.1, delimited by the close for HTTP/1.0.
    response = RawResponse(raw_exchange(port, get_request("/dedicated/big")))
    assert response.status == 200
    assert response.header("Transfer-Encoding") == "chunked"
    assert hashlib.sha256(decode_chunked(response.body)).hexdigest() == digest
    response = RawResponse(raw_exchange(port, get_request("/dedicated/big", version="HTTP/1.0")))
    assert response.status == 200
    assert response.header("Content-Length") is None and response.header("Transfer-Encoding") is None
    assert hashlib.sha256(response.body).hexdigest() == digest
    assert hashlib.sha256(requests.get(stack.url("/dedicated/big"), timeout=60).content).hexdigest() == digest

    # HEAD: the head alone, Content-Length as for GET.
    response = RawResponse(raw_exchange(port, get_request("/dedicated/big-length", method="HEAD")))
    assert response.status == 200
    assert response.header("Content-Length") == str(MIB)
    assert response.body == b""

    # A small one with its Content-Length, and an empty one.
    response = requests.get(stack.url("/dedicated/pid"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.content))
    response = RawResponse(raw_exchange(port, get_request("/dedicated/empty")))
    assert response.status == 200
    chunked = response.header("Transfer-Encoding") == "chunked"
    assert (decode_chunked(response.body) if chunked else response.body) == b""


def test_the_warning_comes_once_per_worker(start_dedicated, scratch):
    stack = start_dedicated("uwsgi_style:app", workers=2)
    master = stack.ferrocorn
    workers = set(master.wait_workers(2))
    # Two requests inside the app at once: one in each (single-threaded) worker.
    responses = get_all([stack.url("/dedicated/meet?n=2&dir=%s" % scratch)] * 2)
    assert [r.status_code for r in responses] == [200, 200]
    served = {int(r.content) for r in responses}
    assert served == workers
    for _ in range(3):
        responses = get_all([stack.url("/dedicated/pid")] * 4)
        assert [r.status_code for r in responses] == [200] * 4
        served |= {int(r.content) for r in responses}
    assert served == workers, "requests went to workers that were not there: %s vs %s" % (served, workers)
    assert wait_until(lambda: set(warned_pids(master, "uwsgi_style:app")) == workers, 10)
    assert sorted(warned_pids(master, "uwsgi_style:app")) == sorted(workers), master.logs()


def test_threads_serve_bare_bytes_and_warn_once(start_dedicated, scratch):
    """Four threads of one worker return bare bytes at the same moment: one warning."""
    stack = start_dedicated("uwsgi_style:app", workers=1, extra_args=["--threads", "4"])
    master = stack.ferrocorn
    (pid,) = master.wait_workers(1)
    responses = get_all([stack.url("/dedicated/meet?n=4&dir=%s" % scratch)] * 4)
    assert [(r.status_code, r.content) for r in responses] == [(200, b"%d" % pid)] * 4
    digest = BIG_SHA256
    responses = get_all([stack.url("/dedicated/big")] * 4)
    assert [hashlib.sha256(r.content).hexdigest() for r in responses] == [digest] * 4
    response = RawResponse(raw_exchange(stack.port, get_request("/dedicated/big-length", method="HEAD")))
    assert (response.status, response.header("Content-Length"), response.body) == (200, str(MIB), b"")
    assert warned_pids(master, "uwsgi_style:app") == [pid]


def test_an_app_behind_wsgiref_validate_still_gets_its_verdict(start_dedicated):
    """The validator refuses a bare bytes return itself (an AssertionError): a 500, as before."""
    stack = start_dedicated("uwsgi_style:app", workers=1)
    master = stack.ferrocorn
    response = requests.get(stack.url("/dedicated/validated"), timeout=30)
    assert response.status_code == 500
    master.wait_for_log(r"AssertionError: You should not return a string as your application iterator")
    assert warned_pids(master, "uwsgi_style:app") == []
