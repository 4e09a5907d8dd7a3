"""The rescan compares each folder with its stored listing as bytes (issue 16).

The byte compare (:func:`pocketpacs.archive.records.listing_unchanged`) must
say of every folder what the decoding compare
(:meth:`~pocketpacs.archive.records.DirListing.unchanged`) says, and a rescan
must notice new, touched (same size, new mtime), replaced, removed, renamed
and moved files, gone folders and odd entries exactly alike however it
lists folders (by path or through a descriptor) and however often it
yields, writing the same archive; an unchanged tree commits nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import dicomgen
from rescan_support import count_parsed, dump, report, twin_archives, txnid
import pocketpacs
from pocketpacs.archive import dirstamps, foldercompare, records, rescan
from pocketpacs.archive.records import DirListing


@pytest.fixture(autouse=True)
def _listing_every_folder(monkeypatch):
    """These rescans list every folder (no folder stamp is trusted):
    tests/test_rescan_stamps.py has the rescans that need not."""
    monkeypatch.setattr(dirstamps, "TRUSTED_TYPES", frozenset())


# ---- the byte compare against the decoding compare ------------------------------------------

_STEMS = ["IM", "é", "x\udcff", "slice"]   # (a name that is not UTF-8 on disk: surrogateescape)


def _stored(rng: np.random.Generator, n: int) -> DirListing:
    names = [f"{_STEMS[int(rng.integers(0, 4))]}{i:0{int(rng.integers(1, 6))}d}" for i in range(n)]
    return DirListing(names, rng.integers(0, 1 << 40, n), rng.integers(0, 1 << 62, n),
                      np.zeros((n, 16), np.uint8), np.zeros(n, np.int8), np.zeros(n, bool))


def _walked(rng: np.random.Generator, lst: DirListing) -> tuple[list[str], list[int], list[int], str]:
    """The folder as a walk could find it: unchanged or with one kind of change."""
    names, sizes, mtimes = list(lst.names), lst.size.tolist(), lst.mtime_ns.tolist()
    n = len(names)
    kind = str(rng.choice(["same", "same", "size", "mtime", "rename", "longer_name", "added", "removed",
                           "swapped", "emptied"]))
    i = int(rng.integers(0, n)) if n else 0
    if kind == "size" and n:
        sizes[i] += 1
    elif kind == "mtime" and n:
        mtimes[i] += 1_000_000_000
    elif kind == "rename" and n:
        names[i] = names[i][:-1] + ("Z" if names[i][-1] != "Z" else "Y")
    elif kind == "longer_name" and n:
        names[i] += "0"
    elif kind == "added":
        names.append("new.dcm")
        sizes.append(10)
        mtimes.append(10)
    elif kind == "removed" and n:
        del names[i], sizes[i], mtimes[i]
    elif kind == "swapped" and n > 1:
        names[0], names[1] = names[1], names[0]
        sizes[0], sizes[1] = sizes[1], sizes[0]
        mtimes[0], mtimes[1] = mtimes[1], mtimes[0]
    elif kind == "emptied":
        names, sizes, mtimes = [], [], []
    return names, sizes, mtimes, kind


def _raw(rng: np.random.Generator, lst: DirListing) -> bytes:
    """The stored value: as encoded, sometimes with a failure, a missing file,
    the long folder path after it, truncated or not a listing at all."""
    n = len(lst)
    what = str(rng.choice(["plain"] * 6 + ["code", "missing", "path", "truncated", "garbage"]))
    if what == "code" and n:
        lst.code[int(rng.integers(0, n))] = records.CODE["not_dicom"]
    elif what == "missing" and n:
        lst.missing[int(rng.integers(0, n))] = True
    raw = lst.encode(b"/a/long/folder" if what == "path" else None)
    if what == "truncated" and len(raw) > 11:   # (cut inside its 11-byte head: see the edge cases)
        raw = raw[:int(rng.integers(11, len(raw)))]
    elif what == "garbage":
        raw = bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8))
    return raw


def _le(values: list[int]) -> bytes:
    return np.array(values, dtype="<i8").tobytes()


def _same(raw: bytes, names: list[str], sizes: list[int], mtimes: list[int]) -> bool:
    return records.listing_unchanged(raw, len(names), "\0".join(names).encode("utf-8", "surrogateescape"),
                                     _le(sizes), _le(mtimes))


@pytest.mark.parametrize("seed", range(8))
def test_byte_compare_says_what_the_decoding_compare_says(seed):
    rng = np.random.default_rng(seed)
    seen = []
    for _ in range(200):
        lst = _stored(rng, int(rng.integers(0, 9)))
        nm, sz, mt, kind = _walked(rng, lst)
        raw = _raw(rng, lst)
        want = DirListing.unchanged(raw, nm, sz, mt)
        assert _same(raw, nm, sz, mt) == want, (kind, raw)
        seen.append(want)
    assert any(seen) and not all(seen)


def test_byte_compare_edge_cases():
    empty = DirListing.empty().encode()
    one = DirListing(["a"], np.array([1]), np.array([2]), np.zeros((1, 16), np.uint8), np.zeros(1, np.int8),
                     np.zeros(1, bool)).encode()
    assert _same(empty, [], [], []) and not _same(one, [], [], []) and _same(one, ["a"], [1], [2])
    assert not _same(one, ["a"], [1], [3]) and not _same(one, ["b"], [1], [2]) and not _same(empty, ["a"], [1], [2])
    assert not _same(one[:-1], ["a"], [1], [2])      # cut short: changed
    assert not _same(b"", [], [], []) and not _same(b"XL1" + one[3:], ["a"], [1], [2])


# ---- rescans of a real tree ---------------------------------------------------------------------




def _change(root: Path) -> dict:
    """Every kind of change a rescan must notice; returns what to expect."""
    touched = root / "p0" / "s0" / "r0" / "IM00002"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))      # same size, new mtime
    added = dicomgen.write(root / "p1" / "s0" / "r1" / "NEW", patient_name="New^Patient", patient_id="N1",
                           study_uid="1.2.3.900", series_uid="1.2.3.900.1", sop_uid="1.2.3.900.1.1")
    (root / "p1" / "s1" / "r1" / "IM00003").unlink()                              # removed
    (root / "p0" / "s1" / "r1").rename(root / "p0" / "s1" / "moved")             # a moved folder
    (root / "p1" / "s0" / "r0" / "IM00001").rename(root / "p1" / "s0" / "r0" / "renamed")
    replaced = root / "p1" / "s1" / "r0" / "IM00002"                              # replaced by another file
    os.replace(dicomgen.write(root / "other", patient_name="Patient1^Test", patient_id="ID0001",
                              sop_uid="1.2.3.901.1", series_uid="1.2.3.901", study_uid="1.2.3.901.0",
                              rows=8, cols=8), replaced)
    os.mkfifo(root / "p0" / "s0" / "r1" / "pipe")
    os.symlink(root / "p0", root / "p1" / "s1" / "r0" / "loop")
    r1 = root / "p1" / "s0" / "r1"
    os.symlink(r1 / "ring_b", r1 / "ring_a")                                    # a loop of links: ELOOP
    os.symlink(r1 / "ring_a", r1 / "ring_b")
    (root / "junk").write_bytes(b"not a DICOM file")
    moved = [str(root / "p0" / "s1" / "moved" / f"IM0000{i}") for i in (1, 2, 3)]
    renamed = str(root / "p1" / "s0" / "r0" / "renamed")
    return {"parsed": {str(touched), str(added), str(replaced), str(root / "junk"), renamed, *moved},
            "missing": 1,
            "relinked": 4, "unsupported": {str(root / "p0" / "s0" / "r1" / "pipe"),
                                           str(root / "p1" / "s1" / "r0" / "loop"),
                                           str(r1 / "ring_a"), str(r1 / "ring_b")}}


@pytest.mark.parametrize("small, fd_from", [(1, foldercompare.FD_FROM), (5, 0)])
def test_rescan_notices_every_change_alike_however_it_lists(tmp_path, monkeypatch, small, fd_from):
    """(Archive a: yields every ``small`` unchanged files, lists every folder
    through a descriptor or none by one; archive b: as usual.)"""
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=3)
    parsed = count_parsed(monkeypatch)
    twin_archives(tmp_path)
    with pocketpacs.open_archive(tmp_path / "a") as a, pocketpacs.open_archive(tmp_path / "b") as b:
        assert a.import_folder(root).indexed == n and b.import_folder(root).indexed == n
        assert dump(a) == dump(b)
        want = _change(root)
        reps = []
        for ar, batch in ((a, small), (b, rescan.BATCH)):
            monkeypatch.setattr(rescan, "BATCH", batch)
            monkeypatch.setattr(foldercompare, "FD_FROM", fd_from if batch == small else 1 << 30)
            parsed.clear()
            rep = ar.import_folder(root)
            reps.append(report(rep))
            assert set(parsed) == want["parsed"]
            assert rep.missing == want["missing"] and rep.relinked == want["relinked"]
            assert {f.path for f in rep.failures if f.reason == "unsupported"} == want["unsupported"]
            assert {f.path for f in rep.failures if f.reason == "not_dicom"} == {str(root / "junk")}
        assert reps[0] == reps[1]
        assert dump(a) == dump(b)
        # and then nothing changed: nothing parsed, the known failures reported again
        for ar, batch in ((a, small), (b, rescan.BATCH)):
            monkeypatch.setattr(rescan, "BATCH", batch)
            monkeypatch.setattr(foldercompare, "FD_FROM", fd_from if batch == small else 1 << 30)
            parsed.clear()
            rep = ar.import_folder(root)
            assert parsed == [] and rep.parsed == 0 and rep.indexed == 0 and rep.unchanged == n
            assert {(f.path, f.reason) for f in rep.failures} == {
                (p, "unsupported") for p in want["unsupported"]} | {(str(root / "junk"), "not_dicom")}
        assert dump(a) == dump(b)


@pytest.mark.parametrize("fd_from", [0, 1 << 30])
def test_rescan_of_an_unchanged_tree_commits_nothing(tmp_path, monkeypatch, fd_from):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=3, studies=2, series=2, slices=4)
    monkeypatch.setattr(rescan, "BATCH", 7)   # several batches, split inside folders' runs
    monkeypatch.setattr(foldercompare, "FD_FROM", fd_from)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        ar.import_folder(root)
        before, records_before = txnid(ar), dump(ar)
        rep = ar.import_folder(root)
        assert (rep.seen, rep.unchanged, rep.parsed, rep.failed) == (n, n, 0, 0)
        assert txnid(ar) == before and dump(ar) == records_before


def _raw_of(ar, folder: Path) -> bytes:
    with ar._store.read() as t:
        return t.get("dirs", str(folder).encode())


def test_a_folder_listed_and_compared_with_its_listing(tmp_path):
    a, b = tmp_path / "d" / "a", tmp_path / "d" / "b"
    dicomgen.write_series(a, 3, series_uid="1.2.3.4")
    dicomgen.write_series(b, 2, series_uid="1.2.3.5")
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        ar.import_folder(tmp_path / "d")
        raw_a, raw_b = _raw_of(ar, a), _raw_of(ar, b)
    subs, n = foldercompare._listed_unchanged(str(tmp_path / "d"), raw_a)     # (a folder of folders)
    assert sorted(subs) == [str(a), str(b)] and n == -1
    assert foldercompare._listed_unchanged(str(a), raw_a) == ([], 3) and foldercompare._listed_unchanged(str(b), raw_b) == ([], 2)
    st = (b / "IM00002.dcm").stat()
    os.utime(b / "IM00002.dcm", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert foldercompare._listed_unchanged(str(b), raw_b) == ([], -1)


@pytest.mark.parametrize("fd_from", [0, 1 << 30])
def test_links_to_folders_and_odd_entries_take_the_careful_listing(tmp_path, monkeypatch, fd_from):
    monkeypatch.setattr(foldercompare, "FD_FROM", fd_from)   # listed through a descriptor, or by path
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "f").write_bytes(b"x")
    raw = DirListing(["f"], np.array([1]), np.array([(d / "f").stat().st_mtime_ns]), np.zeros((1, 16), np.uint8),
                     np.zeros(1, np.int8), np.zeros(1, bool)).encode()
    assert foldercompare._listed_unchanged(str(d), raw) == ([str(d / "sub")], 1)
    os.symlink(d / "sub", d / "link")
    assert foldercompare._listed_unchanged(str(d), raw) is None      # list_folder reports the link, not followed
    os.unlink(d / "link")
    os.symlink(d / "gone", d / "broken")
    assert foldercompare._listed_unchanged(str(d), raw) is None      # a file that cannot be stat()ed
    os.unlink(d / "broken")
    os.mkfifo(d / "pipe")
    files = [e for e in os.scandir(d) if e.name != "sub"]   # (in directory order, as a listing)
    sts = [e.stat() for e in files]
    raw = DirListing([e.name for e in files], np.array([st.st_size for st in sts]),
                     np.array([st.st_mtime_ns for st in sts]), np.zeros((2, 16), np.uint8), np.zeros(2, np.int8),
                     np.zeros(2, bool)).encode()
    assert foldercompare._listed_unchanged(str(d), raw) == ([str(d / "sub")], -1)   # a FIFO is never "unchanged"
    assert DirListing.unchanged(raw, [e.name for e in files], [st.st_size for st in sts],
                                [st.st_mtime_ns for st in sts])   # (only because it is a FIFO)
    assert foldercompare._listed_unchanged(str(tmp_path / "gone"), raw) is None
