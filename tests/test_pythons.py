"""Every CPython 3.9-3.13 the machine has, each with Ferrocorn pip-installed
in a venv of its own (scripts/python-venvs.sh builds one wheel per Python
and writes target/pyvenvs/manifest.json), serving through the real nginx
and module. A Python the machine lacks is skipped by name; one whose build
or install failed fails.

Per Python, the core set: the PEP 3333 app under wsgiref.validate (on that
venv's own interpreter), Flask from that venv's site-packages, a worker
timeout with its traceback and a 504, HUP under load with no request lost,
--preload, and the binary (which embeds one Python) refusing that venv, or
serving it when the versions match.

On one Python (3.12 when there is one), what the package reaches otherwise
than the binary: `python -m ferrocorn`, `ferrocornctl`, config files and
hooks, the USR2 upgrade, worker exit (atexit, non-daemon threads),
`--daemon`, and `pip install <checkout>` itself. Then bad input: pip on a
Python older than 3.9 or given a wheel of another Python, a venv the binary
cannot read.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from apps.patterns import stream_blocks
from load import Load
from servers import APPS_DIR, FERROCORN_BIN, REPO, STOP_TIMEOUT, Ferrocorn, children_of, is_alive, wait_until

MANIFEST = REPO / "target" / "pyvenvs" / "manifest.json"
VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
# The Python the package-only checks run on, when the machine has it.
PACKAGE_PYTHON = "3.12"


class Venv:
    """A venv of one CPython with the pip-installed ferrocorn."""

    def __init__(self, version, entry):
        self.version = version
        self.full_version = entry["full_version"]
        self.interpreter = Path(entry["python"])
        self.path = Path(entry["venv"])
        self.python = self.path / "bin" / "python"
        self.ferrocorn = [self.path / "bin" / "ferrocorn"]
        self.cargo_target_dir = entry["cargo_target_dir"]

    def is_prefix_of(self, reported):
        return os.path.samefile(reported, self.path)


def manifest():
    if not MANIFEST.exists():
        pytest.fail("%s is missing: run scripts/python-venvs.sh first (scripts/test.sh does)" % MANIFEST)
    return json.loads(MANIFEST.read_text())


def venv_of(version):
    entry = manifest().get(version)
    if entry is None:
        pytest.fail("%s has no entry for CPython %s: rerun scripts/python-venvs.sh" % (MANIFEST, version))
    if "missing" in entry:
        pytest.skip("CPython %s is not installed on this machine (%s)" % (version, entry["missing"]))
    if "error" in entry:
        pytest.fail("CPython %s (%s): %s" % (version, entry.get("python"), entry["error"]))
    return Venv(version, entry)


@pytest.fixture(scope="module", params=VERSIONS, ids=["py" + v for v in VERSIONS])
def venv(request):
    return venv_of(request.param)


def embedded_python():
    """MAJOR.MINOR of the libpython dist/bin/ferrocorn links."""
    out = subprocess.run(["ldd", str(FERROCORN_BIN)], capture_output=True, text=True, check=True).stdout
    found = re.search(r"libpython(3\.\d+)", out)
    assert found, out
    return found.group(1)


def get_json(stack, path):
    response = requests.get(stack.url(path), timeout=30)
    assert response.status_code == 200, (response.status_code, response.text[:2000])
    return response.json()


def assert_runs_on(venv, info):
    """What /python (or a hook's note) reported is that venv on its own CPython."""
    assert venv.is_prefix_of(info["prefix"]), (info, venv.path)
    assert ".".join(map(str, info["version_info"][:2])) == venv.version, info


def two_workers(master):
    return wait_until(lambda: len(master.worker_pids()) == 2 and master.worker_pids(), 20)


# --- the core set, on every Python --------------------------------------------------------------


def test_pep3333_app_under_the_validator(venv, start_dedicated, scratch):
    stack = start_dedicated(program=venv.ferrocorn)
    info = get_json(stack, "/dedicated/python")
    assert_runs_on(venv, info)
    assert info["version_info"] == [int(p) for p in venv.full_version.split(".")], info
    # The interpreter's own standard library, not the one of the Python the binary embeds.
    assert os.path.samefile(info["base_prefix"], venv.interpreter.parent.parent), info

    environ = get_json(stack, "/dedicated/env?x=1")["environ"]
    assert environ["wsgi.version"] == {"type": "tuple", "value": "(1, 0)"}
    assert environ["wsgi.url_scheme"]["value"] == "http"
    assert environ["REQUEST_METHOD"]["value"] == "GET"
    assert environ["PATH_INFO"]["value"] == "/dedicated/env"
    assert environ["QUERY_STRING"]["value"] == "x=1"
    assert environ["wsgi.multithread"]["value"] is False

    total = 4 * 1024 * 1024
    digest, size = hashlib.sha256(), 0
    with requests.get(stack.url("/dedicated/stream?bytes=%d" % total), stream=True, timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_content(256 * 1024):
            size += len(chunk)
            digest.update(chunk)
    assert size == total
    assert digest.hexdigest() == hashlib.sha256(b"".join(stream_blocks(total))).hexdigest()

    body = os.urandom(300 * 1024)
    echoed = requests.post(stack.url("/dedicated/echo"), data=body, timeout=30)
    assert echoed.status_code == 200
    assert echoed.headers["X-Content-Length-Seen"] == str(len(body))
    assert echoed.content == body

    written = requests.get(stack.url("/dedicated/write"), timeout=30)
    assert (written.status_code, written.content) == (200, b"part one, part two, returned tail\n")

    served = scratch / "served.bin"
    served.write_bytes(os.urandom(200 * 1024 + 7))
    wrapped = requests.get(stack.url("/dedicated/file?path=%s" % served), timeout=30)
    assert wrapped.status_code == 200
    assert wrapped.content == served.read_bytes()


def test_flask_from_the_venvs_site_packages(venv, start_dedicated):
    stack = start_dedicated("venvflask:app", program=venv.ferrocorn)
    info = get_json(stack, "/dedicated/flask")
    assert_runs_on(venv, info)
    site_packages = venv.path / "lib" / ("python%s" % venv.version) / "site-packages"
    assert Path(info["flask_file"]).parent.parent == site_packages, info
    form = requests.post(stack.url("/dedicated/flask/form"), data={"name": "ada", "comment": "é & ok"}, timeout=30)
    assert (form.status_code, form.text) == (200, "hello ada: é & ok\n")
    summed = requests.post(stack.url("/dedicated/flask/json"), json={"values": [1, 2, 39]}, timeout=30)
    assert (summed.status_code, summed.json()) == (201, {"sum": 42})


def test_worker_timeout_dumps_the_traceback_and_answers_504(venv, start_dedicated):
    stack = start_dedicated("stuck", extra_args=["--timeout", "2"], program=venv.ferrocorn)
    master = stack.ferrocorn
    before = set(two_workers(master))
    mark = master.log_marks()
    response = requests.get(stack.url("/dedicated/"), timeout=60)
    assert response.status_code == 504
    master.wait_for_log(r"WORKER TIMEOUT", since=mark)
    master.wait_for_log(r"was sent SIGABRT", since=mark)
    # faulthandler's dump of the stuck worker: the app's function and file.
    master.wait_for_log(r'File "%s", line \d+ in stuck_in_c_holding_the_gil' % re.escape(str(APPS_DIR / "stuck.py")),
                        since=mark)
    # Replaced: a new worker, on the same Python.
    assert wait_until(lambda: len(master.worker_pids()) == 2 and set(master.worker_pids()) != before, 20)


def test_hup_under_load_loses_no_request(venv, start_dedicated):
    stack = start_dedicated(program=venv.ferrocorn)
    master = stack.ferrocorn
    old = set(two_workers(master))
    load = Load(stack.url("/dedicated/pid"), clients=4).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=2).start()
    try:
        load.wait_for_requests(50)
        mark = master.log_marks()
        master.proc.send_signal(signal.SIGHUP)
        master.wait_for_log(r"stopping 2 old workers", since=mark, timeout=30)
        fresh = wait_until(lambda: (set(master.worker_pids()) - old) if len(master.worker_pids()) == 2 else None, 30)
        assert fresh and not (fresh & old), "old workers still there: %s" % master.worker_pids()
        # Requests after the new workers took over.
        load.wait_for_requests(50)
        pooled.wait_for_requests(20)
    finally:
        load.stop()
        pooled.stop()
    print("\nCPython %s, HUP under load: direct %s; pooled %s" % (venv.version, load.summary(), pooled.summary()))
    assert load.failures == [], load.summary()
    assert pooled.failures == [], pooled.summary()
    served = load.served_by | pooled.served_by
    assert served & old and served & fresh, (served, old, fresh)
    assert_runs_on(venv, get_json(stack, "/dedicated/python"))


IMPORT_PID_APP = """\
import os, sys
IMPORTED_IN = os.getpid()
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%d %d %s' % (IMPORTED_IN, os.getpid(), sys.prefix)).encode()]
"""


def test_preload_imports_the_app_once_in_the_master(venv, start_dedicated, scratch):
    (scratch / "importpid.py").write_text(IMPORT_PID_APP)
    stack = start_dedicated("importpid", extra_args=["--pythonpath", str(scratch), "--preload"], program=venv.ferrocorn)
    master = stack.ferrocorn
    workers = set(two_workers(master))
    seen = set()
    for _ in range(6):
        response = requests.get(stack.url("/dedicated/"), timeout=30)
        assert response.status_code == 200
        imported_in, served_by, prefix = response.text.split(" ", 2)
        assert venv.is_prefix_of(prefix), prefix
        seen.add((int(imported_in), int(served_by)))
    assert {imported for imported, _ in seen} == {master.proc.pid}, seen
    assert {served for _, served in seen} <= workers, (seen, workers)


def refusal(venv_shown, made_by, embedded):
    return (
        "Error: the virtualenv %s was made by Python %s, but this ferrocorn binary embeds Python %s: install "
        "Ferrocorn into that virtualenv (%s/bin/pip install <ferrocorn checkout or wheel>) and run %s/bin/ferrocorn"
        % (venv_shown, made_by, embedded, venv_shown, venv_shown)
    )


def run_binary(scratch, extra_args=(), env=None, chdir=APPS_DIR):
    """dist/bin/ferrocorn on basic:app with a socket of its own; bounded: a binary that serves is a timeout."""
    full_env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    full_env.update(env or {})
    sock = scratch / "refused.sock"
    cmd = [str(FERROCORN_BIN), "-b", "unix:%s" % sock, "--control-socket", str(scratch / "refused.ctl"),
           "--chdir", str(chdir)] + list(extra_args) + ["basic:app"]
    result = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert not sock.exists(), "it bound its socket"
    return result


def test_the_binary_refuses_a_venv_of_another_python_and_serves_its_own(venv, start_dedicated, scratch):
    """dist/bin/ferrocorn embeds one CPython: given this venv by --virtualenv, VIRTUAL_ENV or a
    --chdir directory holding it as .venv, it refuses it in one line naming both versions and the
    fix, unless the venv is of that same version: then it serves it."""
    embedded = embedded_python()
    project = scratch / "project"
    project.mkdir()
    (project / ".venv").symlink_to(venv.path)
    forms = {
        "--virtualenv": dict(extra_args=["--virtualenv", str(venv.path)], shown=venv.path),
        "VIRTUAL_ENV": dict(env={"VIRTUAL_ENV": str(venv.path)}, shown=venv.path),
        "--chdir DIR/.venv": dict(chdir=project, extra_args=["--pythonpath", str(APPS_DIR)], shown=project / ".venv"),
    }
    for form, how in forms.items():
        shown = how.pop("shown")
        if venv.version != embedded:
            result = run_binary(scratch, **how)
            assert (result.returncode, result.stdout) == (2, ""), (form, result)
            assert result.stderr == refusal(shown, venv.version, embedded) + "\n", (form, result.stderr)
        else:
            stack = start_dedicated("venvflask:app", **how)
            info = get_json(stack, "/dedicated/flask")
            assert venv.is_prefix_of(info["prefix"]), (form, info)
            assert ".".join(map(str, info["version_info"][:2])) == embedded, (form, info)
            stack.ferrocorn.stop()


# --- what the package reaches otherwise than the binary, on one Python ----------------------------


@pytest.fixture(scope="module")
def package_venv():
    """3.12's venv, else another present Python's (3.11 last: the binary's own version shows least)."""
    entries = manifest()
    for version in [PACKAGE_PYTHON] + [v for v in VERSIONS if v not in (PACKAGE_PYTHON, "3.11")] + ["3.11"]:
        entry = entries.get(version, {})
        if "venv" in entry and "error" not in entry:
            return venv_of(version)
    pytest.skip("no CPython 3.9-3.13 with a working venv on this machine: %s" % entries)


def test_python_dash_m_ferrocorn_serves(package_venv, start_dedicated):
    stack = start_dedicated(program=[package_venv.python, "-m", "ferrocorn"])
    assert_runs_on(package_venv, get_json(stack, "/dedicated/python"))
    assert Path("/proc/%d/exe" % stack.ferrocorn.proc.pid).resolve() == package_venv.python.resolve()


def test_ferrocornctl_and_ferrocorn_ctl_show_the_workers(package_venv, start_dedicated):
    stack = start_dedicated(program=package_venv.ferrocorn)
    master = stack.ferrocorn
    workers = two_workers(master)
    bin_dir = package_venv.path / "bin"
    for ctl in ([bin_dir / "ferrocornctl"], [bin_dir / "ferrocorn", "ctl"]):

        def show_workers():
            result = subprocess.run([str(c) for c in ctl] + ["-s", str(master.ctl), "--json", "show", "workers"],
                                    capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, (ctl, result)
            return json.loads(result.stdout)["data"]["workers"]

        idle = wait_until(lambda: (lambda ws: all(w["state"] == "idle" for w in ws) and ws)(show_workers()), 30)
        assert idle, (ctl, show_workers())
        assert sorted(w["pid"] for w in idle) == sorted(workers), (ctl, idle, workers)


HOOKS_CONF = """\
import json, os, sys
_NOTES = {notes!r}

def _note(what, **fields):
    fields.update(what=what, pid=os.getpid(), prefix=sys.prefix, version_info=list(sys.version_info[:3]))
    with open(_NOTES, "a") as f:
        f.write(json.dumps(fields) + "\\n")

_note("config file")

def on_starting(server):
    _note("on_starting", server_pid=server.pid)

def when_ready(server):
    _note("when_ready", server_pid=server.pid)

def post_fork(server, worker):
    _note("post_fork", worker_pid=worker.pid)
"""


def test_config_file_and_its_hooks_run_on_the_venvs_python(package_venv, start_dedicated, scratch):
    notes = scratch / "notes.jsonl"
    conf = scratch / "hooks.conf.py"
    conf.write_text(HOOKS_CONF.format(notes=str(notes)))

    def noted(what):
        lines = notes.read_text().splitlines() if notes.exists() else []
        return [n for n in map(json.loads, lines) if n["what"] == what]

    stack = start_dedicated(extra_args=["-c", str(conf)], program=package_venv.ferrocorn)
    master = stack.ferrocorn
    workers = two_workers(master)
    assert wait_until(lambda: len(noted("post_fork")) == 2 and noted("when_ready"), 20), notes.read_text()
    for note in noted("config file") + noted("on_starting") + noted("when_ready") + noted("post_fork"):
        assert_runs_on(package_venv, note)
    assert [n["server_pid"] for n in noted("on_starting") + noted("when_ready")] == [master.proc.pid] * 2
    # post_fork runs in each worker, as itself.
    assert sorted(n["pid"] for n in noted("post_fork")) == sorted(n["worker_pid"] for n in noted("post_fork"))
    assert sorted(n["pid"] for n in noted("post_fork")) == sorted(workers)


def read_pid(path):
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def test_usr2_upgrade_under_load_keeps_the_venvs_python(package_venv, start_dedicated, scratch):
    pidfile = scratch / "master.pid"
    stack = start_dedicated(extra_args=["--pid", str(pidfile)], program=package_venv.ferrocorn)
    old = stack.ferrocorn
    old_workers = set(two_workers(old))
    assert wait_until(lambda: read_pid(pidfile) == old.proc.pid, 10)
    load = Load(stack.url("/dedicated/pid"), clients=4).start()
    pooled = Load(stack.url("/dedicated-pool/pid"), clients=2).start()
    new_pid = None
    try:
        load.wait_for_requests(50)
        mark = old.log_marks()
        old.proc.send_signal(signal.SIGUSR2)
        new_pid = wait_until(lambda: (read_pid(pidfile) or old.proc.pid) != old.proc.pid and read_pid(pidfile), 30)
        assert new_pid, old.logs(mark)
        new_workers = wait_until(lambda: len(children_of(new_pid)) == 2 and children_of(new_pid), 30)
        assert new_workers, old.logs(mark)
        old.wait_for_log(r"\[%d\] \[INFO\] Listening at: unix:%s \(%d\), inherited" % (new_pid, old.sock, new_pid),
                         since=mark)
        load.wait_for_requests(50)
        os.kill(old.proc.pid, signal.SIGWINCH)
        assert wait_until(lambda: children_of(old.proc.pid) == [new_pid], 30), children_of(old.proc.pid)
        load.wait_for_requests(50)
        old.proc.send_signal(signal.SIGTERM)
        assert old.proc.wait(timeout=STOP_TIMEOUT) == 0
        load.wait_for_requests(100)
        pooled.wait_for_requests(20)
    finally:
        load.stop()
        pooled.stop()
    try:
        print("\nCPython %s, USR2 + WINCH + TERM under load: direct %s; pooled %s"
              % (package_venv.version, load.summary(), pooled.summary()))
        assert load.failures == [], load.summary()
        assert pooled.failures == [], pooled.summary()
        served = load.served_by | pooled.served_by
        assert served & old_workers and served & set(new_workers), (served, old_workers, new_workers)
        # The new master is the venv's python again, running the venv's ferrocorn script...
        assert Path("/proc/%d/exe" % new_pid).resolve() == package_venv.python.resolve()
        cmdline = Path("/proc/%d/cmdline" % new_pid).read_bytes().split(b"\0")
        assert str(package_venv.path / "bin" / "ferrocorn").encode() in cmdline, cmdline
        # ...and its workers run the app on the venv's Python.
        for _ in range(4):
            info = get_json(stack, "/dedicated/python")
            assert info["pid"] in new_workers, (info, new_workers)
            assert_runs_on(package_venv, info)
    finally:
        if new_pid is not None and is_alive(new_pid):
            os.kill(new_pid, signal.SIGTERM)
            assert wait_until(lambda: not is_alive(new_pid), STOP_TIMEOUT)


EXIT_APP = """\
import atexit, os, threading, time
NOTES = {notes!r}

def note(text):
    with open(NOTES, "a") as f:
        f.write("%s %d\\n" % (text, os.getpid()))

atexit.register(note, "atexit")

def late():
    time.sleep(1.0)
    note("thread done")

def application(environ, start_response):
    threading.Thread(target=late).start()  # not a daemon: the exit waits for it
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_worker_exit_joins_threads_and_runs_atexit(package_venv, start_dedicated, scratch):
    notes = scratch / "notes.txt"
    (scratch / "exiting.py").write_text(EXIT_APP.format(notes=str(notes)))
    stack = start_dedicated("exiting", extra_args=["--pythonpath", str(scratch)], workers=1,
                            program=package_venv.ferrocorn)
    master = stack.ferrocorn
    response = requests.get(stack.url("/dedicated/"), timeout=30)
    assert response.status_code == 200
    worker = int(response.text)
    master.proc.send_signal(signal.SIGTERM)
    assert master.proc.wait(timeout=STOP_TIMEOUT) == 0
    # The thread the request started ran to its end, then the atexit handler ran; the master
    # (which never imported the app) wrote nothing.
    assert notes.read_text().splitlines() == ["thread done %d" % worker, "atexit %d" % worker]


def test_daemon_detaches_and_serves(package_venv, workdir, nginx, scratch):
    server = Ferrocorn(workdir, "dedicated", "basic:app", workers=1, program=package_venv.ferrocorn)
    pidfile = scratch / "daemon.pid"
    for stale in (server.sock, server.log.path):
        if stale.exists():
            stale.unlink()
    started = subprocess.run(server.command()[:-1] + ["--daemon", "--pid", str(pidfile), server.app],
                             capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (started.returncode, started.stdout, started.stderr) == (0, b"", b"")
    pid = wait_until(lambda: read_pid(pidfile), 20)
    assert pid, server.log.tail()
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        assert int(fields[3]) != os.getsid(0), "a session of its own"
        assert Path("/proc/%d/exe" % pid).resolve() == package_venv.python.resolve()
        assert wait_until(lambda: server.answers(), 20), server.log.tail()
        info = requests.get(nginx.url("/dedicated/python"), timeout=30).json()
        assert info["pid"] != pid, "a worker answered"
        assert_runs_on(package_venv, info)
    finally:
        os.kill(pid, signal.SIGTERM)
        assert wait_until(lambda: not os.path.exists("/proc/%d" % pid), 30), server.log.tail()
    assert not pidfile.exists()


# Bound for a build, should cargo find something to redo after all.
@pytest.mark.timeout(600)
def test_pip_install_of_the_checkout_gives_a_ferrocorn_that_serves(package_venv, start_dedicated):
    """What the README promises: `VENV/bin/pip install <checkout>`, run last on this venv (forced, as the
    version does not change). It builds in the cargo target dir scripts/python-venvs.sh built this
    Python's wheel in, with the same interpreter, so cargo finds nothing to redo."""
    pip = package_venv.path / "bin" / "pip"
    env = dict(os.environ, CARGO_TARGET_DIR=package_venv.cargo_target_dir)
    started = time.monotonic()
    installed = subprocess.run([str(pip), "install", "--disable-pip-version-check", "--force-reinstall", str(REPO)],
                               env=env, capture_output=True, text=True, timeout=600)
    print("\npip install <checkout> on CPython %s: %.1fs" % (package_venv.full_version, time.monotonic() - started))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Processing %s" % REPO in installed.stdout, installed.stdout
    assert "Successfully installed ferrocorn-" in installed.stdout, installed.stdout
    stack = start_dedicated(program=package_venv.ferrocorn)
    assert_runs_on(package_venv, get_json(stack, "/dedicated/python"))


# --- bad input -----------------------------------------------------------------------------------


def test_a_wheel_for_another_python_is_refused_by_pip(package_venv):
    """pip's own refusal, before anything of ours runs: the cp3X wheel of one Python into another's venv."""
    others = [v for v, e in manifest().items() if v != package_venv.version and "venv" in e]
    if not others:
        pytest.skip("only CPython %s is installed on this machine: no other venv to install its wheel into"
                    % package_venv.version)
    other = venv_of(others[0])
    wheel = Path(manifest()[package_venv.version]["wheel"])
    result = subprocess.run([str(other.path / "bin" / "pip"), "install", "--disable-pip-version-check", "--no-deps",
                             "--dry-run", str(wheel)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result
    assert "ERROR: %s is not a supported wheel on this platform." % wheel.name in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def old_python():
    """A CPython older than 3.9: pyenv's newest 3.8, else python3.8 on PATH."""
    root = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv"))
    found = sorted(root.glob("versions/3.8.*/bin/python3.8"), key=lambda p: [int(x) for x in p.parts[-3].split(".")])
    if found:
        return found[-1]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "python3.8"
        if candidate.exists() and subprocess.run([str(candidate), "-c", ""], capture_output=True).returncode == 0:
            return candidate
    pytest.skip("CPython 3.8 is not installed on this machine (no %s/versions/3.8.*, no python3.8 on PATH)" % root)


@pytest.mark.timeout(300)
def test_pip_on_python_3_8_refuses_before_building(scratch):
    python = old_python()
    old = scratch / "venv38"
    subprocess.run([str(python), "-m", "venv", str(old)], check=True, timeout=120)
    target = scratch / "cargo-target"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    result = subprocess.run([str(old / "bin" / "pip"), "install", "--disable-pip-version-check", str(REPO)],
                            env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"ERROR: Package 'ferrocorn' requires a different Python: 3\.8\.\d+ not in '>=3\.9'", output), output
    assert "Building wheel" not in output, output
    assert not target.exists(), "cargo ran: %s" % list(target.iterdir())
    assert "Traceback" not in output, output


def test_the_binary_says_in_one_line_when_it_cannot_read_a_venv(scratch):
    """A venv whose pyvenv.cfg is not a file it can read, or has no version: one line, exit 2."""
    for name, make_cfg, expected in [
        ("cfg-is-a-directory", lambda cfg: cfg.mkdir(),
         r"Error: cannot read {venv}/pyvenv\.cfg \(to tell which Python made that virtualenv\): .+"),
        ("cfg-without-version", lambda cfg: cfg.write_text("home = /usr/bin\ninclude-system-site-packages = false\n"),
         r"Error: cannot tell which Python made the virtualenv {venv}: its pyvenv\.cfg has no readable `version`"),
    ]:
        venv = scratch / name
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to("/usr/bin/python3.11")
        make_cfg(venv / "pyvenv.cfg")
        result = run_binary(scratch, ["--virtualenv", str(venv)])
        assert (result.returncode, result.stdout) == (2, ""), (name, result)
        assert re.fullmatch(expected.format(venv=re.escape(str(venv))) + "\n", result.stderr), (name, result.stderr)


def test_the_binary_refuses_a_python_3_8_venv_in_one_line(scratch):
    python = old_python()
    old = scratch / "venv38"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(old)], check=True, timeout=120)
    result = run_binary(scratch, ["--virtualenv", str(old)])
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == refusal(old, "3.8", embedded_python()) + "\n", result.stderr
