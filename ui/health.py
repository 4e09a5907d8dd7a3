"""Archive health for the session: opening the archive, read-only fallback, damage.

:class:`ArchiveHealth` is the part of :class:`~pocketpacs.ui.session.Session`
that opens the archive (lazily, at the first command or at start-up), falls
back to read-only when another PocketPACS writes to it or its folder cannot be
written, and detects a damaged database: a command failure that smells of
damage (:func:`_looks_damaged`: LMDB errors, records that do not decode) is
confirmed by a deep check in a child process, and a background check reads the
whole database in a child process after start-up.  A damaged archive is never
used again; every command then answers ``unavailable`` with
:data:`DAMAGED_NOTICE`.  It uses the session's ``archive_path``, ``readonly``,
``archive_notice``, ``check_delay`` and private state set in ``Session.__init__``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from . import protocol
from .protocol import BridgeError
from pocketpacs.errors import REBUILD_ADVICE

log = logging.getLogger("pocketpacs.ui.session")

DAMAGED_NOTICE = f"The archive database is damaged. Close PocketPACS: {REBUILD_ADVICE}."


def _looks_damaged(exc: BaseException) -> bool:
    """An LMDB error, or a stored record that does not decode."""
    import lmdb

    if isinstance(exc, lmdb.Error):
        return True
    import orjson

    from pocketpacs.errors import ArchiveDamaged

    return isinstance(exc, (orjson.JSONDecodeError, UnicodeDecodeError, ArchiveDamaged))


class ArchiveHealth:
    """The archive the session browses, and what to do when it is damaged (a mixin of Session)."""

    def _guarded(self, fn: Any) -> Any:
        """``fn`` whose failures that smell of a damaged database (LMDB errors,
        records that do not decode) are confirmed by a deep check in a child
        process and then reported as a damaged archive."""
        def call(a: Any) -> Any:
            try:
                return fn(a)
            except Exception as exc:
                if self._media is None and self._damaged is None and _looks_damaged(exc):
                    self._confirm_damage()
                    if self._damaged is not None:
                        raise BridgeError(protocol.UNAVAILABLE, self._damaged) from None
                raise
        call.__name__ = getattr(fn, "__name__", "command")
        call.__doc__ = getattr(fn, "__doc__", None)
        return call

    def _confirm_damage(self) -> None:
        from pocketpacs.archive.integrity import deep_check

        arc = self._archive
        if arc is None or arc.path is None:
            return
        try:
            res = deep_check(arc.path)
        except Exception as exc:
            log.info("archive check skipped: %s", type(exc).__name__)
            return
        if res.status == "damaged":
            with self._lock:
                self._set_damaged()

    # ----------------------------------------------------------- archive
    @property
    def archive(self) -> Any:
        """The archive being browsed: the media session when one is open."""
        with self._lock:
            if self._media is not None:
                return self._media
            if self._damaged is not None:
                raise BridgeError(protocol.UNAVAILABLE, self._damaged)
            if self._archive is None:
                if self._closed:  # e.g. the warm-up thread after close(): never reopen
                    raise BridgeError(protocol.UNAVAILABLE, "The session is closed.")
                self._archive = self._open_archive()
                if getattr(self._archive, "unclean", False):
                    self.start_background_check(self.check_delay)
            return self._archive

    def _open_archive(self) -> Any:
        """Open the archive; fall back to read-only when another PocketPACS
        writes to it or its folder cannot be written; a damaged archive is
        reported (with the rebuild command), never opened."""
        import pocketpacs
        from pocketpacs.errors import ArchiveDamaged, ArchiveLocked, ArchiveReadOnly

        try:
            # after an unclean shutdown (a killed app) the whole-database
            # check runs in the background (startup_check), not before the list
            return pocketpacs.open_archive(self.archive_path, readonly=self.readonly,
                                           check_unclean=False)
        except (ArchiveLocked, ArchiveReadOnly) as exc:
            locked = isinstance(exc, ArchiveLocked)
            try:
                ar = pocketpacs.open_archive(self.archive_path, readonly=True)
            except pocketpacs.ArchiveError:
                raise exc from None
            self.readonly = True
            self.archive_notice = ("Another PocketPACS is writing to this archive: it is open read-only "
                                   "(browse and view only)." if locked else
                                   "The archive folder cannot be written: it is open read-only.")
            log.warning("archive opened read-only: %s", "in use by another process" if locked
                        else "folder not writable")
            return ar
        except ArchiveDamaged:
            self._set_damaged()
            raise BridgeError(protocol.UNAVAILABLE, self._damaged) from None

    def _set_damaged(self) -> None:
        self._damaged = self.archive_notice = DAMAGED_NOTICE
        log.warning("the archive database is damaged; %s", REBUILD_ADVICE)

    def start_background_check(self, delay: float = 2.0) -> threading.Thread | None:
        """Read the whole archive database in a child process (low priority)
        and, when it is damaged, stop using it and say so.

        A damaged file can make LMDB crash the process that reads it or
        return garbage; the child takes that risk instead of the app.  The
        open itself already refuses truncated files and checks the file
        after an unclean shutdown; this catches damage that happened
        otherwise (disk errors, other programs).

        Parameters
        ----------
        delay : float
            Seconds to wait first (the first search and frame go first).

        Returns
        -------
        threading.Thread or None
            The worker (None for media or a missing archive).
        """
        arc = self._archive
        if arc is None or arc.path is None:
            return None
        if self._check_thread is not None and self._check_thread.is_alive():
            return self._check_thread
        path = arc.path

        def work() -> None:
            from pocketpacs.archive.integrity import deep_check

            if delay:
                time.sleep(delay)
            if self._closed:
                return
            try:
                res = deep_check(path, nice=10, cancel=self._closing)
            except Exception as exc:
                log.info("background archive check skipped: %s", type(exc).__name__)
                return
            if res.status == "damaged":
                with self._lock:
                    self._set_damaged()
            elif res.status == "inconsistent":
                log.warning("archive check: %d invariant violation(s); `pocketpacs verify` repairs counts",
                            len(res.problems))

        t = threading.Thread(target=work, name="pocketpacs-archive-check", daemon=True)
        self._check_thread = t
        t.start()
        return t

    def startup_check(self, background: bool = True) -> str | None:
        """Open the archive now (not at the first command) and say what is wrong, if anything.

        With ``background`` the whole database is then read in a child
        process (:meth:`start_background_check`).

        Returns
        -------
        str or None
            The notice to show (read-only fallback, damaged archive), or None.
        """
        try:
            arc = self.archive
            if background or getattr(arc, "unclean", False):
                self.start_background_check(self.check_delay)
        except BridgeError:
            pass
        except Exception as exc:  # another archive error: the page reports it per command
            from pocketpacs.errors import ArchiveUnsafe

            unsafe = isinstance(exc, ArchiveUnsafe)   # never read, nor called damaged
            self.archive_notice = protocol.UNSAFE_ARCHIVE if unsafe else "The archive could not be opened."
            log.warning("the archive could not be opened: %s", type(exc).__name__)
            from pocketpacs.archive.integrity import deep_check
            from pocketpacs.paths import default_archive_dir

            path = self.archive_path or str(default_archive_dir())
            if not unsafe and os.path.exists(os.path.join(path, "data.mdb")):
                if deep_check(path).status == "damaged":   # in a child: this process is safe
                    self._set_damaged()
        return self.archive_notice

