"""A writer does not keep the archive's map pages resident (issue 16: a million
instances imported under 1 GB): while the process is over its resident-set
ceiling, every commit (and every part of a long transaction) drops the pages
of ``data.mdb`` it read from the process's RSS; under it they stay mapped
(mapping them again costs a fault each); the data stays intact."""
from __future__ import annotations

import os
import sys

import pytest

import pocketpacs
from pocketpacs import synth
from pocketpacs.archive import commit
from pocketpacs.archive import mapped
from pocketpacs.archive import store

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps and madvise: Linux")


def mapped_rss_kib(path) -> int:
    """Resident KiB of this process's mappings of *path* (``/proc/self/smaps``)."""
    real = os.path.realpath(path)
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            head = line.split(maxsplit=5)
            if "-" in head[0] and len(head[0].split("-")) == 2 and ":" not in head[0]:
                inside = len(head) == 6 and head[5].rstrip("\n") == real
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def read_everything(st: store.LmdbStore) -> int:
    n = 0
    with st.read() as t:
        for db in store.DBS:
            for _k, _v in t.range(db):
                n += 1
    return n


def test_release_drops_read_pages_and_keeps_the_data(tmp_path):
    path = tmp_path / "ar"
    with store.LmdbStore(path) as st:
        st.write(lambda t: t.putmulti("sop", [(i.to_bytes(8, "big"), b"v" * 200) for i in range(20_000)]))
        data = path / "data.mdb"
        assert mapped.mapped_ranges(data), "LMDB maps data.mdb"
        n = read_everything(st)
        assert mapped_rss_kib(data) > 1000   # a read maps what it touched
        assert mapped.release_map_pages(data) >= data.stat().st_size
        assert mapped_rss_kib(data) == 0
        assert read_everything(st) == n      # mapped again from the page cache, unchanged
        with st.read() as t:
            assert t.get("sop", (12_345).to_bytes(8, "big")) == b"v" * 200


@pytest.fixture
def ceiling(monkeypatch):
    """Set the resident-set ceiling (bytes) a writer keeps to."""
    def set_to(n: int) -> None:
        monkeypatch.setattr(mapped, "ceiling", lambda _archive_bytes: n)
    return set_to


def test_the_ceiling_is_read_from_this_process():
    rss = mapped.resident_bytes()
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
    assert rss is not None and abs(rss - vm) < 64 << 20
    phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert mapped.ceiling(0) == min(mapped.SMALL_CEILING, phys // 4)
    assert mapped.ceiling(100 << 20) == min(mapped.SMALL_CEILING + (100 << 20), phys // 4)
    assert mapped.ceiling(1 << 40) == min(mapped.MAP_RSS_CEILING, phys // 4)


def test_over_the_ceiling_follows_the_resident_set(tmp_path, ceiling):
    f = tmp_path / "data.mdb"
    f.write_bytes(b"x" * 4096)
    ceiling(0)
    assert mapped.over_ceiling(f)
    ceiling(1 << 50)
    assert not mapped.over_ceiling(f)
    assert not mapped.over_ceiling(tmp_path / "missing")   # (a file that cannot be read: size 0)


def test_the_ceiling_is_asked_for_the_archive_file_s_size(tmp_path, monkeypatch):
    f = tmp_path / "data.mdb"
    f.write_bytes(b"x" * 12_288)
    asked = []
    monkeypatch.setattr(mapped, "ceiling", lambda n: asked.append(n) or 1 << 50)
    mapped.over_ceiling(f)
    mapped.over_ceiling(tmp_path / "missing")
    assert asked == [12_288, 0]


def test_under_the_ceiling_a_commit_keeps_its_pages_mapped(tmp_path, ceiling):
    ceiling(1 << 50)
    path = tmp_path / "ar"
    with store.LmdbStore(path) as st:
        st.write(lambda t: t.putmulti("sop", [(i.to_bytes(8, "big"), b"v" * 200) for i in range(20_000)]))
        data = path / "data.mdb"
        read_everything(st)
        before = mapped_rss_kib(data)
        assert before > 1000
        st.write(lambda t: t.put("sop", (7).to_bytes(8, "big"), b"w"))
        assert mapped_rss_kib(data) >= before
        with st.read() as t:
            assert t.get("sop", (7).to_bytes(8, "big")) == b"w"


def test_a_long_transaction_trims_its_map_only_over_the_ceiling(tmp_path, ceiling):
    path = tmp_path / "ar"
    with store.LmdbStore(path) as st:
        st.write(lambda t: t.putmulti("sop", [(i.to_bytes(8, "big"), b"v" * 200) for i in range(20_000)]))
        data = path / "data.mdb"
        seen = []

        def part(t, limit):
            ceiling(limit)
            n = sum(1 for _ in t.range("sop"))
            t.trim_map()
            seen.append((n, mapped_rss_kib(data)))

        st.write(lambda t: part(t, 1 << 50))
        st.write(lambda t: part(t, 0))
        (n1, kept), (n2, trimmed) = seen
        assert n1 == n2 == 20_000
        assert kept > 1000 and trimmed == 0


def test_every_commit_releases_what_it_read_over_the_ceiling(tmp_path, ceiling):
    ceiling(0)
    path = tmp_path / "ar"
    with store.LmdbStore(path) as st:
        st.write(lambda t: t.putmulti("sop", [(i.to_bytes(8, "big"), b"v" * 200) for i in range(20_000)]))
        data = path / "data.mdb"
        read_everything(st)
        assert mapped_rss_kib(data) > 1000
        st.write(lambda t: t.put("sop", (7).to_bytes(8, "big"), b"w"))
        assert mapped_rss_kib(data) == 0
        with st.read() as t:
            assert t.get("sop", (7).to_bytes(8, "big")) == b"w"
            assert t.count("sop") == 20_000


@pytest.mark.parametrize("limit", [0, 1 << 50])
def test_import_leaves_the_data_intact(tmp_path, monkeypatch, ceiling, limit):
    ceiling(limit)
    monkeypatch.setattr(commit, "TRIM_EVERY", 7)   # (instance records written in parts, trimmed between)
    src = tmp_path / "src"
    synth.generate(src, patients=3, studies=1, series=2, slices=30, rows=16, cols=16, enhanced=0, junk=0)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        assert ar.import_folder(src).indexed == 180
        assert ar.verify().ok
        assert ar.check() == []
        assert ar.import_folder(src).unchanged == 180


def test_unmapped_file_and_other_systems(tmp_path):
    f = tmp_path / "not-mapped"
    f.write_bytes(b"x")
    assert mapped.mapped_ranges(f) == []
    assert mapped.release_map_pages(f) == 0
