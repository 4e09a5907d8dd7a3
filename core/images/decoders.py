"""The decoder pool: worker processes running pydicom's decoders, with crash isolation.

Compressed pixel data (JPEG, JPEG-LS, JPEG 2000/HTJ2K, RLE, deflate, 1-bit,
subsampled YBR, gzip-wrapped files) is decoded by pydicom's decoder plugins
in worker *processes* (:class:`DecoderPool`, the worker side in
:mod:`pocketpacs.images.decodeworker`).  Processes, not threads:
pylibjpeg-openjpeg holds the GIL.  One single-threaded decoder per process,
so a pool of one process per core scales with the cores.  A decoder that
kills its process (e.g. ``free(): invalid size`` abort in openjpeg on a
broken codestream) only loses that task: the pool notices the dead worker,
starts another, retries the task's frames one by one and reports the frame
that crashes as a :class:`FrameError`; a task over :data:`DECODE_TIMEOUT_S`
is killed and reported the same way.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from typing import Any, Sequence

import numpy as np

from ..log import logger
from .decodeworker import _decode_task_default_order, _worker_main

#: A decode task that takes longer than this is killed and reported.
DECODE_TIMEOUT_S = 300.0


@dataclass
class FrameError:
    """One frame (or file) that could not be decoded.

    Attributes
    ----------
    path : str
    frame : int
        Frame number in the file (-1: the whole file).
    reason : str
        Short description (never header values).
    crashed : bool
        The decoder process died on it.
    """

    path: str
    frame: int
    reason: str
    crashed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for reports)."""
        return {"file": self.path, "frame": self.frame, "reason": self.reason,
                "crashed": self.crashed}


class _Worker:
    def __init__(self, ctx: Any):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.inflight: deque = deque()  # (tid, message entry, slot, sent time), oldest first
        self.started = 0.0

    def kill(self) -> None:
        try:
            self.proc.kill()
        except Exception:
            pass
        self.proc.join(1)
        try:
            self.conn.close()
        except Exception:
            pass


@dataclass
class _Msg:
    """Queued work: items ``(task index, path, frame indices)``; ``single``: split on crash.

    ``default_order``: decode with pydicom's default plugin order (no
    :data:`SINGLE_THREAD_PLUGIN`), the retry of a file that killed its worker.
    """

    items: list
    split: bool = True
    default_order: bool = False


class DecoderPool:
    """Worker processes running pydicom's decoders, with crash isolation.

    Parameters
    ----------
    workers : int, optional
        Number of processes (default: usable CPU cores).

    Notes
    -----
    Processes are started with the ``spawn`` method (safe in a threaded
    GUI process) on first use and kept (warm, decoders imported) for later
    calls; :meth:`close` stops them (also registered with ``atexit``).
    Every worker has up to :attr:`depth` messages queued so it never waits
    for the parent between files, and a message carries several files,
    fewer towards the end of a run (:attr:`tail`).  Workers open and read
    the files themselves; the parent only sends paths and copies finished
    frames out of the shared slots (about 1-2% of a run's wall time in CPU
    for 512x512 JPEG 2000, see :attr:`stats`).
    With ``convert``, workers rescale each frame into the output dtype and
    write it into a shared-memory slot of the parent (no pickled frames); the
    parent only copies the slot into the output rows.  The slots stay under
    an eighth of the output where one frame per slot allows it (short series
    get smaller messages, then one message in flight per worker), so peak
    memory stays near the final array's size; :attr:`stats` reports
    ``shm_bytes``.
    """

    #: Messages in flight per worker.
    depth = 2
    #: With ``batch > 1`` messages shrink towards the end of a run (guided
    #: scheduling): a message carries at most ``remaining tasks / (tail *
    #: workers)`` tasks, so the last messages are single files and no worker
    #: is left with a long queue while the other idles.
    tail = 4

    def __init__(self, workers: int | None = None):
        if workers is None:
            try:
                workers = len(os.sched_getaffinity(0))
            except AttributeError:
                workers = os.cpu_count() or 1
        self.n = max(1, int(workers))
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.crashes = 0
        #: Statistics of the last :meth:`run`: ``wall`` (s), ``parent_cpu`` (CPU
        #: seconds of this process, all threads, during the run), ``worker_busy``
        #: / ``worker_cpu`` (sums over messages of the workers' wall / CPU time
        #: spent decoding), ``messages``, ``tasks``, ``workers``.
        self.stats: dict[str, float] = {}
        self._depth_now = self.depth

    def _ensure(self, n: int) -> None:
        # a dead worker with messages in flight stays until the loop has seen
        # it die and reported or re-queued them (dropping it here lost them,
        # and the crash that killed it, without a word)
        self._workers = [w for w in self._workers if w.proc.is_alive() or w.inflight]
        alive = sum(1 for w in self._workers if w.proc.is_alive())
        while alive < n:
            self._workers.append(_Worker(self._ctx))
            alive += 1

    def close(self) -> None:
        """Stop all worker processes."""
        with self._lock:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except Exception:
                    pass
            for w in self._workers:
                w.proc.join(0.5)
                if w.proc.is_alive():
                    w.kill()
            self._workers = []

    def run(self, tasks: Sequence[tuple], on_result: Any,
            timeout_s: float = DECODE_TIMEOUT_S, decode_fn: Any = None, *,
            convert: dict | None = None, batch: int = 1) -> list[FrameError]:
        """Decode tasks ``(path, frame indices or None[, rescale params])``.

        Parameters
        ----------
        tasks : sequence of tuple
            ``(path, indices)``; ``None`` = all frames of the file.  With
            ``convert`` a third element gives ``(slope, intercept)`` per frame
            (or None).
        on_result : callable
            ``on_result(task_index, frame_indices, frames)`` for every decoded
            task (called in this thread; ``frames`` is a list of arrays).  With
            ``convert``: ``on_result(task_index, frame_indices, frames, ranges)``,
            the frames already in the output dtype (views valid only during the
            call; a frame of the wrong shape is given as None) and ``ranges`` a
            list of ``(min, max)``.
        timeout_s : float
            Per-task limit; a worker over it is killed and the task reported.
        decode_fn : callable, optional
            A picklable module-level ``fn(path, indices) -> list of arrays``
            run instead of pydicom's decoders (other codecs, fault injection).
        convert : dict, optional
            ``{"dtype", "shape", "rescale"}``: output dtype, frame shape and
            whether to apply the per-frame rescale, done in the workers.
        batch : int
            Tasks per message (several small files per round trip).

        Returns
        -------
        list of FrameError
        """
        errors: list[FrameError] = []
        tasks = list(tasks)
        batch = max(1, int(batch))
        t0, c0 = time.perf_counter(), time.process_time()
        depth = self.depth
        if convert is not None and tasks:
            # the shared slots (workers x depth messages of `batch` tasks) stay
            # under an eighth of the output where they can: short series get
            # smaller messages, then one message in flight per worker
            per = max(len(t[1]) if t[1] is not None else 1 for t in tasks)
            frame_bytes = max(1, int(np.prod(convert["shape"])) * np.dtype(convert["dtype"]).itemsize)
            budget = sum(len(t[1]) if t[1] is not None else 1 for t in tasks) * frame_bytes // 8
            batch = max(1, min(batch, budget // (self.n * depth * per * frame_bytes)))
            if self.n * depth * per * batch * frame_bytes > budget:
                depth = 1
        with self._lock:
            self._depth_now = depth
            queue: deque[_Msg] = deque()
            nw = min(self.n, max(1, -(-len(tasks) // batch)))
            a = 0
            while a < len(tasks):
                k = max(1, min(batch, (len(tasks) - a) // (self.tail * nw)))
                queue.append(_Msg([(ti, tasks[ti][0], tasks[ti][1])
                                   for ti in range(a, min(len(tasks), a + k))]))
                a += k
            nw = min(self.n, max(1, len(queue)))
            self._ensure(nw)
            shm, slot_frames, slots_free = None, 0, deque()
            if convert is not None:
                shm, slot_frames, slots_free = self._slots(tasks, batch, convert, nw)
            self.stats = {"wall": 0.0, "parent_cpu": 0.0, "worker_busy": 0.0,
                          "worker_cpu": 0.0, "messages": float(len(queue)),
                          "tasks": float(len(tasks)), "workers": float(nw),
                          "shm_bytes": float(shm.size) if shm is not None else 0.0}
            try:
                self._loop(queue, tasks, on_result, timeout_s, decode_fn, convert, shm,
                           slot_frames, slots_free, errors)
            finally:
                self.stats["wall"] = time.perf_counter() - t0
                self.stats["parent_cpu"] = time.process_time() - c0
                if shm is not None:
                    shm.close()
                    try:
                        shm.unlink()
                    except Exception:
                        pass
        return errors

    def _slots(self, tasks: list, batch: int, convert: dict, nw: int) -> tuple:
        from multiprocessing import shared_memory

        per = 1
        for t in tasks:
            per = max(per, len(t[1]) if t[1] is not None else 1)
        slot_frames = max(per, batch) if all(t[1] is None for t in tasks) else per * batch
        frame_bytes = int(np.prod(convert["shape"])) * np.dtype(convert["dtype"]).itemsize
        nslots = nw * self._depth_now
        try:
            shm = shared_memory.SharedMemory(create=True,
                                             size=max(1, nslots * slot_frames * frame_bytes))
        except OSError:  # no /dev/shm room: frames come back pickled
            return None, 0, deque()
        return shm, slot_frames, deque(range(nslots))

    def _loop(self, queue, tasks, on_result, timeout_s, decode_fn, convert, shm, slot_frames,
              slots_free, errors) -> None:
        tid_next = 0
        frame_bytes = 0
        if shm is not None:
            frame_bytes = int(np.prod(convert["shape"])) * np.dtype(convert["dtype"]).itemsize
        while queue or any(w.inflight for w in self._workers):
            # feed every worker up to `depth` messages
            for w in list(self._workers):
                if not w.proc.is_alive():
                    continue  # dead: its messages in flight are handled below
                while queue and len(w.inflight) < self._depth_now and (shm is None or slots_free):
                    msg = queue.popleft()
                    conv = None
                    slot = None
                    if convert is not None:
                        conv = dict(convert)
                        if shm is not None:
                            slot = slots_free.popleft()
                            conv.update(shm=shm.name, slot_frames=slot_frames,
                                        slot_offset=slot * slot_frames * frame_bytes)
                    items = [(p, ix, tasks[ti][2] if len(tasks[ti]) > 2 else None)
                             for ti, p, ix in msg.items]
                    tid = tid_next
                    tid_next += 1
                    try:
                        fn = decode_fn
                        if fn is None and msg.default_order:
                            fn = _decode_task_default_order
                        w.conn.send((tid, items, fn, conv))
                    except (BrokenPipeError, OSError):
                        queue.appendleft(msg)
                        if slot is not None:
                            slots_free.append(slot)
                        break
                    if not w.inflight:
                        w.started = time.monotonic()
                    w.inflight.append((tid, msg, slot))
            busy = [w for w in self._workers if w.inflight]
            if not busy:
                self._ensure(min(self.n, max(1, len(queue))))
                continue
            waitables = []
            for w in busy:
                waitables.extend([w.conn, w.proc.sentinel])
            ready = mp_wait(waitables, timeout=1.0)
            now = time.monotonic()
            for w in busy:
                got = None
                if w.conn in ready:
                    try:
                        got = w.conn.recv()
                    except (EOFError, OSError):
                        got = None
                if got is not None:
                    tid, msg, slot = w.inflight.popleft()
                    w.started = now
                    _, status, payload = got[:3]
                    if len(got) >= 5:
                        self.stats["worker_busy"] += got[3]
                        self.stats["worker_cpu"] += got[4]
                    if status != "ok":
                        payload = [("error", payload)] * len(msg.items)
                    view = None
                    if shm is not None and slot is not None:
                        view = np.ndarray((slot_frames,) + tuple(convert["shape"]),
                                          dtype=np.dtype(convert["dtype"]), buffer=shm.buf,
                                          offset=slot * slot_frames * frame_bytes)
                    for (ti, path, idx), (st, res) in zip(msg.items, payload):
                        if st != "ok":
                            errors.append(FrameError(path, _frame_of(idx), res))
                        elif convert is None:
                            on_result(ti, idx, res)
                        else:
                            frames, rng = [], []
                            for r in res:
                                if r[0] == "slot":
                                    frames.append(view[r[1]])
                                    rng.append((r[2], r[3]))
                                elif r[0] == "array":
                                    frames.append(r[1])
                                    rng.append((r[2], r[3]))
                                else:
                                    frames.append(None)
                                    rng.append((0.0, 0.0))
                            on_result(ti, idx, frames, rng)
                    del view
                    if slot is not None:
                        slots_free.append(slot)
                    continue
                dead = not w.proc.is_alive() or w.proc.sentinel in ready
                late = now - w.started > timeout_s
                if not (dead or late):
                    continue
                if dead:
                    w.proc.join(1.0)
                code = w.proc.exitcode
                w.kill()
                if w in self._workers:
                    self._workers.remove(w)
                self.crashes += 1
                why = ("decoder timed out" if late and not dead
                       else f"decoder process died (exit code {code})")
                # the oldest message was being decoded; the others never started
                first = True
                while w.inflight:
                    _tid, msg, slot = w.inflight.popleft()
                    if slot is not None:
                        slots_free.append(slot)
                    if not first:
                        queue.appendleft(msg)
                        continue
                    first = False
                    ti, path, idx = msg.items[0]
                    # no path: folder and file names can hold patient names (the
                    # FrameError returned to the caller carries it)
                    logger.warning("pixel decoder crashed on %s: %s", "one file"
                                   if len(msg.items) == 1 else f"one of {len(msg.items)} files",
                                   why)
                    if len(msg.items) > 1:  # isolate the bad file
                        for it in msg.items:
                            queue.append(_Msg([it]))
                    elif idx is not None and len(idx) > 1:  # isolate the bad frame(s)
                        for f in idx:
                            queue.append(_Msg([(ti, path, [f])], split=False))
                    elif dead and decode_fn is None and not msg.default_order:
                        # the preferred single-threaded plugin may be what crashed
                        # (an OpenJPEG abort): once more with pydicom's default order
                        queue.append(_Msg(list(msg.items), split=False, default_order=True))
                    else:
                        errors.append(FrameError(path, _frame_of(idx), why, crashed=True))
                self._ensure(min(self.n, max(1, len(queue))))


def _frame_of(idx: list[int] | None) -> int:
    return idx[0] if idx is not None and len(idx) == 1 else -1


_POOL: DecoderPool | None = None
_POOL_LOCK = threading.Lock()


def decoder_pool() -> DecoderPool:
    """The process-wide :class:`DecoderPool` (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = DecoderPool()
            atexit.register(_POOL.close)
        return _POOL
