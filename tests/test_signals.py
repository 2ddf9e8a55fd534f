"""Master signals and worker recycling under steady load: nothing is lost.

Each test runs a client loop through nginx (`load.Load`) while the master
reloads (HUP), stops (TERM) or recycles workers (--max-requests), and
asserts every request got its 200. The figures (sent/failed) are printed;
run with `-s` to see them.
"""

import concurrent.futures
import os
import signal
import uuid

import requests

from load import Load
from servers import STOP_TIMEOUT, unix_connections, wait_until


def two_workers(master):
    return wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20)


def reached(master, token):
    """Slow requests with this token that a worker started or that wait in the listen queue."""
    return master.logs().count("slow request started %s" % token) + unix_connections(master.sock)[1]


def test_hup_under_load_loses_no_request(start_dedicated):
    stack = start_dedicated()
    master = stack.ferrocorn
    generations = [set(two_workers(master))]
    load = Load(stack.url("/dedicated/pid"), clients=4).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=2).start()
    try:
        load.wait_for_requests(50)
        for _ in range(3):
            mark = master.log_marks()
            master.proc.send_signal(signal.SIGHUP)
            master.wait_for_log(r"stopping 2 old workers", since=mark, timeout=30)
            previous = generations[-1]
            fresh = wait_until(lambda: (set(master.worker_pids()) - previous) if len(master.worker_pids()) == 2 else None, 30)
            assert fresh and not (fresh & previous), "old workers still there: %s" % master.worker_pids()
            generations.append(fresh)
            load.wait_for_requests(50)
    finally:
        load.stop()
        pooled.stop()
    print("\nHUP x3 under load: direct %s; pooled %s" % (load.summary(), pooled.summary()))
    assert load.failures == [], load.summary()
    assert pooled.failures == [], pooled.summary()
    # Every generation served.
    served = load.served_by | pooled.served_by
    for generation in generations:
        assert served & generation, "generation %s never served" % generation
    assert master.proc.poll() is None


def test_hup_with_a_broken_app_keeps_the_old_workers(start_dedicated, scratch):
    app = scratch / "reloadable.py"
    app.write_text("import os\n"
                   "def application(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [b'v1 %d' % os.getpid()]\n")
    stack = start_dedicated("reloadable", extra_args=["--pythonpath", str(scratch)])
    master = stack.ferrocorn
    before = set(two_workers(master))
    # Both workers have imported v1 (each answered) before the file breaks:
    # a worker still booting would import the broken file instead. A
    # connection per request (/dedicated-fresh/) reaches both.
    answered = set()
    assert wait_until(
        lambda: answered.add(requests.get(stack.url("/dedicated-fresh/"), timeout=30).content) or len(answered) == 2,
        20,
    ), answered
    assert {a.split()[0] for a in answered} == {b"v1"}
    app.write_text("raise RuntimeError('deploy went wrong')\n")
    mark = master.log_marks()
    master.proc.send_signal(signal.SIGHUP)
    master.wait_for_log(r"Reload failed .*keeping the 2 previous workers", since=mark, timeout=30)
    assert "deploy went wrong" in master.logs(mark)
    for _ in range(5):
        response = requests.get(stack.url("/dedicated/"), timeout=30)
        assert response.status_code == 200 and response.content.startswith(b"v1 ")
    assert master.proc.poll() is None
    assert wait_until(lambda: set(master.worker_pids()) == before, 10), master.worker_pids()
    # Fixed: the next HUP serves the new code.
    app.write_text("def application(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [b'v2']\n")
    mark = master.log_marks()
    master.proc.send_signal(signal.SIGHUP)
    master.wait_for_log(r"stopping 2 old workers", since=mark, timeout=30)
    assert wait_until(lambda: requests.get(stack.url("/dedicated/"), timeout=30).content == b"v2", 10)


def test_term_under_load_completes_every_accepted_request(start_dedicated):
    """8 slow requests for 2 workers: 6 wait in the listen queue when TERM comes; all are served."""
    stack = start_dedicated(extra_args=["--graceful-timeout", "60"])
    master = stack.ferrocorn
    two_workers(master)
    token = uuid.uuid4().hex
    url = stack.url("/dedicated/slow?seconds=0.5&token=%s" % token)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(requests.get, url, timeout=60) for _ in range(8)]
        master.wait_for_log("slow request started %s" % token)
        # All 8 reached ferrocorn before TERM: started in a worker or waiting in the listen queue.
        assert wait_until(lambda: reached(master, token) == 8, 30), reached(master, token)
        master.proc.send_signal(signal.SIGTERM)
        responses = [p.result(timeout=60) for p in pending]
    statuses = [r.status_code for r in responses]
    print("\nTERM with 8 requests in flight or queued: %d/8 answered 200" % statuses.count(200))
    assert statuses == [200] * 8, statuses
    assert master.proc.wait(timeout=STOP_TIMEOUT) == 0


def test_max_requests_recycles_workers_without_failures(start_dedicated):
    stack = start_dedicated(extra_args=["--max-requests", "20", "--max-requests-jitter", "10"])
    master = stack.ferrocorn
    first = set(two_workers(master))
    mark = master.log_marks()
    load = Load(stack.url("/dedicated/pid"), clients=4).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=2).start()
    try:
        load.wait_for_requests(400, timeout=120)
    finally:
        load.stop()
        pooled.stop()
    restarts = master.logs(mark).count("Autorestarting worker after current request")
    print("\n--max-requests 20 (+jitter 10): direct %s; pooled %s; %d recycles, %d distinct workers"
          % (load.summary(), pooled.summary(), restarts, len(load.served_by | pooled.served_by)))
    assert load.failures == [] and pooled.failures == [], (load.summary(), pooled.summary())
    assert restarts >= 10
    # No worker served more than max + jitter requests.
    assert len(load.served_by | pooled.served_by) >= (load.sent + pooled.sent) // 30
    assert not (set(master.worker_pids()) & first)


def test_max_worker_memory_recycles_a_growing_worker(start_dedicated, scratch):
    app = scratch / "hog.py"
    app.write_text("import os\nHOARD = []\n"
                   "def application(environ, start_response):\n"
                   "    HOARD.append(bytearray(8 << 20))\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [str(os.getpid()).encode()]\n")
    stack = start_dedicated("hog", extra_args=["--pythonpath", str(scratch), "--max-worker-memory", "60"])
    master = stack.ferrocorn
    mark = master.log_marks()
    pids = set()
    for _ in range(30):
        response = requests.get(stack.url("/dedicated/"), timeout=30)
        assert response.status_code == 200
        pids.add(int(response.content))
    master.wait_for_log(r"passed --max-worker-memory 60 MiB", since=mark)
    assert len(pids) >= 3, pids


def test_timeout_dumps_every_thread_even_stuck_in_c_and_answers_504(start_dedicated):
    stack = start_dedicated("stuck", extra_args=["--timeout", "2"])
    master = stack.ferrocorn
    before = set(two_workers(master))
    mark = master.log_marks()
    response = requests.get(stack.url("/dedicated/"), timeout=60)
    assert response.status_code == 504
    assert b"worker was stuck" in response.content
    master.wait_for_log(r"WORKER TIMEOUT", since=mark)
    master.wait_for_log(r"was sent SIGABRT", since=mark)
    logs = master.logs(mark)
    assert "Current thread" in logs or "Thread 0x" in logs, logs
    assert "stuck_in_c_holding_the_gil" in logs, logs
    assert "stuck.py" in logs
    assert wait_until(lambda: len(master.worker_pids()) == 2 and set(master.worker_pids()) != before, 20)


def test_a_worker_killed_by_a_real_time_signal_is_replaced(start_dedicated):
    """A signal number without a name (SIGRTMIN+5 kills by default) still reads as a death."""
    stack = start_dedicated()
    master = stack.ferrocorn
    victim = two_workers(master)[0]
    mark = master.log_marks()
    os.kill(victim, signal.SIGRTMIN + 5)
    master.wait_for_log(r"Worker \(pid:%d\) was sent signal %d!" % (victim, signal.SIGRTMIN + 5), since=mark)
    assert wait_until(lambda: len(master.worker_pids()) == 2 and victim not in master.worker_pids(), 20)
    assert requests.get(stack.url("/dedicated/pid"), timeout=30).status_code == 200
