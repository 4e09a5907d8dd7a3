"""Terminal output of the commands: JSON on stdout, text safe for any terminal
encoding (undecodable file-name bytes as ``\\xNN``), messages on stderr,
human-readable sizes, and a progress bar on stderr when it is a terminal.
"""
from __future__ import annotations

import json
import sys
from typing import Any


def _print_json(obj: Any) -> None:
    # ensure_ascii: file names that are not valid UTF-8 travel as surrogate
    # escapes, which no stdout encoding accepts; \udcXX escapes always print
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def _safe(s: str) -> str:
    """Text for a terminal: undecodable bytes of file names shown as \\xNN."""
    try:
        s.encode(sys.stdout.encoding or "utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode(sys.stdout.encoding or "utf-8", "backslashreplace")


def _err(msg: str) -> None:
    sys.stderr.write(f"pocketpacs: {msg}\n")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _ProgressBar:
    """A rich progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool, what: str):
        self.enabled = enabled and sys.stderr.isatty()
        self.what = what
        self._p = None

    def __enter__(self) -> "_ProgressBar":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(),
                               TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                               TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                               redirect_stdout=False, redirect_stderr=False)
            self._p.start()
            self._task = self._p.add_task(self.what, total=None, counts="", rate="")
        return self

    def __call__(self, prog: Any) -> None:
        if self._p is None:
            return
        total = prog.total if prog.total is not None else max(prog.seen, 1)
        self._p.update(self._task, completed=prog.done, total=total,
                       description=f"{self.what} ({'walking' if prog.total is None else 'indexing'}, "
                                   f"{prog.failed} failed)",
                       counts=f"{prog.done:,}/{total:,} files", rate=f"{prog.files_per_s:,.0f} files/s")

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()
