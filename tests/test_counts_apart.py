"""The counts of patient, study and series records in their own databases
(schema 8, issue 16): ``patients_counts``, ``studies_counts`` and
``series_counts`` hold each record's ``n_instances`` and ``size``, the record
databases hold the rest, and :class:`~pocketpacs.archive.txn.Txn` joins the two.

What must hold: files added to archived series change their counts entries
and leave their records' stored bodies as they were, with the counts a fresh
import of all the files writes; a schema-7 archive (whole counted records) is
upgraded to the same records; ``check`` reports a counts entry missing,
malformed or without its record, and ``verify`` repairs each; removal leaves
no counts entry behind; the in-memory store of media sessions keeps whole
records and adds counts to them.
"""
from __future__ import annotations

import lmdb
import numpy as np
import pytest

import dicomgen
import pocketpacs
from pocketpacs.archive import records, store
from pocketpacs.archive.integrity import record_dump
from pocketpacs.archive.memstore import MemoryStore
from pocketpacs.archive.txn import COUNTS_DB
from test_counted_records import _open   # (an archive with a given secret: the same patient keys)

RECORD_DBS = ("patients", "studies", "series")


def _stored(ar, db: str) -> dict[bytes, bytes]:
    """The items of one database of an open archive as LMDB stores them (past the Txn's join)."""
    with ar._store.read() as t:
        with t._t.cursor(db=t._dbs[db]) as c:
            return dict(c)


def test_files_added_to_archived_series_change_only_their_counts_entries(tmp_path):
    data = tmp_path / "d"
    dicomgen.write_tree(data, patients=2, studies=2, series=2, slices=8, seed=1)
    later = sorted(p for p in data.rglob("IM*") if int(p.name[2:]) > 3)   # slices 4-8: the second import's
    held = tmp_path / "held"
    for p in later:
        dest = held / p.relative_to(data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        p.rename(dest)
    arc = tmp_path / "a"
    with _open(arc) as ar:
        ar.import_folder(data)
        secret = (arc / "secret.key").read_bytes()
        before = {db: _stored(ar, db) for db in RECORD_DBS}
        counts_before = {db: _stored(ar, COUNTS_DB[db]) for db in RECORD_DBS}
        for db in RECORD_DBS:
            assert before[db] and all(v[:1] == records.SPLIT for v in before[db].values())
            assert set(counts_before[db]) == set(before[db])
            assert all(len(v) == 16 for v in counts_before[db].values())
        held.rename(data / "more")                          # more slices of every archived series
        rep = ar.import_folder(data)
        assert rep.indexed == 2 * 2 * 2 * 5 and not rep.failures
        for db in RECORD_DBS:
            assert _stored(ar, db) == before[db]           # the records' bodies untouched
            after = _stored(ar, COUNTS_DB[db])
            assert set(after) == set(counts_before[db])
            assert all(after[k] != counts_before[db][k] for k in after)
        for st in ar.studies():
            assert st.n_instances == 2 * 8
            for se in ar.series(st):
                assert se.n_instances == 8
                assert se.size == sum(i.size for i in ar.instances(se))
        assert ar.check() == []
        with ar._store.read() as t:
            patched = record_dump(t)
    with _open(tmp_path / "b", secret) as ar:
        ar.import_folder(data)
        with ar._store.read() as t:
            assert record_dump(t) == patched


def test_a_schema_7_archive_is_upgraded_to_the_same_records(tmp_path):
    data = tmp_path / "d"
    dicomgen.write_tree(data, patients=2, studies=1, series=2, slices=4, seed=2)
    arc = tmp_path / "a"
    with _open(arc) as ar:
        ar.import_folder(data)
        with ar._store.read() as t:
            dump = record_dump(t)
            whole = {db: dict(t.range(db)) for db in RECORD_DBS}   # (joined: the counted records of schema 7)
    env = lmdb.open(str(arc), max_dbs=len(store.DBS) + 4)
    with env.begin(write=True) as t:                     # what schema 7 stored
        for db in RECORD_DBS:
            h = env.open_db(db.encode(), txn=t)
            for k, v in whole[db].items():
                assert v[:1] == records.COUNTED
                t.put(k, v, db=h)
            t.drop(env.open_db(COUNTS_DB[db].encode(), txn=t), delete=True)
        t.put(b"schema", b"7", db=env.open_db(b"meta", txn=t))
    env.close()
    with pytest.raises(pocketpacs.SchemaVersionMismatch, match="upgrade"):
        pocketpacs.open_archive(arc, readonly=True)
    with pocketpacs.open_archive(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION >= 8
        for db in RECORD_DBS:
            assert all(v[:1] == records.SPLIT for v in _stored(ar, db).values())
            assert set(_stored(ar, COUNTS_DB[db])) == set(whole[db])
        with ar._store.read() as t:
            assert record_dump(t) == dump
            assert {db: dict(t.range(db)) for db in RECORD_DBS} == whole
        assert ar.check() == []
        assert sum(p.n_instances for p in ar.patients()) == 2 * 2 * 4


def test_check_reports_and_verify_repairs_counts_entries(tmp_path):
    data = tmp_path / "d"
    dicomgen.write_tree(data, patients=2, studies=1, series=2, slices=3, seed=3)
    with _open(tmp_path / "a") as ar:
        ar.import_folder(data)
        se = ar.series(ar.studies()[0])[0]
        sek = bytes.fromhex(se.key)
        st_key = next(iter(_stored(ar, "studies")))

        def damage(t):
            t.delete("series_counts", sek)                        # a record without counts
            t.put("studies_counts", st_key, b"\x01\x02")          # a malformed entry
            t.put("patients_counts", b"\xee" * 16, bytes(16))     # an entry without its record
        ar._store.write(damage)
        assert ar.get_series(se.uid).n_instances == 0             # (what a reader gets: check says why)
        problems = ar.check()
        assert any(f"series {sek.hex()}: its counts entry is missing or malformed" in p for p in problems)
        assert any(f"study {st_key.hex()}: its counts entry is missing or malformed" in p for p in problems)
        assert any(f"counts entry {'ee' * 16} in patients_counts: no patient record" in p for p in problems)
        rep = ar.verify()
        assert rep.repaired >= 3
        assert ar.check() == []
        assert ar.get_series(se.uid).n_instances == 3


def test_removal_leaves_no_counts_entry(tmp_path):
    data = tmp_path / "d"
    dicomgen.write_tree(data, patients=2, studies=2, series=2, slices=2, seed=4)
    arc = tmp_path / "a"
    with _open(arc) as ar:
        ar.import_folder(data)
        ar.remove(patient=ar.patients()[0])
        for db in RECORD_DBS:
            assert set(_stored(ar, COUNTS_DB[db])) == set(_stored(ar, db)) != set()
        assert ar.check() == []


def test_the_memory_store_keeps_whole_records_and_adds_to_their_counts():
    st = MemoryStore()
    rec = {"uid": "1.2.3", "n_instances": 2, "size": 100}
    st.write(lambda t: t.put("series", b"s" * 8, records.dumps_counted(rec)))
    st.write(lambda t: t.add_counts("series", [b"s" * 8, b"x" * 8], np.array([[3, 50], [1, 1]])))
    with st.read() as t:
        raw = t.get("series", b"s" * 8)
        assert raw[:1] == records.COUNTED
        assert t.get("series", b"x" * 8) is None                  # (no record: no counts made up)
        assert records.loads(raw) == {"uid": "1.2.3", "n_instances": 5, "size": 150}
        assert t.count("series_counts") == 0


def test_a_malformed_counts_entry_stops_an_import_adding_to_it(tmp_path):
    with store.LmdbStore(tmp_path / "a") as st:
        st.write(lambda t: t.put("series", b"s" * 8, records.dumps_counted({"uid": "1", "n_instances": 1, "size": 1})))
        st.write(lambda t: t.put("series_counts", b"s" * 8, b"\x00" * 3))
        with pytest.raises(records.DamagedRecord):
            st.write(lambda t: t.add_counts("series", [b"s" * 8], np.array([[1, 1]])))
        with st.read() as t:
            assert records.loads(t.get("series", b"s" * 8)) == {"uid": "1", "n_instances": 0, "size": 0}
