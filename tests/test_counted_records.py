"""Counted records (schema 6, issue 16): patient, study and series records keep
their instance count and size ahead of their JSON, and an import adding files
to archived series patches those two numbers instead of decoding and
re-encoding the study and patient records.

What must hold: the counts an import patches are those a fresh import of
the same files writes (record for record, after :func:`record_dump`'s
normalisation), schema-5 archives (plain JSON records) open, read and take
new files, and a damaged counted record is reported as damaged.
"""
from __future__ import annotations

import shutil

import pytest

import dicomgen
import pocketpacs
from pocketpacs.archive import records, store
from pocketpacs.archive.integrity import record_dump
from pocketpacs.archive.record_changes import RecordChanges
from pocketpacs.archive.txn import COUNTS_DB


def test_a_counted_record_reads_back_as_the_dict_it_was_made_from():
    rec = {"uid": "1.2.3", "n_series": 2, "n_instances": 7, "size": 12345, "modalities": ["CT"], "n_offline": 0}
    raw = records.dumps_counted(rec)
    assert raw[:1] == records.COUNTED
    assert records.loads(raw) == rec
    # the counts are patched where they lie; the rest is left byte for byte
    patched = records.add_counts(raw, 3, -45)
    assert patched[17:] == raw[17:]
    assert records.loads(patched) == dict(rec, n_instances=10, size=12300)
    # a plain JSON record (schema 5) is decoded once and comes back counted
    old = records.dumps(rec)
    assert records.loads(old) == rec
    new = records.add_counts(old, 1, 1)
    assert new[:1] == records.COUNTED
    assert records.loads(new) == dict(rec, n_instances=8, size=12346)


@pytest.mark.parametrize("raw", [b"\x01", b"\x01" + bytes(16), b"\x01" + bytes(16) + b"[1, 2]",
                                 b"\x01" + bytes(16) + b"{not json", b"\x01\x02"])
def test_a_damaged_counted_record_is_reported_as_damaged(raw):
    with pytest.raises(records.DamagedRecord, match="damaged"):
        records.loads(raw)
    # patching the counts never makes a damaged record read as a good one
    # (the JSON after them is not decoded: a damaged one stays damaged)
    with pytest.raises(records.DamagedRecord, match="damaged"):
        records.loads(records.add_counts(raw, 1, 1))


def test_counts_added_before_and_after_a_record_is_loaded_all_land(tmp_path):
    st = store.LmdbStore(tmp_path / "s")
    k1, k2, k3 = b"\x00" * 8, b"\x01" * 8, b"\x02" * 8
    base = {"uid": "x", "n_instances": 1, "size": 10}
    st.write(lambda t: [t.put("series", k, records.dumps_counted(base)) for k in (k1, k2, k3)])

    def change(t):
        ch = RecordChanges(t, b"s" * 32)
        ch.add_counts("series", k1, 2, 20)        # never loaded: patched
        ch.add_counts("series", k2, 3, 30)        # loaded after: the dict shows it
        assert ch.get("series", k2)["n_instances"] == 4
        se = ch.get("series", k3)                 # loaded before, then changed in full
        ch.add_counts("series", k3, 5, 50)
        assert se["n_instances"] == 6
        se["uid"] = "y"
        ch.touch("series", k3)
        ch.add_counts("series", b"\x09" * 8, 1, 1)   # no such record: nothing written
        ch.flush()
    st.write(change)
    with st.read() as t:
        got = {k: records.loads(t.get("series", k)) for k in (k1, k2, k3)}
        assert t.get("series", b"\x09" * 8) is None
    st.close()
    assert got[k1] == {"uid": "x", "n_instances": 3, "size": 30}
    assert got[k2] == {"uid": "x", "n_instances": 4, "size": 40}
    assert got[k3] == {"uid": "y", "n_instances": 6, "size": 60}


def test_counts_of_series_whose_owners_are_known_reach_series_study_and_patient(tmp_path):
    """``add_owned_counts`` sums a transaction's counts per series and adds them to
    the series, its study and its patient once: at the flush, or before any
    record is read or deleted, so that a loaded record always shows them."""
    st = store.LmdbStore(tmp_path / "s")
    se1, se2, se3, se4 = (bytes([i]) * 8 for i in (1, 2, 3, 4))
    sk, pk = b"\x10" * 8, b"\x20" * 8
    base = {"uid": "x", "n_instances": 1, "size": 10}
    st.write(lambda t: [t.put(db, k, records.dumps_counted(base))
                        for db, ks in (("series", (se1, se2, se3, se4)), ("studies", (sk,)), ("patients", (pk,)))
                        for k in ks])

    def change(t):
        ch = RecordChanges(t, b"s" * 32)
        ch.owners.update({se1: (sk, pk), se2: (sk, pk), se3: (sk, pk)})
        new = b"\x05" * 8   # no owner known: left to the caller
        assert ch.add_owned_counts([se1, new, se2], [2, 9, 3], [20, 90, 30]) == [1]
        assert ch.add_owned_counts([se1], [4], [40]) == []
        # a record read now shows what was added before (one chunk's series or many)
        assert ch.get("studies", sk)["n_instances"] == 1 + 2 + 3 + 4
        assert ch.get("series", se1)["n_instances"] == 1 + 2 + 4
        # added after the read: the loaded dict shows it once the next read or the flush comes
        assert ch.add_owned_counts([se1, se3], [1, 5], [10, 50]) == []
        assert ch.get("patients", pk)["n_instances"] == 1 + 2 + 3 + 4 + 1 + 5
        assert ch.add_owned_counts([se2], [7], [70]) == []
        ch.delete("series", se4)   # (a delete folds too: the counts stay where they belong)
        ch.flush()
    st.write(change)
    with st.read() as t:
        got = {k: records.loads(t.get(db, k)) for db, k in (("series", se1), ("series", se2), ("series", se3),
                                                             ("studies", sk), ("patients", pk))}
        assert t.get("series", se4) is None
    st.close()
    assert got[se1] == {"uid": "x", "n_instances": 8, "size": 80}
    assert got[se2] == {"uid": "x", "n_instances": 11, "size": 110}
    assert got[se3] == {"uid": "x", "n_instances": 6, "size": 60}
    assert got[sk] == got[pk] == {"uid": "x", "n_instances": 23, "size": 230}


def _series(folder, first: int, n: int) -> None:
    for i in range(first, first + n):
        dicomgen.write(folder / f"IM{i:05d}.dcm", series_uid="1.2.826.0.77.1", sop_uid=f"1.2.826.0.77.1.{i}",
                       instance_number=i, z=float(i), study_uid="1.2.826.0.77", patient_name="Count^Me",
                       patient_id="C-1")


def _open(path, secret: bytes | None = None):
    if secret is not None and not path.exists():
        path.mkdir(mode=0o700)
        (path / "secret.key").write_bytes(secret)
        (path / "secret.key").chmod(0o600)
    return pocketpacs.open_archive(path)


def test_files_added_to_archived_series_patch_the_counts_a_fresh_import_writes(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    _series(data, 1, 3)
    with _open(tmp_path / "a") as ar:
        ar.import_folder(data)
        _series(data, 4, 4)               # four more files of the same series
        assert ar.import_folder(data).indexed == 4
        assert ar.check() == []
        secret = (tmp_path / "a" / "secret.key").read_bytes()
        with ar._store.read() as t:
            for db in ("patients", "studies", "series"):
                assert all(v[:1] == records.COUNTED for _k, v in t.range(db)), db
            patched = record_dump(t)
        assert ar.get_series("1.2.826.0.77.1").n_instances == 7
        assert ar.study("1.2.826.0.77").n_instances == 7
    with _open(tmp_path / "b", secret) as ar:
        ar.import_folder(data)
        with ar._store.read() as t:
            assert record_dump(t) == patched


def test_a_schema_5_archive_opens_reads_and_takes_new_files(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    _series(data, 1, 3)
    arc = tmp_path / "a"
    with _open(arc) as ar:
        ar.import_folder(data)
        secret = (arc / "secret.key").read_bytes()

    def to_schema_5(t):                   # what schema 5 stored: plain JSON records, no counts databases
        for db in ("patients", "studies", "series"):
            for k, v in list(t.range(db)):
                t._t.put(k, records.dumps(records.loads(v)), db=t._dbs[db])   # (as stored: past the Txn's split)
            t.drop(COUNTS_DB[db])
        t.put("meta", b"schema", b"5")
    with store.LmdbStore(arc) as st:
        st.write(to_schema_5)
    with pytest.raises(pocketpacs.SchemaVersionMismatch, match="upgrade"):
        pocketpacs.open_archive(arc, readonly=True)
    with _open(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION >= 6
        with ar._store.read() as t:       # schema 8 stores every record in two parts
            for db in ("patients", "studies", "series"):
                stored = {k: v for k, v in t.range_items(COUNTS_DB[db], b"", b"\xff" * 17)}
                bodies = list(t._t.cursor(db=t._dbs[db]).iternext())
                assert bodies and all(v[:1] == records.SPLIT for _k, v in bodies)
                assert sorted(stored) == [k for k, _v in bodies]
        assert ar.get_series("1.2.826.0.77.1").n_instances == 3
        assert ar.check() == []
        _series(data, 4, 2)
        assert ar.import_folder(data).indexed == 2
        assert ar.get_series("1.2.826.0.77.1").n_instances == 5
        assert ar.verify().ok
        with ar._store.read() as t:
            migrated = record_dump(t)
    fresh = tmp_path / "b"
    with _open(fresh, secret) as ar:
        ar.import_folder(data)
        with ar._store.read() as t:
            assert record_dump(t) == migrated
    shutil.rmtree(fresh)


def test_series_owners_find_the_study_and_patient_of_series_added_forgotten_and_begun_again():
    """``SeriesOwners.lookup``: series keys added in several steps (as an
    import's commits add them) are found by their hashes, with the index of
    their study and patient keys; a forgotten series is not found, the rest
    still are; a new transaction after another writer forgets everything."""
    import numpy as np

    from pocketpacs.archive.record_changes import SeriesOwners

    def h(keys):
        return np.frombuffer(b"".join(keys), dtype=">u8").astype(np.uint64)

    ow = SeriesOwners()
    se = [bytes([9 - i, i]) + b"\x00" * 6 for i in range(6)]   # (hashes not in insertion order)
    ow.keys.update({se[0]: (b"A" * 8, b"P" * 16), se[1]: (b"B" * 8, b"P" * 16)})
    known, st, pa = ow.lookup(h([se[1], se[2], se[0]]))
    assert known.tolist() == [True, False, True]
    assert [ow.study_keys[j] for j in st] == [b"B" * 8, b"A" * 8]
    assert [ow.patient_keys[j] for j in pa] == [b"P" * 16] * 2
    ow.keys.update({se[2]: (b"A" * 8, b"Q" * 16), se[3]: (b"C" * 8, b"Q" * 16)})
    known, st, pa = ow.lookup(h(se))
    assert known.tolist() == [True] * 4 + [False] * 2
    assert [ow.study_keys[j] for j in st] == [b"A" * 8, b"B" * 8, b"A" * 8, b"C" * 8]
    assert [ow.patient_keys[j] for j in pa] == [b"P" * 16] * 2 + [b"Q" * 16] * 2
    ow.forget(se[1])
    known, st, _pa = ow.lookup(h(se))
    assert known.tolist() == [True, False, True, True, False, False]
    assert [ow.study_keys[j] for j in st] == [b"A" * 8, b"A" * 8, b"C" * 8]

    class _Txn:
        def get(self, db, key):
            return b"41"

        def count(self, db):
            return 0
    ow.begin(_Txn())                  # (another generation than expected: forgets)
    assert not ow.lookup(h(se))[0].any() and not ow.keys
    ow.keys[se[5]] = (b"D" * 8, b"R" * 16)
    known, st, pa = ow.lookup(h(se))
    assert known.tolist() == [False] * 5 + [True] and ow.study_keys[st[0]] == b"D" * 8
