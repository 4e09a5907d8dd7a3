"""The console entry and the crash guard.

:func:`entry` is what ``pocketpacs``, ``python -m pocketpacs`` and ``python
-m pocketpacs.ui`` run: it loads the plugins' commands, picks the default
command and calls :func:`run_guarded`, which runs the archive commands
(:data:`GUARDED`) in a forked child so that a crash of LMDB on a damaged
database ends in advice (exit status 5) rather than a bare signal.
"""
from __future__ import annotations

import os
import sys

from ..errors import REBUILD_ADVICE
from ..process import prefer_passive_waits
from . import framework
from .framework import EXIT_ARCHIVE, EXIT_DAMAGED, EXIT_INTERRUPTED, _command_of, load_plugins, main
from .output import _err, _safe


def entry(argv: list[str] | None = None) -> int:
    """The console entry: ``pocketpacs``, ``python -m pocketpacs``, ``python -m pocketpacs.ui``.

    Loads the plugins' commands (:func:`load_plugins`); without a command,
    runs :data:`.framework.DEFAULT_COMMAND` (the window, where the desktop app is
    installed) with the options given, else prints the help; then
    :func:`run_guarded`.
    """
    prefer_passive_waits()
    argv = list(sys.argv[1:] if argv is None else argv)
    load_plugins()
    if framework.DEFAULT_COMMAND in framework.COMMANDS and _command_of(argv) is None:
        argv = [framework.DEFAULT_COMMAND, *argv]
    return run_guarded(argv)


#: Commands that read the archive database in this process and run under the
#: crash guard of :func:`run_guarded`.
GUARDED = frozenset({"import", "search", "show", "rm", "verify", "rebuild", "stats", "export", "report"})
_CRASH_SIGNALS = ("SIGABRT", "SIGBUS", "SIGSEGV", "SIGILL", "SIGFPE")


def run_guarded(argv: list[str] | None = None) -> int:
    """:func:`main` in a forked child, so that a crash says what to do.

    LMDB trusts its file: a damaged page that passed the open checks can
    still abort or crash the process reading it.  The console entry points
    run the archive commands (:data:`GUARDED`) in a forked child; when it
    dies of such a signal, this process says the database may be damaged
    and how to check and rebuild it (exit status 5).  Ctrl-C reaches the
    child from the terminal; SIGTERM and SIGHUP are passed on.  Without
    ``fork`` (Windows), or with ``POCKETPACS_NO_GUARD=1``, :func:`main` runs
    directly.
    """
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    if not hasattr(os, "fork") or os.environ.get("POCKETPACS_NO_GUARD") == "1":
        return main(argv)
    cmd = _command_of(argv)
    if cmd not in GUARDED:
        return main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: run the command, never return into the caller
        rc = EXIT_ARCHIVE
        try:
            rc = main(argv)
        except Exception:  # a bug: its traceback, as an unguarded run shows it (escaped), then exit 4
            import traceback

            sys.stderr.write("".join(_safe(line, sys.stderr) + "\n"
                                     for line in traceback.format_exc().splitlines()))
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(rc)
    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, lambda s, _f: os.kill(pid, s))
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal tells the child
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except ChildProcessError:
                return EXIT_ARCHIVE
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if name in _CRASH_SIGNALS:
            _err(f"`{cmd}` crashed ({name}). If the archive database is damaged, LMDB can crash the "
                 f"process that reads it: `pocketpacs check` checks it safely, {REBUILD_ADVICE}")
            return EXIT_DAMAGED
        return EXIT_INTERRUPTED if sig == signal.SIGINT else 128 + sig
    return os.WEXITSTATUS(status)
