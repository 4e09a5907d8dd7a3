"""Folder stamps: a rescan that lists no folder whose entries cannot have changed (issue 16).

A folder's stored listing may keep the folder's stamp (device, inode,
modification and change times) and its subfolders
(:mod:`pocketpacs.archive.dirstamps`); a rescan then ``stat``-s the folder
and the files its listing names instead of listing it.  These tests check
that such a rescan notices every change exactly as a rescan that lists
every folder (same reports, same archive), that an unchanged tree is
neither listed nor written, that archives without stamps get them on their
next import, and that folders whose times are too recent, on a device of an
untrusted file system, with odd entries or too long a path keep none.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import dicomgen
from rescan_support import count_parsed, dump, report, twin_archives, txnid
import pocketpacs
from pocketpacs.archive import deepread, dirstamps, foldercompare, records, rescan

#: Settling margin of these tests: far above a file system clock's tick, far below their sleeps.
SETTLE_NS = 50_000_000


@pytest.fixture
def stamping(tmp_path, monkeypatch):
    """Stamps recorded for folders 50 ms old (the tests wait that long); the
    disk taken as warm (a walk that finds a file out of the page cache lists
    the rest as a cold disk, without stamps: test_deepread has it); skips
    where the test folder's file system keeps no trustworthy folder times."""
    if os.stat(tmp_path).st_dev not in dirstamps.trusted_devices():
        pytest.skip(f"{tmp_path} is not on a file system of dirstamps.TRUSTED_TYPES (or not Linux)")
    monkeypatch.setattr(dirstamps, "SETTLED_NS", SETTLE_NS)
    monkeypatch.setattr(deepread, "can_tell", lambda: False)


def _settle() -> None:
    time.sleep(3 * SETTLE_NS / 1e9)


def _sections(ar) -> dict[bytes, bytes | None]:
    with ar._store.read() as t:
        return {k: records.listing_section(v) for k, v in t.range("dirs")}





class _Listings:
    """Counts the folders a walk lists (by either listing function)."""

    def __init__(self, monkeypatch):
        self.listed: list[str] = []
        for mod, name in ((rescan, "_listed_unchanged"), (rescan, "list_folder"), (rescan, "_entries"),
                          (foldercompare, "_listed_unchanged"), (foldercompare, "_entries")):
            real = getattr(mod, name)

            def counting(path, *a, _real=real, **kw):
                self.listed.append(str(path))
                return _real(path, *a, **kw)

            monkeypatch.setattr(mod, name, counting)


def test_an_unchanged_stamped_tree_is_neither_listed_nor_written(tmp_path, stamping, monkeypatch):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=3)
    _settle()
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(root).indexed == n
        secs = _sections(ar)
        assert secs and all(s is not None for s in secs.values())   # every listing keeps its stamp
        before, records_before = txnid(ar), dump(ar)
        spy = _Listings(monkeypatch)
        rep = ar.import_folder(root)
        assert (rep.seen, rep.unchanged, rep.parsed, rep.failed) == (n, n, 0, 0)
        assert txnid(ar) == before and dump(ar) == records_before and _sections(ar) == secs
        # nothing listed: not the folders with files (stamped with their listings)
        # nor the root, patients and studies (stamped in one record of the
        # root, written by the import's commit)
        assert spy.listed == []
        with ar._store.read() as t:
            kept = dirstamps.decode_folders(t.get("meta", dirstamps.FOLDERS_KEY + os.fsencode(root)))
        assert sorted(kept) == sorted(os.fsencode(d) for d in [root, *root.glob("p?"), *root.glob("p?/s?")])


def _change(root: Path) -> dict:
    """Every kind of change a rescan must notice; returns what to expect."""
    touched = root / "p0" / "s0" / "r0" / "IM00002"      # rewritten in place: its folder keeps its times
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
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
    sub = root / "p0" / "s0" / "r1" / "deeper"                                    # a new subfolder of a series
    dicomgen.write(sub / "IMX", patient_name="Sub^Folder", patient_id="S1", study_uid="1.2.3.902",
                   series_uid="1.2.3.902.1", sop_uid="1.2.3.902.1.1")
    (root / "junk").write_bytes(b"not a DICOM file")
    # a new patient folder in the root, a new study in a patient (folders of folders)
    newp = dicomgen.write(root / "p2" / "s0" / "r0" / "IMP", patient_name="Other^Patient", patient_id="P2",
                          study_uid="1.2.3.903", series_uid="1.2.3.903.1", sop_uid="1.2.3.903.1.1")
    news = dicomgen.write(root / "p1" / "s9" / "r0" / "IMS", patient_name="Patient1^Test", patient_id="ID0001",
                          study_uid="1.2.3.904", series_uid="1.2.3.904.1", sop_uid="1.2.3.904.1.1")
    moved = [str(root / "p0" / "s1" / "moved" / f"IM0000{i}") for i in (1, 2, 3)]
    renamed = str(root / "p1" / "s0" / "r0" / "renamed")
    return {"parsed": {str(touched), str(added), str(replaced), str(root / "junk"), renamed, str(sub / "IMX"),
                       str(newp), str(news), *moved},
            "unsupported": {str(root / "p0" / "s0" / "r1" / "pipe"), str(root / "p1" / "s1" / "r0" / "loop")}}


@pytest.mark.parametrize("run_files", [1, 7, 256])
def test_a_stamped_rescan_notices_every_change_as_a_listing_one(tmp_path, stamping, monkeypatch, run_files):
    """Archive a keeps stamps, archive b (no trusted device) lists every folder:
    the same files parsed, the same reports, the same archive (runs of
    stamped folders compared at once, of every length: a run with a change
    is compared folder by folder)."""
    monkeypatch.setattr(rescan, "RUN_FILES", run_files)
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=3)
    _settle()
    parsed = count_parsed(monkeypatch)
    twin_archives(tmp_path)
    trusted = dirstamps.TRUSTED_TYPES

    def importing(ar, stamped: bool):
        monkeypatch.setattr(dirstamps, "TRUSTED_TYPES", trusted if stamped else frozenset())
        parsed.clear()
        return ar.import_folder(root)

    with pocketpacs.open_archive(tmp_path / "a") as a, pocketpacs.open_archive(tmp_path / "b") as b:
        assert importing(a, True).indexed == n and importing(b, False).indexed == n
        assert all(s is not None for s in _sections(a).values()) and not any(_sections(b).values())
        assert dump(a) == dump(b)
        want = _change(root)
        reps = []
        for ar, stamped in ((a, True), (b, False)):
            rep = importing(ar, stamped)
            reps.append(report(rep))
            assert set(parsed) == want["parsed"]
            assert rep.missing == 1 and rep.relinked == 4
            assert {f.path for f in rep.failures if f.reason == "unsupported"} == want["unsupported"]
        assert reps[0] == reps[1]
        assert dump(a) == dump(b)
        # and then nothing changed: nothing parsed, the known failures reported again
        _settle()
        for ar, stamped in ((a, True), (b, False)):
            rep = importing(ar, stamped)
            assert parsed == [] and rep.parsed == 0 and rep.indexed == 0 and rep.unchanged == n + 3
            assert {(f.path, f.reason) for f in rep.failures} == {
                (p, "unsupported") for p in want["unsupported"]} | {(str(root / "junk"), "not_dicom")}
        assert dump(a) == dump(b)
        # a folder with a FIFO or a link to a folder keeps no stamp that holds
        # (it is listed by every rescan); the others keep theirs...
        secs = {k.decode(): s for k, s in _sections(a).items()}
        odd = {os.path.dirname(p) for p in want["unsupported"]}
        assert all(secs[d] is None or secs[d][:32] != dirstamps.stamp_of(os.stat(d)) for d in odd)
        held = {d for d, s in secs.items() if s is not None and s[:32] == dirstamps.stamp_of(os.stat(d))}
        # (nor does the folder whose listing keeps its removed file as
        # missing: it is listed as before)
        gone = str(root / "p1" / "s1" / "r1")
        assert set(secs) - held == odd | {gone}, sorted(set(secs) - held)


def test_an_archive_without_stamps_gets_them_on_its_next_import(tmp_path, stamping):
    """(An archive of an older version: listings without a stamp section.)"""
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=1, studies=2, series=2, slices=2)
    _settle()
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        ar.import_folder(root)
        stamped = _sections(ar)

        def strip(t) -> None:
            for k, v in list(t.range("dirs")):
                t.put("dirs", k, records.listing_without_section(v))

        ar._store.write(strip)
        assert not any(_sections(ar).values())
        before = txnid(ar)
        rep = ar.import_folder(root)
        assert (rep.unchanged, rep.parsed) == (n, 0)
        assert txnid(ar) == before + 1 and _sections(ar) == stamped   # one commit fills them
        rep = ar.import_folder(root)
        assert (rep.unchanged, rep.parsed) == (n, 0) and txnid(ar) == before + 1


@pytest.mark.parametrize("why", ["recent", "untrusted"])
def test_no_stamp_for_recent_folders_or_untrusted_devices(tmp_path, monkeypatch, why):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=1, studies=1, series=2, slices=2)
    if why == "recent":
        monkeypatch.setattr(dirstamps, "SETTLED_NS", 10 ** 18)   # (no folder is ever old enough)
    else:
        monkeypatch.setattr(dirstamps, "TRUSTED_TYPES", frozenset())
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(root).indexed == n
        assert not any(_sections(ar).values())
        before = txnid(ar)
        assert ar.import_folder(root).unchanged == n
        assert txnid(ar) == before and not any(_sections(ar).values())


def test_no_stamp_after_a_listing_with_a_stored_path(tmp_path, stamping):
    """A folder whose path is longer than a key stores its path after its
    listing: it keeps no stamp, and is listed by every rescan."""
    deep = tmp_path / "data" / ("x" * 200) / ("y" * 200)
    dicomgen.write_series(deep, 2, series_uid="1.2.3.4")
    _settle()
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(tmp_path / "data").indexed == 2
        with ar._store.read() as t:
            vals = [v for _k, v in t.range("dirs")]
        assert len(vals) == 1 and records.listing_section(vals[0]) is None
        assert records.DirListing.folder_of(vals[0]) == os.fsencode(deep)
        assert ar.import_folder(tmp_path / "data").unchanged == 2


def test_the_stamp_section_is_ignored_by_the_listing_readers():
    lst = records.DirListing(["a", "b"], np.array([5, 6]), np.array([5, 6]), np.zeros((2, 16), "u1"),
                             np.zeros(2, "i1"), np.zeros(2, bool))
    raw = lst.encode()
    st = os.stat(".")
    sec = dirstamps.section(st, ["sub", "é\udcff"])
    stamped = records.listing_with_section(raw, sec)
    assert records.listing_section(stamped) == sec and records.listing_section(raw) is None
    assert records.listing_without_section(stamped) == raw
    assert records.listing_with_section(stamped, sec) == stamped            # (replaced, not added)
    back = records.DirListing.decode(stamped)
    assert back.names == lst.names and back.size.tolist() == [5, 6]
    assert records.DirListing.folder_of(stamped) is None
    assert records.DirListing.unchanged(stamped, ["a", "b"], [5, 6], [5, 6])
    le = np.array([5, 6], "<i8").tobytes()
    assert records.listing_unchanged(stamped, 2, b"a\0b", le, le)
    with pytest.raises(ValueError):
        records.listing_with_section(lst.encode(b"/a/long/folder"), sec)


def test_trusted_devices_are_those_of_trusted_file_systems():
    if not os.path.exists("/proc/self/mountinfo"):
        pytest.skip("no /proc/self/mountinfo (not Linux)")
    devs = dirstamps.trusted_devices()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        major, minor = head.split()[2].split(":")
        dev = os.makedev(int(major), int(minor))
        if tail.split()[0] in dirstamps.TRUSTED_TYPES:
            assert dev in devs


def test_a_stamped_folder_with_known_failures_is_not_listed_and_reports_them(tmp_path, stamping, monkeypatch):
    """A folder holding a file that is not DICOM keeps its stamp: a rescan
    reports the failure again without listing the folder (a file that may
    pass on a second try, as one unreadable, still has its folder listed)."""
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=1, studies=1, series=2, slices=3)
    junk = next(p for p in root.rglob("IM00001*")).parent / "notes.txt"
    junk.write_text("not an image")
    _settle()
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        first = ar.import_folder(root)
        assert first.indexed == n and {(f.path, f.reason) for f in first.failures} == {(str(junk), "not_dicom")}
        assert _sections(ar)[os.fsencode(junk.parent)] is not None
        before, records_before = txnid(ar), dump(ar)
        spy = _Listings(monkeypatch)
        rep = ar.import_folder(root)
        # (seen, indexed, unchanged, relinked, duplicate, missing, online_again, parsed, failed)
        assert report(rep) == ((n + 1, 0, n, 0, 0, 0, 0, 0, 1), [(str(junk), "not_dicom")], [])
        assert str(junk.parent) not in spy.listed
        assert txnid(ar) == before and dump(ar) == records_before


def test_a_first_import_lists_each_folder_once(tmp_path, stamping, monkeypatch):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=2)
    _settle()
    spy = _Listings(monkeypatch)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(root).indexed == n
    folders = [str(root), *(str(p) for p in root.rglob("*") if p.is_dir())]
    assert sorted(spy.listed) == sorted(folders)
