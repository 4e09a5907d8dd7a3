"""A remote node seen from an archive: echo, find, get and send.

>>> import pocketpacs, pocketpacs.net                      # doctest: +SKIP
>>> with pocketpacs.open_archive() as ar:
...     pacs = ar.remote("pacs")                  # or pocketpacs.net.remote(ar, "pacs")
...     pacs.echo()
...     for st in pacs.find(name="doe*", study_date="2024"):
...         if not st["in_archive"]:
...             print(pacs.get(st["study_instance_uid"]))
...     pacs.send(["1.2.840..."])                 # patient ID, study, series or SOP UIDs

``get`` first lists the study's instances on the node (C-FIND at image
level, or QIDO-RS) and asks only for those the archive lacks, so a retry
after a partial retrieve fetches only the rest; what arrives is written into
the archive's store folder (:mod:`.incoming`) and indexed while it arrives.
``send`` offers each file in its own transfer syntax and transcodes to
explicit VR little endian (pydicom) only when the peer refuses it.
"""
from __future__ import annotations

import errno
import io
import threading
from dataclasses import dataclass, field
from typing import Any

from ..log import logger
from . import dimse, parallel, web
from .filters import check_filters, matches, remote_keys
from .incoming import Indexer, ReceivedStore, event_part10, is_cancelled
from .nodes import NetError, RemoteNode, get_node, node_password
from .watchdog import Watchdog, check_timeout


@dataclass
class RetrieveResult:
    """What a retrieve did (``to_json`` is ``remote get --json``).

    Attributes
    ----------
    received : int
        Instances written to the store.
    indexed : int
        Instances added to the archive.
    already : int
        Instances the archive had (not fetched).
    failed : list of dict
        ``{"sop_instance_uid", "reason"}`` of each instance missing at the end.
    conflicts : list of dict
        ``{"sop_instance_uid", "reason"}`` of each instance of the node whose
        SOP Instance UID the archive holds with other content: the archived
        file is kept, never overwritten (as ``listen`` does).
    problem : str or None
        Why the retrieve stopped or was partial (None: complete).
    cancelled : bool
    """
    received: int = 0
    indexed: int = 0
    already: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return not self.failed and not self.cancelled

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"received": self.received, "indexed": self.indexed, "already": self.already,
                               "failed": list(self.failed)}
        if self.conflicts:
            out["conflicts"] = list(self.conflicts)
        return out


@dataclass
class SendResult:
    """What a send did: ``sent`` instances, ``failed`` ``[{"sop_instance_uid", "reason"}]``."""
    sent: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    transcoded: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": list(self.failed)}


class Remote:
    """A remote node bound to an archive (the archive holds the node's settings).

    Parameters
    ----------
    archive : Archive
    name : str
        The node's name (``pocketpacs remote add NAME ...``).
    timeout : float, optional
        Seconds without a byte moving before a command gives up (default:
        the node's ``timeout``, 60 s).

    Raises
    ------
    ValueError
        A *timeout* that is not a positive number of seconds.
    """

    def __init__(self, archive: Any, name: str, timeout: float | None = None):
        if archive.path is None:
            raise NetError("remote nodes belong to an archive on disk, not to a CD/USB session")
        self.archive = archive
        self.node: RemoteNode = get_node(archive.path, name)
        if timeout is not None:
            self.node.timeout = check_timeout(timeout)
        self._password = node_password(archive.path, name) if self.node.kind == "dicomweb" else None

    def __repr__(self) -> str:
        return f"<pocketpacs.net.Remote {self.node.name} {self.node.kind}>"

    # ---- echo / find ------------------------------------------------------------------------
    def echo(self) -> None:
        """C-ECHO (DIMSE) or a QIDO-RS ping (DICOMweb).

        Raises
        ------
        NetError
            The node does not answer; the message says why.
        """
        if self.node.kind == "dimse":
            dimse.echo(self.node)
        else:
            web.echo(self.node, self._password)

    def find(self, **filters: Any) -> list[dict[str, Any]]:
        """Studies on the node matching the archive's search filters.

        Parameters
        ----------
        **filters
            ``name``, ``patient_id``, ``birth_date``, ``study_date``,
            ``modality``, ``description``, ``accession`` (as in ``Archive.search``).

        Returns
        -------
        list of dict
            ``study_instance_uid, patient_name, patient_id, birth_date,
            study_date, modalities, description, accession, n_series,
            n_instances, in_archive`` per study, newest first.

        Raises
        ------
        ValueError
            An unknown filter or a malformed date.
        NetError
            The node cannot be reached or refuses the query.
        """
        f = check_filters(filters)
        keys = remote_keys(f, ascii_only=self.node.kind == "dicomweb")
        if self.node.kind == "dimse":
            found = dimse.find_studies(self.node, keys)
        else:
            found = web.find_studies(self.node, keys, self._password)
        out = []
        seen = set()
        for st in found:
            uid = st["study_instance_uid"]
            if not uid or uid in seen or not matches(f, st):
                continue
            seen.add(uid)
            st["in_archive"] = self._has_study(uid)
            out.append(st)
        out.sort(key=lambda s: (s["study_date"] or "", s["study_instance_uid"]), reverse=True)
        return out

    def _has_study(self, uid: str) -> bool:
        try:
            self.archive.study(uid)
            return True
        except KeyError:
            return False

    def _has_instance(self, uid: str) -> bool:
        try:
            self.archive.instance(uid)
            return True
        except KeyError:
            return False

    # ---- get ---------------------------------------------------------------------------------
    def get(self, study_uid: str, series: list[str] | None = None, *, cancel: Any = None,
            progress: Any = None, workers: int | None = None) -> RetrieveResult:
        """Retrieve a study (or some of its series) into the archive.

        Parameters
        ----------
        study_uid : str
        series : list of str, optional
            Series Instance UIDs (default: the whole study).
        cancel : threading.Event or callable, optional
            Stops the retrieve (the association is aborted; what arrived is indexed).
        progress : callable, optional
            Called as ``progress(received, wanted)`` after each instance.
        workers : int, optional
            DIMSE C-GET: associations at once, each in a worker process
            (:mod:`.parallel`); default: one per 100 missing instances, at most 4.

        Returns
        -------
        RetrieveResult
            ``problem`` says why it is partial; a later ``get`` fetches only the rest.

        Raises
        ------
        NetError
            The node cannot be reached, refuses us, or does not have the study.
        """
        node = self.node
        if node.kind == "dimse":
            items = dimse.list_instances(node, study_uid, series)
        else:
            items = web.list_instances(node, study_uid, series, self._password)
        if not items:
            which = "these series of the study" if series else "the study"
            raise NetError(f"remote {node.name!r} has no instances of {which} {study_uid}")
        res = RetrieveResult()
        wanted: dict[str, list[str]] = {}
        by_series: dict[str, int] = {}
        elsewhere = _ArchivedSeries(self.archive)
        for se, sop, _ in items:
            by_series[se] = by_series.get(se, 0) + 1
            if self._has_instance(sop):
                res.already += 1
                if elsewhere.other_series(sop, se):
                    res.conflicts.append({"sop_instance_uid": sop, "reason": CONFLICT_OTHER_SERIES})
            else:
                wanted.setdefault(se, []).append(sop)
        if not wanted:
            return res
        complete = {se for se, sops in wanted.items() if len(sops) == by_series[se]}
        n_wanted = sum(len(v) for v in wanted.values())
        where = {sop: se for se, sops in wanted.items() for sop in sops}
        store = ReceivedStore(self.archive)
        store.clean_incoming()
        got: set[str] = set()
        errors: dict[str, str] = {}
        written: dict[str, str] = {}
        lock = threading.Lock()
        full = threading.Event()      # the store's disk is full: stop asking for more
        stop = _Either(cancel, full)

        def keep(data: bytes, sop: str, se: str | None) -> int:
            if se is None:  # not asked for (a peer sending more): keep it all the same
                se = "unknown"
            try:
                path = store.write(data, study_uid, se, sop)
            except OSError as e:
                with lock:
                    errors[sop] = f"write_failed: {(e.strerror or type(e).__name__).lower()}"
                if e.errno in _DISK_FULL:
                    full.set()
                return 0xA700
            with lock:
                got.add(sop)
                written[str(path)] = sop
                n = len(got)
            if progress is not None:
                progress(n, n_wanted)
            return 0x0000

        def on_store(event: Any) -> int:
            sop = str(event.request.AffectedSOPInstanceUID)
            se = where.get(sop)
            if se is None:
                se = str(getattr(event.dataset, "SeriesInstanceUID", "unknown"))
            return keep(event_part10(event), sop, se)

        def on_instance(data: bytes) -> None:
            # a Part-10 file as the server sent it: only its UIDs are read
            from pydicom import dcmread
            from pydicom.filewriter import dcmwrite

            ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True,
                         specific_tags=["SOPInstanceUID", "SeriesInstanceUID"])
            if data[128:132] != b"DICM":  # a bare data set: written again as a file
                ds = dcmread(io.BytesIO(data), force=True)
                buf = io.BytesIO()
                dcmwrite(buf, ds, enforce_file_format=True)
                data = buf.getvalue()
            sop = str(ds.SOPInstanceUID)
            keep(data, sop, where.get(sop, str(ds.get("SeriesInstanceUID", "unknown"))))

        interrupted = False
        k = parallel.worker_count(n_wanted, workers) if node.kind == "dimse" else 1
        if k > 1:
            ix = Indexer(store)
            res.problem, interrupted = self._get_parallel(k, study_uid, wanted, complete, where, items, store, ix,
                                                          got, errors, written, full, stop, progress)
            ix.__exit__(KeyboardInterrupt if interrupted else None, None, None)
        else:
            with Indexer(store) as ix:
                try:
                    if node.kind == "dicomweb":
                        res.problem = web.retrieve(node, study_uid, wanted, complete, on_instance, stop,
                                                   self._password)
                    else:
                        reqs = dimse.retrieve_requests(study_uid, wanted, complete)
                        if node.retrieve == "move":
                            res.problem = dimse.c_move(node, study_uid, reqs, on_store, stop)
                        else:
                            classes = {c for _, _, c in items}
                            res.problem = dimse.c_get(node, study_uid, reqs, classes, on_store, stop)
                except NetError as e:
                    res.problem = str(e)
                except KeyboardInterrupt:
                    interrupted = True
        res.cancelled = (interrupted or is_cancelled(cancel)
                         or (res.problem == "cancelled" and not full.is_set()))
        if res.cancelled:
            res.problem = "cancelled"
        elif full.is_set():
            res.problem = (f"no space left on the device of the store folder {store.root}: {len(got)} of "
                           f"{n_wanted} instances written and indexed, none half-written; free some space and "
                           "run the same retrieve again to fetch the rest")
        for c in ix.conflicts:
            if str(c.path) in written:  # a file of this retrieve (not one kept apart before)
                res.conflicts.append({"sop_instance_uid": written[str(c.path)], "reason": CONFLICT_OTHER_CONTENT})
        res.received = len(got)
        res.indexed = ix.indexed
        if ix.error is not None:
            res.problem = res.problem or f"indexing failed ({type(ix.error).__name__}: {ix.error})"
        for f in ix.failures:
            logger.info("a received file was not indexed: %s", f.reason)
        for sops in wanted.values():
            for sop in sops:
                if self._has_instance(sop):
                    continue
                reason = errors.get(sop) or ("not_indexed" if sop in got else "not_received")
                res.failed.append({"sop_instance_uid": sop, "reason": reason})
        if res.failed and not res.problem:
            res.problem = f"{len(res.failed)} of {n_wanted} instances did not arrive"
        if interrupted:
            raise KeyboardInterrupt
        return res

    def _get_parallel(self, k: int, study_uid: str, wanted: dict[str, list[str]], complete: set[str],
                      where: dict[str, str], items: list[tuple[str, str, str]], store: ReceivedStore, ix: Indexer,
                      got: set[str], errors: dict[str, str], written: dict[str, str], full: threading.Event,
                      cancel: Any, progress: Any) -> tuple[str | None, bool]:
        """C-GET or C-MOVE over *k* associations in worker processes (:mod:`.parallel`): the
        wanted instances split in *k* runs (IMAGE-level requests with UID lists, a whole series
        when one worker has all of it).  For C-MOVE every worker listens on the move port
        (``SO_REUSEPORT``: the kernel gives each association the peer opens to one of them),
        all listen before any C-MOVE is sent, and all keep listening until every C-MOVE
        has ended.  Returns (problem, interrupted)."""
        import multiprocessing

        node = self.node
        move = node.retrieve == "move"
        ctx = multiprocessing.get_context("fork")  # parallel.worker_count says 1 where there is no fork
        go, all_moved = ctx.Event(), ctx.Event()
        ready: set[int] = set()
        moved: set[int] = set()
        classes = {c for _, _, c in items}
        n_wanted = len(where)
        flat = [(se, sop) for se, sops in wanted.items() for sop in sops]

        def target_for(part: list[tuple[str, str]]) -> parallel.Target:
            mine: dict[str, list[str]] = {}
            for se, sop in part:
                mine.setdefault(se, []).append(sop)
            whole = {se for se, sops in mine.items() if se in complete and len(sops) == len(wanted[se])}
            reqs = dimse.retrieve_requests(study_uid, mine, whole)

            def target(report: Any, stop: Any) -> str | None:
                def on_store(event: Any) -> int:  # in the worker: write, then tell the parent
                    sop = str(event.request.AffectedSOPInstanceUID)
                    se = where.get(sop)
                    if se is None:  # not asked for (a peer sending more): keep it all the same
                        se = str(getattr(event.dataset, "SeriesInstanceUID", "unknown"))
                    try:
                        path = store.write(event_part10(event), study_uid, se, sop)
                    except OSError as e:
                        report("error", sop, f"write_failed: {(e.strerror or type(e).__name__).lower()}")
                        if e.errno in _DISK_FULL:
                            report("full", sop)
                        return 0xA700
                    report("got", sop, str(path))
                    return 0x0000

                if not move:
                    try:
                        return dimse.c_get(node, study_uid, reqs, classes, on_store, stop)
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
                        problem = "cancelled" if stop() else dimse.move_requests(node, reqs, stop)
                    except NetError as e:
                        problem = str(e)
                    report("moved")
                    while not all_moved.wait(0.05) and not stop():  # others' instances may come to us
                        pass
                    return problem
                finally:
                    server.shutdown()
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

        results, interrupted = parallel.run([target_for(p) for p in parallel.split(flat, k)], on_message, cancel,
                                            before_wait=ix.__enter__, on_finished=on_finished)
        problems = [r for r in results if r]
        real = [r for r in problems if r != "cancelled"]
        return (real[0] if real else problems[0] if problems else None), interrupted

    # ---- send ----------------------------------------------------------------------------------
    def instances_of(self, uids: list[str]) -> list[Any]:
        """Archived instances of patient IDs, study, series or SOP Instance UIDs.

        Raises
        ------
        NetError
            A UID the archive does not know (the message names it).
        """
        out: dict[str, Any] = {}
        ar = self.archive
        for uid in uids:
            found: list[Any] = []
            try:
                found = ar.instances(ar.get_series(uid))
            except KeyError:
                try:
                    for se in ar.series(ar.study(uid)):
                        found += ar.instances(se)
                except KeyError:
                    try:
                        found = [ar.instance(uid)]
                    except KeyError:
                        for hit in ar.search(patient_id=uid):
                            for se in ar.series(hit.study):
                                found += ar.instances(se)
            if not found:
                raise NetError(f"{uid}: no patient ID, study, series or instance of that UID in the archive")
            for inst in found:
                out.setdefault(inst.sop_instance_uid, inst)
        return list(out.values())

    def send(self, uids: list[str], *, cancel: Any = None, progress: Any = None,
             workers: int | None = None) -> SendResult:
        """Send archived instances (patient IDs, study, series or SOP UIDs) to the node.

        C-STORE offers each file's own transfer syntax and explicit/implicit VR
        little endian; a file is transcoded (decompressed by pydicom) only when
        its own syntax is refused.  DICOMweb: STOW-RS as stored.

        Parameters
        ----------
        uids : list of str
        cancel : threading.Event or callable, optional
        progress : callable, optional
            Called as ``progress(done, total)``.
        workers : int, optional
            DIMSE: associations at once, each in a worker process (:mod:`.parallel`);
            default: one per 100 instances, at most 4.

        Returns
        -------
        SendResult

        Raises
        ------
        NetError
            A UID is not in the archive, or the node cannot be reached.
        """
        insts = self.instances_of(uids)
        res = SendResult()
        todo = []
        for inst in insts:
            path = next((p for p in inst.paths if _isfile(p)), None)
            if path is None:
                res.failed.append({"sop_instance_uid": inst.sop_instance_uid, "reason": "offline"})
            else:
                todo.append((inst, path))
        k = parallel.worker_count(len(todo), workers) if self.node.kind == "dimse" else 1
        if k > 1:
            _send_parallel(self.node, todo, res, cancel, progress, k)
        elif self.node.kind == "dimse":
            _send_dimse(self.node, todo, res, cancel, progress)
        else:
            _send_web(self.node, todo, res, cancel, progress, self._password)
        return res


def _isfile(p: str) -> bool:
    import os

    return os.path.isfile(p)


#: Associations opened again after the peer closed one during a send, with no instance sent in between.
SEND_RECONNECTS = 2


def _store_one(assoc: Any, accepted: set[tuple[str, str]], inst: Any, path: str, res: SendResult) -> str:
    """C-STORE one file on *assoc*: ``"sent"``, ``"failed"`` (recorded in *res*) or ``"lost"``."""
    from pydicom import dcmread

    sop = inst.sop_instance_uid
    try:
        if (inst.sop_class_uid, inst.transfer_syntax) in accepted:
            try:  # the file's bytes as stored, not decoded (STORE_SEND_CHUNKED_DATASET)
                st = assoc.send_c_store(path)
            except (AttributeError, ValueError, OSError):
                if not assoc.is_established:
                    raise
                st = assoc.send_c_store(dcmread(path))  # no file meta to go by: read and sent as a data set
        elif ((inst.sop_class_uid, dimse.EXPLICIT_LE) in accepted
              or (inst.sop_class_uid, dimse.IMPLICIT_LE) in accepted):
            ds = dcmread(path)
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.decompress(generate_instance_uid=False)  # the same instance, decompressed
            else:
                if not ds.file_meta.TransferSyntaxUID.is_little_endian:
                    # big endian: every value decoded as read, the pixel bytes in little endian order
                    for _ in ds.iterall():
                        pass
                    if "PixelData" in ds:
                        arr = ds.pixel_array
                        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
                    ds.set_original_encoding(False, True, ds.original_character_set)
                ds.file_meta.TransferSyntaxUID = dimse.EXPLICIT_LE
            res.transcoded += 1
            st = assoc.send_c_store(ds)
        else:
            res.failed.append({"sop_instance_uid": sop,
                               "reason": "refused: the peer accepts no transfer syntax for this SOP class"})
            return "failed"
    except Exception as e:  # a file that cannot be read or decoded: say which, go on
        if not assoc.is_established:
            return "lost"
        res.failed.append({"sop_instance_uid": sop, "reason": f"unreadable: {type(e).__name__}"})
        return "failed"
    code = getattr(st, "Status", None)
    if code is None:
        return "lost"
    if code == 0 or (code & 0xF000) == 0xB000:
        res.sent += 1
        return "sent"
    res.failed.append({"sop_instance_uid": sop, "reason": f"status 0x{code:04X}"})
    return "failed"


def _send_dimse(node: RemoteNode, todo: list[tuple[Any, str]], res: SendResult, cancel: Any, progress: Any) -> None:
    """C-STORE every file; when the peer closes the association (a time limit, a restart)
    a new one carries on from the instance that was lost, up to :data:`SEND_RECONNECTS` times in a row."""
    if not todo:
        return
    from pynetdicom import _config

    # a file sent in its own transfer syntax goes as its bytes, in PDU-sized chunks, without being
    # decoded and encoded again (only files whose own syntax was accepted are sent by path)
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = dimse.make_ae(node.calling_aet)
    pairs = sorted({(i.sop_class_uid, i.transfer_syntax) for i, _ in todo})
    classes = sorted({c for c, _ in pairs})
    room = dimse.MAX_CONTEXTS - len(classes)
    for c, ts in pairs[:room]:
        if ts not in (dimse.EXPLICIT_LE, dimse.IMPLICIT_LE):
            ae.add_requested_context(c, [ts])
    for c in classes:
        ae.add_requested_context(c, [dimse.EXPLICIT_LE, dimse.IMPLICIT_LE])
    i = 0
    lost_in_a_row = 0
    stop_reason = None
    while i < len(todo) and stop_reason is None:
        try:
            assoc = dimse.associate(node, ae)
        except NetError as e:
            if i == 0:
                raise
            stop_reason = f"connection lost ({e})"
            break
        lost = False
        with dimse._closing(assoc), Watchdog(node.timeout, cancel, assoc) as wd:
            accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
            while i < len(todo):
                if is_cancelled(cancel):
                    stop_reason = "cancelled"
                    break
                inst, path = todo[i]
                if _store_one(assoc, accepted, inst, path, res) == "lost":
                    lost = True
                    break
                lost_in_a_row = 0
                i += 1
                if progress is not None:
                    progress(i, len(todo))
        if wd.problem(f"remote {node.name!r} ({node.address()})"):
            stop_reason = wd.problem(f"remote {node.name!r} ({node.address()})")
            break
        if lost:
            lost_in_a_row += 1
            if lost_in_a_row > SEND_RECONNECTS:
                stop_reason = "connection lost"
    for inst, _ in todo[i:]:
        res.failed.append({"sop_instance_uid": inst.sop_instance_uid, "reason": stop_reason or "connection lost"})


def _send_parallel(node: RemoteNode, todo: list[tuple[Any, str]], res: SendResult, cancel: Any, progress: Any,
                   k: int) -> None:
    """:func:`_send_dimse` over *k* associations in worker processes, each sending a
    contiguous run of *todo*; :class:`NetError` when none could associate."""
    parts = parallel.split(todo, k)

    def target_for(part: list[tuple[Any, str]]) -> parallel.Target:
        def target(report: Any, stop: Any) -> tuple[int, list[dict[str, str]], int, str | None]:
            mine = SendResult()
            try:
                _send_dimse(node, part, mine, stop, lambda i, n: report("sent", i))
            except NetError as e:  # this worker could not associate at all
                return 0, [], 0, str(e)
            return mine.sent, mine.failed, mine.transcoded, None
        return target

    done = [0] * k

    def on_message(msg: tuple) -> None:
        done[msg[1]] = msg[2]
        if progress is not None:
            progress(sum(done), len(todo))

    results, interrupted = parallel.run([target_for(p) for p in parts], on_message, cancel)
    unreachable = None
    for part, r in zip(parts, results):
        if isinstance(r, tuple) and r[3] is None:
            res.sent += r[0]
            res.failed.extend(r[1])
            res.transcoded += r[2]
            continue
        why = r[3] if isinstance(r, tuple) else str(r)
        unreachable = unreachable or why
        res.failed.extend({"sop_instance_uid": inst.sop_instance_uid, "reason": why} for inst, _ in part)
    if interrupted:
        raise KeyboardInterrupt
    if res.sent == 0 and unreachable is not None and all(isinstance(r, tuple) and r[3] for r in results):
        raise NetError(unreachable)


def _send_web(node: RemoteNode, todo: list[tuple[Any, str]], res: SendResult, cancel: Any, progress: Any,
              password: str | None) -> None:
    from pydicom import dcmread

    for i in range(0, len(todo), web.STOW_BATCH):
        if is_cancelled(cancel):
            for inst, _ in todo[i:]:
                res.failed.append({"sop_instance_uid": inst.sop_instance_uid, "reason": "cancelled"})
            return
        part = todo[i:i + web.STOW_BATCH]
        dss = []
        for inst, path in part:
            try:
                dss.append(dcmread(path))
            except Exception as e:  # say which file, go on with the others
                res.failed.append({"sop_instance_uid": inst.sop_instance_uid,
                                   "reason": f"unreadable: {type(e).__name__}"})
        try:
            web.store(node, dss, password)
        except NetError as e:
            for ds in dss:
                res.failed.append({"sop_instance_uid": str(ds.SOPInstanceUID), "reason": str(e)})
            continue
        res.sent += len(dss)
        if progress is not None:
            progress(min(i + web.STOW_BATCH, len(todo)), len(todo))


#: ``errno`` values of a full disk (or a full quota) while a received file is written.
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
CONFLICT_OTHER_SERIES = ("conflict: the archive holds this SOP Instance UID in another series; the node's "
                         "instance was not fetched and the archived file is kept")
CONFLICT_OTHER_CONTENT = ("conflict: the archive holds this SOP Instance UID with other content; the received "
                          "file is kept apart, the archived one is not overwritten")


class _Either:
    """A cancel that is set when the caller's *cancel* or the event *also* is."""

    def __init__(self, cancel: Any, also: threading.Event):
        self.cancel, self.also = cancel, also

    def is_set(self) -> bool:
        return self.also.is_set() or is_cancelled(self.cancel)


class _ArchivedSeries:
    """The Series Instance UID of an archived instance, to tell a node's other
    instance of the same SOP Instance UID (a conflict) from the same one."""

    def __init__(self, archive: Any):
        self.archive = archive
        self._uids: dict[str, str] = {}

    def other_series(self, sop: str, series_uid: str) -> bool:
        """True when the archive holds *sop* in a series other than *series_uid*."""
        try:
            key = self.archive.instance(sop).series_key
            if key not in self._uids:
                self._uids[key] = self.archive.get_series(key).uid
        except KeyError:
            return False
        return bool(series_uid) and self._uids[key] != series_uid


def remote(archive: Any, name: str) -> Remote:
    """The remote node *name* of *archive* (see :class:`Remote`)."""
    return Remote(archive, name)
