"""Warm-up: load the readers' compiled kernels in the background.

:class:`WarmUp` is the part of :class:`~pocketpacs.ui.session.Session` that,
after the first search answered, reads the middle slice of the archive's first
series on a daemon thread so the numba kernels are compiled (or loaded from
cache) before the user opens a series.  It steps aside as soon as a volume is
asked for or the session closes; errors are logged and ignored.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("pocketpacs.ui.session")


class WarmUp:
    """Background warm-up of the readers (a mixin of Session)."""

    def start_warmup(self) -> threading.Thread:
        """Load the readers' compiled kernels in the background (after the first search).

        First what opening an archived series from its stored rows needs:
        the middle slice of the archive's first series is read that way
        (a series the rows cannot plan is left to the second step).  Then,
        only when the rows could not plan that series (records from before
        the rows held every needed value) and no volume has been asked for
        yet, the header parser's kernels, by parsing three files: loading
        them takes about half a second with the native lock held, which a
        series opened meanwhile would wait for.  Errors are ignored.

        Returns
        -------
        threading.Thread
            The (daemon) worker.
        """
        def busy() -> bool:
            return self.volumes.submitted > 0 or self._closing.is_set()

        def work() -> None:
            try:
                from pocketpacs.series import NATIVE_LOCK, archive_rows

                from .sources import DicomSeriesSource

                arc = self.archive
                res = arc.search(level="series", limit=1)
                for key in [s.key for h in res.hits for s in h.series[:1]][:1]:
                    if busy():
                        return
                    got = archive_rows(arc, key)
                    if got is not None:
                        DicomSeriesSource(got[0], batch=got[1]).close()
                        return
                    from pocketpacs.dicom.headers import parse_files

                    paths = [os.fspath(p) for p in arc.series_files(key, check=False)][:3]
                    with NATIVE_LOCK:
                        if paths and not busy():
                            parse_files(paths)
                    if paths and not busy():
                        DicomSeriesSource(paths).close()
            except Exception as exc:
                log.info("warm-up skipped: %s", type(exc).__name__)

        t = threading.Thread(target=work, name="pocketpacs-warmup", daemon=True)
        self._warmup = t
        t.start()
        return t
