"""A steady client load through nginx, for the "no request lost" promises.

`Load(url, clients)` runs `clients` threads, each sending GET requests in a
loop (one kept-alive connection to nginx per thread) until `stop()`; every
response that is not a 200 with the expected body, and every client error,
is a failure, recorded with what went wrong.
"""

import threading
import time

import requests


class Load:
    def __init__(self, url, clients=4, expect_body=None, timeout=60):
        self.url = url
        self.clients = clients
        self.expect_body = expect_body
        self.timeout = timeout
        self.sent = 0
        self.failures = []
        self.served_by = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            try:
                response = session.get(self.url, timeout=self.timeout)
                ok = response.status_code == 200 and (
                    self.expect_body is None or response.content == self.expect_body
                )
                problem = None if ok else "status %d: %r" % (response.status_code, response.content[:200])
            except requests.RequestException as e:
                problem = "client error: %s" % e
                response = None
            with self._lock:
                self.sent += 1
                if problem:
                    self.failures.append(problem)
                elif response.content.isdigit():
                    self.served_by.add(int(response.content))

    def start(self):
        for _ in range(self.clients):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wait_for_requests(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        start = self.sent
        while self.sent - start < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        return self

    def summary(self):
        return "%d sent, %d failed%s" % (
            self.sent,
            len(self.failures),
            (": " + "; ".join(self.failures[:5])) if self.failures else "",
        )
