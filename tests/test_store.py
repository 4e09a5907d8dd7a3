"""The LMDB store: permissions, map growth, writer lock, schema and migrations,
and the in-memory store's rollback."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from pocketpacs.archive import keys as K
from pocketpacs.archive import store as S
from pocketpacs.archive.memstore import MemoryStore
from pocketpacs.errors import ArchiveError, ArchiveLocked, SchemaVersionMismatch


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_permissions_folder_0700_files_0600(tmp_path):
    path = tmp_path / "a" / "archive"
    with S.LmdbStore(path) as st:
        st.write(lambda t: t.put("meta", b"x", b"1"))
        K.load_or_create_secret(path)
    assert mode(path) == 0o700
    for name in ("data.mdb", "lock.mdb", S.LOCK_FILE, K.SECRET_FILE):
        assert mode(path / name) == 0o600, name


def test_existing_loose_folder_is_tightened(tmp_path):
    path = tmp_path / "ar"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    S.LmdbStore(path).close()
    assert mode(path) == 0o700


def test_map_grows_when_full(tmp_path):
    with S.LmdbStore(tmp_path / "ar", map_size=256 * 1024) as st:
        before = st.info()["map_size"]

        def fill(t):
            for i in range(20000):
                t.put("instances", i.to_bytes(16, "big"), b"v" * 100)

        st.write(fill)
        assert st.info()["map_size"] > before
        with st.read() as t:
            assert t.count("instances") == 20000
            assert t.get("instances", (19999).to_bytes(16, "big")) == b"v" * 100


def test_write_error_rolls_back(tmp_path):
    with S.LmdbStore(tmp_path / "ar") as st:
        st.write(lambda t: t.put("meta", b"k", b"old"))

        def bad(t):
            t.put("meta", b"k", b"new")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            st.write(bad)
        with st.read() as t:
            assert t.get("meta", b"k") == b"old"


def test_range_prefix_start_stop(tmp_path):
    for st in (S.LmdbStore(tmp_path / "ar"), MemoryStore()):
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
    S.LmdbStore(path).close()
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(ArchiveLocked) as ei:
            S.LmdbStore(path)
        msg = str(ei.value)
        assert str(path) in msg and "another PocketPACS process" in msg and str(p.pid) in msg
        # reading while the other process holds the writer lock works
        with S.LmdbStore(path, readonly=True) as ro:
            assert ro.schema_version == S.SCHEMA_VERSION
    finally:
        p.kill()
        p.wait()
    S.LmdbStore(path).close()  # the lock died with the process


def test_same_process_second_writer_is_locked(tmp_path):
    with S.LmdbStore(tmp_path / "ar"):
        with pytest.raises(ArchiveLocked):
            S.LmdbStore(tmp_path / "ar")


def test_readonly_missing_archive(tmp_path):
    with pytest.raises(ArchiveError):
        S.LmdbStore(tmp_path / "nothing", readonly=True)
    assert not (tmp_path / "nothing").exists()


def test_readonly_refuses_writes(tmp_path):
    S.LmdbStore(tmp_path / "ar").close()
    with S.LmdbStore(tmp_path / "ar", readonly=True) as ro:
        with pytest.raises(ArchiveError):
            ro.write(lambda t: None)


def test_newer_schema_is_refused(tmp_path):
    with S.LmdbStore(tmp_path / "ar") as st:
        st.write(lambda t: t.put("meta", b"schema", str(S.SCHEMA_VERSION + 1).encode()))
    with pytest.raises(SchemaVersionMismatch):
        S.LmdbStore(tmp_path / "ar")


def test_migration_runs_once_and_records_version(tmp_path, monkeypatch):
    with S.LmdbStore(tmp_path / "ar") as st:
        st.write(lambda t: (t.put("meta", b"schema", str(S.SCHEMA_VERSION).encode()),
                            t.put("patients", b"p" * 16, b"{}")))
    calls = []

    def step(t):
        calls.append(1)
        t.put("meta", b"migrated", b"yes")

    monkeypatch.setattr(S, "SCHEMA_VERSION", S.SCHEMA_VERSION + 1)
    monkeypatch.setitem(S.MIGRATIONS, S.SCHEMA_VERSION - 1, step)
    with S.LmdbStore(tmp_path / "ar") as st:
        assert st.schema_version == S.SCHEMA_VERSION
        with st.read() as t:
            assert t.get("meta", b"migrated") == b"yes"
            assert t.get("patients", b"p" * 16) == b"{}"
    with S.LmdbStore(tmp_path / "ar"):
        pass
    assert calls == [1]
    # read-only opens of an old archive say it needs an upgrade
    monkeypatch.setattr(S, "SCHEMA_VERSION", S.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionMismatch):
        S.LmdbStore(tmp_path / "ar", readonly=True)


def test_generation_counts_commits(tmp_path):
    with S.LmdbStore(tmp_path / "ar") as st:
        g = st.generation
        st.write(lambda t: t.put("meta", b"a", b"1"))
        st.write(lambda t: t.put("meta", b"a", b"2"))
        assert st.generation == g + 2


def test_secret_is_stable_and_private(tmp_path):
    a = K.load_or_create_secret(tmp_path)
    b = K.load_or_create_secret(tmp_path)
    assert a == b and len(a) == K.SECRET_LEN
    assert mode(tmp_path / K.SECRET_FILE) == 0o600
    # patient keys are keyed: another secret gives another key, and the key is
    # not a plain hash of the identifier
    k1 = K.patient_key(a, "PID1", "Doe^John", "19700101")
    k2 = K.patient_key(K.new_session_secret(), "PID1", "Doe^John", "19700101")
    assert k1 != k2 and len(k1) == 16
    import hashlib
    for ident in (b"PID1", b"Doe^John", b"PID1\0Doe^John\x0019700101"):
        assert hashlib.sha256(ident).digest()[:16] != k1
    # anonymous patients are never merged
    assert K.patient_key(a, "", "", "", "1.2.3") != K.patient_key(a, "", "", "", "1.2.4")
    assert K.is_anonymous("", "^^") and not K.is_anonymous("X", "")


def test_reader_sees_data_after_another_process_grows_the_map(tmp_path):
    path = tmp_path / "ar"
    S.LmdbStore(path, map_size=256 * 1024).close()
    with S.LmdbStore(path, readonly=True) as ro:
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

    st = S.LmdbStore(tmp_path / "a")
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
