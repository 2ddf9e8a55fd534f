"""--reload (development): a worker restarts when a Python file it loaded or a
--reload-extra-file changes, and the next requests are served by the new
code with none failing meanwhile; a file that no longer imports gives 500s
with the traceback (the server stays up) until it is fixed."""

import os
import threading

import pytest
import requests

from servers import wait_until

APP = '''\
import os

with open(os.path.join(os.path.dirname(__file__), "page.txt")) as f:
    PAGE = f.read().strip()


def application(environ, start_response):
    body = ("%s|%s|%d\\n" % ({version!r}, PAGE, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


HOOKS = """
def worker_int(worker):
    worker.log.info("hook worker_int pid=%s", worker.pid)
"""


class Traffic:
    """GET requests in a loop from a thread until stopped: every status and body seen."""

    def __init__(self, url):
        self.url = url
        self.seen = []
        self.errors = []
        self.running = True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                r = requests.get(self.url, timeout=30)
                self.seen.append((r.status_code, r.text))
            except requests.RequestException as e:
                self.errors.append(repr(e))

    def stop(self):
        self.running = False
        self.thread.join(timeout=60)
        return self.seen


def served(stack):
    r = requests.get(stack.url("/dedicated/"), timeout=30)
    return r.status_code, r.text


def both_workers_serve(stack):
    """Waits until both workers have answered (each has imported the app),
    through a connection per request (/dedicated/ keeps one alive, which
    stays with one worker)."""
    pids = set()

    def pid():
        return requests.get(stack.url("/dedicated-fresh/"), timeout=30).text.split("|")[-1]

    assert wait_until(lambda: pids.add(pid()) or len(pids) == 2, 30), pids


def inotify_watches(pid):
    """How many inotify watches the process holds (from /proc/PID/fdinfo)."""
    total = 0
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                total += sum(1 for line in f if line.startswith("inotify wd:"))
        except FileNotFoundError:
            pass
    return total


@pytest.mark.parametrize("engine", ["inotify", "poll"])
def test_edited_code_is_served_after_a_reload_with_no_failed_request(start_dedicated, scratch, engine):
    app = scratch / "reloadapp.py"
    page = scratch / "page.txt"
    app.write_text(APP.format(version="v1"))
    page.write_text("first page")
    conf = scratch / "reload.conf.py"
    conf.write_text(HOOKS)
    stack = start_dedicated("reloadapp:application", extra_args=[
        "--reload", "--reload-engine", engine, "--reload-extra-file", str(page), "--pythonpath", str(scratch),
        "-c", str(conf)])
    master = stack.ferrocorn
    assert served(stack)[1].startswith("v1|first page|")
    both_workers_serve(stack)
    # The engine asked for is the one at work: inotify watches on the files' directories, or none.
    watches = [inotify_watches(pid) for pid in master.worker_pids()]
    assert all(w > 0 for w in watches) if engine == "inotify" else watches == [0, 0], watches
    mark = master.log_marks()

    traffic = Traffic(stack.url("/dedicated/"))
    try:
        app.write_text(APP.format(version="v2 (edited)"))
        assert wait_until(lambda: traffic.seen and traffic.seen[-1][1].startswith("v2 (edited)|"), 30), traffic.seen[-5:]
        # Both workers restarted (each notices on its own, up to a second
        # after the other): a few more requests, all on the new code.
        reloading = "Worker reloading: %s modified" % app
        assert wait_until(lambda: master.logs(mark).count(reloading) >= 2, 30), master.logs(mark)
        count = len(traffic.seen)
        assert wait_until(lambda: len(traffic.seen) > count + 20, 30)
    finally:
        seen = traffic.stop()
    assert traffic.errors == []
    assert {status for status, _ in seen} == {200}, seen
    assert {body.split("|")[0] for _, body in seen} <= {"v1", "v2 (edited)"}
    assert {body.split("|")[0] for _, body in seen[-10:]} == {"v2 (edited)"}
    master.wait_for_log(r"Worker reloading: %s modified" % app, since=mark)
    # Each restarted worker ran worker_int on its way out, as under Gunicorn.
    assert wait_until(lambda: master.logs(mark).count("hook worker_int") >= 2, 10), master.logs(mark)
    assert "was sent" not in master.logs(mark) and "exited with code" not in master.logs(mark)

    # An extra file (a template read at import) reloads the workers too.
    mark = master.log_marks()
    page.write_text("second page, longer")
    assert wait_until(lambda: served(stack)[1].startswith("v2 (edited)|second page, longer|"), 30)
    master.wait_for_log(r"Worker reloading: %s modified" % page, since=mark)


def test_a_syntax_error_is_served_as_500_until_the_file_is_fixed(start_dedicated, scratch):
    app = scratch / "editing.py"
    (scratch / "page.txt").write_text("page")
    app.write_text(APP.format(version="v1"))
    stack = start_dedicated("editing:application", extra_args=["--reload", "--pythonpath", str(scratch)])
    master = stack.ferrocorn
    both_workers_serve(stack)
    mark = master.log_marks()

    app.write_text("def application(environ, start_response:\n    pass\n")
    # Each worker notices on its own: wait until both answer the traceback.
    assert wait_until(lambda: all(served(stack)[0] == 500 for _ in range(6)), 30)
    status, body = served(stack)
    assert "SyntaxError" in body and "editing.py" in body, body
    master.wait_for_log(r"Worker reloading: %s modified" % app, since=mark)
    master.wait_for_log(r"SyntaxError", since=mark)
    assert master.proc.poll() is None
    assert len(master.worker_pids()) == 2

    app.write_text(APP.format(version="v3 (fixed)"))
    assert wait_until(lambda: served(stack)[1].startswith("v3 (fixed)|page|"), 30)
    assert wait_until(lambda: all(served(stack)[0] == 200 for _ in range(10)), 30)
