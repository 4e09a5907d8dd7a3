"""Grouped commits of an import (issue 16): several parsed chunks in one write transaction.

An import commits its first chunk alone and then twice as many chunks per
commit, up to ``ingest.COMMIT_CHUNKS``.  What the archive holds must not
depend on it: imports with one chunk per commit and with grouped commits
store the same records, byte for byte, on a first import of files
scattered over many folders and series and on a re-import after files were
moved, changed, copied and removed.
"""
from __future__ import annotations

import os
import shutil

import pocketpacs
from pocketpacs import synth
from pocketpacs.archive import commit, ingest
from pocketpacs.archive.integrity import record_dump


def _tree(root) -> list[str]:
    """Files of a few patients scattered over many folders (as the --scale data), with junk."""
    synth.generate(root, patients=3, studies=2, series=3, slices=8, rows=8, cols=8, junk=6, enhanced=1,
                   compressed_fraction=0.0, implicit_fraction=0.3)
    os.remove(os.path.join(root, "manifest.json"))
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.join(d, f) for f in files]
    return sorted(out)


def _import(path, root, secret: bytes | None, monkeypatch, chunks: int) -> bytes:
    monkeypatch.setattr(ingest, "CHUNK", 7)
    monkeypatch.setattr(ingest, "COMMIT_CHUNKS", chunks)
    if secret is not None and not path.exists():
        path.mkdir(mode=0o700)
        (path / "secret.key").write_bytes(secret)
        (path / "secret.key").chmod(0o600)
    with pocketpacs.open_archive(path) as ar:
        ar.import_folder(root)
        assert ar.check() == []
        return (path / "secret.key").read_bytes()


def _dump(path) -> dict:
    with pocketpacs.open_archive(path, readonly=True) as ar, ar._store.read() as t:
        return record_dump(t)


def test_grouped_commits_store_the_same_records_as_one_chunk_per_commit(tmp_path, monkeypatch):
    root = tmp_path / "d"
    files = _tree(root)
    one, grouped = tmp_path / "one", tmp_path / "grouped"
    secret = _import(one, root, None, monkeypatch, 1)
    _import(grouped, root, secret, monkeypatch, 8)
    first = _dump(one)
    assert first == _dump(grouped)
    assert len(first["instances"]) > 100
    # move, change in place, copy and remove files, then import again into both
    dcm = [f for f in files if f.endswith(".dcm")]
    moved = root / "moved"
    moved.mkdir()
    for f in dcm[:5]:
        shutil.move(f, moved / os.path.basename(f))
    for f in dcm[5:8]:
        with open(f, "r+b") as fh:   # same size, other bytes past the header: a changed file
            fh.seek(-4, os.SEEK_END)
            fh.write(b"\x01\x02\x03\x04")
        os.utime(f, ns=(1, 1))
    copies = root / "copies"
    copies.mkdir()
    for f in dcm[8:11]:
        shutil.copy(f, copies / os.path.basename(f))
    for f in dcm[11:14]:
        os.remove(f)
    _import(one, root, None, monkeypatch, 1)
    _import(grouped, root, None, monkeypatch, 8)
    again = _dump(one)
    assert again == _dump(grouped)
    assert again != first


def test_commits_grow_from_one_chunk_to_the_cap(tmp_path, monkeypatch):
    root = tmp_path / "d"
    n = len(_tree(root))
    sizes: list[list[int]] = []
    real = commit.commit_chunks

    def counting(txn, secret, parts, owners=None, encoded=None):
        sizes.append([len(p[0]) for p in parts])
        return real(txn, secret, parts, owners, encoded)

    monkeypatch.setattr(commit, "commit_chunks", counting)
    monkeypatch.setattr(ingest, "CHUNK", 7)
    monkeypatch.setattr(ingest, "COMMIT_CHUNKS", 4)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        rep = ar.import_folder(root)
    assert rep.seen == n
    assert [len(s) for s in sizes[:4]] == [1, 2, 4, 4]
    assert all(len(s) <= 4 for s in sizes)
    assert sum(map(sum, sizes)) == n
    assert all(c == 7 for s in sizes[:-1] for c in s)


def test_a_large_archive_takes_larger_commits_and_stores_the_same_records(tmp_path, monkeypatch):
    """Past ``LARGE_ARCHIVE_COMMITS`` instances a commit takes more chunks
    (fewer rewrites of the pages a scattered import changes everywhere); the
    records are those of one chunk per commit."""
    assert ingest.chunks_per_commit(0) == ingest.COMMIT_CHUNKS
    assert ingest.chunks_per_commit(10 ** 6) >= ingest.chunks_per_commit(300_000) > ingest.COMMIT_CHUNKS
    root = tmp_path / "d"
    n = len(_tree(root))
    one = tmp_path / "one"
    secret = _import(one, root, None, monkeypatch, 1)
    sizes: list[int] = []
    real = commit.commit_chunks

    def counting(txn, secret, parts, owners=None, encoded=None):
        sizes.append(len(parts))
        return real(txn, secret, parts, owners, encoded)

    monkeypatch.setattr(commit, "commit_chunks", counting)
    monkeypatch.setattr(ingest, "LARGE_ARCHIVE_COMMITS", ((20, 4), (40, 8)))
    big = tmp_path / "big"
    _import(big, root, secret, monkeypatch, 2)
    assert sizes[:3] == [1, 2, 2] and max(sizes) == 8, sizes
    assert sum(sizes) * 7 >= n
    assert _dump(one) == _dump(big)


def test_commits_in_the_writer_thread_store_what_commits_in_line_do(tmp_path, monkeypatch):
    """``ingest.PIPELINE``: each commit runs in a writer thread while the next
    chunks are parsed; the archive and the report are those of commits made
    one after the other in the importing thread."""
    root = tmp_path / "d"
    _tree(root)
    reports = {}
    for name, piped in (("inline", False), ("piped", True)):
        monkeypatch.setattr(ingest, "PIPELINE", piped)
        monkeypatch.setattr(ingest, "CHUNK", 7)
        monkeypatch.setattr(ingest, "COMMIT_CHUNKS", 2)
        if name == "piped":
            (tmp_path / name).mkdir(mode=0o700)
            shutil.copy(tmp_path / "inline" / "secret.key", tmp_path / name / "secret.key")
        with pocketpacs.open_archive(tmp_path / name) as ar:
            rep = ar.import_folder(root)
            assert ar.check() == []
        reports[name] = (rep.seen, rep.parsed, rep.indexed, rep.duplicate, sorted(f.path for f in rep.failures))
    assert reports["inline"] == reports["piped"]
    assert reports["piped"][2] > 100
    assert _dump(tmp_path / "inline") == _dump(tmp_path / "piped")


def test_a_commit_that_fails_in_the_writer_thread_fails_the_import(tmp_path, monkeypatch):
    """The error of a commit made in the writer thread is the import's error;
    the commits before it stay, the archive checks clean, and the next import
    takes the rest."""
    root = tmp_path / "d"
    n = len(_tree(root))
    real = commit.commit_chunks
    calls = []

    def failing(txn, secret, parts, owners=None, encoded=None):
        calls.append(len(parts))
        if len(calls) == 3:
            raise OSError("simulated failure of the third commit")
        return real(txn, secret, parts, owners, encoded)

    monkeypatch.setattr(commit, "commit_chunks", failing)
    monkeypatch.setattr(ingest, "PIPELINE", True)
    monkeypatch.setattr(ingest, "CHUNK", 7)
    monkeypatch.setattr(ingest, "COMMIT_CHUNKS", 2)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        try:
            ar.import_folder(root)
        except OSError as e:
            assert "third commit" in str(e)
        else:
            raise AssertionError("the failed commit did not fail the import")
        assert ar.check() == []
        kept = ar.stats()["instances"]
        assert 0 < kept <= 7 * (calls[0] + calls[1])
        monkeypatch.setattr(commit, "commit_chunks", real)
        rep = ar.import_folder(root)
        assert rep.seen == n and ar.check() == []
    with pocketpacs.open_archive(tmp_path / "fresh") as ar:
        ar.import_folder(root)
        fresh = ar.stats()
    with pocketpacs.open_archive(tmp_path / "a", readonly=True) as ar:
        after = ar.stats()
    assert {k: after[k] for k in ("patients", "studies", "series", "instances")} == \
        {k: fresh[k] for k in ("patients", "studies", "series", "instances")}


def test_series_owners_are_forgotten_when_another_write_comes_between(tmp_path):
    """``SeriesOwners`` (a series' study and patient keys, kept across one
    import's transactions) holds only while the importer is the only writer:
    a write of anyone else, or a rolled-back transaction, empties it, and a
    series deleted through ``RecordChanges`` is dropped from it at once."""
    from pocketpacs.archive.record_changes import RecordChanges, SeriesOwners

    with pocketpacs.open_archive(tmp_path / "a") as ar:
        store, secret = ar._store, ar._secret
        owners = SeriesOwners()
        k1, k2 = b"\x01" * 8, b"\x02" * 8

        def learn(t, key):
            ch = RecordChanges(t, secret, owners)
            ch.owners[key] = (b"s" * 8, b"p" * 16)

        store.write(lambda t: learn(t, k1))
        store.write(lambda t: learn(t, k2))        # the same writer: kept
        assert set(owners.keys) == {k1, k2}
        store.write(lambda t: t.put("meta", b"x", b"1"))   # someone else's write
        store.write(lambda t: RecordChanges(t, secret, owners))
        assert owners.keys == {}
        store.write(lambda t: learn(t, k1))

        def rolled_back(t):
            learn(t, k2)
            raise RuntimeError("rolled back")

        try:
            store.write(rolled_back)
        except RuntimeError:
            pass
        store.write(lambda t: RecordChanges(t, secret, owners))
        assert owners.keys == {}     # (what the rolled-back one learnt is not trusted)
        store.write(lambda t: learn(t, k1))

        def delete(t):
            ch = RecordChanges(t, secret, owners)
            ch.delete("series", k1)
            assert k1 not in owners.keys

        store.write(delete)


def test_a_cd_session_commits_in_the_writer_thread_and_stops_when_cancelled(tmp_path, monkeypatch):
    """The in-memory store of a CD/USB session locks writes out while a read
    is open: the walk's reads and the writer thread's commits take turns,
    whether the import runs to its end or is cancelled with a commit in
    flight (a deadlock here would hang: the imports run in a thread with a
    time limit)."""
    import threading

    root = tmp_path / "d"
    n = len(_tree(root))
    monkeypatch.setattr(ingest, "PIPELINE", True)
    monkeypatch.setattr(ingest, "CHUNK", 7)
    monkeypatch.setattr(ingest, "COMMIT_CHUNKS", 2)
    monkeypatch.setattr(ingest, "WALK_AHEAD", 10)   # commits start during the walk

    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 0.0)
    seen = {"indexed": 0}

    def progress(p):
        seen["indexed"] = max(seen["indexed"], p.indexed)

    def run(cancel):
        out = {}

        def go():
            with pocketpacs.open_media(root, progress=progress, cancel=cancel) as ar:
                out["stats"] = ar.stats()
                out["check"] = ar.check()

        t = threading.Thread(target=go, daemon=True)
        t.start()
        t.join(120)
        assert not t.is_alive(), "the import hung"
        return out

    full = run(None)
    assert full["check"] == [] and full["stats"]["instances"] > 100
    seen["indexed"] = 0
    part = run(lambda: seen["indexed"] > 0)   # (cancelled once a commit is counted: the next is in flight)
    assert part["check"] == [] and 0 < part["stats"]["instances"] < full["stats"]["instances"] <= n


def test_counts_added_to_series_written_before_match_the_records_read_again(tmp_path, monkeypatch):
    """Files of a series that an earlier commit of the import wrote to add
    their counts to the series, its study and its patient without reading the
    series record (``RecordChanges.add_owned_counts``); the archive is the
    one of commits that read every series record again."""
    from pocketpacs.archive.record_changes import RecordChanges

    root = tmp_path / "d"
    _tree(root)
    real = RecordChanges.add_owned_counts
    owned = []

    def counting(self, seks, counts, sizes):
        rest = real(self, seks, counts, sizes)
        owned.append(len(seks) - len(rest))
        return rest

    monkeypatch.setattr(RecordChanges, "add_owned_counts", counting)
    secret = _import(tmp_path / "owned", root, None, monkeypatch, 2)
    assert sum(owned) > 10
    monkeypatch.setattr(RecordChanges, "add_owned_counts", lambda self, seks, c, s: list(range(len(seks))))
    _import(tmp_path / "read", root, secret, monkeypatch, 2)
    assert _dump(tmp_path / "owned") == _dump(tmp_path / "read")


def test_the_next_chunks_are_parsed_once_the_commit_in_flight_has_built_its_records(tmp_path, monkeypatch):
    """``ingest.GATE``: with a commit in flight, the importer parses the next
    chunks only once that commit has built its records, so that its Python
    work runs while LMDB writes the pages (the interpreter's lock released),
    not in turns with the commit's; ``ingest.GATE_WALK``: a walk running
    ahead of the commits lists its next folder only then too.  The archive
    is the one of an import without the gates."""
    root = tmp_path / "d"
    _tree(root)
    events: list[str] = []
    real_cc = commit.commit_chunks
    real_parse = ingest.Importer._parse_next
    real_walk = ingest.Importer._walk

    def walking(self, root_s):
        it = real_walk(self, root_s)
        while True:
            events.append("list in flight" if self._inflight is not None else "list")
            try:
                item = next(it)
            except StopIteration:
                return
            yield item

    def building(txn, secret, parts, owners=None, encoded=None):
        events.append("build")
        try:
            return real_cc(txn, secret, parts, owners, encoded)
        finally:
            events.append("built")

    def parsing(self, n):
        events.append("parse in flight" if self._inflight is not None else "parse")
        return real_parse(self, n)

    monkeypatch.setattr(commit, "commit_chunks", building)
    monkeypatch.setattr(ingest.Importer, "_parse_next", parsing)
    monkeypatch.setattr(ingest.Importer, "_walk", walking)
    monkeypatch.setattr(ingest, "PIPELINE", True)
    monkeypatch.setattr(ingest, "GATE", True)
    monkeypatch.setattr(ingest, "GATE_WALK", True)
    monkeypatch.setattr(ingest, "WALK_AHEAD", 10)   # (commits start during the walk)
    secret = _import(tmp_path / "gated", root, None, monkeypatch, 2)
    building_now = False
    for e in events:
        if e == "build":
            building_now = True
        elif e == "built":
            building_now = False
        else:
            assert not building_now, events
    assert events.count("parse in flight") > 3 and events.count("build") > 3
    assert events.count("list in flight") > 3
    monkeypatch.setattr(ingest, "GATE", False)
    monkeypatch.setattr(ingest, "GATE_WALK", False)
    _import(tmp_path / "ungated", root, secret, monkeypatch, 2)
    assert _dump(tmp_path / "gated") == _dump(tmp_path / "ungated")


def test_records_encoded_ahead_are_the_ones_the_commit_encodes(tmp_path, monkeypatch):
    """``ingest.ENCODE_AHEAD``: the importer encodes each chunk's instance records
    while the commit before is written, and the commit writes those of its new
    files; chunks that mix new files with copies of archived ones (whose records
    the commit makes itself) included, the archive is the one of commits that
    encode their own records."""
    import shutil

    root = tmp_path / "d"
    files = _tree(root)
    dcm = [f for f in files if f.endswith(".dcm")]
    (root / "copies").mkdir()
    for j, f in enumerate(dcm[::5]):   # duplicates of archived files among the new ones
        shutil.copy(f, root / "copies" / f"c{j}.dcm")
    taken = {"all": 0, "some": 0}
    real_take = commit.Encoded.take

    def take(self, rows):
        taken["all" if rows.size == self.rows.size else "some"] += 1
        return real_take(self, rows)

    monkeypatch.setattr(commit.Encoded, "take", take)
    monkeypatch.setattr(ingest, "PIPELINE", True)
    monkeypatch.setattr(ingest, "ENCODE_AHEAD", True)
    secret = _import(tmp_path / "ahead", root, None, monkeypatch, 2)
    assert taken["all"] > 3 and taken["some"] > 0, taken
    monkeypatch.setattr(ingest, "ENCODE_AHEAD", False)
    _import(tmp_path / "in_commit", root, secret, monkeypatch, 2)
    assert _dump(tmp_path / "ahead") == _dump(tmp_path / "in_commit")
    from pocketpacs.archive import records

    with pocketpacs.open_archive(tmp_path / "ahead", readonly=True) as ar, ar._store.read() as t:
        copies = sum(len(records.split_instance(v)[2]) - 1 for _k, v in t.range("instances"))
    assert copies == len(dcm[::5])   # (each copy a second location of its instance)
