# Stand-ins for Gunicorn's objects that both sides of the server hooks use:
# the worker's hooks (python/hooks.rs) and the master's hook runner
# (supervisor/hook_runner.py) prepend this file to their own code.
import sys
import traceback


class Log:
    """worker.log / server.log: Gunicorn's logger methods; each line goes to
    `emit(level, text)`, which writes it to ferrocorn's error log."""

    def __init__(self, emit):
        self._emit = emit

    def _line(self, level, msg, args, exc=False):
        text = str(msg) % args if args else str(msg)
        if exc and sys.exc_info()[0] is not None:
            text += "\n" + traceback.format_exc().rstrip()
        self._emit(level, text)

    def debug(self, msg, *args, **kw): self._line("debug", msg, args)
    def info(self, msg, *args, **kw): self._line("info", msg, args)
    def warning(self, msg, *args, **kw): self._line("warning", msg, args)
    warn = warning
    def error(self, msg, *args, **kw): self._line("error", msg, args)
    def critical(self, msg, *args, **kw): self._line("critical", msg, args)
    def exception(self, msg, *args, **kw): self._line("error", msg, args, True)


def _value(text):
    """A setting's command-line spelling as the Python value Gunicorn's cfg holds."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text
