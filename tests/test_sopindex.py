"""The SOP index in two databases (schema 7, issue 16): new entries go to
``sop_recent``, which is merged into ``sop`` once it holds half as many.

What must hold: every archived instance is found by its SOP Instance UID
wherever its entry lies, an import whose commits merge the index writes the
same archive (the index read as one) as an import that never merges,
a SOP UID met again in another series is a conflict whichever database
holds its entry, removal leaves no entry behind, ``check`` reports an entry
held twice, and a schema-6 archive (one ``sop`` database) is upgraded.
"""
from __future__ import annotations

import lmdb
import pytest

import dicomgen
import pocketpacs
from pocketpacs.archive import ingest, sopindex, store
from pocketpacs.archive.integrity import record_dump


def _key(i: int) -> bytes:
    return (i * 0x9E3779B97F4A7C15 % (1 << 64)).to_bytes(8, "big")   # (scattered, as hashes are)


def _in(t, db: str) -> dict[bytes, bytes]:
    return dict(t.range(db))


def test_entries_move_to_sop_once_recent_holds_half_as_many(tmp_path, monkeypatch):
    monkeypatch.setattr(sopindex, "MERGE_MIN", 10)
    monkeypatch.setattr(sopindex, "MERGE_BATCH", 7)      # (a merge moves its entries in several batches)
    sek = b"S" * 8
    added: list[bytes] = []
    with store.LmdbStore(tmp_path / "a") as st:
        def commit(n: int) -> int:
            def fn(t):
                new = [_key(len(added) + j) for j in range(n)]
                assert sopindex.known(t, new) == set()
                sopindex.add(t, sorted((k, sek) for k in new))
                added.extend(new)
                return sopindex.merge_if_due(t)
            return st.write(fn)

        assert commit(9) == 0                  # below MERGE_MIN: stays recent
        assert commit(3) == 12                 # 12 >= max(10, 0 // 2): all of them move
        with st.read() as t:
            assert len(_in(t, "sop")) == 12 and not _in(t, "sop_recent")
        assert commit(9) == 0                  # 9 < max(10, 12 // 2)
        with st.read() as t:                   # found in either database
            assert len(_in(t, "sop_recent")) == 9
            assert sopindex.known(t, added + [_key(10_000)]) == set(added)
            assert all(sopindex.series_key(t, k) == sek for k in added)
            assert sopindex.series_key(t, _key(10_000)) is None
        assert commit(2) == 11
        assert commit(25) == 25                # 25 >= max(10, 23 // 2)
        with st.read() as t:
            assert set(_in(t, "sop")) == set(added) and len(added) == 48
            assert not _in(t, "sop_recent")
            assert sorted(sopindex.entries(t)) == sorted((k, sek) for k in added)

        def remove(t):
            sopindex.add(t, [(_key(5_000), sek)])
            sopindex.remove(t, added[0], b"X" * 8)     # names another series: kept
            sopindex.remove(t, added[1], sek)          # (in sop)
            sopindex.remove(t, _key(5_000))            # (in sop_recent)
        st.write(remove)
        with st.read() as t:
            assert sopindex.known(t, [added[0], added[1], _key(5_000)]) == {added[0]}


def _tree(root, seed: int = 0) -> int:
    return dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=6, seed=seed)


@pytest.fixture
def small_commits(monkeypatch):
    """Commits of 7 files, and a SOP index merged from 10 recent entries on."""
    monkeypatch.setattr(ingest, "CHUNK", 7)
    monkeypatch.setattr(ingest, "COMMIT_CHUNKS", 1)
    monkeypatch.setattr(sopindex, "MERGE_MIN", 10)


def test_an_import_that_merges_the_index_finds_each_instance_and_writes_what_one_without_merges_writes(
        tmp_path, monkeypatch, small_commits):
    data = tmp_path / "d"
    n = _tree(data)
    merged = []
    real = sopindex.merge_if_due
    monkeypatch.setattr(sopindex, "merge_if_due", lambda t: merged.append(real(t)) or merged[-1])
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(data).indexed == n == 48
        assert len([m for m in merged if m]) >= 2      # the index was merged during the import
        with ar._store.read() as t:
            assert t.count("sop") and t.count("sop") + t.count("sop_recent") == n
            dump = record_dump(t)
        for inst in ar.instances(ar.get_series("1.2.826.0.2.0.1.1.0")):
            assert ar.instance(inst.sop_instance_uid).key == inst.key
        assert ar.check() == []
        rep = ar.import_folder(data)                    # everything known, wherever its entry lies
        assert rep.unchanged == n and rep.indexed == 0 and not rep.conflicts
        secret = (tmp_path / "a" / "secret.key").read_bytes()
    monkeypatch.setattr(sopindex, "MERGE_MIN", 10**9)
    fresh = tmp_path / "b"
    fresh.mkdir(mode=0o700)
    (fresh / "secret.key").write_bytes(secret)
    (fresh / "secret.key").chmod(0o600)
    with pocketpacs.open_archive(fresh) as ar:
        ar.import_folder(data)
        with ar._store.read() as t:
            assert t.count("sop") == 0
            assert record_dump(t) == dump


def test_a_sop_uid_met_again_in_another_series_is_a_conflict_in_either_database(tmp_path, small_commits):
    data = tmp_path / "d"
    n = _tree(data)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        ar.import_folder(data)
        with ar._store.read() as t:
            merged_sop = next(iter(dict(t.range("sop"))))
            recent_sop = next(iter(dict(t.range("sop_recent"))))
        uids = {}
        for st in ar.studies():
            for se in ar.series(st):
                for inst in ar.instances(se):
                    uids[bytes.fromhex(inst.key)[8:]] = inst.sop_instance_uid
        other = tmp_path / "other"
        for j, sopk in enumerate((merged_sop, recent_sop)):
            dicomgen.write(other / f"IM{j}.dcm", series_uid="1.2.826.0.99.1", study_uid="1.2.826.0.99",
                           sop_uid=uids[sopk], instance_number=j + 1)
        rep = ar.import_folder(other)
        assert rep.indexed == 0 and len(rep.conflicts) == 2
        with ar._store.read() as t:
            assert t.count("sop") + t.count("sop_recent") == n
        assert ar.check() == []


def test_removal_leaves_no_sop_entry_and_check_finds_one_held_twice(tmp_path, small_commits):
    data = tmp_path / "d"
    n = _tree(data)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        ar.import_folder(data)
        gone = ar.studies()[0]
        m = gone.n_instances
        ar.remove(study=gone)
        with ar._store.read() as t:
            assert t.count("sop") + t.count("sop_recent") == n - m
            assert sorted(sopindex.entries(t)) == sorted((k[8:], k[:8]) for k, _v in t.range("instances"))
        assert ar.check() == []

        def twice(t):
            k, v = next(iter(t.range("sop")))
            t.put("sop_recent", k, v)
        ar._store.write(twice)
        assert any("in both SOP databases" in p for p in ar.check())


def test_a_schema_6_archive_gains_the_recent_database_and_keeps_its_entries(tmp_path):
    data = tmp_path / "d"
    n = _tree(data)
    arc = tmp_path / "a"
    with pocketpacs.open_archive(arc) as ar:
        ar.import_folder(data)
    env = lmdb.open(str(arc), max_dbs=len(store.DBS) + 4)
    with env.begin(write=True) as t:                    # what schema 6 stored: one "sop" database
        sop, recent = env.open_db(b"sop", txn=t), env.open_db(b"sop_recent", txn=t)
        moved = list(t.cursor(db=recent))
        assert len(moved) == n
        for k, v in moved:
            t.put(k, v, db=sop)
        t.drop(recent, delete=True)
        t.put(b"schema", b"6", db=env.open_db(b"meta", txn=t))
    env.close()
    with pytest.raises(pocketpacs.SchemaVersionMismatch, match="upgrade"):
        pocketpacs.open_archive(arc, readonly=True)
    with pocketpacs.open_archive(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION >= 7
        with ar._store.read() as t:
            assert t.count("sop") == n and t.count("sop_recent") == 0
        assert ar.check() == []
        assert ar.import_folder(data).unchanged == n
        more = tmp_path / "more"
        m = _tree(more, seed=1)
        assert ar.import_folder(more).indexed == m
        with ar._store.read() as t:
            assert t.count("sop") == n and t.count("sop_recent") == m
        assert ar.check() == [] and ar.verify().ok


def test_the_sop_keys_an_import_keeps_find_every_file_met_again(tmp_path, monkeypatch, small_commits):
    """``ImportSops``: an import into an empty archive keeps the SOP keys it
    archives and looks up in LMDB only the new files' keys it may have
    archived; a copy of a file archived in an earlier commit is still a
    duplicate, and its SOP UID in another series still a conflict."""
    import shutil

    data = tmp_path / "d"
    n = _tree(data)
    firsts = sorted(data.rglob("IM00001"))
    (data / "zz").mkdir()                               # (a folder walked after the others)
    for j, p in enumerate(firsts):
        shutil.copy(p, data / "zz" / f"copy{j}")
    dicomgen.write(data / "zz" / "other", series_uid="1.2.826.0.99.1", study_uid="1.2.826.0.99",
                   sop_uid="1.2.826.0.2.0.0.0.0.1", instance_number=1)   # (the SOP of p0/s0/r0/IM00001)
    asked = []
    real = sopindex.known
    monkeypatch.setattr(sopindex, "known", lambda t, ks: asked.extend(ks) or real(t, ks))
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        rep = ar.import_folder(data)
        assert rep.indexed == n and rep.duplicate == len(firsts) and len(rep.conflicts) == 1
        # only the keys of files met again are looked up (each once per chunk); every other is new
        assert len(set(asked)) == len(firsts) and len(asked) <= len(firsts) + 1
        assert ar.check() == []
        asked.clear()
        more = tmp_path / "more"                        # into an archive not empty: every key asked
        _tree(more, seed=5)
        assert ar.import_folder(more).indexed == n
        assert len(asked) == n


def test_import_sops_start_only_on_an_empty_index_and_stop_after_another_writer():
    import numpy as np

    class _Txn:
        def __init__(self, n):
            self.n = n

        def count(self, db):
            return self.n if db == sopindex.MAIN else 0

    s = sopindex.ImportSops()
    s.begin(_Txn(0), False)
    assert s.active
    rng = np.random.default_rng(1)
    added = [rng.integers(1, 2**63, size=k, dtype=np.uint64) for k in (5, 3, 40, 1, 200, 7)]
    for a in added:
        s.add(a)
    every = np.concatenate(added)
    assert s.maybe(every).all()
    other = rng.integers(1, 2**63, size=1000, dtype=np.uint64)
    assert not s.maybe(other[~np.isin(other, every)]).any()
    s.begin(_Txn(0), True)                              # (the import's own next transaction)
    assert s.active and s.maybe(every).all()
    s.begin(_Txn(0), False)                             # another writer came between
    assert not s.active
    s.begin(_Txn(0), True)
    assert not s.active                                 # (for good)
    s2 = sopindex.ImportSops()
    s2.begin(_Txn(3), False)                            # an archive that holds SOPs: not kept
    assert not s2.active
