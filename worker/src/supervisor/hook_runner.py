# Ferrocorn's hook runner: the master's server hooks from a Gunicorn config
# file, in a Python process of their own (the master runs no Python).
#
# Started by the master (supervisor/hook_runner.rs) as
#   python -c STAND_INS+THIS ferrocorn-hook-runner CONFIG_FILE SETUP_JSON
# (STAND_INS: python/hook_stand_ins.py, the Log and _value it uses)
# it runs the config file once, then answers one JSON line on stdout for
# each JSON line on stdin:
#   {"hook": "pre_fork", "server": {...}, "worker": {...}}  -> {"ok": true}
#   ... a hook that raises                                 -> {"error": "traceback"}
#   {"reopen": "/path/of/error.log"}                       -> {"ok": true}
# Its first line says whether the file loaded: {"ok": true} or {"error": ...}.
# stderr is the error log: `server.log` lines go there, in ferrocorn's format.
import json
import os
import signal
import sys
import time
import traceback
import types

# The master decides when this process ends (stdin closed, or killed):
# signals sent to the whole process group (Ctrl-C, systemd's TERM) must not
# end it before on_exit runs.
for _name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
              "SIGTTIN", "SIGTTOU", "SIGWINCH"):
    signal.signal(getattr(signal, _name), signal.SIG_IGN)

_path, _setup = sys.argv[2], json.loads(sys.argv[3])
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_min_level = _LEVELS.get(_setup["loglevel"], 20)
_reply_out = os.fdopen(os.dup(1), "w")
# Hooks that print must not corrupt the replies: stdout is the error log too.
os.dup2(2, 1)


def _error_log_line(pid):
    """server.log's `emit`: a line in ferrocorn's error-log format on stderr."""

    def emit(level, text):
        if _LEVELS[level] < _min_level:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
        line = "[%s] [%d] [%s] %s\n" % (stamp, pid, level.upper(), text)
        os.write(2, line.encode("utf-8", "replace"))

    return emit


class Server:
    """The master (Gunicorn's arbiter) as its hooks see it: pid, num_workers, cfg, log."""

    def __init__(self, pid, num_workers, cfg, log):
        self.pid, self.num_workers, self.cfg, self.log = pid, num_workers, cfg, log


class Worker:
    """A worker as the master sees it: pid ("[booting]" before the fork), age, exitcode."""

    def __init__(self, pid, age, exitcode=None):
        self.pid, self.age, self.exitcode = pid, age, exitcode
        self.ppid = os.getppid()

    def __repr__(self):
        return "<Worker %s>" % self.pid


def _reply(**answer):
    _reply_out.write(json.dumps(answer) + "\n")
    _reply_out.flush()


def _main():
    cfg = types.SimpleNamespace(**{
        name: [_value(v) for v in values] if repeatable else _value(values[0]) if values else None
        for name, repeatable, values in _setup["settings"]
    })
    server = Server(_setup["pid"], cfg.workers, cfg, Log(_error_log_line(_setup["pid"])))
    ns = {"__file__": _path, "__name__": "__config__"}
    try:
        with open(_path, "rb") as f:
            exec(compile(f.read(), _path, "exec"), ns)
    except BaseException:
        _reply(error=traceback.format_exc())
        return
    _reply(ok=True)
    for line in sys.stdin.buffer:
        call = json.loads(line)
        if "reopen" in call:
            fd = os.open(call["reopen"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 2)
            os.dup2(fd, 1)
            os.close(fd)
            _reply(ok=True)
            continue
        server.num_workers = call["server"]["num_workers"]
        args = [server]
        if "worker" in call:
            w = call["worker"]
            args.append(Worker(w["pid"], w["age"], w.get("exitcode")))
        args.extend(call.get("args", ()))
        try:
            ns[call["hook"]](*args)
        except BaseException:
            _reply(error=traceback.format_exc())
        else:
            _reply(ok=True)


_main()
