"""Several DIMSE associations at once, each in a worker process of its own.

pynetdicom spends a few milliseconds of pure-Python CPU per message (PDU
decoding, its state machine, the DIMSE command sets) and hands every message
between two threads, and the peer waits for each answer: one association
is bound by one core's share of the GIL and by those hand-offs.  A large
retrieve or send is therefore split among worker processes (forked, on
Linux: nothing is pickled on the way in and no module is imported again;
elsewhere everything runs in this process), each with its own
association; the workers report each instance to the parent through a
queue (``(kind, worker, ...)`` tuples), and the parent keeps the counts,
calls ``progress``, and indexes while files arrive.

Cancelling: the parent sets a shared event (a ``cancel`` it was given, or
Ctrl-C), each worker aborts its association at the next message and reports
``done``; the workers ignore SIGINT themselves so that a Ctrl-C in the
terminal reaches the parent only, which stops them this way (files are
written atomically: an aborted worker leaves no half-written file in the
store).  A worker that dies without reporting is reported as a problem.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .incoming import is_cancelled

T = TypeVar("T")

#: Worker processes of a large retrieve or send (at most; each needs a peer association).
MAX_WORKERS = 4
#: Fewer instances than this per worker are not worth a process (start-up, a new association).
MIN_PER_WORKER = 100

#: A worker's body: ``target(report, stop)``; *report* puts a tuple to the parent,
#: *stop* says whether to stop; its return value is reported as ``("done", k, value)``.
Target = Callable[[Callable[..., None], Callable[[], bool]], Any]


def worker_count(n_items: int, workers: int | None = None) -> int:
    """How many workers for *n_items* instances.

    Parameters
    ----------
    n_items : int
    workers : int, optional
        Asked for explicitly (1: no worker process); default: one per
        :data:`MIN_PER_WORKER` instances, at most :data:`MAX_WORKERS` and
        the CPU count.

    Returns
    -------
    int
        1 means: work in this process (always where workers cannot be forked).
    """
    if not _can_fork():
        return 1
    if workers is not None:
        return max(1, min(workers, n_items))
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1, n_items // MIN_PER_WORKER))


def _can_fork() -> bool:
    """Linux only: the workers are forked (their targets are closures, never pickled), and
    macOS's system frameworks are not safe to use in a forked child."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def split(items: Sequence[T], k: int) -> list[list[T]]:
    """*items* in *k* contiguous slices of nearly equal length (order kept)."""
    n = len(items)
    out, start = [], 0
    for i in range(k):
        end = start + n // k + (1 if i < n % k else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def _child(k: int, target: Target, q: Any, stop: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (see the module docstring)

    def report(*msg: Any) -> None:
        q.put((msg[0], k, *msg[1:]))

    try:
        value = target(report, stop.is_set)
    except BaseException as e:  # said to the parent, never a traceback on the terminal
        q.put(("failed", k, f"{type(e).__name__}: {e}"))
        return
    q.put(("done", k, value))


def run(targets: Sequence[Target], on_message: Callable[[tuple], None], cancel: Any = None,
        before_wait: Callable[[], Any] | None = None,
        on_finished: Callable[[int], None] | None = None) -> tuple[list[Any], bool]:
    """Run each target in a worker process; feed their messages to *on_message* here.

    Parameters
    ----------
    targets : sequence of callable
        ``target(report, stop)`` per worker (see :data:`Target`).
    on_message : callable
        Called in this process with every ``(kind, worker, ...)`` a worker
        reports, except ``done`` and ``failed``.
    cancel : threading.Event or callable, optional
        Checked while waiting; when set the workers are told to stop.
    before_wait : callable, optional
        Called once the workers are started (forked), before waiting: e.g.
        to start threads, which are better not running at the fork.
    on_finished : callable, optional
        Called with a worker's number when it has ended (done, failed or died).

    Returns
    -------
    (list, bool)
        Each worker's return value (a text ``"worker stopped: ..."`` for a
        worker that failed or died), and whether a ``KeyboardInterrupt``
        arrived here (the workers were stopped; the caller re-raises it).
    """
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    stop = ctx.Event()
    procs = [ctx.Process(target=_child, args=(k, t, q, stop), name=f"pocketpacs-net-{k}", daemon=True)
             for k, t in enumerate(targets)]
    results: list[Any] = [None] * len(procs)
    finished = [False] * len(procs)
    interrupted = False
    try:
        for p in procs:
            p.start()
    except BaseException:
        stop.set()
        for p in procs:
            if p.pid is not None:
                p.join()
        raise
    if before_wait is not None:
        before_wait()
    told = [False] * len(procs)
    while not all(finished):
        if on_finished is not None:
            for k, f in enumerate(finished):
                if f and not told[k]:
                    told[k] = True
                    on_finished(k)
        try:
            if not stop.is_set() and is_cancelled(cancel):
                stop.set()
            try:
                msg = q.get(timeout=0.2)
            except queue.Empty:
                dead = [k for k, p in enumerate(procs) if not finished[k] and p.exitcode is not None]
                if dead:
                    _drain(q, on_message, results, finished)
                    for k in dead:
                        if not finished[k]:  # died without a word (killed, out of memory)
                            finished[k] = True
                            results[k] = f"worker stopped: exit code {procs[k].exitcode}"
                continue
            _dispatch(msg, on_message, results, finished)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
    for p in procs:
        p.join()
    return results, interrupted


def _dispatch(msg: tuple, on_message: Callable[[tuple], None], results: list[Any], finished: list[bool]) -> None:
    kind, k = msg[0], msg[1]
    if kind == "done":
        results[k], finished[k] = msg[2], True
    elif kind == "failed":
        results[k], finished[k] = f"worker stopped: {msg[2]}", True
    else:
        on_message(msg)


def _drain(q: Any, on_message: Callable[[tuple], None], results: list[Any], finished: list[bool]) -> None:
    """Dispatch what is queued now."""
    while True:
        try:
            msg = q.get_nowait()
        except queue.Empty:
            return
        _dispatch(msg, on_message, results, finished)
