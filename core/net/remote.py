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
after a partial retrieve fetches only the rest.  Over DIMSE, a study (or
series) the archive holds nothing of is asked for whole series at a time
after two C-FINDs that give the series' instance counts and the SOP classes
(not one answer per instance); the instances are listed only when not all
of them came, to say which are missing.  What arrives is written into the
archive's store folder (:mod:`.incoming`; over DIMSE by a writer thread while
the next instance arrives, :mod:`.writebehind`) and indexed while it arrives.
``send`` offers each file in its own transfer syntax and transcodes to
explicit VR little endian (pydicom) only when the peer refuses it.
"""
from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass, field
from typing import Any

from ..log import logger
from . import dimse, parallel, tuning, web
from .dimse_retrieve import DISK_FULL, DimseRetrieve, SeriesOf, balanced, write_failed
from .filters import check_filters, matches, remote_keys
from .incoming import Indexer, ReceivedStore, event_part10, is_cancelled
from .nodes import NetError, RemoteNode, get_node, node_password
from .sending import SendResult, _isfile, _send_dimse, _send_parallel, _send_web
from .watchdog import check_timeout
from .writebehind import WriteBehind


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
        ``{"sop_instance_uid", "reason"}`` of each instance missing at the end (the UID
        is None when the node, asked for whole series, could not list them afterwards).
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
    failed: list[dict[str, str | None]] = field(default_factory=list)
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


class Remote(DimseRetrieve):
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

    def _holds_any(self, study_uid: str, series: list[str] | None) -> bool:
        """Whether the archive holds any instance of the study (or of these of its series)."""
        if not series:
            return self._has_study(study_uid)
        for uid in series:
            try:
                self.archive.get_series(uid)
                return True
            except KeyError:
                pass
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
        # DIMSE: threads hand each instance on; quick switches between them (see tuning.quick_switches)
        with tuning.quick_switches() if self.node.kind == "dimse" else contextlib.nullcontext():
            return self._get(study_uid, series, cancel, progress, workers)

    def _get(self, study_uid: str, series: list[str] | None, cancel: Any, progress: Any,
             workers: int | None) -> RetrieveResult:
        node = self.node
        res = RetrieveResult()
        wanted: dict[str, list[str]] = {}
        # nothing of it archived: whole series are asked for, without listing every instance first
        outline = (dimse.study_outline(node, study_uid, series)
                   if node.kind == "dimse" and not self._holds_any(study_uid, series) else None)
        if outline is not None:
            counts, classes = outline
            wanted = {se: [] for se in counts}
            complete = set(counts)
            n_wanted = sum(counts.values())
            if not n_wanted:
                which = "these series of the study" if series else "the study"
                raise NetError(f"remote {node.name!r} has no instances of {which} {study_uid}")
        else:
            if node.kind == "dimse":
                items = dimse.list_instances(node, study_uid, series)
            else:
                items = web.list_instances(node, study_uid, series, self._password)
            if not items:
                which = "these series of the study" if series else "the study"
                raise NetError(f"remote {node.name!r} has no instances of {which} {study_uid}")
            classes = {c for _, _, c in items}
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

        def on_written(sop: str, path: Any) -> None:
            with lock:
                got.add(sop)
                written[str(path)] = sop
                n = len(got)
            if progress is not None:
                progress(n, n_wanted)

        def on_error(sop: str, e: BaseException) -> None:
            with lock:
                errors[sop] = write_failed(e)
            if getattr(e, "errno", None) in DISK_FULL:
                full.set()

        def keep(data: bytes, sop: str, se: str | None) -> int:
            try:
                path = store.write(data, study_uid, se or "unknown", sop)
            except OSError as e:
                on_error(sop, e)
                return 0xA700
            on_written(sop, path)
            return 0x0000

        asked = SeriesOf(where)
        # DIMSE: each instance is answered once queued, and written while the next one comes
        writer = WriteBehind(lambda data, se, sop: store.write(data, study_uid, se, sop), on_written, on_error)

        def on_store(event: Any) -> int:
            sop = str(event.request.AffectedSOPInstanceUID)
            writer.submit(event_part10(event), asked.series(event, sop), sop)
            return 0xA700 if full.is_set() else 0x0000

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
        if outline is not None:  # whole series: one worker per series at most
            k = min(k, len(wanted))
        if k > 1:
            if outline is not None:
                parts = [{se: [] for se in group} for group in balanced(counts, k)]
            else:
                parts = []
                for part in parallel.split([(se, sop) for se, sops in wanted.items() for sop in sops], k):
                    mine: dict[str, list[str]] = {}
                    for se, sop in part:
                        mine.setdefault(se, []).append(sop)
                    parts.append(mine)
            ix = Indexer(store)
            res.problem, interrupted = self._get_parallel(parts, study_uid, wanted, complete, where, classes, store,
                                                          ix, got, errors, written, full, stop, progress, n_wanted)
            ix.__exit__(KeyboardInterrupt if interrupted else None, None, None)
        else:
            with Indexer(store) as ix, writer if node.kind == "dimse" else contextlib.nullcontext():
                try:
                    if node.kind == "dicomweb":
                        res.problem = web.retrieve(node, study_uid, wanted, complete, on_instance, stop,
                                                   self._password)
                    else:
                        reqs = dimse.retrieve_requests(study_uid, wanted, complete)
                        asked.plan(reqs, 1)
                        if node.retrieve == "move":
                            res.problem = dimse.c_move(node, study_uid, reqs, on_store, stop)
                        else:
                            res.problem = dimse.c_get(node, study_uid, reqs, classes, on_store, stop,
                                                      on_request=asked.asking)
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
        if writer.callback_error is not None:
            res.problem = res.problem or f"a progress callback failed ({type(writer.callback_error).__name__})"
        if ix.error is not None:
            res.problem = res.problem or f"indexing failed ({type(ix.error).__name__}: {ix.error})"
        for f in ix.failures:
            logger.info("a received file was not indexed: %s", f.reason)
        if outline is not None and (res.problem or len(got) != n_wanted or ix.indexed != n_wanted):
            wanted = self._missing_after_whole_series(res, study_uid, series, got, errors, n_wanted)
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
