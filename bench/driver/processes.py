"""Process groups: every server the benchmark starts runs in its own session, is
polled until it answers (never slept on), and is stopped with its whole group."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Every group still running; stop_all() ends them (run.py calls it in a finally).
_LIVE: list["Group"] = []


class StartError(RuntimeError):
    """A process died or did not become ready; the message carries its log tail."""


@dataclass
class Memory:
    pid: int
    # Resident set now and its peak (VmHWM), in KiB.
    rss_kib: int
    peak_kib: int


class Group:
    """One command started as the leader of a new process group."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        _LIVE.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _check_alive(self, waiting_for: str) -> None:
        if self.proc.poll() is not None:
            raise StartError(f"{self.name} exited with {self.proc.returncode} while waiting for "
                             f"{waiting_for}:\n{self.log_tail()}")

    def wait_for_socket(self, path: Path, timeout: float = 30.0) -> None:
        """Polls until a unix socket at path accepts a connection."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(f"unix socket {path}")
            if path.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    try:
                        s.connect(str(path))
                        return
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                raise StartError(f"{self.name}: {path} not accepting after {timeout:.0f} s:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.05)

    def wait_for_http(self, port: int, path: str, timeout: float = 30.0) -> None:
        """Polls until GET path on 127.0.0.1:port answers 200."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            self._check_alive(f"GET {path} on port {port}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise StartError(f"{self.name}: GET {path} gave {last} after {timeout:.0f} s")
            time.sleep(0.05)

    def members(self) -> list[int]:
        """Live pids of this group, the leader included."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            # fields[0] is the state, fields[2] the process group.
            if int(fields[2]) == self.pid and fields[0] != "Z":
                pids.append(int(entry))
        return sorted(pids)

    def worker_memory(self) -> list[Memory]:
        """Memory of every group member but the leader (the master/arbiter/supervisor)."""
        out = []
        for pid in self.members():
            if pid == self.pid:
                continue
            fields = {}
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    fields[key] = value.split()
            except OSError:
                continue
            if "VmRSS" in fields:
                out.append(Memory(pid, int(fields["VmRSS"][0]), int(fields["VmHWM"][0])))
        return out

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """TERM to the whole group, KILL what is left after timeout; never raises."""
        if self in _LIVE:
            _LIVE.remove(self)
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        # Children that outlived the leader (a worker still finishing) go too.
        deadline = time.monotonic() + timeout
        while self.members() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.members():
            self._signal_group(signal.SIGKILL)
        self._log.close()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass


def stop_all() -> None:
    for group in list(reversed(_LIVE)):
        group.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
