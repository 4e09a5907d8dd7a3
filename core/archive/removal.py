"""Removal of instances from the archive's records.

:func:`remove_instances` deletes instance records (with their SOP entries
and conflict records) and updates the counts of their series, studies and
patients, deleting those left empty and rebuilding the value lists of a
study that lost a series.  Files are never touched.  Used by the import (a
changed file whose instance is left without files) and by
:meth:`~pocketpacs.archive.api.Archive.remove`.
"""
from __future__ import annotations

from . import query
from . import records
from . import sopindex
from .record_changes import RecordChanges, add_sorted


def remove_instances(changes: RecordChanges, ikeys: list[bytes]) -> int:
    """Delete instances and update (or delete) their series, studies, patients.

    Never touches files.  Returns the number of instances removed.
    """
    txn = changes.txn
    n = 0
    for ikey in ikeys:
        raw = txn.get("instances", ikey)
        if raw is None:
            continue
        head, _t, _locs = records.split_instance(raw)
        txn.delete("instances", ikey)
        sopindex.remove(txn, ikey[8:], ikey[:8])
        for k, _ in list(txn.range("conflicts", ikey)):
            txn.delete("conflicts", k)
        n += 1
        size = int(head["size"])
        off = 1 if int(head["flags"]) & records.OFFLINE else 0
        sek = ikey[:8]
        se = changes.get("series", sek)
        if se is None:
            continue
        sk = bytes.fromhex(se["study_key"])
        pk = bytes.fromhex(se["patient_key"])
        se["n_instances"] -= 1
        se["size"] -= size
        se["n_offline"] = max(0, se.get("n_offline", 0) - off)
        st = changes.get("studies", sk)
        pa = changes.get("patients", pk)
        for rec in (st, pa):
            if rec is not None:
                rec["n_instances"] -= 1
                rec["size"] -= size
        if st is not None:
            st["n_offline"] = max(0, st.get("n_offline", 0) - off)
        if se["n_instances"] <= 0:
            changes.delete("series", sek)
            txn.delete("study_series", sk + sek)
            if st is not None:
                st["n_series"] -= 1
                _recompute_study_lists(changes, sk, st)
            if pa is not None:
                pa["n_series"] -= 1
            if st is not None and st["n_series"] <= 0:
                changes.delete("studies", sk)
                txn.delete("pat_studies", pk + sk)
                if pa is not None:
                    pa["n_studies"] -= 1
                st = None
            if pa is not None and pa["n_studies"] <= 0:
                changes.delete("patients", pk)
                pa = None
        else:
            changes.touch("series", sek)
        if st is not None:
            changes.touch("studies", sk)
        if pa is not None:
            changes.touch("patients", pk)
    return n


def _recompute_study_lists(changes: RecordChanges, sk: bytes, st: dict) -> None:
    """Rebuild a study's modality/word/equipment lists from its series."""
    lists: dict[str, list] = {k: [] for k in ("modalities", "series_words", "manufacturers", "models",
                                               "stations", "physicians")}
    add_sorted(lists["physicians"], st.get("referring_physician", ""))
    for k, _ in changes.txn.range("study_series", sk):
        se = changes.get("series", k[8:])
        if se is None:
            continue
        add_sorted(lists["modalities"], se["modality"].strip().upper())
        for w in query.words(se["description"]):
            add_sorted(lists["series_words"], w)
        add_sorted(lists["manufacturers"], se["manufacturer"])
        add_sorted(lists["models"], se["model"])
        add_sorted(lists["stations"], se["station"])
        add_sorted(lists["physicians"], se["performing_physician"])
    st.update(lists)
