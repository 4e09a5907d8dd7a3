"""The server's live volume jobs: newest per viewport, older ones cancelled.

:class:`JobRegistry` holds the :class:`~pocketpacs.ui.volumes.VolumeJob` of
each request by its opaque id.  A new job cancels the unfinished older jobs of
its *slot* (one viewport); finished jobs stay for re-fetches up to ``keep``
(the newest job of each slot always stays).  A job dropped from the registry
gives its whole-volume array to the next job of the same size when nothing
holds it any more (:mod:`.volumearrays`): no new array to fault in per open.
So does a job that a newer one of its slot replaces, at once: it stays for
its status and its series (the page's measurements), but its voxels answer
as superseded (no page asks an older volume of its viewport for them: the
viewer's open aborts the last one's requests).  Before, the first ``keep``
opens each faulted in a new array (1.7-2.0 s of the server's CPU per 524 MB
here, measured in ``benchmarks/bench_ui.py``) and kept it in memory.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from .volumearrays import recycle


class JobRegistry:
    """Live volume jobs by id, newest per slot; older jobs are cancelled.

    Parameters
    ----------
    keep : int
        Most finished jobs kept (their arrays stay in memory for re-fetches).
    """

    def __init__(self, keep: int = 3):
        self._jobs: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep
        #: Jobs submitted so far (the warm-up stays out of the way of the first).
        self.submitted = 0

    def submit(self, job: Any) -> Any:
        """Register and start *job*, cancelling older jobs of its slot.

        Parameters
        ----------
        job : VolumeJob
            The new job.

        Returns
        -------
        VolumeJob
            *job*, started.
        """
        with self._lock:
            self.submitted += 1
            for old in list(self._jobs.values()):
                if old.slot == job.slot:
                    if not old.status()["done"]:
                        old.cancel()
                    _recycle(old)     # replaced: its array goes to the next job (once free)
            self._jobs[job.id] = job
            self._evict()
        return job.start()

    #: Slots whose newest job is kept beyond ``keep`` (the viewports of the Compare view
    #: and the main viewer: loading one never cancels another's volume).
    MAX_SLOTS = 8

    def _evict(self) -> None:
        """Drop the oldest jobs beyond ``keep``, sparing the newest job of each slot
        (up to :data:`MAX_SLOTS` slots); called with the lock held."""
        while len(self._jobs) > self._keep:
            newest: dict[str, str] = {}
            for jid, j in self._jobs.items():
                newest[j.slot] = jid
            spared = set(list(newest.values())[-self.MAX_SLOTS:])
            victim = next((jid for jid in self._jobs if jid not in spared), None)
            if victim is None:
                return
            dropped = self._jobs.pop(victim)
            dropped.cancel()
            _recycle(dropped)

    def get(self, vid: str) -> Any:
        """Return the job with id *vid*, or None.

        Parameters
        ----------
        vid : str
            Opaque id.

        Returns
        -------
        VolumeJob or None
        """
        with self._lock:
            return self._jobs.get(vid)

    def clear(self, wait: float = 0.0) -> None:
        """Cancel and forget every job.

        Parameters
        ----------
        wait : float
            Seconds to wait, in all, for the workers to stop (on shutdown:
            a worker still inside a native kernel while the interpreter
            finalises can abort the process).
        """
        with self._lock:
            jobs = list(self._jobs.values())
            for job in jobs:
                job.cancel()
            self._jobs.clear()
        end = time.monotonic() + wait
        for job in jobs:
            job.join(max(0.0, end - time.monotonic()))


def _recycle(job: Any) -> None:
    """Hand a dropped job's array to the next job of its size, when it is free."""
    arr = job.release_array()
    if arr is not None:
        recycle(arr)


__all__ = ["JobRegistry"]
