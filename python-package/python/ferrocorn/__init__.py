"""Ferrocorn: a WSGI server for Python apps behind nginx, written in Rust.

This package is the ``ferrocorn`` command for the Python it is installed
in: ``ferrocorn [OPTIONS] MODULE:APP`` (or ``python -m ferrocorn``) runs the
supervisor and its workers inside this interpreter, with this virtualenv's
packages. ``ferrocorn ctl`` (or ``ferrocornctl``) talks to a running one.
The nginx side is the ``ngx_http_ferrocorn_module`` dynamic module.
"""

import sys

from ferrocorn._native import __version__, run

__all__ = ["__version__", "main", "ctl"]


def main():
    """The ``ferrocorn`` console script."""
    sys.exit(run(sys.argv))


def ctl():
    """The ``ferrocornctl`` console script: ``ferrocorn ctl``."""
    sys.exit(run(["ferrocornctl"] + sys.argv[1:]))
