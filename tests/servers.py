"""Real processes under test: nginx with the ferrocorn module, and ferrocorn.

Nothing here is mocked: `Nginx` runs dist/sbin/nginx with a generated
config and `Ferrocorn` runs dist/bin/ferrocorn on a test app. Both run in
their own process group so teardown can always kill everything they started.
`ServerLog` reads their log files for assertions and failure reports.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIST = Path(os.environ.get("FERROCORN_DIST", REPO / "dist")).resolve()
NGINX_BIN = DIST / "sbin" / "nginx"
MODULE_SO = DIST / "modules" / "ngx_http_ferrocorn_module.so"
FERROCORN_BIN = DIST / "bin" / "ferrocorn"
APPS_DIR = REPO / "tests" / "apps"

# Bounds for waiting on processes; never assertions about speed.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def require_binary(path):
    """Fail (not skip) with a clear hint when the install tree is missing."""
    if not path.exists():
        raise RuntimeError(
            "%s is missing: build the install tree first (scripts/build.sh) or point FERROCORN_DIST at one" % path
        )


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recording_dir(workdir, name):
    """A 0755 directory `name` under workdir holding `seen.jsonl`, a file any
    worker (whatever its user) may append what its app saw to. Returns
    (directory, seen file)."""
    base = workdir / name
    base.mkdir(mode=0o755, exist_ok=True)
    os.chmod(base, 0o755)
    seen = base / "seen.jsonl"
    seen.touch()
    os.chmod(seen, 0o666)
    return base, seen


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def unix_connections(path):
    """(accepted, queued): connections a listener on unix socket `path` holds
    open, and those still waiting in its listen queue (ss(8) reads both
    from the kernel)."""
    out = subprocess.run(["ss", "-xHa", "src", str(path)], capture_output=True, text=True, check=True).stdout
    accepted = queued = 0
    for line in out.splitlines():
        fields = line.split()
        if fields[1] == "LISTEN":
            queued += int(fields[2])
        elif fields[1] == "ESTAB":
            accepted += 1
    return accepted, queued


class ServerLog:
    """One log file of a process under test, read for assertions."""

    def __init__(self, path, title):
        self.path = Path(path)
        self.title = title

    def read_bytes(self, offset=0):
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def text(self, since=0):
        return self.read_bytes(since).decode("utf-8", errors="replace")

    def mark(self):
        """The current end of the log; pass it to since=/text() later."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def tail(self, lines=60, since=0):
        return "\n".join(self.text(since).splitlines()[-lines:])

    def wait_for(self, pattern, since=0, timeout=10.0):
        """Wait until regex `pattern` appears after `since`; returns the match."""
        regex = re.compile(pattern, re.MULTILINE)
        match = wait_until(lambda: regex.search(self.text(since)), timeout)
        if not match:
            raise AssertionError(
                "%r not found in %s within %.0fs; it holds:\n%s" % (pattern, self.title, timeout, self.tail(80, since))
            )
        return match


def live_pids():
    """Pids of processes that exist and are not zombies."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        state = proc_stat(int(entry))
        if state is not None and state[0] != "Z":
            pids.append(int(entry))
    return pids


def proc_stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("latin-1")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces.
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def is_alive(pid):
    state = proc_stat(pid)
    return state is not None and state[0] != "Z"


def children_of(pid):
    """Live (non-zombie) direct children of pid."""
    kids = []
    for candidate in live_pids():
        state = proc_stat(candidate)
        if state is not None and state[1] == pid:
            kids.append(candidate)
    return sorted(kids)


def is_hook_runner(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"\0ferrocorn-hook-runner\0" in f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def pids_with_cmdline(marker):
    """Live processes whose command line contains marker (a unique path)."""
    found = []
    needle = marker.encode()
    for pid in live_pids():
        if pid == os.getpid():
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if needle in f.read():
                    found.append(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def kill_group(proc, first_signal=signal.SIGTERM):
    """Stop a process we started and everything in its process group."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, first_signal)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=STOP_TIMEOUT)


class Ferrocorn:
    """A ferrocorn supervisor serving one app from tests/apps.

    `program`: the command that runs ferrocorn, as a list; by default the
    binary of the install tree, else e.g. a venv's pip-installed
    `bin/ferrocorn` or `[venv/bin/python, -m, ferrocorn]`. `chdir`: its
    --chdir (tests/apps unless said)."""

    def __init__(self, workdir, name, app, workers=2, tcp_port=None, extra_args=(), env=None, program=None,
                 chdir=APPS_DIR):
        self.name = name
        self.program = [str(p) for p in program] if program else [str(FERROCORN_BIN)]
        self.chdir = chdir
        self.app = app
        self.sock = Path(workdir) / ("%s.sock" % name)
        # Its own control socket: servers running side by side must not
        # contend for the default ./ferrocorn.ctl of their shared --chdir.
        self.ctl = Path(workdir) / ("%s.ctl" % name)
        self.workers = workers
        self.tcp_port = tcp_port
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})  # on top of the test run's environment (e.g. DJANGO_SETTINGS_MODULE)
        self.log = ServerLog(Path(workdir) / ("%s.log" % name), "ferrocorn %s error log" % name)
        self.stderr = ServerLog(Path(workdir) / ("%s.stderr" % name), "ferrocorn %s stdout+stderr" % name)
        self.proc = None

    def command(self):
        cmd = self.program + ["-b", "unix:%s" % self.sock]
        if self.tcp_port is not None:
            cmd += ["-b", "127.0.0.1:%d" % self.tcp_port]
        cmd += ["-w", str(self.workers), "--error-logfile", str(self.log.path), "--chdir", str(self.chdir)]
        if not any(a.startswith("--control-socket") for a in self.extra_args):
            cmd += ["--control-socket", str(self.ctl)]
        return cmd + self.extra_args + [self.app]

    def start(self):
        require_binary(Path(self.program[0]))
        for stale in (self.sock, self.log.path, self.stderr.path):
            if stale.exists():
                stale.unlink()
        # Only an explicit --virtualenv picks a venv: the caller's shell must not matter.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env.update(self.extra_env)
        out = open(self.stderr.path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(REPO),
        )
        out.close()
        return self

    def answers(self):
        """True when the unix socket accepts a connection."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.sock))
                return True
            except OSError:
                return False

    def wait_ready(self):
        ready = wait_until(lambda: self.proc.poll() is not None or self.answers(), START_TIMEOUT)
        if self.proc.poll() is not None or not ready:
            raise RuntimeError(
                "ferrocorn %s did not come up (exit code %s)\n%s\n%s"
                % (self.name, self.proc.poll(), self.log.tail(), self.stderr.tail())
            )
        return self

    def worker_pids(self):
        """The master's children but the hook runner (a python running master-side hooks)."""
        return [pid for pid in children_of(self.proc.pid) if not is_hook_runner(pid)]

    def wait_workers(self, count=None, timeout=START_TIMEOUT):
        """The worker pids once there are `count` (default: -w): the socket
        answers as soon as the master listens, before it forks them."""
        count = self.workers if count is None else count
        pids = wait_until(lambda: (lambda p: len(p) == count and p)(self.worker_pids()), timeout)
        assert pids, "expected %d workers, found %s" % (count, self.worker_pids())
        return pids

    def logs(self, since=(0, 0)):
        """Error log and stdout/stderr text after marks from log_marks()."""
        return self.log.text(since[0]) + self.stderr.text(since[1])

    def log_marks(self):
        return (self.log.mark(), self.stderr.mark())

    def wait_for_log(self, pattern, since=(0, 0), timeout=10.0):
        """Wait until pattern appears in the error log or stdout/stderr."""
        regex = re.compile(pattern, re.MULTILINE)
        match = wait_until(lambda: regex.search(self.logs(since)), timeout)
        if not match:
            raise AssertionError(
                "%r not found in ferrocorn %s output within %.0fs; it holds:\n%s"
                % (pattern, self.name, timeout, self.logs(since)[-6000:])
            )
        return match

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc)
        for pid in pids_with_cmdline(str(self.sock)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
error_log {error_log} info;
pid {prefix}/nginx.pid;

events {{
    worker_connections 512;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body_temp;
    client_max_body_size 64m;
    large_client_header_buffers 4 16k;
{http_extra}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
{locations}
    }}
}}
"""


class Nginx:
    """dist/sbin/nginx with the ferrocorn module and a generated config."""

    def __init__(self, workdir, name, port, locations, http_extra=""):
        self.prefix = Path(workdir) / name
        self.prefix.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        self.port = port
        self.conf = self.prefix / "nginx.conf"
        self.error_log = ServerLog(self.prefix / "error.log", "nginx %s error.log" % name)
        self.stderr = ServerLog(self.prefix / "stderr.log", "nginx %s stderr" % name)
        self.conf.write_text(
            NGINX_CONF.format(
                module=MODULE_SO,
                error_log=self.error_log.path,
                prefix=self.prefix,
                port=port,
                http_extra=http_extra,
                locations=locations,
            )
        )
        self.proc = None

    def args(self, *extra):
        return [str(NGINX_BIN), "-p", "%s/" % self.prefix, "-e", str(self.error_log.path), "-c", str(self.conf)] + list(
            extra
        )

    def check_config(self):
        """`nginx -t` on the config: (exit code, combined output)."""
        require_binary(NGINX_BIN)
        result = subprocess.run(self.args("-t"), capture_output=True, timeout=STOP_TIMEOUT)
        return result.returncode, (result.stdout + result.stderr).decode("utf-8", errors="replace")

    def start(self):
        require_binary(NGINX_BIN)
        require_binary(MODULE_SO)
        out = open(self.stderr.path, "ab")
        self.proc = subprocess.Popen(
            self.args(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        return self

    def answers(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False

    def wait_ready(self):
        ready = wait_until(lambda: self.proc.poll() is not None or self.answers(), START_TIMEOUT)
        if self.proc.poll() is not None or not ready:
            raise RuntimeError(
                "nginx did not come up (exit code %s)\n%s\n%s"
                % (self.proc.poll(), self.error_log.tail(), self.stderr.tail())
            )
        return self

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc)
