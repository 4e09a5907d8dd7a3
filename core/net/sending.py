"""Sending archived instances to a remote node: C-STORE (on one association, or several in
worker processes) and STOW-RS.

C-STORE offers each file's own transfer syntax and explicit/implicit VR little
endian, and transcodes (decompresses with pydicom) only when the peer refuses
the original; it carries on over a new association when the peer closes one.
:meth:`pocketpacs.net.Remote.send` chooses the way; the result is a
:class:`SendResult`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import dimse, parallel, web
from .incoming import is_cancelled
from .nodes import NetError, RemoteNode
from .watchdog import Watchdog


@dataclass
class SendResult:
    """What a send did: ``sent`` instances, ``failed`` ``[{"sop_instance_uid", "reason"}]``."""
    sent: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    transcoded: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": list(self.failed)}


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
            if isinstance(e, web.Unreachable) and i == 0:  # not reached at all: as a DIMSE send that cannot associate
                raise
            for ds in dss:
                res.failed.append({"sop_instance_uid": str(ds.SOPInstanceUID), "reason": str(e)})
            if isinstance(e, web.Unreachable):  # the node stopped answering: not asked again for each batch
                for inst, _ in todo[i + web.STOW_BATCH:]:
                    res.failed.append({"sop_instance_uid": inst.sop_instance_uid, "reason": str(e)})
                return
            continue
        res.sent += len(dss)
        if progress is not None:
            progress(min(i + web.STOW_BATCH, len(todo)), len(todo))
