"""Terminal output of the commands: JSON on stdout, text safe for any terminal
(control and bidi characters of file names and header values shown escaped,
``\\x1b`` / ``\\u202e``, undecodable file-name bytes as ``\\xNN``),
messages on stderr, human-readable sizes, and a progress bar on stderr when
it is a terminal.
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


#: Characters a terminal acts on rather than shows: C0 controls (ESC starts
#: the sequences that retitle or clear it, BEL rings), DEL, C1 controls (0x9B
#: is a one-byte CSI on some terminals) and the bidi controls, which reorder
#: the rest of the line.  Shown as ``\\xNN`` / ``\\uNNNN`` instead.
_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
             *range(0x2066, 0x206A)]
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS}
# undecodable bytes of file names (surrogate escapes) as the bytes they were
_ESCAPES.update({c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})
_ESCAPES.update({c: f"\\u{c:04x}" for c in (*range(0xD800, 0xDC80), *range(0xDD00, 0xE000))})


def _safe(s: str, stream: Any = None) -> str:
    """Text for a terminal, escaped so that it shows what it holds and cannot act on it.

    Control characters (C0, DEL, C1) and bidi controls appear as ``\\x1b``,
    ``\\u202e``; undecodable bytes of file names as ``\\xNN``; characters
    the stream's encoding (*stream*, default stdout) cannot show, as
    backslash escapes.  Newlines are escaped too: apply it to values or to
    one line at a time.
    """
    s = str(s).translate(_ESCAPES)
    enc = getattr(stream if stream is not None else sys.stdout, "encoding", None) or "utf-8"
    try:
        s.encode(enc)
        return s
    except UnicodeEncodeError:
        return s.encode(enc, "backslashreplace").decode(enc)
    except LookupError:
        return s.encode("ascii", "backslashreplace").decode("ascii")


def _say(line: str = "") -> None:
    """Print one line of human-readable output on stdout, escaped (:func:`_safe`)."""
    print(_safe(line))


def _err(msg: str) -> None:
    """One message on stderr; each line escaped (:func:`_safe`)."""
    text = "\n".join(_safe(line, sys.stderr) for line in str(msg).split("\n"))
    sys.stderr.write(f"pocketpacs: {text}\n")


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
