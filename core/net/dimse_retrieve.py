"""DIMSE retrieve over several associations: C-GET or C-MOVE in worker processes.

:class:`DimseRetrieve` is the part of :class:`.remote.Remote` that runs a
retrieve's requests (:mod:`.dimse`) over one association per part in forked
workers (:mod:`.parallel`): each worker's received instances are queued for
a writer thread (:mod:`.writebehind`) that writes them into the archive's
store, and the parent indexes them as they are reported.  For C-MOVE every
worker listens on the move port, and the Message IDs of the requests say
which series a moved instance was asked for (:class:`SeriesOf`), so no data
set is decoded.  When whole series were asked for and not all came,
:meth:`DimseRetrieve._missing_after_whole_series` lists them on the node to
name what is missing.
"""
from __future__ import annotations

import errno
import threading
from typing import TYPE_CHECKING, Any

from . import dimse, parallel
from .incoming import Indexer, ReceivedStore, event_part10
from .nodes import NetError, RemoteNode
from .writebehind import WriteBehind

if TYPE_CHECKING:
    from .remote import RetrieveResult


class DimseRetrieve:
    """The DIMSE retrieve of :class:`.remote.Remote` (a mixin: it uses ``self.node``)."""

    node: RemoteNode

    def _missing_after_whole_series(self, res: RetrieveResult, study_uid: str, series: list[str] | None,
                                    got: set[str], errors: dict[str, str], n_wanted: int) -> dict[str, list[str]]:
        """After whole series were asked for (their instances never listed) and not all
        came: the node's list of them (an image-level C-FIND), to say which are missing.
        When the node cannot list them (it stopped, or the retrieve was cancelled: a
        cancel ends at once) the instances known here are returned, and one ``failed``
        entry without a UID is added to *res* per other missing instance."""
        listed: list[tuple[str, str, str]] = []
        if not res.cancelled:
            try:
                listed = dimse.list_instances(self.node, study_uid, series)
            except NetError as e:
                res.problem = res.problem or str(e)
        wanted: dict[str, list[str]] = {}
        for se, sop, _ in listed:
            wanted.setdefault(se, []).append(sop)
        if not listed:
            known = set(errors) | got
            wanted = {"": sorted(known)}
            res.failed.extend({"sop_instance_uid": None, "reason": "not_received"}
                              for _ in range(max(0, n_wanted - len(known))))
        return wanted

    def _get_parallel(self, parts: list[dict[str, list[str]]], study_uid: str, wanted: dict[str, list[str]],
                      complete: set[str], where: dict[str, str], classes: set[str], store: ReceivedStore,
                      ix: Indexer, got: set[str], errors: dict[str, str], written: dict[str, str],
                      full: threading.Event, cancel: Any, progress: Any, n_wanted: int) -> tuple[str | None, bool]:
        """C-GET or C-MOVE over one association per part of *parts* in worker processes
        (:mod:`.parallel`): each part is a run of the wanted instances (IMAGE-level requests
        with UID lists, a whole series when the part has all of it), or whole series (an empty
        list: the series was not listed).  For C-MOVE every worker listens on the move port
        (``SO_REUSEPORT``: the kernel gives each association the peer opens to one of them),
        all listen before any C-MOVE is sent, and all keep listening until every C-MOVE
        has ended; the Message IDs of the C-MOVEs (unique among the workers) say which series
        a moved instance was asked for.  Returns (problem, interrupted)."""
        import multiprocessing

        node = self.node
        move = node.retrieve == "move"
        ctx = multiprocessing.get_context("fork")  # parallel.worker_count says 1 where there is no fork
        go, all_moved = ctx.Event(), ctx.Event()
        ready: set[int] = set()
        moved: set[int] = set()
        k = len(parts)
        asked = SeriesOf(where)
        plans = []
        for w, mine in enumerate(parts):
            whole = {se for se, sops in mine.items() if se in complete and len(sops) == len(wanted[se])}
            reqs = dimse.retrieve_requests(study_uid, mine, whole)
            first = 1 + w * (MOVE_IDS // k)
            asked.plan(reqs, first)
            plans.append((reqs, first))

        def target_for(plan: tuple[list[Any], int]) -> parallel.Target:
            reqs, first = plan

            def target(report: Any, stop: Any) -> str | None:
                full_here = threading.Event()

                def on_error(sop: str, e: BaseException) -> None:
                    report("error", sop, write_failed(e))
                    if getattr(e, "errno", None) in DISK_FULL:
                        full_here.set()
                        report("full", sop)

                writer = WriteBehind(lambda data, se, sop: store.write(data, study_uid, se, sop),
                                     lambda sop, path: report("got", sop, str(path)), on_error)

                def on_store(event: Any) -> int:  # in the worker: queued for the writer, which tells the parent
                    sop = str(event.request.AffectedSOPInstanceUID)
                    writer.submit(event_part10(event), asked.series(event, sop), sop)
                    return 0xA700 if full_here.is_set() else 0x0000

                with writer:
                    return self._worker_retrieve(node, move, study_uid, reqs, first, classes, on_store, asked,
                                                 report, stop, go, all_moved)
            return target

        def on_finished(w: int) -> None:
            on_message(("ready", w, None))
            on_message(("moved", w, None))

        def on_message(msg: tuple) -> None:
            kind, w = msg[0], msg[1]
            sop = msg[2] if len(msg) > 2 else None
            if kind == "ready":
                ready.add(w)
                if len(ready) == k:
                    go.set()
            elif kind == "moved":
                moved.add(w)
                if len(moved) == k:
                    all_moved.set()
            elif kind == "full":      # the store's disk is full: the workers are told to stop
                full.set()
            elif kind == "got":
                got.add(sop)
                written[msg[3]] = sop
                store.new_files.set()
                if progress is not None:
                    progress(len(got), n_wanted)
            elif kind == "error":
                errors[sop] = msg[3]

        results, interrupted = parallel.run([target_for(p) for p in plans], on_message, cancel,
                                            before_wait=ix.__enter__, on_finished=on_finished)
        problems = [r for r in results if r]
        real = [r for r in problems if r != "cancelled"]
        return (real[0] if real else problems[0] if problems else None), interrupted

    def _worker_retrieve(self, node: RemoteNode, move: bool, study_uid: str, reqs: list[Any], first: int,
                         classes: set[str], on_store: Any, asked: "SeriesOf", report: Any, stop: Any,
                         go: Any, all_moved: Any) -> str | None:
        """One worker's C-GET, or its C-MOVE with its share of the move port's listening
        (see :meth:`_get_parallel`).  Returns a problem text or None."""
        if not move:
            try:
                return dimse.c_get(node, study_uid, reqs, classes, on_store, stop, on_request=asked.asking)
            except NetError as e:
                return str(e)
        try:
            server = dimse.move_listener(node, on_store, shared=True)
        except NetError as e:
            report("ready")
            report("moved")
            return str(e)
        try:
            report("ready")
            while not go.wait(0.05) and not stop():
                pass
            try:
                problem = "cancelled" if stop() else dimse.move_requests(node, reqs, stop, first_id=first)
            except NetError as e:
                problem = str(e)
            report("moved")
            while not all_moved.wait(0.05) and not stop():  # others' instances may come to us
                pass
            return problem
        finally:
            server.shutdown()


#: Message IDs (16 bits) of the workers' C-MOVE requests: worker w of k starts at 1 + w * (this // k).
MOVE_IDS = 65000


def balanced(counts: dict[str, int], k: int) -> list[list[str]]:
    """The series of *counts* (UID -> instances) in *k* groups of nearly equal instance counts
    (largest series first, each to the group with the fewest so far)."""
    groups: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for se in sorted(counts, key=lambda u: -counts[u]):
        i = sizes.index(min(sizes))
        groups[i].append(se)
        sizes[i] += counts[se]
    return [g for g in groups if g]


class SeriesOf:
    """The Series Instance UID of an instance a C-STORE sub-operation brings, without
    decoding its data set: the UID it was listed under, else the series of the request
    it comes for (C-GET: the request in flight on the association; C-MOVE: the Move
    Originator Message ID), else (a peer sending more than asked) read from the data set."""

    def __init__(self, where: dict[str, str]):
        self.where = where
        self.by_id: dict[int, str] = {}
        self.current: str | None = None

    def plan(self, requests: list[Any], first_id: int) -> None:
        """Note the series of each request, sent with Message IDs *first_id*, *first_id* + 1..."""
        for i, ds in enumerate(requests):
            self.by_id[first_id + i] = str(ds.SeriesInstanceUID)

    def asking(self, request: Any) -> None:
        """Called with each C-GET request before it is sent."""
        self.current = str(request.SeriesInstanceUID)

    def series(self, event: Any, sop: str) -> str:
        """The series of the instance *sop* that the ``EVT_C_STORE`` *event* brings."""
        se = self.where.get(sop)
        if se is not None:
            return se
        origin = event.request.MoveOriginatorMessageID
        if origin is not None:
            se = self.by_id.get(origin)
        elif self.current is not None:
            se = self.current
        if se is None:
            se = str(getattr(event.dataset, "SeriesInstanceUID", "unknown"))
        return se


def write_failed(e: BaseException) -> str:
    """The ``failed`` reason of an instance that could not be written."""
    return f"write_failed: {(getattr(e, 'strerror', None) or type(e).__name__).lower()}"


#: ``errno`` values of a full disk (or a full quota) while a received file is written.
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
