"""--threads N: one worker serving N requests at once.

Every test runs one worker with a pool of threads behind nginx (the
`threaded` app) and asserts what a user sees: requests that overlap inside
the app, bodies intact through kept-alive upstream connections, and
nothing lost when the master reloads, stops or recycles the worker. The
figures are printed; run with `-s` to see them.
"""

import concurrent.futures
import hashlib
import os
import signal
import time
import uuid

import requests

from load import Load
from servers import STOP_TIMEOUT, free_port, wait_until
from test_control import all_idle, data, in_flight
from test_observability import metrics
from test_signals import reached

THREADS = ["--threads", "4"]


def one_worker(master):
    return wait_until(lambda: len(master.worker_pids()) == 1 and master.worker_pids(), 20)


def get_all(urls, clients):
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda u: requests.get(u, timeout=60), urls))


def test_four_threads_serve_four_requests_at_once(start_dedicated):
    stack = start_dedicated("threaded", extra_args=THREADS, workers=1)
    one_worker(stack.ferrocorn)
    token = uuid.uuid4().hex
    # Each /meet waits until all four are inside the app together.
    responses = get_all([stack.url("/dedicated/meet?n=4&token=%s" % token)] * 4, 4)
    assert [(r.status_code, r.content) for r in responses] == [(200, b"met\n")] * 4

    token = uuid.uuid4().hex
    started = time.monotonic()
    responses = get_all([stack.url("/dedicated/overlap?seconds=0.5&token=%s" % token)] * 4, 4)
    took = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 4
    peak = int(requests.get(stack.url("/dedicated/overlap/report?token=%s" % token), timeout=30).content)
    print("\n4 requests sleeping 0.5 s on 1 worker with 4 threads: %.2f s in all, %d inside at once"
          % (took, peak))
    assert peak == 4


def test_a_fifth_request_waits_for_a_free_thread(start_dedicated):
    """With every thread busy the worker takes no more: the fifth meets nobody until one is free."""
    stack = start_dedicated("threaded", extra_args=THREADS, workers=1)
    one_worker(stack.ferrocorn)
    token = uuid.uuid4().hex
    responses = get_all([stack.url("/dedicated/meet?n=5&wait=2&token=%s" % token)] * 5, 5)
    # Four wait for a fifth that cannot come in until they give up; then it
    # waits alone.
    assert [r.status_code for r in responses] == [503] * 5
    peak = int(requests.get(stack.url("/dedicated/overlap/report?token=%s" % token), timeout=30).content)
    assert peak == 4


def test_environ_says_multithread(start_dedicated):
    stack = start_dedicated("threaded", extra_args=THREADS, workers=1)
    seen = requests.get(stack.url("/dedicated/env"), timeout=30).json()
    assert seen["multithread"] is True and seen["multiprocess"] is True
    assert seen["thread"] != "MainThread"


def test_single_threaded_environ_says_not_multithread(start_dedicated):
    stack = start_dedicated("threaded", workers=1)
    seen = requests.get(stack.url("/dedicated/env"), timeout=30).json()
    assert seen["multithread"] is False
    assert seen["thread"] == "MainThread"


def test_threading_local_lasts_across_requests_of_a_thread(start_dedicated):
    """Each pool thread keeps its Python thread state: per-thread caches (DB connections) survive."""
    stack = start_dedicated("threaded", extra_args=THREADS, workers=1)
    counts = [int(requests.get(stack.url("/dedicated/local"), timeout=30).content) for _ in range(12)]
    # 12 requests over at most 4 threads: some thread saw at least 3 of them.
    assert max(counts) >= 3, counts


def test_kept_alive_connections_carry_uploads_and_streams_intact(start_dedicated):
    """Many clients through nginx's upstream keepalive pool: every body comes back whole."""
    stack = start_dedicated("threaded", extra_args=THREADS, workers=2)
    session_per_thread = {}

    def one(i):
        session = session_per_thread.setdefault(os.getpid() * 1000 + i % 16, requests.Session())
        if i % 3 == 0:
            body = hashlib.sha256(b"%d" % i).digest() * (1 + (i * 997) % 4000)
            r = session.post(stack.url("/dedicated-pool/echo"), data=body, timeout=60)
            return r.status_code == 200 and r.content == body
        if i % 3 == 1:
            seed, count = "s%d" % i, 20 + i % 40
            r = session.get(stack.url("/dedicated-pool/stream?seed=%s&count=%d" % (seed, count)), timeout=60)
            want = b"".join(
                hashlib.sha256(b"%s-%d" % (seed.encode(), k)).hexdigest().encode() * (1 + k % 50)
                for k in range(count))
            return r.status_code == 200 and r.content == want
        r = session.get(stack.url("/dedicated/echo"), timeout=60)
        return r.status_code == 200 and r.content == b""

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(600)))
    print("\n600 uploads/streams/plain requests from 16 clients, 2 workers x 4 threads: %d correct"
          % results.count(True))
    assert results == [True] * 600


def test_whole_large_bodies_read_at_once_by_overlapping_threads(start_dedicated):
    """One wsgi.input.read() per body of several frames, in 4 threads at once (the
    frames are read from the socket into the bytes object, the GIL released): each
    client gets its own body back whole, and the kept-alive connection goes on."""
    stack = start_dedicated("threaded", extra_args=THREADS, workers=1)
    one_worker(stack.ferrocorn)

    def client(i):
        with requests.Session() as session:
            for size in (1024 * 1024 + 1, 3 * 1024 * 1024 + 5):
                body = os.urandom(size)
                how = "length" if i % 2 else "all"
                r = session.post(stack.url("/dedicated-pool/read_once?how=%s" % how), data=body, timeout=60)
                if r.status_code != 200 or r.content != body:
                    return False
            r = session.post(stack.url("/dedicated-pool/echo"), data=b"after", timeout=60)
            return r.content == b"after"

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(client, range(8))) == [True] * 8


HOOKS = """
def pre_request(worker, req):
    worker.log.info("hook pre_request %s", req.uri)

def post_request(worker, req, environ, resp):
    worker.log.info("hook post_request %s %s", req.uri, resp.status_code)
"""


def test_hooks_access_log_and_metrics_see_every_concurrent_request(start_dedicated, scratch):
    conf = scratch / "hooks.conf.py"
    conf.write_text(HOOKS)
    log = scratch / "access.log"
    port = free_port()
    stack = start_dedicated("threaded", workers=1, extra_args=THREADS + [
        "-c", str(conf), "--access-logfile", str(log), "--metrics-bind", "127.0.0.1:%d" % port])
    master = stack.ferrocorn
    one_worker(master)
    token = uuid.uuid4().hex
    urls = [stack.url("/dedicated/meet?n=4&token=%s&i=%d" % (token, i)) for i in range(8)]
    responses = get_all(urls, 8)
    assert [r.status_code for r in responses] == [200] * 8
    for i in range(8):
        uri = r"/dedicated/meet\?n=4&token=%s&i=%d" % (token, i)
        master.wait_for_log(r"hook pre_request %s$" % uri)
        master.wait_for_log(r"hook post_request %s 200$" % uri)
    assert wait_until(lambda: log.read_text().count(token) == 8, 10), log.read_text()
    # Counted after the response is sent: wait for the last one.
    assert wait_until(lambda: metrics(port)["ferrocorn_requests_total"] == 8, 10), metrics(port)


def test_ctl_show_workers_stays_busy_while_any_thread_has_a_request(start_dedicated, scratch):
    stack = start_dedicated(extra_args=THREADS, workers=1)
    server = stack.ferrocorn
    assert wait_until(lambda: all_idle(server), 30), data(server, "show workers")
    shown = lambda: data(server, "show workers")["workers"][0]["request"]  # noqa: E731
    release_first, first = in_flight(stack, scratch, "gate1")
    assert wait_until(lambda: shown() == "GET " + first, 30)
    release_second, second = in_flight(stack, scratch, "gate2")
    try:
        assert wait_until(lambda: shown() == "GET " + second, 30), "the latest started is shown"
        assert release_first().status_code == 200

        def only_worker():
            (worker,) = data(server, "show workers")["workers"]
            return worker

        # A request is counted once its response is out: wait for the first.
        worker = wait_until(lambda: (lambda w: w["requests"] == 1 and w)(only_worker()), 10) or only_worker()
        assert worker["state"] == "busy" and worker["requests"] == 1, worker
    finally:
        assert release_second().status_code == 200
    assert wait_until(lambda: all_idle(server), 10)
    assert data(server, "show workers")["workers"][0]["requests"] == 2


def test_hup_and_term_under_concurrent_load_lose_nothing(start_dedicated):
    stack = start_dedicated("threaded", extra_args=THREADS + ["--graceful-timeout", "60"], workers=2)
    master = stack.ferrocorn
    first = set(wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20))
    load = Load(stack.url("/dedicated/pid"), clients=6).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=4).start()
    token = uuid.uuid4().hex
    url = stack.url("/dedicated/slow?seconds=0.5&token=%s" % token)
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        try:
            load.wait_for_requests(200)
            mark = master.log_marks()
            master.proc.send_signal(signal.SIGHUP)
            master.wait_for_log(r"stopping 2 old workers", since=mark, timeout=30)
            assert wait_until(lambda: not (set(master.worker_pids()) & first), 30)
            load.wait_for_requests(200)
        finally:
            load.stop()
            pooled.stop()
        # TERM with 8 slow requests in the threads and 4 more queued.
        pending = [pool.submit(requests.get, url, timeout=60) for _ in range(12)]
        master.wait_for_log("slow request started %s" % token)
        # All 12 reached ferrocorn before TERM: started in a thread or waiting in the listen queue.
        assert wait_until(lambda: reached(master, token) == 12, 30), reached(master, token)
        master.proc.send_signal(signal.SIGTERM)
        statuses = [p.result(timeout=60).status_code for p in pending]
    print("\nHUP under load: direct %s; pooled %s. TERM with 12 slow requests: %d/12 answered 200"
          % (load.summary(), pooled.summary(), statuses.count(200)))
    assert load.failures == [] and pooled.failures == [], (load.summary(), pooled.summary())
    assert statuses == [200] * 12, statuses
    assert master.proc.wait(timeout=STOP_TIMEOUT) == 0


def test_max_requests_counts_across_threads(start_dedicated):
    stack = start_dedicated("threaded", extra_args=THREADS + ["--max-requests", "20"], workers=2)
    master = stack.ferrocorn
    mark = master.log_marks()
    load = Load(stack.url("/dedicated/pid"), clients=8).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=4).start()
    try:
        load.wait_for_requests(300, timeout=120)
    finally:
        load.stop()
        pooled.stop()
    restarts = master.logs(mark).count("Autorestarting worker after current request")
    sent = load.sent + pooled.sent
    workers = len(load.served_by | pooled.served_by)
    print("\n--max-requests 20 with 4 threads: direct %s; pooled %s; %d recycles, %d distinct workers"
          % (load.summary(), pooled.summary(), restarts, workers))
    assert load.failures == [] and pooled.failures == [], (load.summary(), pooled.summary())
    assert restarts >= 5
    # A worker finishes what its threads hold after the limit: a few more than 20, not many.
    assert workers >= sent // 40


def test_a_stuck_request_past_timeout_aborts_the_worker_with_a_504(start_dedicated):
    """The others keep going until then; the stuck one (the GIL released) gets the 504."""
    stack = start_dedicated("threaded", extra_args=THREADS + ["--timeout", "2"], workers=1)
    master = stack.ferrocorn
    before = set(one_worker(master))
    mark = master.log_marks()
    token = uuid.uuid4().hex
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        stuck = pool.submit(requests.get, stack.url("/dedicated/slow?seconds=60&token=%s" % token), timeout=60)
        master.wait_for_log("slow request started %s" % token, since=mark)
        # Served by another thread of the same worker while the first is stuck.
        assert requests.get(stack.url("/dedicated/pid"), timeout=60).content == str(min(before)).encode()
        response = stuck.result(timeout=60)
    assert response.status_code == 504
    assert b"worker was stuck" in response.content
    master.wait_for_log(r"WORKER TIMEOUT", since=mark)
    logs = master.logs(mark)
    assert "in slow" in logs and "threaded.py" in logs, logs
    assert wait_until(lambda: len(master.worker_pids()) == 1 and set(master.worker_pids()) != before, 20)
    assert requests.get(stack.url("/dedicated/pid"), timeout=30).status_code == 200


def test_worker_abort_hook_runs_for_a_request_stuck_in_a_thread(start_dedicated, scratch):
    """Python runs the hook's signal handler on the main thread, which serves no request."""
    notes = scratch / "aborted.txt"
    conf = scratch / "abort.conf.py"
    conf.write_text("def worker_abort(worker):\n"
                    "    open(%r, 'a').write('worker_abort %%s\\n' %% worker.pid)\n" % str(notes))
    stack = start_dedicated("threaded", workers=1,
                            extra_args=THREADS + ["-c", str(conf), "--timeout", "2"])
    master = stack.ferrocorn
    (pid,) = one_worker(master)
    mark = master.log_marks()
    response = requests.get(stack.url("/dedicated/slow?seconds=60"), timeout=60)
    assert response.status_code == 504
    master.wait_for_log(r"Worker \(pid:%d\) was sent SIGABRT" % pid, since=mark)
    assert notes.read_text() == "worker_abort %d\n" % pid


def test_stuck_in_c_holding_the_gil_with_threads_still_504s(start_dedicated):
    """No thread can run Python; the main loop still beats for the stuck request, which ages."""
    stack = start_dedicated("stuck", extra_args=THREADS + ["--timeout", "2"], workers=1)
    master = stack.ferrocorn
    mark = master.log_marks()
    response = requests.get(stack.url("/dedicated/"), timeout=60)
    assert response.status_code == 504
    master.wait_for_log(r"WORKER TIMEOUT", since=mark)
    assert "stuck_in_c_holding_the_gil" in master.logs(mark)
