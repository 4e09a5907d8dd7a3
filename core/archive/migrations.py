"""Upgrades of the stored record layout, one step per schema version.

``MIGRATIONS[v](txn)`` upgrades an archive from schema ``v`` to ``v + 1``
inside one write transaction (:func:`pocketpacs.archive.store.migrate` runs
the steps and records each new version, so an interrupted upgrade resumes
where it stopped).  A step may only change the database: when the map fills
up the transaction is re-run.

Schema 1 -> 2 (:func:`instance_text_after_paths`): the text values of an
instance record changed layout three times under schema 1.  The first
records kept nine text values before the file paths, then six, then three
(``SOPInstanceUID``, ``SOPClassUID``, ``TransferSyntaxUID``: the paths of
the six- and nine-value records are misread by today's decoder), and today's
records add ``PhotometricInterpretation`` and ``ImageType`` after the paths
(what the viewer needs to plan a stack without reading the files).  Each
old record is rewritten in today's layout: the values come from the record
itself when it has them, else from the instance's file when that file is
still the one indexed (same size and header fingerprint, what an import
calls unchanged; the header is read as an import reads it).  Records whose
file is gone or changed keep the three-value layout, which decodes without
those two values (the viewer then reads the file; the next import of a
changed file rewrites the record).

Schema 2 -> 3 (:func:`long_path_keys`): the databases keyed by a path
(``dirs``, ``roots``, ``conflicts``) keep a path of up to
:data:`pathkeys.PATH_KEY_MAX <pocketpacs.archive.pathkeys.PATH_KEY_MAX>`
bytes as its key, as before, and key a longer one by its leading bytes and a
hash, with the path in the value (:mod:`pocketpacs.archive.pathkeys`), so
that a path of any length can be archived (LMDB keys are at most 511
bytes: schema 2 failed on longer ones).  The entries of schema 2 whose path
is longer than that (up to 511 bytes could be stored) are re-keyed.  The
exact-value indexes (``idx_pid``, ``idx_acc``) cut their values at 400 bytes
instead of 200 characters (200 three- or four-byte characters made a key
LMDB refuses): they are recomputed from the patient and study records.

Schema 3 -> 4 (:func:`refold_text_indexes`): folded text also writes the
letters Unicode does not decompose as base letters (``odegard`` finds
"Ødegård", :func:`pocketpacs.archive.query.fold`).  The studies' stored
series-description words are folded again and every index of folded text
(``idx_name``, ``idx_pid``, ``idx_desc``, ``idx_acc``) is recomputed from the
patient and study records.

Schema 4 -> 5 (:func:`annotations_database`): the ``annotations`` database
(measurements kept with a series, :mod:`pocketpacs.archive.annotations`) is
new; a writable open creates it empty before the step runs, so the step only
records the version.  A read-only open of a schema-4 archive finds it missing
and asks for the upgrade, as for every older schema.

Schema 5 -> 6 (:func:`counted_records`): patient, study and series records
are stored with their instance count and size ahead of their JSON, so that
an import adding files to archived series patches those numbers instead of
decoding and re-encoding the records.  Schema-5 records read as they are and
become counted when they next change; the step converts nothing.

Schema 6 -> 7 (:func:`recent_sop_entries`): the SOP index is kept in two
databases (:mod:`~pocketpacs.archive.sopindex`): ``sop_recent`` takes the
entries of new instances and is merged into ``sop`` when it has grown to
half its size.  The step only adds the empty database; older versions,
which would not look in it, are stopped by the number.

Schema 7 -> 8 (:func:`counts_apart`): the instance count and size of
patient, study and series records move to their own databases
(:mod:`~pocketpacs.archive.txn`), so that an import adding files to many
series rewrites small counts entries rather than the records' pages.  The
step writes every record again in the two parts.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import pathkeys
from . import records
from ..log import logger

if TYPE_CHECKING:
    import numpy as np

#: The text keywords stored before the paths by the instance-record layouts
#: of schema 1, by how many there were (today: three before the paths and
#: :data:`records.INSTANCE_TEXT`'s other two after them).
LEGACY_INSTANCE_TEXT: dict[int, tuple[str, ...]] = {
    9: ("SOPInstanceUID", "SOPClassUID", "TransferSyntaxUID", "ImageType", "PhotometricInterpretation",
        "AcquisitionDate", "AcquisitionTime", "ContentDate", "SpecificCharacterSet"),
    6: ("SOPInstanceUID", "SOPClassUID", "TransferSyntaxUID", "ImageType", "PhotometricInterpretation",
        "AcquisitionTime"),
    3: ("SOPInstanceUID", "SOPClassUID", "TransferSyntaxUID"),
}

#: Files whose header is read per batch while filling records.
_PARSE_CHUNK = 2000


def _same_size_file(head: np.void, paths: list[str]) -> str | None:
    """The first of ``paths`` that exists with the size indexed (its header
    fingerprint is compared once parsed)."""
    for p in paths:
        try:
            if os.stat(p).st_size == int(head["size"]):
                return p
        except OSError:
            continue
    return None


def instance_text_after_paths(t: Any) -> None:
    """Schema 1 -> 2: every instance record in today's layout (see the module docstring)."""
    import numpy as np

    from ..dicom.headers import parse_files

    after = records.INSTANCE_TEXT[len(LEGACY_INSTANCE_TEXT[3]):]
    out: list[tuple[bytes, bytes]] = []
    pending: list[tuple[bytes, np.void, dict[str, str], list[str], str]] = []
    kept = 0
    for k, v in t.range("instances"):
        head = np.frombuffer(v[:records.HEAD], dtype=records.INST_DTYPE)[0]
        parts = v[records.HEAD:].decode("utf-8", "surrogateescape").split("\0")
        nloc = int(head["nloc"])
        old = LEGACY_INSTANCE_TEXT.get(len(parts) - nloc)
        if old is None:     # today's layout (or not an instance record: the checks report it)
            continue
        texts = dict(zip(old, parts[:len(old)]))
        paths = parts[len(old):len(old) + nloc]
        if all(kw in texts for kw in after):
            out.append((k, records.join_instance(head, texts, paths)))
            continue
        src = _same_size_file(head, paths)
        if src is None:
            kept += 1
            continue
        pending.append((k, head, texts, paths, src))
    for a in range(0, len(pending), _PARSE_CHUNK):
        part = pending[a:a + _PARSE_CHUNK]
        b = parse_files([p[4] for p in part])
        values = {kw: b.text(kw) for kw in after}
        for i, (k, head, texts, paths, _src) in enumerate(part):
            if b.status[i] < 0 or int(b.fingerprint[i]) != int(head["fingerprint"]):
                kept += 1
                continue
            texts.update({kw: values[kw][i] or "" for kw in after})
            out.append((k, records.join_instance(head, texts, paths)))
    out.sort()
    t.putmulti("instances", out)
    logger.info("archive schema 2: %d instance record(s) rewritten, %d left to the next import "
                "(file gone or changed)", len(out), kept)


def long_path_keys(t: Any) -> None:
    """Schema 2 -> 3: entries of paths longer than ``pathkeys.PATH_KEY_MAX``
    re-keyed (see the module docstring)."""
    n = 0
    for k, v in list(t.range("dirs")):
        if len(k) > pathkeys.PATH_KEY_MAX and not pathkeys.is_hashed(k):
            t.delete("dirs", k)
            t.put("dirs", *pathkeys.encode_listing(pathkeys.path_of(k, None), records.DirListing.decode(v)))
            n += 1
    for k, v in list(t.range("roots")):
        if len(k) > pathkeys.PATH_KEY_MAX and not pathkeys.is_hashed(k):
            t.delete("roots", k)
            t.put("roots", *pathkeys.root_record(pathkeys.path_of(k, None), records.loads(v)))
            n += 1
    for k, v in list(t.range("conflicts")):
        pk = k[16:]
        if len(pk) > pathkeys.PATH_KEY_MAX and not pathkeys.is_hashed(pk):
            t.delete("conflicts", k)
            t.put("conflicts", *pathkeys.conflict_record(k[:16], pathkeys.path_of(pk, None), records.loads(v)))
            n += 1
    # the exact-value indexes now cut their values at 400 bytes, not 200 characters
    from . import query

    for db, recs, entries in (("idx_pid", "patients", query.patient_entries),
                              ("idx_acc", "studies", query.study_entries)):
        want = sorted((k, v) for rk, rv in t.range(recs)
                      for d, k, v in entries(rk, records.loads(rv)) if d == db)
        t.drop(db)
        t.putmulti(db, want)
    logger.info("archive schema 3: %d entry(ies) of long paths re-keyed", n)


def refold_text_indexes(t: Any) -> None:
    """Schema 3 -> 4: the folded-text indexes recomputed with today's
    :func:`~pocketpacs.archive.query.fold` (see the module docstring)."""
    from . import query

    n = 0
    for rk, rv in list(t.range("studies")):
        rec = records.loads(rv)
        old = rec.get("series_words") or []
        new = sorted({w2 for w in old for w2 in query.words(w)})
        if new != old:
            rec["series_words"] = new
            t.put("studies", rk, (records.dumps_counted if rv[:1] == records.COUNTED else records.dumps)(rec))
            n += 1
    for db, recs, entries in (("idx_name", "patients", query.patient_entries),
                              ("idx_pid", "patients", query.patient_entries),
                              ("idx_desc", "studies", query.study_entries),
                              ("idx_acc", "studies", query.study_entries)):
        want = sorted((k, v) for rk, rv in t.range(recs)
                      for d, k, v in entries(rk, records.loads(rv)) if d == db)
        t.drop(db)
        t.putmulti(db, want)
    logger.info("archive schema 4: folded-text indexes recomputed (%d study record(s) refolded)", n)


def annotations_database(t: Any) -> None:
    """Schema 4 -> 5: the ``annotations`` database, created empty by the
    writable open that runs this step (see the module docstring)."""
    logger.info("archive schema 5: annotations database added (%d record(s))", t.count("annotations"))


def counted_records(t: Any) -> None:
    """Schema 5 -> 6: patient, study and series records are written counted
    (:data:`~pocketpacs.archive.records.COUNTED`: their instance count and
    size ahead of their JSON, patched in place by an import).  Records of
    schema 5 are plain JSON, which this version reads as they are and
    rewrites counted when they next change; nothing to convert.  The number
    only stops older versions, which would take a counted record for a
    damaged one."""
    logger.info("archive schema 6: counted records (%d series kept as they are)", t.count("series"))


def recent_sop_entries(t: Any) -> None:
    """Schema 6 -> 7: the SOP index in two databases
    (:mod:`~pocketpacs.archive.sopindex`): ``sop_recent``, created empty by the
    writable open that runs this step, takes new entries; the entries of
    ``sop`` stay where they are.  The number only stops older versions, which
    would not look in ``sop_recent``."""
    logger.info("archive schema 7: recent SOP entries database added (%d SOP entries kept as they are)",
                t.count("sop"))


def counts_apart(t: Any) -> None:
    """Schema 7 -> 8: the counts of patient, study and series records in
    their own databases (``patients_counts``, ``studies_counts``,
    ``series_counts``, created empty by the writable open that runs this step;
    :mod:`~pocketpacs.archive.txn`).  Every record is written again: its body
    without the counts in its database, its counts in the other."""
    n = 0
    for db in ("patients", "studies", "series"):
        for k, v in list(t.range(db)):
            t.put(db, k, v)
            n += 1
    logger.info("archive schema 8: the counts of %d record(s) stored apart", n)


#: ``MIGRATIONS[v](txn)`` upgrades an archive from schema ``v`` to ``v + 1``.
MIGRATIONS: dict[int, Callable[[Any], None]] = {
    1: instance_text_after_paths,
    2: long_path_keys,
    3: refold_text_indexes,
    4: annotations_database,
    5: counted_records,
    6: recent_sop_entries,
    7: counts_apart,
}
