"""Growing the archive's LMDB map while other threads of this process use it.

LMDB requires that no transaction be active in the process when the map is
resized, and py-lmdb invalidates every transaction of the environment when
``Environment.set_mapsize`` runs.  A thread reading while another grows the
map (the app's UI while an import commits, an importer's walk while its
writer thread commits) would otherwise fail with "Attempt to operate on
closed/deleted/dropped object", or read from a map being replaced.

:class:`MapGuard` counts the transactions open on one environment; a resize
holds new transactions back and waits for those of other threads to end.
One guard per environment: stores of the same archive in one process share
their environment (:mod:`~pocketpacs.archive.store`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("pocketpacs.archive")

#: Seconds a resize waits for the transactions of other threads to end; past
#: that it goes ahead (their next call fails with py-lmdb's error, as it did
#: before this guard) rather than hang: a thread that waits for the resizing
#: one while it holds a transaction would otherwise never let it go on.
RESIZE_WAIT = 60.0


class MapGuard:
    """Transactions open on one LMDB environment, and resizes of its map between them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = 0            # transactions open (every thread)
        self._resizing = False
        self._mine = threading.local()   # .n: this thread's open transactions

    def _held(self) -> int:
        return getattr(self._mine, "n", 0)

    @contextmanager
    def txn(self) -> Iterator[None]:
        """Hold a place for one transaction; waits while the map is being resized
        (unless this thread holds one already: the resize does not wait for it)."""
        with self._cond:
            if self._resizing and not self._held():
                self._cond.wait_for(lambda: not self._resizing)
            self._open += 1
        self._mine.n = self._held() + 1
        try:
            yield
        finally:
            self._mine.n -= 1
            with self._cond:
                self._open -= 1
                self._cond.notify_all()

    def resize(self, set_mapsize: Callable[[int], None], size: int) -> None:
        """Run ``set_mapsize(size)`` once no other thread has a transaction open."""
        mine = self._held()
        with self._cond:
            if self._resizing:   # (another thread resizes: this one goes after it)
                self._cond.wait_for(lambda: not self._resizing)
            self._resizing = True
            try:
                if not self._cond.wait_for(lambda: self._open <= mine, timeout=RESIZE_WAIT):
                    logger.warning("growing the archive map while %d transaction(s) of other threads "
                                   "stay open", self._open - mine)
                set_mapsize(size)
            finally:
                self._resizing = False
                self._cond.notify_all()
