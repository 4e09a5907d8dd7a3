"""The ``pocketpacs`` logger.  Library code logs through it and never logs
header values (patient names, IDs, dates): only counts, reasons and paths the
user supplied."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("pocketpacs")
logger.addHandler(logging.NullHandler())


def protect_patient_data() -> None:
    """Process-wide settings of the command line and the app: no values in dependency logs.

    pydicom validates values while it reads (its default ``reading_validation_mode``
    is WARN) and reports a bad one *with the value* through ``warnings`` (printed on
    stderr) and its ``pydicom`` logger -- e.g. ``Invalid value for VR UI: '...'`` --
    so a malformed header leaked UIDs, names or numbers into the terminal and any
    log.  Other pydicom warnings quote header values too (``Unknown encoding
    '<the Specific Character Set>'``), and a quoted value can hold terminal escape
    sequences.  PocketPACS reads files it does not own and reports problems itself,
    so the command line and the app turn that validation off, ignore every warning
    pydicom issues, and stop its logger (no handler of the app's or a root logging
    configuration ever sees a pydicom record).  Library users keep their own
    pydicom settings (this is called only by the entry points).
    """
    import warnings

    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    pd_logger = logging.getLogger("pydicom")
    pd_logger.propagate = False
    pd_logger.disabled = True
    # pydicom itself is imported by the commands that read DICOM, not by
    # every command (start-up time): the setting is made when it loads
    _when_imported("pydicom.config", _pydicom_quiet)


def _pydicom_quiet(config: Any) -> None:
    config.settings.reading_validation_mode = config.IGNORE


def _when_imported(name: str, apply: Any) -> None:
    """Call ``apply(module)`` once module *name* is imported: now if it is,
    else right after its import (a one-shot finder at the head of ``sys.meta_path``)."""
    if name in sys.modules:
        apply(sys.modules[name])
        return
    import importlib.abc

    class _After(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(fullname, path, target) if find is not None else None
                if spec is not None:
                    break
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            exec_module = spec.loader.exec_module

            def exec_then_apply(module):  # type: ignore[no-untyped-def]
                exec_module(module)
                apply(module)

            spec.loader.exec_module = exec_then_apply  # type: ignore[method-assign]
            return spec

    if not any(type(f).__name__ == "_After" and getattr(f, "name", None) == name for f in sys.meta_path):
        finder = _After()
        finder.name = name  # type: ignore[attr-defined]
        sys.meta_path.insert(0, finder)


# ---------------------------------------------------------------- the log file
#: The log file's name inside the log folder, and its rotation.
LOG_NAME = "pocketpacs.log"
LOG_MAX_BYTES = 1 << 20
LOG_BACKUPS = 3

#: Absolute paths in a message or traceback (POSIX and Windows drive paths).
_PATH = re.compile(r"(?:[A-Za-z]:\\|/)(?:[^\s'\"<>|:*?]|[ ](?=[^\s'\"<>|:*?]))+")


def log_dir() -> Path:
    """The folder of PocketPACS' log file (``~/.local/state/pocketpacs/log`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_log_dir("pocketpacs", appauthor=False))


class PathRedactor(logging.Filter):
    """Replaces file paths in log records by a salted hash of them.

    A path the user imported can name a patient (``/scans/DOE^JOHN/...``):
    the log keeps only ``<file 3f2a9c01>``, the same token for the same
    path within one run, so lines about one file can be followed.  Paths of
    the Python installation (tracebacks of our own code and of libraries)
    are kept: they hold no patient data and say where an error happened.
    """

    def __init__(self) -> None:
        super().__init__()
        self._salt = os.urandom(16)
        self._keep = tuple(sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                                                  sys.exec_prefix,
                                                                  os.path.dirname(os.path.dirname(__file__)))},
                                  key=len, reverse=True))

    def redact(self, text: str) -> str:
        def token(m: re.Match) -> str:
            path = m.group(0)
            if path.startswith(self._keep) or path in ("/", "\\"):
                return path
            digest = hashlib.sha256(self._salt + path.encode("utf-8", "surrogateescape")).hexdigest()
            return f"<file {digest[:8]}>"

        return _PATH.sub(token, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if _paused:
            return False  # a CD/USB session leaves no trace, not even a hashed one
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _traceback_text(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        record.exc_info = None  # formatted (and redacted) above
        return True


def _private_rotating_file(*args: Any, **kwargs: Any) -> logging.Handler:
    """A rotating log handler whose files are created 0600 and never through a
    symbolic link (``logging.handlers`` is imported here: it imports ``socket``
    and ``pickle``, which a command that logs nothing does not need)."""
    import logging.handlers

    class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
        def _open(self):
            from .paths import ensure_private_dir

            ensure_private_dir(os.path.dirname(self.baseFilename))
            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
            return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    return _PrivateRotatingFile(*args, **kwargs)


_file_handler: logging.Handler | None = None
#: While a CD/USB session is open nothing is written to the log file.
_paused = False


def pause_log_file(paused: bool) -> None:
    """Stop (True) or resume (False) writing the log file: the app pauses it
    while removable media are loaded, which must leave no trace on disk."""
    global _paused
    _paused = bool(paused)


def _traceback_text(exc_info: Any) -> str:
    """A traceback for the log: where it happened, and the message only of the
    exceptions whose messages we write (ours and the OS's: a reason and a
    path, which is then hashed); a library's message may quote a header value."""
    import traceback

    from .errors import PocketPacsError

    etype, value, tb = exc_info
    frames = "".join(traceback.format_tb(tb))
    if isinstance(value, (PocketPacsError, OSError)):
        last = f"{etype.__name__}: {value}"
    else:
        last = f"{etype.__name__} (its message is not logged: it may quote a header value)"
    return f"Traceback (most recent call last):\n{frames}{last}"


def log_file() -> Path | None:
    """The log file this process writes, or None when :func:`start_log_file` was not called."""
    return Path(_file_handler.baseFilename) if _file_handler is not None else None  # type: ignore[attr-defined]


def start_log_file(folder: os.PathLike[str] | str | None = None, level: int = logging.WARNING) -> Path:
    """Write the ``pocketpacs`` logger's records to a rotating file (the app calls this).

    Problems only (WARNING and up, by default).  The folder (0700, from its
    first missing parent) and the file (0600) are made at the first record,
    so a run with nothing to report leaves nothing on disk, and nothing is
    written while :func:`pause_log_file` holds it (a CD/USB session).  Paths
    in every record are hashed (:class:`PathRedactor`); header values are
    never logged in the first place.  ``pocketpacs log`` shows where the
    file is and its last lines.

    Parameters
    ----------
    folder : path, optional
        Where the log lives (default :func:`log_dir`).
    level : int
        Lowest level written.

    Returns
    -------
    Path
        The log file.
    """
    global _file_handler
    if _file_handler is not None:
        return log_file()  # type: ignore[return-value]
    path = Path(folder if folder is not None else log_dir()) / LOG_NAME
    # the folder and the file are made at the first record (a run with
    # nothing to report leaves nothing on disk)
    handler = _private_rotating_file(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8",
                                     delay=True)
    handler.addFilter(PathRedactor())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    _file_handler = handler
    return path


def stop_log_file() -> None:
    """Close the log file (tests, and a clean exit)."""
    global _file_handler
    if _file_handler is not None:
        logger.removeHandler(_file_handler)
        _file_handler.close()
        _file_handler = None
