"""The write transaction of one import chunk: parsed files into records.

:func:`commit_chunk` indexes a chunk of parsed files in one write
transaction: failures are recorded, files of unknown SOP Instance UIDs are
written column-wise with their series/study/patient records (built once per
series from one representative file), files of known UIDs are classified
(unchanged, changed in place, relinked, duplicate, conflict), and the
listings of the folders whose last files these are are written, with
vanished files marked missing and their instances offline;
:func:`commit_chunks` commits several chunks in one transaction, writing the
records they share once.  :func:`commit_hint_files` indexes files named by a DICOMDIR before the walk
reaches them; :func:`commit_gone_folder` marks the files of a vanished
folder missing.  :class:`PendingFolder` is a walked folder whose files are
waiting for their commit.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import keys
from . import pathkeys
from . import query
from . import records
from . import sopindex
from ..dicom import tags
from .header_values import FileHeaderValues
from .record_changes import RecordChanges, SeriesOwners, add_sorted
from .removal import remove_instances
from .report import Failure, public_reason
from .scan import Folder

#: New instance records written between two looks at the process's resident set
#: (:meth:`~pocketpacs.archive.txn.Txn.trim_map`).
TRIM_EVERY = 500

_NUM_KWS = tuple((kw, int(tags.NUM_START[tags.INDEX[kw]]), int(tags.NUM_COUNT[tags.INDEX[kw]]))
                 for kw in records.NUMERIC_KEYWORDS)


class PendingFolder:
    """A walked folder waiting for its files to be committed."""

    __slots__ = ("path", "names", "size", "mtime", "keys", "code", "missing", "pending",
                 "stored", "reappeared", "partial", "stamp")

    def __init__(self, folder: Folder, stored: records.DirListing | None, partial: bool = False):
        n = len(folder.names)
        self.path = folder.path
        self.names = folder.names
        self.size = np.asarray(folder.sizes, dtype=np.int64)
        self.mtime = np.asarray(folder.mtimes, dtype=np.int64)
        self.keys = np.zeros((n, 16), dtype=np.uint8)
        self.code = np.zeros(n, dtype=np.int8)
        self.missing = np.zeros(n, dtype=bool)
        self.pending = 0
        self.stored = stored
        self.reappeared: list[bytes] = []
        self.partial = partial
        self.stamp = None if partial else folder.stamp   # (kept with its listing: archive.dirstamps)


# ---- the write transaction of one chunk ---------------------------------------------
def _empty_result() -> dict[str, Any]:
    return {"indexed": 0, "unchanged": 0, "relinked": 0, "duplicate": 0, "missing": 0,
            "online_again": 0, "failures": [], "conflicts": []}


def commit_chunks(txn: Any, secret: bytes, parts: list[tuple[list[str], list[tuple[Any, np.ndarray]], Any,
                                                              list[PendingFolder]]],
                  owners: SeriesOwners | None = None, encoded: list[Encoded | None] | None = None) -> dict:
    """Index several parsed chunks in one write transaction, in order.

    Each part is ``(paths, take, batch, done_folders)`` as :func:`commit_chunk`
    takes them; the result is as if each were committed on its own, one
    after the other, but the patient, study and series records the parts
    share are loaded, changed and written back once (a chunk of files
    scattered over many series touches each series, its study and its
    patient: in a large archive most of them, and their B-tree pages, per
    transaction).  *owners* (kept by the importer across its transactions)
    spares decoding a series record for its study and patient keys in every
    transaction that adds files to it.  *encoded* (one per part, or None) are
    the parts' instance records made before the transaction (:func:`encode_chunk`);
    each is let go once written (a transaction that runs again encodes its own).

    Returns
    -------
    dict
        The counts of all parts together, as :func:`commit_chunk` returns them.
    """
    changes = RecordChanges(txn, secret, owners)
    res = _empty_result()
    for j, (paths, take, batch, done_folders) in enumerate(parts):
        if j:
            txn.trim_map()   # (a long transaction's RSS stays under the ceiling: see archive.mapped)
        enc = None
        if encoded is not None:
            enc, encoded[j] = encoded[j], None
        part = commit_chunk(txn, secret, paths, take, batch, done_folders, changes=changes, enc=enc)
        for k, v in part.items():
            res[k] += v
    changes.flush()
    if sopindex.merge_if_due(txn):
        txn.trim_map()   # (the pages of "sop" a merge read, before LMDB writes the commit)
    return res


def commit_chunk(txn: Any, secret: bytes, paths: list[str], take: list[tuple[Any, np.ndarray]], batch: Any,
                 done_folders: list[PendingFolder], changes: RecordChanges | None = None,
                 enc: Encoded | None = None) -> dict:
    """Index a chunk of parsed files and write the listings of the folders it finishes.

    Returns the counts of the chunk (``indexed``, ``unchanged``, ``relinked``,
    ``duplicate``, ``missing``, ``online_again``) and its ``failures`` and
    ``conflicts`` (lists of :class:`~pocketpacs.archive.report.Failure`).
    With *changes* (the records of a transaction that indexes several
    chunks: :func:`commit_chunks`) the changed records are left there for
    its caller to write.  *enc* is the chunk's :func:`encode_chunk` (made here without it).
    """
    own = changes is None
    if changes is None:
        changes = RecordChanges(txn, secret)
    res = _empty_result()
    relinked_from: dict[str, set[str]] = {}
    if batch is not None and batch.n:
        _index_batch(changes, batch, paths, take, res, relinked_from, enc)
    for fs in done_folders:
        _finish_folder(changes, fs, res)
    for d, names in relinked_from.items():
        raw = pathkeys.get_listing(txn, d)
        if raw is None:
            continue
        lst = records.DirListing.decode(raw)
        keep = np.array([nm not in names for nm in lst.names], dtype=bool)
        pathkeys.put_listing(txn, d, lst.select(keep))
    if own:
        changes.flush()
        sopindex.merge_if_due(txn)
    return res


def _identity(value: str | None) -> str | None:
    """A patient ID or name, or "" when it is only padding or white space:
    such a value is as absent, so patients without name or ID stay anonymous
    and are never merged (keys.patient_key strips only spaces and NULs)."""
    return "" if value is not None and not value.strip(" \0\t\n\r\f\v") else value


def _missing_uids(b: Any, rows: np.ndarray, hashes: dict[str, np.ndarray]) -> dict[int, str]:
    """Why files have no usable UIDs: ``"no SOPInstanceUID, empty SeriesInstanceUID"``.

    A UID present but blank (empty, padding or white space only) is as
    unusable as an absent one; the batch hashes both to 0.
    """
    out: dict[int, str] = {int(i): "" for i in rows.tolist()}
    if not out:
        return out
    for kw, h in hashes.items():
        present = b.uid_present(kw)
        for i in out:
            if h[i] == 0:
                out[i] += (", " if out[i] else "") + ("empty " if present[i] else "no ") + kw
    return out


class Encoded:
    """A parsed chunk's instance records, made before its write transaction
    (:func:`encode_chunk`): the rows that can be archived, in key order, and
    their encoded values.  The importer makes them in its own thread while the
    commit before is written (LMDB's page writes and syncs free the
    interpreter's lock), so that the commit only writes them."""

    __slots__ = ("rows", "vals")

    def __init__(self, rows: np.ndarray, vals: list[bytes]):
        self.rows, self.vals = rows, vals

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """``rows`` (some of these, in any order) in key order, with their values."""
        if rows.size == self.rows.size:   # (all of them: the usual case)
            return self.rows, self.vals
        keep = np.nonzero(np.isin(self.rows, rows))[0]
        vals = self.vals
        return self.rows[keep], [vals[j] for j in keep.tolist()]


def _archivable(b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ok, noid, sop_h, ser_h, st_h)``: the files that can be archived, those
    parsed without the three identifying UIDs, and the UIDs' hashes."""
    ok = b.status >= 0
    sop_h = b.uid_hash("SOPInstanceUID")
    ser_h = b.uid_hash("SeriesInstanceUID")
    st_h = b.uid_hash("StudyInstanceUID")
    noid = ok & ((sop_h == 0) | (ser_h == 0) | (st_h == 0))
    return ok & ~noid, noid, sop_h, ser_h, st_h


def _key_order(rows: np.ndarray, ser_h: np.ndarray, sop_h: np.ndarray) -> np.ndarray:
    """``rows`` in instance key order (series, SOP): sorted inserts are the cheapest for LMDB."""
    return rows[np.lexsort((sop_h[rows], ser_h[rows]))]


def _encode(b: Any, rows: np.ndarray, paths: list[str], texts: list) -> list[bytes]:
    """The instance values of ``rows``, in their order."""
    head = _instance_heads(b, rows)
    rl = rows.tolist()
    return records.encode_instances(head, [[col[i] for i in rl] for col in texts], [[paths[i]] for i in rl])


def encode_chunk(b: Any, paths: list[str]) -> Encoded | None:
    """The instance records of a parsed chunk's files, before its transaction
    (None for a chunk without files); a file whose UID is archived already is
    handled by the commit, which takes the records of the others."""
    if b is None or not b.n:
        return None
    ok, _noid, sop_h, ser_h, _st = _archivable(b)
    rows = _key_order(np.nonzero(ok)[0], ser_h, sop_h)
    return Encoded(rows, _encode(b, rows, paths, [b.text(kw) for kw in records.INSTANCE_TEXT]))


def _index_batch(changes: RecordChanges, b: Any, paths: list[str], take: list[tuple[Any, np.ndarray]],
                 res: dict, relinked_from: dict[str, set[str]], enc: Encoded | None = None) -> None:
    txn = changes.txn
    n = b.n
    ok, noid, sop_h, ser_h, st_h = _archivable(b)
    codes = np.zeros(n, dtype=np.int8)
    # failures
    bad = np.nonzero(~ok)[0]
    why = _missing_uids(b, bad[noid[bad]], {"SOPInstanceUID": sop_h, "SeriesInstanceUID": ser_h,
                                            "StudyInstanceUID": st_h})
    for i in bad.tolist():
        if noid[i]:
            reason, msg = "no_identifiers", f"{paths[i]}: {why[i]} (not an archivable instance)"
        else:
            reason, msg = b.reason[i] or "malformed", b.message[i] or f"{paths[i]}: {b.reason[i]}"
        codes[i] = records.CODE.get(reason, records.CODE["malformed"])
        res["failures"].append(Failure(paths[i], public_reason(reason), msg))
    ikeys = keys.instance_keys(ser_h, sop_h)
    sopk = keys.hashes_to_keys(sop_h)
    # old locations of changed files that pointed at another instance
    j0 = 0
    for fs, rows in take:
        st = fs.stored
        if st is not None:
            for j, i in enumerate(rows.tolist(), j0):
                r = st.index.get(fs.names[i], -1)
                if r >= 0 and st.code[r] == 0:
                    old = st.keys[r].tobytes()
                    if old != ikeys[j] or not ok[j]:
                        _drop_location(changes, old, paths[j])
        j0 += rows.size
    # classify: fresh (SOP unknown, first of its UID in the chunk) or known
    okr = np.nonzero(ok)[0]
    fresh = np.zeros(n, dtype=bool)
    if okr.size:
        _u, first = np.unique(sop_h[okr], return_index=True)
        fresh[okr[first]] = True  # first file of each SOP UID in the chunk
        ask = okr[first]
        if changes.import_sops is not None:   # (only those the import may have archived)
            ask = ask[changes.import_sops.maybe(sop_h[ask])]
        known = sopindex.known(txn, [sopk[i] for i in ask.tolist()]) if ask.size else set()
        if known:
            for i in ask.tolist():
                if sopk[i] in known:
                    fresh[i] = False
    special = np.nonzero(ok & ~fresh)[0].tolist()
    texts = [b.text(kw) for kw in records.INSTANCE_TEXT] if enc is None or special else []
    rows = np.nonzero(fresh)[0]
    if rows.size:
        _index_fresh(changes, b, rows, paths, ikeys, sopk, ser_h, st_h, texts, res, enc)
    for i in special:
        codes[i] = _index_known(changes, b, i, paths, ikeys, sopk, ser_h, st_h, texts, res,
                                relinked_from)
    keys_arr = np.frombuffer(b"".join(ikeys), dtype=np.uint8).reshape(n, 16).copy()
    keys_arr[codes != 0] = 0
    j0 = 0
    for fs, rows in take:
        j1 = j0 + rows.size
        fs.code[rows] = codes[j0:j1]
        fs.keys[rows] = keys_arr[j0:j1]
        j0 = j1


def _instance_heads(b: Any, rows: np.ndarray) -> np.ndarray:
    """The fixed-size head (sizes, fingerprint, pixel offsets, flags, numbers) of each row's instance record."""
    head = np.zeros(rows.size, dtype=records.INST_DTYPE)
    head["size"] = b.size[rows]
    head["mtime_ns"] = b.mtime_ns[rows]
    head["fingerprint"] = b.fingerprint[rows]
    head["pixel_offset"] = b.pixel_offset[rows]
    head["pixel_length"] = b.pixel_length[rows]
    head["flags"] = (np.where(b.status[rows] == 1, records.FALLBACK, 0)
                     | np.where(b.encapsulated[rows], records.ENCAPSULATED, 0)).astype(np.uint8)
    nums = head["nums"]
    for kw, c, cnt in _NUM_KWS:
        nums[:, c:c + cnt] = b.values(kw)[rows]
    head["nums"] = nums
    return head


def _index_fresh(changes: RecordChanges, b: Any, rows: np.ndarray, paths: list[str], ikeys: list[bytes],
                 sopk: list[bytes], ser_h: np.ndarray, st_h: np.ndarray, texts: list, res: dict,
                 enc: Encoded | None = None) -> None:
    """Write the files of ``rows`` as new instances (their records from *enc*, else
    encoded here from *texts*), and their series, study and patient records."""
    txn = changes.txn
    sop_h = b.uid_hash("SOPInstanceUID")
    if enc is not None:
        rows, vals = enc.take(rows)
    else:
        rows = _key_order(rows, ser_h, sop_h)
        vals = _encode(b, rows, paths, texts)
    rl = rows.tolist()
    items = list(zip([ikeys[i] for i in rl], vals))
    for a in range(0, len(items), TRIM_EVERY):   # (each insert maps the page it changes and its neighbours)
        if a:
            txn.trim_map()
        txn.putmulti("instances", items[a:a + TRIM_EVERY])
    by_sop = np.argsort(sop_h[rows], kind="stable")
    sk8 = keys.hashes_to_keys(ser_h[rows][by_sop])
    sopindex.add(txn, list(zip([sopk[i] for i in rows[by_sop].tolist()], sk8)))
    if changes.import_sops is not None:
        changes.import_sops.add(sop_h[rows])
    # group by series
    uniq, first, inv = np.unique(ser_h[rows], return_index=True, return_inverse=True)
    counts = np.bincount(inv, minlength=uniq.size)
    sizes = np.bincount(inv, weights=b.size[rows].astype(np.float64), minlength=uniq.size)
    reps = rows[first].tolist()
    # series this import added files to before: counts only (most series of a large import)
    rest = changes.add_owned_counts(uniq, counts, sizes.astype(np.int64))
    for g in rest:
        j = int(first[g])
        i = reps[g]
        head = np.frombuffer(vals[j], dtype=records.INST_DTYPE, count=1)   # (a value begins with its head)
        _add_to_series(changes, b, i, ikeys[i][:8], st_h[i], int(counts[g]), int(sizes[g]),
                       head["nums"][0])
    res["indexed"] += rows.size


def _add_to_series(changes: RecordChanges, b: Any, i: int, sek: bytes, st_hash: np.uint64, count: int,
                   size: int, nums: np.ndarray | None = None) -> None:
    """Create or update the series/study/patient records of a group of new instances."""
    se = changes.get("series", sek)
    if se is None:
        header = FileHeaderValues(b, i, nums)
        sk = keys.uid_key(int(st_hash))
        st = changes.get("studies", sk)
        if st is None:
            pid, name = _identity(header.text("PatientID")), _identity(header.text("PatientName"))
            pk = keys.patient_key(changes.secret, pid, name,
                                  header.text("PatientBirthDate"), header.text("StudyInstanceUID"))
            pa = changes.get("patients", pk)
            if pa is None:
                pa = changes.new("patients", pk, {
                    "name": header.text("PatientName"), "patient_id": header.text("PatientID"),
                    "birth_date": header.text("PatientBirthDate"), "sex": header.text("PatientSex"),
                    "anonymous": keys.is_anonymous(pid, name),
                    "n_studies": 0, "n_series": 0, "n_instances": 0, "size": 0})
            st = changes.new("studies", sk, {
                "uid": header.text("StudyInstanceUID"), "patient_key": pk.hex(),
                "date": header.text("StudyDate"), "time": header.text("StudyTime"),
                "description": header.text("StudyDescription"), "accession": header.text("AccessionNumber"),
                "study_id": header.text("StudyID"), "institution": header.text("InstitutionName"),
                "referring_physician": header.text("ReferringPhysicianName"), "physicians": [],
                "modalities": [], "series_words": [], "manufacturers": [], "models": [], "stations": [],
                "n_series": 0, "n_instances": 0, "size": 0, "n_offline": 0})
            add_sorted(st["physicians"], st["referring_physician"])
            pa["n_studies"] += 1
            changes.touch("patients", pk)
            changes.txn.put("pat_studies", pk + sk, b"")
        pk = bytes.fromhex(st["patient_key"])
        se = changes.new("series", sek, {
            "uid": header.text("SeriesInstanceUID"), "study_key": sk.hex(), "patient_key": pk.hex(),
            "number": header.first_int("SeriesNumber"), "modality": header.text("Modality"),
            "description": header.text("SeriesDescription"), "date": header.text("SeriesDate"),
            "time": header.text("SeriesTime"), "body_part": header.text("BodyPartExamined"),
            "protocol": header.text("ProtocolName"), "manufacturer": header.text("Manufacturer"),
            "model": header.text("ManufacturerModelName"), "station": header.text("StationName"),
            "performing_physician": header.text("PerformingPhysicianName"),
            "frame_of_reference": header.text("FrameOfReferenceUID"),
            "n_instances": 0, "size": 0, "n_offline": 0})
        changes.txn.put("study_series", sk + sek, b"")
        st["n_series"] += 1
        add_sorted(st["modalities"], se["modality"].strip().upper())
        for w in query.words(se["description"]):
            add_sorted(st["series_words"], w)
        add_sorted(st["manufacturers"], se["manufacturer"])
        add_sorted(st["models"], se["model"])
        add_sorted(st["stations"], se["station"])
        add_sorted(st["physicians"], se["performing_physician"])
        changes.touch("studies", sk)
        pa = changes.get("patients", pk)
        if pa is not None:
            pa["n_series"] += 1
            changes.touch("patients", pk)
    # (counts only: the study and patient records are patched, not loaded; a
    # record that is not stored, a damaged archive's, gets none)
    owner = (bytes.fromhex(se["study_key"]), bytes.fromhex(se["patient_key"]))
    changes.owners[sek] = owner
    changes.add_counts("series", sek, count, size)
    changes.add_counts("studies", owner[0], count, size)
    changes.add_counts("patients", owner[1], count, size)


def _index_known(changes: RecordChanges, b: Any, i: int, paths: list[str], ikeys: list[bytes],
                 sopks: list[bytes], ser_h: np.ndarray, st_h: np.ndarray, texts: list, res: dict,
                 relinked_from: dict[str, set[str]]) -> int:
    """A file whose SOP Instance UID is already archived: returns its listing code."""
    txn = changes.txn
    path, ikey, sopk = paths[i], ikeys[i], sopks[i]
    sek = sopindex.series_key(txn, sopk)
    kex = (sek or ikey[:8]) + sopk
    raw = txn.get("instances", kex)
    if raw is None:  # dangling SOP entry: index as new
        sopindex.remove(txn, sopk)
        _index_fresh(changes, b, np.array([i]), paths, ikeys, sopks, ser_h, st_h, texts, res)
        return 0
    head, tx, locs = records.split_instance(raw)
    same = kex == ikey and int(head["size"]) == int(b.size[i]) and int(head["fingerprint"]) == int(b.fingerprint[i])
    if path in locs:
        if same:
            res["unchanged"] += 1
            return 0
        if kex == ikey:  # the file changed in place: take the new values
            new_head = _instance_heads(b, np.array([i]))[0]
            new_head["flags"] |= head["flags"] & (records.CONFLICT | records.OFFLINE)
            ntext = {kw: texts[j][i] for j, kw in enumerate(records.INSTANCE_TEXT)}
            txn.put("instances", kex, records.join_instance(new_head, ntext, locs))
            delta = int(b.size[i]) - int(head["size"])
            _adjust_size(changes, kex, delta)
            res["indexed"] += 1
            return 0
    if same:
        alive = [p for p in locs if p != path and os.path.lexists(p)]
        if not alive:
            for p in locs:
                relinked_from.setdefault(os.path.dirname(p), set()).add(os.path.basename(p))
            locs = [path]
            res["relinked"] += 1
        else:
            locs = locs + [path]
            res["duplicate"] += 1
        txn.put("instances", kex, records.join_instance(head, tx, locs))
        changes.set_offline(kex, False)
        return 0
    # same UID, different content: a conflict; the archived instance stays
    flags = int(head["flags"]) | records.CONFLICT
    if flags != int(head["flags"]):
        txn.put("instances", kex, raw[:1] + bytes([flags]) + raw[2:])
    txn.put("conflicts", *pathkeys.conflict_record(kex, path, {
        "size": int(b.size[i]), "fingerprint": int(b.fingerprint[i]),
        "series_differs": kex != ikey}))
    res["conflicts"].append(Failure(path, "conflict", f"{path}: same SOP Instance UID as an archived "
                                    "instance but different content; kept apart, not overwritten"))
    return records.CODE["conflict"]


def _adjust_size(changes: RecordChanges, ikey: bytes, delta: int) -> None:
    if not delta:
        return
    se = changes.get("series", ikey[:8])
    if se is None:
        return
    se["size"] += delta
    changes.touch("series", ikey[:8])
    for db, k in (("studies", bytes.fromhex(se["study_key"])), ("patients", bytes.fromhex(se["patient_key"]))):
        rec = changes.get(db, k)
        if rec is not None:
            rec["size"] += delta
            changes.touch(db, k)


def _drop_location(changes: RecordChanges, ikey: bytes, path: str) -> None:
    """Remove ``path`` from an instance; an instance left without files is removed."""
    txn = changes.txn
    raw = txn.get("instances", ikey)
    if raw is None:
        return
    head, tx, locs = records.split_instance(raw)
    if path not in locs:
        return
    locs = [p for p in locs if p != path]
    if locs:
        txn.put("instances", ikey, records.join_instance(head, tx, locs))
        return
    remove_instances(changes, [ikey])


def _finish_folder(changes: RecordChanges, fs: PendingFolder, res: dict) -> None:
    """Write a folder's listing; mark vanished files missing, reappeared ones online."""
    txn = changes.txn
    cur = records.DirListing(list(fs.names), fs.size, fs.mtime, fs.keys, fs.code, fs.missing)
    st = fs.stored
    gone = None
    if st is not None and len(st) and not fs.partial:
        present = set(fs.names)
        mask = np.array([nm not in present for nm in st.names], dtype=bool)
        mask &= st.code == 0  # failed files that vanished are forgotten
        if mask.any():
            gone = st.select(mask)
    elif st is not None and fs.partial:
        present = set(fs.names)
        mask = np.array([nm not in present for nm in st.names], dtype=bool)
        if mask.any():
            gone = st.select(mask)  # not looked at: kept as they were
    for k in fs.reappeared:
        if changes.set_offline(k, False):
            res["online_again"] += 1
    if gone is not None:
        keep = np.ones(len(gone), dtype=bool)
        if not fs.partial:
            for r in range(len(gone)):
                if gone.missing[r]:
                    continue
                k = gone.key(r)
                path = os.path.join(fs.path, gone.names[r])
                raw = txn.get("instances", k)
                if raw is None:
                    keep[r] = False
                    continue
                _h, _t, locs = records.split_instance(raw)
                if path not in locs:
                    keep[r] = False
                    continue
                gone.missing[r] = True
                res["missing"] += 1
                if not any(p != path and os.path.exists(p) for p in locs):
                    changes.set_offline(k, True, raw)
        gone = gone.select(keep)
        # present files in directory order (the rescan fast path compares
        # it), then the missing ones
        cur = records.DirListing(cur.names + gone.names, np.concatenate([cur.size, gone.size]),
                                 np.concatenate([cur.mtime_ns, gone.mtime_ns]),
                                 np.concatenate([cur.keys, gone.keys]), np.concatenate([cur.code, gone.code]),
                                 np.concatenate([cur.missing, gone.missing]))
    pathkeys.put_listing(txn, fs.path, cur, fs.stamp if len(cur) == len(fs.names) else None)


def commit_gone_folder(txn: Any, secret: bytes, fs: PendingFolder) -> int:
    """Mark the files of a vanished folder missing; returns how many were newly missing."""
    changes = RecordChanges(txn, secret)
    res = {"missing": 0, "online_again": 0}
    _finish_folder(changes, fs, res)
    changes.flush()
    return res["missing"]


def commit_hint_files(txn: Any, secret: bytes, paths: list[str], take: list, batch: Any) -> dict:
    """Index files named by a DICOMDIR (no folder listings); returns counts as :func:`commit_chunk`."""
    changes = RecordChanges(txn, secret)
    res: dict[str, Any] = {"indexed": 0, "unchanged": 0, "relinked": 0, "duplicate": 0, "missing": 0,
                           "online_again": 0, "failures": [], "conflicts": []}
    relinked_from: dict[str, set[str]] = {}
    _index_batch(changes, batch, paths, take, res, relinked_from)
    changes.flush()
    sopindex.merge_if_due(txn)
    return res
