"""The LMDB store: permissions, map growth, writer lock, schema and migrations,
and the in-memory store's rollback."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from pocketpacs.archive import keys
from pocketpacs.archive import store
from pocketpacs.archive.memstore import MemoryStore
from pocketpacs.errors import ArchiveError, ArchiveLocked, SchemaVersionMismatch


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_permissions_folder_0700_files_0600(tmp_path):
    path = tmp_path / "a" / "archive"
    with store.LmdbStore(path) as st:
        st.write(lambda t: t.put("meta", b"x", b"1"))
        keys.load_or_create_secret(path)
    assert mode(path) == 0o700
    for name in ("data.mdb", "lock.mdb", store.LOCK_FILE, keys.SECRET_FILE):
        assert mode(path / name) == 0o600, name


def test_existing_loose_folder_is_tightened(tmp_path):
    path = tmp_path / "ar"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    store.LmdbStore(path).close()
    assert mode(path) == 0o700


def test_map_grows_when_full(tmp_path):
    with store.LmdbStore(tmp_path / "ar", map_size=256 * 1024) as st:
        before = st.info()["map_size"]

        def fill(t):
            for i in range(20000):
                t.put("instances", i.to_bytes(16, "big"), b"v" * 100)

        st.write(fill)
        assert st.info()["map_size"] > before
        with st.read() as t:
            assert t.count("instances") == 20000
            assert t.get("instances", (19999).to_bytes(16, "big")) == b"v" * 100


def test_map_grows_only_once_reads_of_other_threads_have_ended(tmp_path):
    """Growing the map invalidates every transaction of the environment
    (py-lmdb) and LMDB wants none open in the process: a write that fills the
    map waits for the read another thread holds, which reads on unharmed; a
    store of the same archive opened again in the process shares the guard."""
    import threading

    with store.LmdbStore(tmp_path / "ar", map_size=256 * 1024) as st:
        st.write(lambda t: t.put("instances", b"k" * 16, b"first"))
        before = st.info()["map_size"]
        other = store.LmdbStore(tmp_path / "ar", readonly=True)   # (the same environment: one guard)
        reading, grown = threading.Event(), threading.Event()
        seen: list = []

        def reader():
            try:
                with other.read() as t:
                    seen.append(t.get("instances", b"k" * 16))
                    reading.set()
                    # the writer fills the map meanwhile: it waits for this read to end
                    seen.append(grown.wait(1.0))
                    seen.append(t.get("instances", b"k" * 16))
            except Exception as e:   # (py-lmdb: "Attempt to operate on closed/deleted/dropped object")
                seen.append(e)
                reading.set()

        th = threading.Thread(target=reader)
        th.start()
        assert reading.wait(30)

        def fill(t):
            for i in range(20000):
                t.put("instances", i.to_bytes(16, "big"), b"v" * 100)

        st.write(fill)
        grown.set()
        th.join(30)
        other.close()
        assert seen == [b"first", False, b"first"]   # (False: the map did not grow during the read)
        assert st.info()["map_size"] > before
        with st.read() as t:
            assert t.count("instances") == 20001


def test_write_error_rolls_back(tmp_path):
    with store.LmdbStore(tmp_path / "ar") as st:
        st.write(lambda t: t.put("meta", b"k", b"old"))

        def bad(t):
            t.put("meta", b"k", b"new")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            st.write(bad)
        with st.read() as t:
            assert t.get("meta", b"k") == b"old"


def test_range_prefix_start_stop(tmp_path):
    for st in (store.LmdbStore(tmp_path / "ar"), MemoryStore()):
        with st:
            st.write(lambda t: t.putmulti("idx_name", [(b"ab\0" + bytes([i]), b"") for i in range(5)]
                                          + [(b"ac\0x", b""), (b"b\0y", b"")]))
            with st.read() as t:
                assert [k for k, _ in t.range("idx_name", b"ab")] == [b"ab\0" + bytes([i]) for i in range(5)]
                assert [k for k, _ in t.range("idx_name", b"a", start=b"ac")] == [b"ac\0x"]
                assert len(list(t.range("idx_name", stop=b"ac"))) == 5
                assert t.count("idx_name") == 7


def test_memory_store_rolls_back_failed_write():
    st = MemoryStore()
    st.write(lambda t: t.put("meta", b"k", b"1"))

    def bad(t):
        t.put("meta", b"k", b"2")
        t.put("meta", b"new", b"x")
        t.delete("meta", b"k")
        raise ValueError

    with pytest.raises(ValueError):
        st.write(bad)
    with st.read() as t:
        assert t.get("meta", b"k") == b"1"
        assert t.get("meta", b"new") is None


_HOLD = textwrap.dedent("""
    import sys, time
    from pocketpacs.archive.store import LmdbStore
    st = LmdbStore(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
""")


def test_second_writer_fails_fast_with_archive_locked(tmp_path):
    path = tmp_path / "ar"
    store.LmdbStore(path).close()
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(ArchiveLocked) as ei:
            store.LmdbStore(path)
        msg = str(ei.value)
        assert str(path) in msg and "another PocketPACS process" in msg and str(p.pid) in msg
        # reading while the other process holds the writer lock works
        with store.LmdbStore(path, readonly=True) as ro:
            assert ro.schema_version == store.SCHEMA_VERSION
    finally:
        p.kill()
        p.wait()
    store.LmdbStore(path).close()  # the lock died with the process


def test_same_process_second_writer_is_locked(tmp_path):
    with store.LmdbStore(tmp_path / "ar"):
        with pytest.raises(ArchiveLocked):
            store.LmdbStore(tmp_path / "ar")


def test_readonly_missing_archive(tmp_path):
    with pytest.raises(ArchiveError):
        store.LmdbStore(tmp_path / "nothing", readonly=True)
    assert not (tmp_path / "nothing").exists()


def test_readonly_refuses_writes(tmp_path):
    store.LmdbStore(tmp_path / "ar").close()
    with store.LmdbStore(tmp_path / "ar", readonly=True) as ro:
        with pytest.raises(ArchiveError):
            ro.write(lambda t: None)


def test_newer_schema_is_refused(tmp_path):
    with store.LmdbStore(tmp_path / "ar") as st:
        st.write(lambda t: t.put("meta", b"schema", str(store.SCHEMA_VERSION + 1).encode()))
    with pytest.raises(SchemaVersionMismatch):
        store.LmdbStore(tmp_path / "ar")


def test_migration_runs_once_and_records_version(tmp_path, monkeypatch):
    with store.LmdbStore(tmp_path / "ar") as st:
        st.write(lambda t: (t.put("meta", b"schema", str(store.SCHEMA_VERSION).encode()),
                            t.put("pat_studies", b"p" * 24, b"{}")))
    calls = []

    def step(t):
        calls.append(1)
        t.put("meta", b"migrated", b"yes")

    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    monkeypatch.setitem(store.MIGRATIONS, store.SCHEMA_VERSION - 1, step)
    with store.LmdbStore(tmp_path / "ar") as st:
        assert st.schema_version == store.SCHEMA_VERSION
        with st.read() as t:
            assert t.get("meta", b"migrated") == b"yes"
            assert t.get("pat_studies", b"p" * 24) == b"{}"
    with store.LmdbStore(tmp_path / "ar"):
        pass
    assert calls == [1]
    # read-only opens of an old archive say it needs an upgrade
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionMismatch):
        store.LmdbStore(tmp_path / "ar", readonly=True)



def _schema1_value(raw: bytes, keywords: tuple[str, ...]) -> bytes:
    """An instance value as schema 1 wrote it: ``keywords``' text values, then the paths
    (AcquisitionTime, which today's records no longer keep, as the test files have it)."""
    from pocketpacs.archive import records

    _head, texts, paths = records.split_instance(raw)
    texts = {"AcquisitionTime": "101500", **texts}
    tail = "\0".join([texts[k] for k in keywords] + paths)
    return raw[:records.HEAD] + tail.encode("utf-8", "surrogateescape")


def test_schema1_archive_is_migrated_on_open(tmp_path):
    """An archive whose instance records have the schema-1 layouts (three text
    values before the paths and none after, or the older six) is upgraded by
    the first writable open: records are rewritten in today's layout, from the
    record or from the file (also a file only touched), and a record whose file
    changed is left as it was, for the next import."""
    import dicomgen
    import pocketpacs
    from pocketpacs.archive import records

    folder = tmp_path / "data"
    files = dicomgen.write_series(folder, 4, series_uid="1.2.826.0.9.1",
                                  extra={"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
                                         "AcquisitionTime": "101500"})
    arc = tmp_path / "ar"
    with pocketpacs.open_archive(arc) as ar:
        assert ar.import_folder(folder).indexed == 4
        series = ar.series(ar.studies()[0])[0]
        today = {bytes.fromhex(i.key): i for i in ar.instances(series)}
    assert {i.text["PhotometricInterpretation"] for i in today.values()} == {"MONOCHROME2"}
    assert {i.text["ImageType"] for i in today.values()} == {"ORIGINAL\\PRIMARY\\AXIAL"}
    by_file = {i.paths[0]: k for k, i in today.items()}
    keys = [by_file[str(f)] for f in files]
    three = ("SOPInstanceUID", "SOPClassUID", "TransferSyntaxUID")
    six = three + ("ImageType", "PhotometricInterpretation", "AcquisitionTime")

    # write the records the old way with the real LMDB store, at schema 1
    with store.LmdbStore(arc) as st:
        with st.read() as t:
            raws = {k: t.get("instances", k) for k in keys}
        old = {k: _schema1_value(raws[k], six if k == keys[3] else three) for k in keys}

        def downgrade(t):
            for k, v in old.items():
                t.put("instances", k, v)
            t.put("meta", b"schema", b"1")
        st.write(downgrade)
        assert st.schema_version == 1
    # the old six-value layout is misread by today's decoder: paths are wrong
    assert records.split_instance(old[keys[3]])[2] != [str(files[3])]
    st2 = os.stat(files[1])                     # file 2 touched: same content
    os.utime(files[1], ns=(st2.st_atime_ns, st2.st_mtime_ns + 10**9))
    dicomgen.write(files[2], series_uid="1.2.826.0.9.1", sop_uid="1.2.826.0.9.1.3",   # file 3 changed
                   instance_number=3, z=3.0, rows=8, extra={"ImageType": ["DERIVED", "SECONDARY"]})

    with pytest.raises(SchemaVersionMismatch):  # read-only opens cannot upgrade
        pocketpacs.open_archive(arc, readonly=True)
    with pocketpacs.open_archive(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION
        assert ar.check() == []
        with ar._store.read() as t:
            now = {k: t.get("instances", k) for k in keys}
        for k in (keys[0], keys[1], keys[3]):   # filled from the file, or from the old record
            assert now[k] == raws[k] != old[k]
        assert now[keys[2]] == old[keys[2]]     # file changed: left to the next import
        got = {bytes.fromhex(i.key): i for i in ar.instances(series)}
        assert [got[k].paths for k in keys] == [(str(f),) for f in files]
        assert "PhotometricInterpretation" not in got[keys[2]].text
        keys_rows = ar.series_table(series)       # the numeric heads are untouched
        assert keys_rows[1].tobytes() == records.instance_array([raws[k] for k in keys_rows[0]]).tobytes()
        assert ar.stats()["schema"] == store.SCHEMA_VERSION and ar.stats()["instances"] == 4
        # the next import takes the changed file's values, in today's layout
        ar.import_folder(folder)
        with ar._store.read() as t:
            assert records.split_instance(t.get("instances", keys[2]))[1]["ImageType"] == "DERIVED\\SECONDARY"
        assert ar.check() == []
    with store.LmdbStore(arc) as st:                # opened again: nothing left to migrate
        assert st.schema_version == store.SCHEMA_VERSION


def test_schema2_archive_with_long_paths_is_migrated_on_open(tmp_path):
    """Schema 3 keys a path longer than ``pathkeys.PATH_KEY_MAX`` bytes by a
    hash (the path in the value) and cuts exact-match index values at 400
    bytes: an archive written by schema 2 with a 450-byte folder (its listing,
    its root entry and a conflict keyed by the raw path, as schema 2 stored
    them) and a 450-byte patient ID (indexed whole) is re-keyed by the first
    writable open, record for record what schema 3 writes, and the next import
    finds everything unchanged."""
    import dicomgen
    import pocketpacs
    from pocketpacs.archive import integrity, pathkeys, query, records

    folder = os.path.join(str(tmp_path), "data")
    while len(os.fsencode(folder)) < 450 - 201:
        folder = os.path.join(folder, "f" * 200)
    folder = os.path.join(folder, "g" * (450 - len(os.fsencode(folder)) - 1))
    assert len(os.fsencode(folder)) == 450
    pid = "患" * 150
    files = dicomgen.write_series(folder, 2, series_uid="1.2.826.0.13.5.20", patient_id=pid,
                                  charset="ISO_IR 192")
    dicomgen.write(os.path.join(folder, "clash.dcm"), series_uid="1.2.826.0.13.5.20", patient_id=pid,
                   charset="ISO_IR 192",
                   sop_uid="1.2.826.0.13.5.20.1", instance_number=1, rows=8, cols=8)
    arc = tmp_path / "ar"
    with pocketpacs.open_archive(arc) as ar:
        rep = ar.import_folder(folder)
        assert rep.indexed == 2 and len(rep.conflicts) == 1
        kept_apart = rep.conflicts[0].path     # the one of the two files with one UID seen second
    with store.LmdbStore(arc) as st:
        with st.read() as t:
            today = integrity.record_dump(t)
            for db in ("dirs", "roots"):
                assert [pathkeys.is_hashed(k) for k, _ in t.range(db)] == [True]
            assert [pathkeys.is_hashed(k[16:]) for k, _ in t.range("conflicts")] == [True]
            assert [len(k) for k, _ in t.range("idx_pid")] == [399 + 1 + 16]   # 133 whole characters

        def downgrade(t):       # what schema 2 stored: the raw path as the key, no path in the value
            fb = folder.encode()
            for k, v in list(t.range("dirs")):
                t.delete("dirs", k)
                t.put("dirs", fb, records.DirListing.decode(v).encode())
            for k, v in list(t.range("roots")):
                t.delete("roots", k)
                t.put("roots", fb, records.dumps({"added": records.loads(v)["added"]}))
            for k, v in list(t.range("conflicts")):
                rec = records.loads(v)
                path = bytes.fromhex(rec.pop("path_hex"))
                t.delete("conflicts", k)
                t.put("conflicts", k[:16] + path, records.dumps(rec))
            for k, _v in list(t.range("idx_pid")):
                t.delete("idx_pid", k)
                t.put("idx_pid", query.fold(pid).encode() + b"\0" + k[-16:], b"")
            t.put("meta", b"schema", b"2")
        st.write(downgrade)
        assert st.schema_version == 2
        with st.read() as t:    # today's code reads the old keys as inconsistent
            assert integrity.record_dump(t) != today and integrity.check_invariants(t) != []
    with pytest.raises(SchemaVersionMismatch):  # read-only opens cannot upgrade
        pocketpacs.open_archive(arc, readonly=True)
    with pocketpacs.open_archive(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION
        assert ar.check() == []
        with ar._store.read() as t:
            assert integrity.record_dump(t) == today
        assert ar.roots() == [folder] and [c["path"] for c in ar.conflicts()] == [kept_apart]
        assert len(ar.search(patient_id=pid)) == 1
        rep = ar.import_folder(folder)
        assert (rep.unchanged, rep.indexed, len(rep.conflicts)) == (2, 0, 1)
        assert len(list(ar.iter_instances())) == len(files)
        assert ar.check() == []


def test_schema_3_archive_refolds_its_text_indexes(tmp_path):
    """Schema 4 folds the letters Unicode does not decompose (Ø, Æ, ß...) as
    base letters: an archive whose name, ID, description and accession
    indexes (and the studies' series words) were folded by schema 3 is
    re-indexed by the first writable open, entry for entry what schema 4
    writes, and ``odegard`` then finds "Ødegård"."""
    import unicodedata

    import dicomgen
    import pocketpacs
    from pocketpacs.archive import integrity, records

    def fold3(s):                              # schema 3's fold
        d = unicodedata.normalize("NFKD", s or "")
        return "".join(c for c in d if not unicodedata.combining(c)).casefold()

    folder = tmp_path / "data"
    dicomgen.write_series(folder, 2, series_uid="1.2.826.0.13.5.40", patient_name="Ødegård^Åse",
                          patient_id="ØX-1", study_desc="Lærdal", series_desc="Ærø Straße",
                          accession="Æ77", charset="ISO_IR 192")
    arc = tmp_path / "ar"
    with pocketpacs.open_archive(arc) as ar:
        assert ar.import_folder(folder).indexed == 2
        assert len(ar.search(name="odegard")) == 1
    with store.LmdbStore(arc) as st:
        with st.read() as t:
            today = integrity.record_dump(t)

        def downgrade(t):       # what schema 3 stored: words and values folded without the table
            for k, v in list(t.range("studies")):
                rec = records.loads(v)
                rec["series_words"] = sorted({w for w in fold3("Ærø Straße").split()})
                t.put("studies", k, records.dumps(rec))
            for db, old in (("idx_name", lambda w: {"odegard": "ødegard", "ase": "ase"}[w]),
                            ("idx_pid", lambda w: fold3("ØX-1")),
                            ("idx_desc", lambda w: {"laerdal": "lærdal", "aero": "ærø",
                                                    "strasse": "strasse"}[w]),
                            ("idx_acc", lambda w: fold3("Æ77"))):
                for k, v in list(t.range(db)):
                    word, rest = k.split(b"\0", 1)
                    t.delete(db, k)
                    t.put(db, old(word.decode()).encode() + b"\0" + rest, v)
            t.put("meta", b"schema", b"3")
        st.write(downgrade)
        assert st.schema_version == 3
        with st.read() as t:
            assert integrity.record_dump(t) != today
    with pocketpacs.open_archive(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION
        assert ar.check() == []
        with ar._store.read() as t:
            assert integrity.record_dump(t) == today
        for f in ({"name": "odegard"}, {"name": "ØDEGÅRD"}, {"patient_id": "ox-1"},
                  {"description": "laerdal"}, {"description": "aero"}, {"accession": "ae77"}):
            assert len(ar.search(**f)) == 1, f


def test_storage_never_imports_policy():
    """Storage calls no policy: store (and the modules it uses) import nothing
    from integrity, api or ingest, and integrity nothing from api or ingest,
    at module or function level."""
    import ast
    from pathlib import Path

    folder = Path(store.__file__).parent

    def imported(name: str) -> set[str]:
        out = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1:
                    out |= {mod} if mod else {a.name for a in node.names}
                elif mod.startswith("pocketpacs.archive."):
                    out.add(mod.split(".")[2])
            elif isinstance(node, ast.Import):
                out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("pocketpacs.archive.")}
        return out

    for name in ("store", "datafile", "migrations", "memstore"):
        assert not imported(name) & {"integrity", "api", "ingest"}, name
    assert not imported("integrity") & {"api", "ingest"}


def test_generation_counts_commits(tmp_path):
    with store.LmdbStore(tmp_path / "ar") as st:
        g = st.generation
        st.write(lambda t: t.put("meta", b"a", b"1"))
        st.write(lambda t: t.put("meta", b"a", b"2"))
        assert st.generation == g + 2


def test_secret_is_stable_and_private(tmp_path):
    a = keys.load_or_create_secret(tmp_path)
    b = keys.load_or_create_secret(tmp_path)
    assert a == b and len(a) == keys.SECRET_LEN
    assert mode(tmp_path / keys.SECRET_FILE) == 0o600
    # patient keys are keyed: another secret gives another key, and the key is
    # not a plain hash of the identifier
    k1 = keys.patient_key(a, "PID1", "Doe^John", "19700101")
    k2 = keys.patient_key(keys.new_session_secret(), "PID1", "Doe^John", "19700101")
    assert k1 != k2 and len(k1) == 16
    import hashlib
    for ident in (b"PID1", b"Doe^John", b"PID1\0Doe^John\x0019700101"):
        assert hashlib.sha256(ident).digest()[:16] != k1
    # anonymous patients are never merged
    assert keys.patient_key(a, "", "", "", "1.2.3") != keys.patient_key(a, "", "", "", "1.2.4")
    assert keys.is_anonymous("", "^^") and not keys.is_anonymous("X", "")


def test_reader_sees_data_after_another_process_grows_the_map(tmp_path):
    path = tmp_path / "ar"
    store.LmdbStore(path, map_size=256 * 1024).close()
    with store.LmdbStore(path, readonly=True) as ro:
        with ro.read() as t:
            assert t.count("instances") == 0
        code = textwrap.dedent(f"""
            from pocketpacs.archive.store import LmdbStore
            st = LmdbStore({str(path)!r}, map_size=256 * 1024)
            st.write(lambda t: [t.put("instances", i.to_bytes(16, "big"), b"v" * 200) for i in range(20000)])
            print(st.info()["map_size"])
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert int(out.stdout) > 256 * 1024
        with ro.read() as t:
            assert t.count("instances") == 20000
            assert t.get("instances", (19999).to_bytes(16, "big")) == b"v" * 200


def test_close_waits_for_transactions_in_other_threads(tmp_path):
    """Closing while another thread reads never pulls the environment from
    under its transaction: the reader finishes, later reads get ArchiveError."""
    import threading
    import time

    st = store.LmdbStore(tmp_path / "a")
    st.write(lambda t: [t.put("meta", b"k%d" % i, b"v" * 100) for i in range(2000)])
    started = threading.Event()
    results: list = []

    def reader():
        try:
            with st.read() as t:
                started.set()
                n = 0
                for i in range(2000):
                    n += len(t.get("meta", b"k%d" % i) or b"")
                    if i % 200 == 0:
                        time.sleep(0.01)  # still inside the transaction when close() starts
                results.append(n)
            with st.read():
                results.append("read after close")
        except ArchiveError as e:
            results.append(str(e))

    th = threading.Thread(target=reader)
    th.start()
    started.wait(5)
    st.close()
    th.join(10)
    assert results == [200000, "the archive is closed"]
