"""Work the page starts and polls: one worker thread per job, with progress and cancel.

:class:`WorkerJob` is what the import, copy-from-media, network and share
jobs have in common: a random job id the page polls by, a cancel event, the
start time, the ``done``/``total`` counts the work reports, and a daemon
thread whose unexpected exception becomes the bridge's one error envelope
(logged by type, never by message: messages may hold paths or names).  Each
job implements :meth:`WorkerJob._work` and its own ``status()`` (the shape
its page polls, documented per job).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time

from . import protocol

log = logging.getLogger("pocketpacs.ui.jobs")


class WorkerJob:
    """A job run on a daemon thread.

    Parameters
    ----------
    name : str
        What the job does, in the thread's name and the log (``import``, ``copy``, ``net-get``...).
    """

    def __init__(self, name: str):
        self.id = secrets.token_hex(16)
        self.name = name
        self.cancel_event = threading.Event()
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.error: dict | None = None
        self.finished = False
        self._thread = threading.Thread(target=self._run, name=f"pocketpacs-{name}", daemon=True)

    def start(self) -> "WorkerJob":
        """Start the worker.

        Returns
        -------
        WorkerJob
            ``self``.
        """
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self.cancel_event.set()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)

    def rate(self) -> float:
        """Units done per second since the start."""
        return self.done / max(time.monotonic() - self.started, 1e-6)

    def _work(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self._work()
        except Exception as exc:
            log.warning("%s job failed: %s", self.name, type(exc).__name__, exc_info=exc)
            self.error = protocol.envelope_for_exception(exc)["error"]
        finally:
            self._finish()
            self.finished = True

    def _finish(self) -> None:
        """Called on the worker thread when the work ends, however it ends (before ``finished``)."""
