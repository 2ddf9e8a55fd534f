"""The Debian package (scripts/package.sh) on this machine, as an operator uses it.

Builds the .deb (module built for Debian's nginx, as in test_system_nginx.py),
installs it with `apt-get install ./ferrocorn_*.deb`, checks the files and
the exact nginx-abi dependency, runs Debian's `/usr/sbin/nginx -t` with the
package's modules-enabled snippet, starts an instance the way systemd runs
`ferrocorn@NAME` (the installed units' ExecStart, User=, the socket unit's
socket as fd 3, a NOTIFY_SOCKET for Type=notify: no systemd runs here),
serves requests through Debian's nginx with the packaged sample site (the
workers run the release's CPython), and finally `apt-get purge`s it: no
file of the package, no /etc/ferrocorn, no `ferrocorn` user left, Debian's
nginx still installed and working.

The tests take the Debian system the package goes into as a fixture
(`System`): this machine here; test_package_debian13.py runs the same tests
in a Debian 13 root entered with chroot.

Needs root, dpkg and apt (CI's throwaway machine); skipped otherwise. A
leftover install of an earlier failed run is purged first.
"""

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from servers import REPO, ServerLog, free_port, kill_group, live_pids, pids_with_cmdline, wait_until
from test_service import FakeSystemd, fields
from test_system_nginx import SYSTEM_NGINX, system_module  # noqa: F401

# First use builds the module for Debian's nginx (minutes); later runs take seconds.
pytestmark = pytest.mark.timeout(900)

PACKAGE_SH = REPO / "scripts" / "package.sh"
UNIT_DIR = Path("/lib/systemd/system")
SNIPPET = Path("/usr/share/nginx/modules-available/mod-http-ferrocorn.conf")
ENABLED = Path("/etc/nginx/modules-enabled/50-mod-http-ferrocorn.conf")
MODULE = Path("/usr/lib/nginx/modules/ngx_http_ferrocorn_module.so")
SAMPLE_SITE = Path("/usr/share/doc/ferrocorn/examples/nginx-site.conf")
# The module's default temp path beside Debian's uwsgi one (made by any nginx start).
DEFAULT_TEMP = Path("/var/lib/nginx/ferrocorn")
# Instance names of this test: a leftover process of a failed run is found by it.
INSTANCE_PREFIX = "pkgtest-"
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

APP = """\
import json, os, sys

def application(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    reply = json.dumps({
        "uid": os.getuid(), "pid": os.getpid(), "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"], "query": environ["QUERY_STRING"], "length": len(body),
        "body_head": body[:32].decode("latin-1"), "python": sys.version, "executable": sys.executable,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))])
    return [reply]
"""

# Debian's nginx with the package's snippet(s) from modules-enabled, as
# /etc/nginx/nginx.conf loads them, on a free port instead of :80.
NGINX_CONF = """\
user www-data;
include /etc/nginx/modules-enabled/*.conf;
daemon off;
master_process on;
worker_processes 1;
pid nginx.pid;

events {{
    worker_connections 64;
}}

http {{
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    {ferrocorn_temp}
{site}
}}
"""


def run(cmd, check=True, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    if check:
        assert result.returncode == 0, "%s: exit %d\n%s\n%s" % (cmd, result.returncode, result.stdout, result.stderr)
    return result


class Account:
    """A user or group of the system, read from its own /etc/passwd or /etc/group."""

    def __init__(self, fields):
        self.name, self.id = fields[0], int(fields[2])
        self.gid = int(fields[3]) if len(fields) > 6 else None
        self.home = fields[5] if len(fields) > 6 else None
        self.shell = fields[6] if len(fields) > 6 else None


class System:
    """The Debian system the package goes into: this machine (root "/"), or
    a root made by debootstrap whose programs run under chroot (it shares
    this machine's network, so its nginx answers on 127.0.0.1). Paths the
    tests name are paths inside the system; `host()` is where the test
    itself finds them."""

    # What each release runs: (CPython version, nginx version prefix).
    RELEASES = {"12": ("3.11", "1.22."), "13": ("3.13", "1.26.")}

    def __init__(self, release, root=Path("/")):
        self.release = release
        self.root = Path(root)
        self.python, self.nginx_version = self.RELEASES[release]

    @property
    def chrooted(self):
        return self.root != Path("/")

    def host(self, path):
        return self.root / Path(path).relative_to("/")

    def inside(self, host_path):
        return Path("/") / Path(host_path).relative_to(self.root)

    def command(self, argv):
        return (["chroot", str(self.root)] if self.chrooted else []) + [str(a) for a in argv]

    def run(self, argv, check=True, **kwargs):
        return run(self.command(argv), check, **kwargs)

    def _account(self, table, name):
        for line in self.host(table).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return Account(fields)
        return None

    def user(self, name):
        return self._account("/etc/passwd", name)

    def group(self, name):
        return self._account("/etc/group", name)

    def package_status(self, name):
        """dpkg's status abbreviation ("ii ", "rc ", ...) or "" when dpkg does not know the package."""
        result = self.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", name], check=False)
        return result.stdout if result.returncode == 0 else ""

    def shipped_by_a_package(self, path):
        """Whether an installed package lists path (dpkg-query -S)."""
        return self.run(["dpkg-query", "-S", path], check=False).returncode == 0

    def apt_get(self, *args):
        return self.run(["apt-get", "-y"] + list(args), env=APT_ENV)

    def install(self, deb):
        """`apt-get install ./ferrocorn_*.deb`: apt resolves the dependencies from the system's archive."""
        if self.chrooted:
            shutil.copy(deb, self.host("/tmp"))
            deb = Path("/tmp") / deb.name
        try:
            self.apt_get("install", deb)
        finally:
            if self.chrooted:
                self.host(deb).unlink()

    def mkdtemp(self):
        """A 0755 directory under the system's /tmp that nginx's www-data and the ferrocorn user can traverse
        (host path)."""
        path = Path(tempfile.mkdtemp(prefix="ferrocorn-pkg-", dir=self.host("/tmp")))
        os.chmod(path, 0o755)
        return path

    def pids(self):
        """Processes running in this root (chroot'ed into it)."""
        found = []
        for pid in live_pids():
            try:
                if Path(os.readlink("/proc/%d/root" % pid)) == self.root:
                    found.append(pid)
            except OSError:
                pass
        return found


def purge_leftovers(system):
    """A failed earlier run may have left an instance running or the package installed."""
    for pid in pids_with_cmdline("/etc/ferrocorn/" + INSTANCE_PREFIX):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for conf in system.host("/etc/ferrocorn").glob(INSTANCE_PREFIX + "*.conf.py"):
        conf.unlink()
    for sock in system.host("/run/ferrocorn").glob(INSTANCE_PREFIX + "*.sock"):
        sock.unlink()
    if system.package_status("ferrocorn").strip():
        system.apt_get("purge", "ferrocorn")


def unit(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


class Package:
    """The built .deb and what the install put on the system."""

    def __init__(self, deb, system):
        self.deb = deb
        self.system = system
        self.installed_files = []  # dpkg -L, right after the install
        # The package's directories that were there before the install (/usr/bin, ...).
        self.dirs_before = {path for path in self.contents() if system.host(path).is_dir()}

    def contents(self):
        """Absolute paths in the .deb (dpkg-deb -c)."""
        paths = []
        for line in run(["dpkg-deb", "-c", str(self.deb)]).stdout.splitlines():
            name = line.split(None, 5)[5].split(" -> ")[0]
            paths.append(("/" + name[2:] if name.startswith("./") else name).rstrip("/") or "/")
        return paths


def build_and_install(system, *package_args):
    """scripts/package.sh, then `apt-get install` of its .deb into the system; yields the Package
    and purges it after the module's tests, whatever they did."""
    purge_leftovers(system)
    built = run([str(PACKAGE_SH)] + list(package_args))
    deb = Path(built.stdout.strip().splitlines()[-1])
    assert deb.is_file() and deb.name.startswith("ferrocorn_") and deb.suffix == ".deb", built.stdout
    assert "~deb%s_" % system.release in deb.name, "the file name says the release: %s" % deb.name
    pkg = Package(deb, system)
    try:
        system.install(deb)
        assert system.package_status("ferrocorn") == "ii "
        listed = system.run(["dpkg", "-L", "ferrocorn"]).stdout.splitlines()
        pkg.installed_files = [p for p in listed if p != "/."]
        yield pkg
    finally:
        purge_leftovers(system)


@pytest.fixture(scope="module")
def root_with_apt():
    """Checked before anything is built or installed."""
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root (CI runs the suite as root)")
    for tool in ("dpkg", "dpkg-deb", "dpkg-query", "apt-get"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not available: not a Debian system" % tool)


@pytest.fixture(scope="module")
def system(root_with_apt):
    """This machine, a Debian 12."""
    release = run(["sh", "-c", ". /etc/os-release && echo $VERSION_ID"]).stdout.strip()
    if release not in System.RELEASES:
        pytest.skip("this machine is Debian %r: the package is built for Debian 12 or 13" % release)
    return System(release)


@pytest.fixture(scope="module")
def package(system, system_module):  # noqa: F811 (system_module is test_system_nginx's fixture)
    yield from build_and_install(system)


@pytest.fixture
def scratch_root(system):
    path = system.mkdtemp()
    yield path
    if not os.environ.get("FERROCORN_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


def test_package_depends_on_the_exact_nginx_abi(system, package):
    control = run(["dpkg-deb", "-f", str(package.deb), "Depends"]).stdout
    info = run(["dpkg", "-I", str(package.deb)]).stdout
    provides = system.run(["dpkg-query", "-W", "-f=${Provides}", "nginx"]).stdout
    abi = re.search(r"nginx-abi-[0-9.]+-[0-9]+", provides)
    assert abi, "Debian's nginx provides no nginx-abi-*"
    assert abi.group(0) in [d.strip() for d in control.split(",")], control
    assert "Depends:" in info and abi.group(0) in info
    # apt would refuse a different nginx: no other ABI satisfies it.
    assert re.findall(r"nginx-abi-[0-9.]+-[0-9]+", control) == [abi.group(0)]
    # The release's CPython: the library the supervisor links, the interpreter its workers start as.
    python = "python" + system.python
    assert re.search(r"(^|, )lib%s \(>= %s\.\d+\)" % (re.escape(python), re.escape(system.python)), control), control
    assert re.search(r"(^|, )%s \(>= " % re.escape(python), control), control
    description = run(["dpkg-deb", "-f", str(package.deb), "Description"]).stdout
    assert "CPython %s" % system.python in description and "Debian %s" % system.release in description
    assert re.findall(r"CPython (3\.\d+)", description) == [system.python], description


def test_files_are_where_the_issue_says(system, package):
    listed = set(package.installed_files)
    for path in (
        "/usr/bin/ferrocorn",
        str(MODULE),
        str(SNIPPET),
        "/lib/systemd/system/ferrocorn@.service",
        "/lib/systemd/system/ferrocorn@.socket",
        "/etc/ferrocorn/example.conf.py",
        str(SAMPLE_SITE),
    ):
        assert path in listed, "%s is not in dpkg -L ferrocorn" % path
        assert system.host(path).is_file(), path
    assert os.access(system.host("/usr/bin/ferrocorn"), os.X_OK)
    # Runs on the system, with the system's libpython.
    version = system.run(["/usr/bin/ferrocorn", "--version"]).stdout
    assert version.startswith("ferrocorn ") and version.split()[1] in package.deb.name
    # gunicornc's twin under its own name.
    assert "/usr/bin/ferrocornctl" in listed and os.readlink(system.host("/usr/bin/ferrocornctl")) == "ferrocorn"
    assert "usage: ferrocorn ctl" in system.run(["/usr/bin/ferrocornctl", "--help"]).stdout
    # Enabled as Debian's libnginx-mod-* are: a link in modules-enabled to the snippet.
    enabled = system.host(ENABLED)
    assert enabled.is_symlink() and system.host(os.readlink(enabled)) == system.host(SNIPPET)
    assert re.fullmatch(r"load_module \S*ngx_http_ferrocorn_module\.so;\s*", system.host(SNIPPET).read_text())
    # The instance units and the example settings are deploy/'s.
    for name in ("ferrocorn@.service", "ferrocorn@.socket"):
        assert system.host(UNIT_DIR / name).read_text() == (REPO / "deploy" / name).read_text()
    conffiles = system.run(["dpkg-query", "-W", "-f=${Conffiles}", "ferrocorn"]).stdout
    assert "/etc/ferrocorn/example.conf.py" in conffiles
    # The system user the unit runs as.
    user = system.user("ferrocorn")
    assert user is not None and user.id < 1000, "not a system user"
    assert system.group("ferrocorn").id == user.gid
    assert unit(system.host(UNIT_DIR / "ferrocorn@.service"))["Service"]["User"] == "ferrocorn"


def write_nginx_conf(prefix, site, ferrocorn_temp=True):
    (prefix / "logs").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    indented = "\n".join(("    " + line) if line.strip() else "" for line in site.splitlines())
    conf.write_text(
        NGINX_CONF.format(
            site=indented,
            # Keeps the module's default (<prefix>/ferrocorn_temp) inside the work dir too.
            ferrocorn_temp="ferrocorn_temp_path ferrocorn_temp;" if ferrocorn_temp else "",
        )
    )
    return conf


def nginx_args(system, prefix, *extra):
    """Debian's nginx of the system on the config in `prefix` (a host path)."""
    inside = system.inside(prefix)
    conf, error_log = str(inside / "nginx.conf"), str(inside / "error.log")
    return system.command([SYSTEM_NGINX, "-p", "%s/" % inside, "-e", error_log, "-c", conf] + list(extra))


def test_debian_nginx_t_loads_the_module_through_modules_enabled(system, package, scratch_root):
    version = re.search(r"nginx/(\S+)", run(system.command([SYSTEM_NGINX, "-v"])).stderr)
    assert version and version.group(1).startswith(system.nginx_version), "Debian %s's nginx" % system.release
    site = "server {\n    listen 127.0.0.1:%d;\n    location / {\n        ferrocorn_pass unix:%s/app.sock;\n    }\n}\n"
    site = site % (free_port(), system.inside(scratch_root))
    write_nginx_conf(scratch_root, site)
    result = run(nginx_args(system, scratch_root, "-t"), check=False)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr
    # The same config without the snippet: ferrocorn_* is unknown, so -t above did load it.
    conf = scratch_root / "nginx.conf"
    conf.write_text(conf.read_text().replace("include /etc/nginx/modules-enabled/*.conf;", ""))
    result = run(nginx_args(system, scratch_root, "-t"), check=False)
    assert result.returncode != 0 and 'unknown directive "ferrocorn_' in result.stderr, result.stderr


def netns_available():
    return shutil.which("unshare") is not None and run(["unshare", "--net", "true"], check=False).returncode == 0


def test_debian_nginx_conf_itself_passes_t(system, package):
    """`nginx -t` on Debian's own /etc/nginx/nginx.conf, in a network namespace of its own:
    -t binds the default site's port 80, which must not touch the machine's."""
    if not netns_available():
        pytest.skip("unshare --net is not permitted here: Debian's nginx.conf binds port 80 even for -t")
    result = run(["unshare", "--net"] + system.command([SYSTEM_NGINX, "-t"]), check=False)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr


# systemd's part for ferrocorn@NAME: the socket unit's socket at fd 3,
# LISTEN_PID = our own pid (kept by exec), the system's root, User=/Group=
# dropped to, exec.
ACTIVATE = """\
import os, sys
fd = int(os.environ.pop("TEST_SOCKET_FD"))
uid, gid = int(os.environ.pop("TEST_UID")), int(os.environ.pop("TEST_GID"))
root = os.environ.pop("TEST_ROOT")
os.dup2(fd, 3)
os.close(fd)
os.set_inheritable(3, True)
if root != "/":
    os.chroot(root)
    os.chdir("/")
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"""


def instance_settings(system, instance, app_dir):
    """/etc/ferrocorn/NAME.conf.py as the unit's comment says: the example, edited."""
    text = system.host("/etc/ferrocorn/example.conf.py").read_text()
    edits = {
        "wsgi_app": 'wsgi_app = "pkgapp:application"',
        "chdir": 'chdir = "%s"' % app_dir,
        "virtualenv": None,  # the test app needs nothing beyond the standard library
        "workers": "workers = 2",
    }
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in edits:
            if edits[key] is not None:
                lines.append(edits.pop(key))
            else:
                edits.pop(key)
            continue
        lines.append(line)
    assert not edits, "example.conf.py no longer sets %s" % sorted(edits)
    path = system.host("/etc/ferrocorn/%s.conf.py" % instance)
    path.write_text("\n".join(lines) + "\n")
    return path


class Instance:
    """ferrocorn@NAME.socket + ferrocorn@NAME.service, played as systemd plays them."""

    def __init__(self, system, name, workdir):
        self.system = system
        self.name = name
        self.socket_unit = unit(system.host(UNIT_DIR / "ferrocorn@.socket"))["Socket"]
        self.service_unit = unit(system.host(UNIT_DIR / "ferrocorn@.service"))["Service"]
        self.path = Path(self.socket_unit["ListenStream"].replace("%i", name))
        self.made_dir = None
        self.runtime_dir = None
        self.listener = None
        self.proc = None
        notify = workdir / "notify.sock"
        self.systemd = FakeSystemd(notify)
        self.notify_address = str(system.inside(notify))
        os.chmod(notify, 0o777)  # systemd's notify socket is writable by services
        self.journal = ServerLog(workdir / "journal.log", "ferrocorn@%s stdout+stderr (the journal)" % name)

    def listen(self):
        """What ferrocorn@NAME.socket does: ListenStream, DirectoryMode, SocketUser/Group/Mode, Backlog."""
        path = self.system.host(self.path)
        run_dir = path.parent
        if not run_dir.exists():
            run_dir.mkdir(parents=True, mode=int(self.socket_unit["DirectoryMode"], 8))
            self.made_dir = run_dir
        if path.exists():
            path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        os.chown(
            path,
            self.system.user(self.socket_unit["SocketUser"]).id,
            self.system.group(self.socket_unit["SocketGroup"]).id,
        )
        os.chmod(path, int(self.socket_unit["SocketMode"], 8))
        self.listener.listen(int(self.socket_unit["Backlog"]))

    def make_runtime_dir(self, user, group):
        """RuntimeDirectory=: /run/DIR, owned by User=/Group=, RuntimeDirectoryMode."""
        path = self.system.host(Path("/run") / self.service_unit["RuntimeDirectory"].replace("%i", self.name))
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.id, group.id)
        os.chmod(path, int(self.service_unit["RuntimeDirectoryMode"], 8))
        self.runtime_dir = path

    def exec_start(self):
        argv = shlex.split(self.service_unit["ExecStart"].replace("%i", self.name))
        assert argv[0] == "/usr/bin/ferrocorn", argv
        return argv

    def start(self):
        user = self.system.user(self.service_unit["User"])
        group = self.system.group(self.service_unit["Group"])
        self.make_runtime_dir(user, group)
        env = {
            # A service's environment under systemd: nothing of ours leaks in.
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": user.home,
            "USER": user.name,
            "LOGNAME": user.name,
            "SHELL": user.shell,
            "LISTEN_FDS": "1",
            "LISTEN_FDNAMES": self.socket_unit["FileDescriptorName"].replace("%i", self.name),
            "NOTIFY_SOCKET": self.notify_address,
            "TEST_SOCKET_FD": str(self.listener.fileno()),
            "TEST_UID": str(user.id),
            "TEST_GID": str(group.id),
            "TEST_ROOT": str(self.system.root),
        }
        out = open(self.journal.path, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ACTIVATE] + self.exec_start(),
                env=env,
                pass_fds=[self.listener.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        finally:
            out.close()
        # Type=notify: the unit is started once READY=1 arrives.
        ready = self.systemd.wait_for(lambda m: "READY=1" in m or "STOPPING=1" in m, timeout=60)
        assert "READY=1" in ready, "%s\n%s" % (ready, self.journal.tail())
        assert fields(ready)["MAINPID"] == str(self.proc.pid)

    def stop(self):
        """KillSignal to the main process (KillMode=mixed), as `systemctl stop` does."""
        self.proc.send_signal(getattr(signal, self.service_unit["KillSignal"]))
        return self.proc.wait(timeout=int(self.service_unit["TimeoutStopSec"]))

    def close(self):
        if self.proc is not None:
            kill_group(self.proc)
        self.systemd.close()
        if self.listener is not None:
            self.listener.close()
        path = self.system.host(self.path)
        if path.exists():
            path.unlink()
        if self.made_dir is not None:
            shutil.rmtree(self.made_dir, ignore_errors=True)
        if self.runtime_dir is not None:  # systemd removes RuntimeDirectory= at stop
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        settings = self.system.host("/etc/ferrocorn/%s.conf.py" % self.name)
        if settings.exists():
            settings.unlink()


class DebianNginx:
    """The system's /usr/sbin/nginx -p DIR -c DIR/nginx.conf, daemon off, in its own process group."""

    def __init__(self, system, prefix, port):
        self.system = system
        self.prefix = prefix
        self.port = port
        self.error_log = ServerLog(prefix / "error.log", "Debian nginx error.log")
        self.proc = None

    def start(self):
        out = open(self.prefix / "stderr.log", "ab")
        try:
            self.proc = subprocess.Popen(
                nginx_args(self.system, self.prefix),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        up = wait_until(lambda: self.proc.poll() is not None or self._answers(), 30)
        assert up and self.proc.poll() is None, "nginx did not come up:\n%s" % self.error_log.tail()
        return self

    def _answers(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)
            kill_group(self.proc)


def test_instance_serves_through_debian_nginx(system, package, scratch_root):
    instance = "%s%d" % (INSTANCE_PREFIX, os.getpid())
    app_dir = scratch_root / "app"
    app_dir.mkdir(mode=0o755)
    (app_dir / "pkgapp.py").write_text(APP)
    static = scratch_root / "static"
    static.mkdir(mode=0o755)
    (static / "hello.txt").write_text("static through nginx\n")
    for path in (app_dir / "pkgapp.py", static / "hello.txt"):
        os.chmod(path, 0o644)
    instance_settings(system, instance, system.inside(app_dir))

    # The packaged sample site, with this instance, a free port and the test's static dir.
    port = free_port()
    site = system.host(SAMPLE_SITE).read_text()
    assert "listen 80;" in site and "myproject" in site
    site = site.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
    site = site.replace("/srv/myproject/static/", "%s/" % system.inside(static)).replace("myproject", instance)
    nginx_prefix = scratch_root / "nginx"
    nginx_prefix.mkdir(mode=0o755)
    write_nginx_conf(nginx_prefix, site)
    checked = run(nginx_args(system, nginx_prefix, "-t"), check=False)
    assert checked.returncode == 0, checked.stderr

    service = Instance(system, instance, scratch_root)
    nginx = DebianNginx(system, nginx_prefix, port)
    try:
        service.listen()
        assert service.path == Path("/run/ferrocorn/%s.sock" % instance)
        service.start()
        nginx.start()
        ferrocorn_uid = system.user("ferrocorn").id

        got = requests.get(nginx.url("/hello/world?x=1"), timeout=30)
        assert got.status_code == 200, got.text
        seen = got.json()
        assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/hello/world", "x=1")
        assert seen["uid"] == ferrocorn_uid, "workers run as the unit's User="
        # The release's CPython, started as its own interpreter.
        assert seen["python"].startswith(system.python + "."), seen["python"]
        assert seen["executable"] == "/usr/bin/python" + system.python
        body = os.urandom(300_000)
        posted = requests.post(nginx.url("/upload"), data=body, timeout=30).json()
        assert posted["length"] == len(body) and posted["body_head"] == body[:32].decode("latin-1")
        static_file = requests.get(nginx.url("/static/hello.txt"), timeout=30)
        assert (static_file.status_code, static_file.text) == (200, "static through nginx\n")
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: requests.get(nginx.url("/p/%d" % i), timeout=30).status_code, range(40)))
        assert codes == [200] * 40
        # Both workers took part and the access log went to the journal.
        assert wait_until(lambda: service.journal.text().count('"GET /p/') == 40, 10), service.journal.tail()
        assert service.journal.text().count("Booting worker") >= 2
        # The instance's control socket, in its RuntimeDirectory, as the unit's comment says.
        ctl_socket = "/run/ferrocorn/%s/ctl" % instance
        ctl = system.run(["/usr/bin/ferrocornctl", "-s", ctl_socket, "--json", "show", "workers"])
        reply = json.loads(ctl.stdout)
        assert reply["status"] == "ok" and len(reply["data"]["workers"]) == 2, reply
        assert stat.S_IMODE(os.stat(system.host("/run/ferrocorn/%s" % instance)).st_mode) == 0o700

        assert service.stop() == 0
        socket_file = system.host(service.path)
        assert socket_file.exists() and stat.S_ISSOCK(socket_file.stat().st_mode), "the socket file is systemd's"
        assert "[alert]" not in nginx.error_log.text() and "[emerg]" not in nginx.error_log.text()
    finally:
        nginx.stop()
        service.close()
    assert not pids_with_cmdline("/etc/ferrocorn/%s.conf.py" % instance), "a process of the instance outlived it"


def test_purge_leaves_nothing_and_debian_nginx_works(system, package, scratch_root):
    files = package.installed_files
    assert files, "nothing was installed"
    # The module's default temp dir under Debian's prefix is made by any
    # start of nginx with the module and no ferrocorn_temp_path (a plain
    # `nginx -t` of /etc/nginx/nginx.conf does it): purge must take it too.
    default_temp = system.host(DEFAULT_TEMP)
    default_temp.mkdir(mode=0o700, exist_ok=True)
    os.chown(default_temp, system.user("www-data").id, 0)

    started = time.monotonic()
    system.apt_get("purge", "ferrocorn")
    print("\napt-get purge: %.1fs" % (time.monotonic() - started))
    assert system.package_status("ferrocorn") == ""

    # A directory that was there before the install (/usr/bin, /usr/lib/nginx/modules, ...) or
    # that a package the install brought in ships too (nginx's /usr/share/nginx) stays; nothing
    # else of the package does.
    left = [
        path
        for path in files
        if os.path.lexists(system.host(path))
        and not (path in package.dirs_before or system.host(path).is_dir() and system.shipped_by_a_package(path))
    ]
    assert not left, "left behind by apt-get purge: %s" % left
    for stray in (Path("/etc/ferrocorn"), ENABLED, DEFAULT_TEMP, Path("/usr/share/doc/ferrocorn")):
        assert not os.path.lexists(system.host(stray)), "%s is left" % stray
    assert system.run(["getent", "passwd", "ferrocorn"], check=False).returncode == 2, "the ferrocorn user is left"
    assert system.run(["getent", "group", "ferrocorn"], check=False).returncode == 2, "the ferrocorn group is left"

    # Debian's nginx: still installed, modules-enabled has no dangling link, it serves.
    assert system.package_status("nginx") == "ii "
    html = scratch_root / "html"
    html.mkdir(mode=0o755)
    (html / "index.html").write_text("plain nginx\n")
    os.chmod(html / "index.html", 0o644)
    port = free_port()
    site = "server {\n    listen 127.0.0.1:%d;\n    root %s;\n}\n" % (port, system.inside(html))
    write_nginx_conf(scratch_root, site, ferrocorn_temp=False)
    checked = run(nginx_args(system, scratch_root, "-t"), check=False)
    assert checked.returncode == 0, checked.stderr
    if netns_available():
        checked = run(["unshare", "--net"] + system.command([SYSTEM_NGINX, "-t"]), check=False)
        assert checked.returncode == 0, "Debian's own nginx.conf after the purge:\n" + checked.stderr
    nginx = DebianNginx(system, scratch_root, port).start()
    try:
        got = requests.get(nginx.url("/index.html"), timeout=30)
        assert (got.status_code, got.text) == (200, "plain nginx\n")
    finally:
        nginx.stop()
