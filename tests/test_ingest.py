"""Import: first import, rescans, touched/moved/deleted/duplicated/conflicting
files, junk, DICOMDIR hints, cancel, kill -9, permissions, and the corpus."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import dicomgen
from rescan_support import count_parsed
import pocketpacs
from pocketpacs.dicom import batch, headers


from pocketpacs.archive import header_values, ingest
@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=3)
    return root, n


@pytest.fixture
def ar(tmp_path):
    a = pocketpacs.open_archive(tmp_path / "archive")
    yield a
    a.close()


@pytest.fixture
def parse_count(monkeypatch):
    """Count the files handed to the (real) header parser."""
    return count_parsed(monkeypatch)


def snapshot(ar) -> list[tuple]:
    return sorted((r["sop_instance_uid"], r["series_instance_uid"], r["study_instance_uid"], r["patient_name"],
                   r["patient_id"], r["instance_number"], r["online"], tuple(sorted(r["paths"])))
                  for r in ar.iter_instances())


def test_first_import_indexes_everything(tree, ar):
    root, n = tree
    rep = ar.import_folder(root)
    assert (rep.indexed, rep.failed, rep.unchanged, rep.seen) == (n, 0, 0, n)
    st = ar.stats()
    assert (st["patients"], st["studies"], st["series"], st["instances"]) == (2, 4, 8, n)
    assert st["size"] == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    pa = ar.patients()[0]
    assert pa.name == "Patient0^Test" and pa.patient_id == "ID0000" and pa.n_studies == 2
    assert pa.n_instances == 12
    study = ar.studies(pa)[0]
    assert study.modalities == ("CT", "MR") and study.n_series == 2 and study.accession == "A00"
    series = ar.series(study)
    assert [s.number for s in series] == [1, 2]
    inst = ar.instances(series[0])
    assert [i.instance_number for i in inst] == [1, 2, 3]
    assert inst[0].values["ImagePositionPatient"] == [0.0, 0.0, 1.0]
    assert inst[0].transfer_syntax == "1.2.840.10008.1.2.1" and inst[0].online
    files = ar.series_files(series[0])
    assert [Path(f).name for f in files] == ["IM00001", "IM00002", "IM00003"]
    hdr = ar.header(inst[0])
    assert hdr["PatientName"] == "Patient0^Test" and hdr["Rows"] == 4
    assert ar.roots() == [str(root)]


def test_reimport_parses_nothing(tree, ar, parse_count):
    root, n = tree
    ar.import_folder(root)
    before = snapshot(ar)
    parse_count.clear()
    rep = ar.import_folder(root)
    assert parse_count == []
    assert (rep.unchanged, rep.indexed, rep.parsed) == (n, 0, 0)
    assert snapshot(ar) == before


def test_touched_file_is_reparsed(tree, ar, parse_count):
    root, n = tree
    ar.import_folder(root)
    f = root / "p0" / "s0" / "r0" / "IM00002"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    parse_count.clear()
    rep = ar.import_folder(root)
    assert parse_count == [str(f)]
    assert rep.unchanged == n and rep.indexed == 0 and rep.failed == 0
    # a content change in place updates the instance
    sop = "1.2.826.0.2.0.0.0.0.2"
    dicomgen.write(f, patient_name="Patient0^Test", patient_id="ID0000", birth_date="19500101",
                   study_uid="1.2.826.0.2.0.0.0", series_uid="1.2.826.0.2.0.0.0.0", sop_uid=sop,
                   instance_number=42, rows=8, cols=8)
    parse_count.clear()
    rep = ar.import_folder(root)
    assert parse_count == [str(f)] and rep.indexed == 1
    inst = ar.instance(sop)
    assert inst.instance_number == 42 and inst.size == f.stat().st_size
    assert ar.stats()["instances"] == n


def test_moved_folder_is_relinked(tree, ar, parse_count):
    root, n = tree
    ar.import_folder(root)
    old = root / "p1" / "s1"
    new = root / "moved" / "s1"
    new.parent.mkdir()
    old.rename(new)
    rep = ar.import_folder(root)
    assert rep.relinked == 6 and rep.indexed == 0 and rep.duplicate == 0
    assert ar.stats()["instances"] == n and ar.stats()["offline"] == 0
    for row in ar.iter_instances():
        assert all(os.path.exists(p) for p in row["paths"]) and len(row["paths"]) == 1 and row["online"]
    # nothing is left pointing at the old folder; the next import changes nothing
    parse_count.clear()
    rep = ar.import_folder(root)
    assert rep.unchanged == n and parse_count == [] and rep.missing == 0


def test_deleted_folder_goes_offline_and_comes_back(tree, ar, tmp_path):
    root, n = tree
    ar.import_folder(root)
    series_uid = "1.2.826.0.2.0.0.0.1"
    folder = root / "p0" / "s0" / "r1"
    hidden = tmp_path / "unplugged"
    folder.rename(hidden)
    rep = ar.verify()
    assert rep.went_offline == 3 and rep.offline == 3 and not rep.ok
    se = ar.get_series(series_uid)
    assert se.n_offline == 3 and not se.online
    assert ar.study(se.study_key).n_offline == 3
    assert ar.series_files(series_uid) == []
    # an import of the root also notices, and never deletes the records
    rep = ar.import_folder(root)
    assert ar.stats()["instances"] == n
    folder.parent.mkdir(exist_ok=True)
    hidden.rename(folder)
    rep = ar.verify()
    assert rep.came_online == 3 and rep.offline == 0 and rep.ok
    assert ar.get_series(series_uid).online
    assert len(ar.series_files(series_uid)) == 3


def test_deleted_folder_offline_through_import_then_back(tree, ar, tmp_path):
    root, n = tree
    ar.import_folder(root)
    folder = root / "p1"
    folder.rename(tmp_path / "away")
    rep = ar.import_folder(root)
    assert rep.missing == 12 and ar.stats()["offline"] == 12
    (tmp_path / "away").rename(folder)
    rep = ar.import_folder(root)
    assert rep.unchanged == n and rep.online_again == 12 and ar.stats()["offline"] == 0


def test_series_files_marks_offline_on_open(tree, ar):
    root, _ = tree
    ar.import_folder(root)
    f = root / "p0" / "s0" / "r0" / "IM00001"
    data = f.read_bytes()
    f.unlink()
    files = ar.series_files("1.2.826.0.2.0.0.0.0")
    assert len(files) == 2 and ar.get_series("1.2.826.0.2.0.0.0.0").n_offline == 1
    f.write_bytes(data)
    assert len(ar.series_files("1.2.826.0.2.0.0.0.0")) == 3
    assert ar.get_series("1.2.826.0.2.0.0.0.0").n_offline == 0


def test_duplicate_is_one_instance_with_two_locations(tree, ar, tmp_path):
    root, n = tree
    src = root / "p0" / "s0" / "r0" / "IM00001"
    (root / "copy").mkdir()
    shutil.copy2(src, root / "copy" / "same.dcm")
    rep = ar.import_folder(root)
    assert rep.indexed == n and rep.duplicate == 1
    inst = ar.instance("1.2.826.0.2.0.0.0.0.1")
    assert sorted(inst.paths) == sorted([str(src), str(root / "copy" / "same.dcm")])
    assert ar.stats()["instances"] == n
    assert ar.get_series("1.2.826.0.2.0.0.0.0").n_instances == 3


def test_conflict_is_flagged_not_overwritten(tree, ar):
    root, n = tree
    ar.import_folder(root)
    bad = root / "other" / "x.dcm"
    dicomgen.write(bad, patient_name="Someone^Else", sop_uid="1.2.826.0.2.0.0.0.0.1",
                   series_uid="9.9.9", study_uid="9.9", instance_number=7)
    rep = ar.import_folder(root)
    assert len(rep.conflicts) == 1 and rep.conflicts[0].path == str(bad)
    assert rep.to_json()["counts"]["conflict"] == 1
    inst = ar.instance("1.2.826.0.2.0.0.0.0.1")
    assert inst.conflict and inst.instance_number == 1 and str(bad) not in inst.paths
    assert ar.conflicts()[0]["path"] == str(bad)
    assert ar.stats()["instances"] == n
    rep = ar.import_folder(root)  # known conflict: reported again, not re-parsed
    assert len(rep.conflicts) == 1 and rep.parsed == 0


def test_junk_and_unreadable_files_are_reported(tree, ar, tmp_path):
    root, n = tree
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello, not an image")
    (junk / "empty.dcm").write_bytes(b"")
    good = (root / "p0" / "s0" / "r0" / "IM00001").read_bytes()
    (junk / "truncated.dcm").write_bytes(good[:400])
    os.mkfifo(junk / "pipe")
    os.symlink(junk, junk / "loop")                    # folder symlink: not followed
    os.symlink(junk / "nowhere", junk / "broken")       # broken link
    (junk / "vanish.dcm").write_bytes(good)
    if os.getuid() != 0:
        locked = junk / "locked.dcm"
        locked.write_bytes(good)
        locked.chmod(0)
    calls = []

    def progress(p):  # the first callback comes during the walk: delete a file already listed
        calls.append(p.phase)
        if (junk / "vanish.dcm").exists() and p.phase == "walk" and p.seen > 0:
            (junk / "vanish.dcm").unlink()

    rep = ar.import_folder(junk, progress=progress)
    reasons = {Path(f.path).name: f.reason for f in rep.failures}
    assert reasons["notes.txt"] == "not_dicom"
    assert reasons["empty.dcm"] == "truncated"
    assert reasons["truncated.dcm"] == "truncated"
    assert reasons["pipe"] == "unsupported"
    assert reasons["loop"] == "unsupported"
    assert reasons["broken"] == "vanished"
    assert reasons["vanish.dcm"] == "vanished"
    if os.getuid() != 0:
        assert reasons["locked.dcm"] == "permission_denied"
    for f in rep.failures:
        assert f.message.startswith(f.path) and f.reason in batch.FAILURE_REASONS or f.reason == "unsupported"
        assert "Patient" not in f.message
    assert calls[-1] == "done"
    assert ar.stats()["instances"] == 0
    # the import goes on around bad files
    rep = ar.import_folder(root)
    assert rep.indexed == n


def test_vanished_file_is_retried_later(tmp_path, ar, monkeypatch):
    root = tmp_path / "d"
    dicomgen.write_series(root, 2, series_uid="1.2.3.4")
    real = headers.parse_files
    victim = str(root / "IM00001.dcm")

    def flaky(paths, **kw):  # the file is gone at the moment it is read
        data = Path(victim).read_bytes()
        mtime = os.stat(victim).st_mtime_ns
        os.unlink(victim)
        try:
            return real(paths, **kw)
        finally:
            Path(victim).write_bytes(data)
            os.utime(victim, ns=(0, mtime))

    monkeypatch.setattr(headers, "parse_files", flaky)
    rep = ar.import_folder(root)
    assert [f.reason for f in rep.failures] == ["vanished"] and rep.indexed == 1
    monkeypatch.setattr(headers, "parse_files", real)
    rep = ar.import_folder(root)  # transient failures are retried even when unchanged
    assert rep.indexed == 1 and rep.failed == 0


def test_new_folders_are_listed_without_stat_and_sized_once_open(tmp_path):
    """A first import lists new folders without a stat per file; the sizes and
    times that fstat gives the reader are what the listing and the records keep
    (so a rescan finds every file unchanged), and files that are not regular or
    vanish are still reported with their reason."""
    from pocketpacs.archive.scan import list_folder

    root = tmp_path / "d"
    dicomgen.write_series(root, 4, series_uid="1.2.3.9")
    os.mkfifo(root / "pipe")
    os.symlink(root / "IM00001.dcm", root / "link.dcm")
    listed, _ = list_folder(str(root), stat=False)
    full, _ = list_folder(str(root), stat=True)
    assert sorted(listed.names) == sorted(full.names) == sorted(
        ["IM00001.dcm", "IM00002.dcm", "IM00003.dcm", "IM00004.dcm", "link.dcm"])
    by_name = dict(zip(listed.names, zip(listed.sizes, listed.mtimes)))
    assert by_name["link.dcm"] == (os.stat(root / "link.dcm").st_size,
                                   os.stat(root / "link.dcm").st_mtime_ns)  # links are stat()ed
    assert by_name["IM00002.dcm"] == (-1, -1)
    assert any(p.path.endswith("pipe") and p.reason == "unsupported" for p in listed.problems)

    # the reader: unknown sizes (-1) come back from fstat, equal to a stat
    paths = [str(root / n) for n in listed.names] + [str(root / "gone.dcm"), str(root / "pipe")]
    sizes = np.array(list(listed.sizes) + [-1, -1], dtype=np.int64)
    mt = np.array(list(listed.mtimes) + [-1, -1], dtype=np.int64)
    b = headers.parse_files(paths, sizes=sizes, mtimes_ns=mt)
    ref = headers.parse_files(paths)
    for i, p in enumerate(paths[:-2]):
        st = os.stat(p)
        assert (b.size[i], b.mtime_ns[i]) == (st.st_size, st.st_mtime_ns)
        assert b.status[i] == ref.status[i] >= 0
        assert b.text("SOPInstanceUID")[i] == ref.text("SOPInstanceUID")[i]
    assert b.reason[-2] == "vanished" and b.reason[-1] == "unsupported"
    assert b.size[-2] == b.size[-1] == 0

    with pocketpacs.open_archive(tmp_path / "a") as a:
        rep = a.import_folder(root)
        assert rep.indexed == 4 and rep.duplicate == 1            # link.dcm: a second location
        recs = {Path(p).name: r for r in a.iter_instances() for p in r["paths"]}
        assert len(recs) == 5
        rep = a.import_folder(root)
        assert rep.unchanged == 5 and rep.parsed == 0


def test_single_file_import(tree, ar):
    root, _ = tree
    f = root / "p0" / "s0" / "r0" / "IM00002"
    rep = ar.import_folder(f)
    assert rep.indexed == 1 and ar.stats()["instances"] == 1
    rep = ar.import_folder(root)
    assert rep.unchanged == 1 and rep.missing == 0


def test_anonymous_patients_are_not_merged(tmp_path, ar):
    root = tmp_path / "anon"
    dicomgen.write(root / "a.dcm", patient_name="", patient_id="", study_uid="1.1", series_uid="1.1.1",
                   sop_uid="1.1.1.1")
    dicomgen.write(root / "b.dcm", patient_name=None, patient_id=None, study_uid="1.2", series_uid="1.2.1",
                   sop_uid="1.2.1.1")
    ar.import_folder(root)
    pats = ar.patients()
    assert len(pats) == 2 and all(p.anonymous and p.display_name == "(no name)" for p in pats)


def test_blank_patient_ids_are_anonymous_and_never_merged(tmp_path, ar):
    """A Patient ID (or name) present but empty, spaces, NULs or other white
    space, with no name (or ID), is as absent: each such study is its own
    anonymous patient.  Before the fix two studies whose ID (or name) was
    only tabs were one patient."""
    root = tmp_path / "anon"
    blanks = [b"", b"  ", b"\0\0", b"\t\t", b"\t\t", b" \r\n "]
    for j, blank in enumerate(blanks):
        data = dicomgen.to_bytes(dicomgen.dataset(
            patient_name="", patient_id="PIDPLACE", study_uid=f"1.2.826.0.12.8.{j}",
            series_uid=f"1.2.826.0.12.8.{j}.1", sop_uid=f"1.2.826.0.12.8.{j}.1.1"))
        off = data.rindex(b"PIDPLACE")
        assert data[off - 4:off - 2] == b"LO"
        (root / f"{j}.dcm").parent.mkdir(exist_ok=True)
        (root / f"{j}.dcm").write_bytes(data[:off - 2] + len(blank).to_bytes(2, "little") + blank
                                        + data[off + 8:])
    for j, blank in enumerate([b"\t\t", b"\t\t"]):  # a name of white space only, no ID
        data = dicomgen.to_bytes(dicomgen.dataset(
            patient_name="NAMEPLAC", patient_id="", study_uid=f"1.2.826.0.12.10.{j}",
            series_uid=f"1.2.826.0.12.10.{j}.1", sop_uid=f"1.2.826.0.12.10.{j}.1.1"))
        off = data.rindex(b"NAMEPLAC")
        assert data[off - 4:off - 2] == b"PN"
        (root / f"name{j}.dcm").write_bytes(data[:off - 2] + len(blank).to_bytes(2, "little") + blank
                                            + data[off + 8:])
    blanks += [b"\t\t", b"\t\t"]
    dicomgen.write(root / "absent.dcm", patient_name=None, patient_id=None, study_uid="1.2.826.0.12.9",
                   series_uid="1.2.826.0.12.9.1", sop_uid="1.2.826.0.12.9.1.1")
    assert ar.import_folder(root).indexed == len(blanks) + 1
    pats = ar.patients()
    assert len(pats) == len(blanks) + 1 and all(p.n_studies == 1 for p in pats)
    assert all(p.anonymous and p.display_name == "(no name)" for p in pats)


def test_progress_reports_counts_and_eta(tmp_path, ar, monkeypatch):
    monkeypatch.setattr(ingest, "CHUNK", 10)
    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 0.0)
    root = tmp_path / "d"
    dicomgen.write_tree(root, patients=1, studies=1, series=3, slices=20)
    seen = []
    ar.import_folder(root, progress=lambda p: seen.append((p.phase, p.seen, p.parsed, p.total, p.eta_s,
                                                             p.files_per_s)))
    assert seen[-1][0] == "done" and seen[-1][2] == 60 and seen[-1][3] == 60
    assert any(s[0] == "import" and s[4] is not None for s in seen)
    assert [s[2] for s in seen] == sorted(s[2] for s in seen)


def test_cancel_leaves_a_consistent_archive(tmp_path, ar, monkeypatch):
    monkeypatch.setattr(ingest, "CHUNK", 10)
    root = tmp_path / "d"
    n = dicomgen.write_tree(root, patients=1, studies=2, series=2, slices=15)
    stop = threading.Event()
    parsed = []

    def progress(p):
        parsed.append(p.parsed)
        if p.parsed >= 20:
            stop.set()

    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 0.0)
    rep = ar.import_folder(root, progress=progress, cancel=stop)
    assert rep.cancelled and 0 < ar.stats()["instances"] < n
    assert ar.verify().problems == []
    rep = ar.import_folder(root)
    assert not rep.cancelled and ar.stats()["instances"] == n
    assert ar.verify().ok


def test_first_series_visible_to_a_reader_during_import(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "CHUNK", 10)
    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 0.0)
    root = tmp_path / "d"
    dicomgen.write_tree(root, patients=1, studies=1, series=4, slices=10)
    path = tmp_path / "archive"
    code = textwrap.dedent(f"""
        import pocketpacs, sys
        ar = pocketpacs.open_archive({str(path)!r}, readonly=True)
        print(ar.stats()["instances"])
    """)
    counts = []
    with pocketpacs.open_archive(path) as ar:
        def progress(p):
            if p.phase == "import" and p.parsed and len(counts) < 1:
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                counts.append(int(out.stdout))
        ar.import_folder(root, progress=progress)
    assert counts and 0 < counts[0] < 40


def test_dicomdir_hint_and_escaping_reference(tmp_path, ar):
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    media = tmp_path / "media"
    src = tmp_path / "src"
    paths = dicomgen.write_series(src, 3, series_uid="1.2.840.99.1",
                                  extra={"StudyID": "1", "StudyTime": "101500"})
    fs = FileSet()
    for p in paths:
        fs.add(dcmread(p))
    fs.write(media)
    ddir = dcmread(media / "DICOMDIR")
    recs = [r for r in ddir.DirectoryRecordSequence if "ReferencedFileID" in r]
    recs[0].ReferencedFileID = ["..", "..", "etc", "passwd"]
    ddir.save_as(media / "DICOMDIR")
    (media / "extra").mkdir()
    dicomgen.write(media / "extra" / "x.dcm", series_uid="1.2.840.99.2", sop_uid="1.2.840.99.2.1")
    rep = ar.import_folder(media)
    assert rep.dicomdir == {"referenced": 3, "found": 2, "missing": 0, "rejected": 1}
    assert any("outside" in f.message or "not a valid path" in f.message for f in rep.failures)
    assert ar.stats()["instances"] == 4      # the walk finds the rejected one's file and the extra
    assert not any("passwd" in p for r in ar.iter_instances() for p in r["paths"])


def test_archive_folder_is_never_imported(tmp_path):
    root = tmp_path / "home"
    dicomgen.write_series(root / "scans", 2, series_uid="1.2.5")
    with pocketpacs.open_archive(root / ".archive") as ar:
        rep = ar.import_folder(root)
        assert rep.indexed == 2 and rep.failed == 0


_KILL = textwrap.dedent("""
    import sys
    import pocketpacs
    from pocketpacs.archive import ingest
    ingest.CHUNK = 50
    ar = pocketpacs.open_archive(sys.argv[1])
    ar.import_folder(sys.argv[2])
""")


@pytest.mark.slow
def test_kill_9_during_import(tmp_path):
    root = tmp_path / "d"
    n = dicomgen.write_tree(root, patients=3, studies=2, series=3, slices=25)
    path = tmp_path / "archive"
    proc = subprocess.Popen([sys.executable, "-c", _KILL, str(path), str(root)])
    try:
        deadline = time.time() + 60
        seen = 0
        while time.time() < deadline:
            if (path / "data.mdb").exists():
                try:
                    with pocketpacs.open_archive(path, readonly=True) as ro:
                        seen = ro.stats()["instances"]
                except pocketpacs.ArchiveError:
                    seen = 0
                if seen >= 100:
                    break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < seen < n, "the kill must land in the middle of the import"
    with pocketpacs.open_archive(path) as ar:
        partial = ar.stats()["instances"]
        assert 0 < partial <= n
        assert ar.verify().problems == []
        ar.search(name="patient")  # indexes usable
        rep = ar.import_folder(root)
        assert rep.failed == 0 and ar.stats()["instances"] == n
        got = snapshot(ar)
        st = ar.stats()
    with pocketpacs.open_archive(tmp_path / "fresh") as ref:
        ref.import_folder(root)
        assert snapshot(ref) == got
        rs = ref.stats()
        for k in ("patients", "studies", "series", "instances", "size", "offline"):
            assert rs[k] == st[k], k


def test_corpus_import(corpus, tmp_path):
    rows = [json.loads(line) for line in (corpus / "HEADERS.jsonl").read_text().splitlines()]
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        rep = ar.import_folder(corpus)
        assert rep.seen >= len(rows)
        failed = {f.path: f.reason for f in rep.failures}
        truncated = 0
        conflicts = {c.path for c in rep.conflicts}
        study_of_series: dict[str, set] = {}
        for r in rows:
            if r.get("SeriesInstanceUID"):
                study_of_series.setdefault(r["SeriesInstanceUID"], set()).add(r.get("StudyInstanceUID"))
        checked = 0
        for r in rows:
            p = str(corpus / r["path"])
            if r.get("is_dicomdir") or not (r.get("SOPInstanceUID") and r.get("SeriesInstanceUID")
                                             and r.get("StudyInstanceUID")):
                continue
            if p in conflicts:
                continue
            if p in failed:  # only files that really are cut short may fail
                assert failed[p] == "truncated", (p, failed[p])
                truncated += 1
                continue
            inst = ar.instance(r["SOPInstanceUID"])
            assert p in inst.paths
            se = ar.get_series(inst.series_key)
            if se.uid == r["SeriesInstanceUID"] and len(study_of_series[se.uid]) == 1:
                assert ar.study(se.study_key).uid == r["StudyInstanceUID"]
                checked += 1
        assert checked > 300 and truncated <= 3
        assert ar.verify().problems == []
        rep2 = ar.import_folder(corpus)
        assert rep2.parsed == 0 and rep2.indexed == 0


def test_archive_permissions(tmp_path):
    with pocketpacs.open_archive(tmp_path / "a" / "b") as ar:
        ar.import_folder(tmp_path / "a" / "b")  # empty: still creates everything
    for p in (tmp_path / "a" / "b").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_synthetic_archive_matches_its_manifest(tmp_path):
    from pocketpacs import synth

    out = tmp_path / "synth"
    man = synth.generate(out, patients=3, studies=1, series=2, slices=4, rows=32, cols=32, seed=5,
                         enhanced=1, junk=6)
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        rep = ar.import_folder(out)
        st = ar.stats()
        assert st["patients"] == man["counts"]["patients"]
        assert st["studies"] == man["counts"]["studies"]
        assert st["series"] == man["counts"]["series"]
        assert st["instances"] == man["counts"]["dicom_files"]
        for s in man["series"]:
            se = ar.get_series(s["series_instance_uid"])
            assert se.n_instances == s["num_files"] and se.modality == s["modality"]
            assert se.number == s["series_number"]
            st_ = ar.study(se.study_key)
            assert st_.uid == s["study_instance_uid"]
            assert ar.patient(se.patient_key).patient_id == s["patient_id"]
            inst = ar.instances(se)
            assert [i.sop_instance_uid for i in inst] == s["sop_instance_uids"]
            assert all(i.transfer_syntax == s["transfer_syntax_uid"] for i in inst)
        names = {p["patient_id"]: p["patient_name"] for p in man["patients"]}
        for p in ar.patients():
            assert p.name == names[p.patient_id]  # charsets decoded (UTF-8, Latin-1, ISO 2022)
        # every junk file is reported with a reason; the manifest itself is not DICOM
        failed = {os.path.relpath(f.path, out): f.reason for f in rep.failures}
        for j in man["junk"]:
            assert j["path"] in failed, j
        assert failed.pop("manifest.json") == "not_dicom"
        assert len(failed) == len(man["junk"])
        assert ar.search(name=man["patients"][0]["patient_name"].split("^")[0]).n_studies >= 1


def test_representative_values_equal_the_parser_columns(corpus):
    """The per-series values decoded from raw bytes equal HeaderBatch.text."""
    rows = [json.loads(line) for line in (corpus / "HEADERS.jsonl").read_text().splitlines()]
    paths = [str(corpus / r["path"]) for r in rows if not r.get("is_dicomdir")]
    b = headers.parse_files(paths)
    kws = ("PatientName", "PatientID", "PatientBirthDate", "StudyDescription", "SeriesDescription",
           "Modality", "Manufacturer", "InstitutionName", "ReferringPhysicianName", "AccessionNumber",
           "StudyDate", "BodyPartExamined", "StationName", "ProtocolName")
    cols = {kw: b.text(kw) for kw in kws}
    checked = 0
    for i in range(b.n):
        if b.status[i] < 0:
            continue
        rv = header_values.FileHeaderValues(b, i)
        for kw in kws:
            assert rv.get(kw) == cols[kw][i], (paths[i], kw)
            checked += 1
    assert checked > 1000


def test_dicomdir_read_with_fileset(tmp_path):
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    from pocketpacs.dicom.dicomdir import read_dicomdir

    paths = dicomgen.write_series(tmp_path / "src", 3, series_uid="1.2.840.99.7", extra={"StudyID": "1"})
    fs = FileSet()
    for p in paths:
        fs.add(dcmread(p))
    fs.write(tmp_path / "cd")
    info = read_dicomdir(str(tmp_path / "cd"))
    assert info.reader == "fileset" and len(info.files) == 3 and info.rejected == 0
    assert read_dicomdir(str(tmp_path / "src")) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "DICOMDIR").write_bytes(b"garbage")
    info = read_dicomdir(str(tmp_path / "bad"))
    assert info.files == [] and info.problems and info.problems[0].reason == "malformed"


# ---- long paths (issue 13, finding 5) ----------------------------------------------------

def _long_folder(base: Path, length: int, fill: str = "d") -> Path:
    """A folder below ``base`` whose path is exactly ``length`` bytes long
    (components of at most 200 bytes, the first one not ASCII)."""
    d = os.path.join(str(base), "längere-pfade")
    while True:
        left = len(d.encode()) and length - len(d.encode())
        assert left >= 2
        if left <= 201:
            return Path(os.path.join(d, fill * (left - 1)))
        d = os.path.join(d, fill * min(200, left - 3))


@pytest.mark.parametrize("length", [600, 1000, 4000])
def test_long_folder_paths_import_and_everything_works(tmp_path, capsys, length):
    """Folders whose path is 600, 1,000 and 4,000 bytes long (longer than
    LMDB's 511-byte keys; each component under 255 bytes) are archived like
    any other: import, search, show, re-import (unchanged), a moved file
    (relinked), a vanished folder (missing), a conflict, verify, check,
    rebuild and rm all work, and the invariants hold (keys of long paths
    included).  Before the fix the import failed at once with exit 5, "the
    archive database could not be read (BadValsizeError): it may be damaged"."""
    from pocketpacs import cli
    from pocketpacs.archive import pathkeys

    def run(*argv):
        rc = cli.main([str(a) for a in argv])
        return (rc, *capsys.readouterr())

    root = tmp_path / "data"
    deep = _long_folder(root, length)
    deep2 = _long_folder(root, length, fill="e")
    assert len(os.fsencode(deep)) == len(os.fsencode(deep2)) == length
    files = dicomgen.write_series(deep, 3, series_uid="1.2.826.0.13.5.1", patient_name="Long^Path",
                                  patient_id="LP1", study_uid="1.2.826.0.13.5")
    other = dicomgen.write_series(deep2, 2, series_uid="1.2.826.0.13.5.2", patient_name="Long^Path",
                                  patient_id="LP1", study_uid="1.2.826.0.13.5")
    short = dicomgen.write_series(root / "short", 1, series_uid="1.2.826.0.13.6.1",
                                  patient_name="Short^Path", patient_id="SP1", study_uid="1.2.826.0.13.6")
    arch = tmp_path / "archive"
    A = ("--archive", arch)

    rc, out, err = run(*A, "import", "--json", "--no-progress", root)
    assert rc == 0 and "damaged" not in err, err
    assert json.loads(out)["counts"]["indexed"] == 6
    rc, out, _ = run(*A, "search", "--name", "long", "--json")
    found = json.loads(out)
    assert rc == 0 and found["counts"]["instances"] == 5 and len(found["results"]) == 1
    rc, out, _ = run(*A, "show", "--json")
    paths = {p for row in json.loads(out) for p in row["paths"]}
    assert rc == 0 and paths == {str(f) for f in files + other + short}
    rc, out, _ = run(*A, "import", "--json", "--no-progress", root)   # incremental: nothing to do
    counts = json.loads(out)["counts"]
    assert rc == 0 and (counts["unchanged"], counts["indexed"]) == (6, 0)

    # the listings of the long folders are keyed by a hash, with the path in the value
    with pocketpacs.open_archive(arch) as ar:
        with ar._store.read() as t:
            folders = {d: k for d, k in pathkeys.folders_under(t, str(root))}
            assert set(folders) == {str(deep), str(deep2), str(root / "short")}
            assert all(len(k) <= pathkeys.PATH_KEY_MAX for k in folders.values())
            assert pathkeys.is_hashed(folders[str(deep)]) and not pathkeys.is_hashed(folders[str(root / "short")])
            assert pathkeys.get_listing(t, str(deep)) is not None

        # a file moved from one long folder to the other is noticed (relinked)
        moved = deep2 / "moved.dcm"
        files[0].rename(moved)
        rep = ar.import_folder(root)
        assert (rep.relinked, rep.indexed, rep.missing) == (1, 0, 0)
        assert ar.instance("1.2.826.0.13.5.1.1").paths == (str(moved),)
        # a conflict in a long folder: same SOP UID, other content
        clash = dicomgen.write(deep2 / "clash.dcm", study_uid="1.2.826.0.13.5", series_uid="1.2.826.0.13.5.1",
                               patient_name="Long^Path", patient_id="LP1",
                               sop_uid="1.2.826.0.13.5.1.2", instance_number=2, rows=8, cols=8)
        rep = ar.import_folder(root)
        assert [c.path for c in rep.conflicts] == [str(clash)]
        assert [c["path"] for c in ar.conflicts()] == [str(clash)]
        assert ar.check() == []

        # a long folder that vanishes: its files are missing, their instances offline
        shutil.rmtree(deep)
        rep = ar.import_folder(root)
        assert rep.missing == 2
        assert ar.stats()["offline"] == 2      # its two remaining files
        v = ar.verify()
        assert v.problems == [] and v.offline == 2
        assert ar.check() == []

        # a long folder imported as a root of its own
        rep = ar.import_folder(deep2)
        assert rep.unchanged == 3 and rep.conflicts
        assert sorted(ar.roots()) == sorted([str(root), str(deep2)])
        assert ar.check() == []

    rc, out, err = run(*A, "check")
    assert rc == 0 and "invariants hold" in out, (out, err)
    rc, out, err = run(*A, "rebuild")
    assert rc in (0, 1) and "damaged" not in err, err
    with pocketpacs.open_archive(arch) as ar:
        # the files left: two of the second series, the moved one, the former conflict (its
        # rival is gone) and the short folder's
        assert ar.stats()["instances"] == 5 and ar.conflicts() == [] and ar.check() == []
        assert set(ar.roots()) == {str(root), str(deep2)}
    rc, out, err = run(*A, "rm", "--root", deep2)
    assert rc == 0, err
    with pocketpacs.open_archive(arch) as ar:
        assert ar.roots() == [str(root)]
        assert ar.stats()["instances"] == 1 and ar.check() == []   # only the short folder's file
    rc, out, err = run(*A, "check")
    assert rc == 0, (out, err)


def test_key_size_refusal_is_an_internal_error_not_damage(tmp_path, capsys, monkeypatch):
    """LMDB's refusal of a key size (``BadValsizeError``) is a bug of ours, never
    reported as a damaged archive: with the long-path keying switched off (the
    schema-2 keys, a path as its own key), the import of a 600-byte folder is
    refused by the real LMDB and reported as an internal error naming the path's
    length (exit 4, nothing written, ``check`` ok); a raw ``BadValsizeError``
    is an internal error in the app's protocol too.  Before the fix: exit 5,
    "it may be damaged"."""
    import lmdb
    import re

    from pocketpacs import cli
    from pocketpacs.archive import pathkeys
    from pocketpacs.ui import protocol

    def run(*argv):
        rc = cli.main([str(a) for a in argv])
        return (rc, *capsys.readouterr())

    root = tmp_path / "data"
    deep = _long_folder(root, 600)
    dicomgen.write_series(deep, 2, series_uid="1.2.826.0.13.5.9")
    A = ("--archive", tmp_path / "archive")
    monkeypatch.setattr(pathkeys, "PATH_KEY_MAX", 1 << 20)   # schema 2: every path its own key
    monkeypatch.setattr(pathkeys, "STEM", 1 << 20)
    rc, out, err = run(*A, "import", "--no-progress", root)
    assert rc == 4 and "may be damaged" not in err and "internal error" in err, err
    longest = re.search(r"longest path: ([\d,]+) bytes", err)
    assert longest and int(longest[1].replace(",", "")) == len(os.fsencode(deep / "IM00002.dcm"))
    env = lmdb.open(str(tmp_path / "raw"), max_dbs=1)
    try:
        with env.begin(write=True) as t:
            t.put(b"k" * 600, b"v")
    except lmdb.Error as e:
        raw_error = e
    env.close()
    assert type(raw_error).__name__ == "BadValsizeError"
    for exc in (raw_error, pathkeys.key_size_error(raw_error, [str(deep)])):
        assert protocol.envelope_for_exception(exc)["error"]["code"] == protocol.INTERNAL
    monkeypatch.undo()
    rc, out, err = run(*A, "check")
    assert rc == 0 and "invariants hold" in out, (out, err)
    with pocketpacs.open_archive(A[1]) as ar:
        assert ar.stats()["instances"] == 0                  # nothing of the refused chunk was written
        assert ar.import_folder(root).indexed == 2 and ar.check() == []


def test_long_patient_id_and_accession_are_indexed(tmp_path, capsys):
    """A PatientID and an AccessionNumber of 200 three-byte characters (a
    crafted file: 600 bytes, more than an LMDB key holds) are indexed cut at
    400 bytes and found, exactly and by prefix; before the fix the import
    stopped with exit 5, "it may be damaged"."""
    from pocketpacs import cli

    long_id = "患" * 200
    dicomgen.write(tmp_path / "data" / "a.dcm", patient_id=long_id, accession="者" * 200,
                   charset="ISO_IR 192")
    A = ("--archive", tmp_path / "archive")
    rc = cli.main([str(a) for a in (*A, "import", "--no-progress", tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 0 and "damaged" not in err, err
    with pocketpacs.open_archive(A[1]) as ar:
        assert ar.check() == []
        for filt in ({"patient_id": long_id}, {"patient_id": "患患*"}, {"accession": "者" * 200},
                     {"accession": "者*"}):
            assert len(ar.search(**filt)) == 1, filt
        assert len(ar.search(patient_id="患" * 100)) == 0


# ---- present but blank UIDs (issue 12) -------------------------------------------------------
_PLACEHOLDER = "1.2.826.0.12.99"  # 15 characters: padded with one NUL to 16
_BLANKS = {"empty": b"", "spaces": b"    ", "nul": b"\0\0", "whitespace": b" \t\r\n"}


def _blank_uid_file(path: Path, keyword: str, blank: bytes, **attrs) -> Path:
    """A file whose ``keyword`` is present with exactly the bytes ``blank``
    (pydicom would tidy spaces away or warn, so the value is patched in)."""
    data = dicomgen.to_bytes(dicomgen.dataset(extra={keyword: _PLACEHOLDER}, **attrs))
    value = _PLACEHOLDER.encode() + b"\0"
    off = data.rindex(value)  # the data set's element (pydicom copies a SOP UID into the file meta)
    assert data[off - 4:off - 2] == b"UI" and data[off - 8:off - 6] != b"\x02\x00"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:off - 2] + len(blank).to_bytes(2, "little") + blank + data[off + len(value):])
    return path


def _folder_with_blank_uids(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Three good files of one series, and files whose Series, Study or SOP
    Instance UID is present but blank; returns the good files and, per bad
    file name, the UID it lacks."""
    good = dicomgen.write_series(root, 3, series_uid="1.2.826.0.12.1.1", study_uid="1.2.826.0.12.1")
    bad: dict[str, str] = {}
    for j, (kind, blank) in enumerate(_BLANKS.items()):
        for kw in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID"):
            name = f"{kw[:-11].lower()}_{kind}.dcm"
            _blank_uid_file(root / name, kw, blank, sop_uid=f"1.2.826.0.12.2.{j}.{len(bad)}",
                            series_uid=f"1.2.826.0.12.2.{j}", study_uid="1.2.826.0.12.2",
                            instance_number=len(bad) + 1, z=float(len(bad)))
            bad[name] = kw
    return good, bad


def test_blank_uids_are_refused_with_a_reason(tmp_path, ar):
    """Files whose Series/Study/SOP Instance UID is present but empty, spaces,
    NULs or white space are refused like files without the UID (reason
    ``unsupported``, the message naming the file and the empty UID); nothing is
    archived under a blank UID and the good files around them are indexed.
    Before the fix they were archived under the hash of "" (one series of
    unrelated files)."""
    root = tmp_path / "mixed"
    good, bad = _folder_with_blank_uids(root)
    rep = ar.import_folder(root)
    failed = {Path(f.path).name: f for f in rep.failures}
    assert set(failed) == set(bad) and rep.indexed == len(good)
    for name, kw in bad.items():
        f = failed[name]
        assert f.reason == "unsupported"
        assert f.message == f"{root / name}: empty {kw} (not an archivable instance)"
    st = ar.stats()
    assert (st["patients"], st["studies"], st["series"], st["instances"]) == (1, 1, 1, 3)
    rows = list(ar.iter_instances())
    assert all(r[k].strip(" \0\t\r\n") for r in rows for k in
               ("sop_instance_uid", "series_instance_uid", "study_instance_uid"))
    assert sorted(p for r in rows for p in r["paths"]) == sorted(map(str, good))
    for uid in ("", " ", "\0"):
        with pytest.raises(KeyError):
            ar.get_series(uid)
    assert ar.verify().problems == []
    rep = ar.import_folder(root)  # unchanged: reported again with the same reason, not re-parsed
    assert {Path(f.path).name: f.reason for f in rep.failures} == dict.fromkeys(bad, "unsupported")
    assert rep.parsed == 0 and ar.stats()["instances"] == 3


def test_blank_uids_cli_import_json_and_check(tmp_path, capsys):
    """``import --json`` lists every file with a blank UID with its reason;
    ``check`` holds afterwards."""
    from pocketpacs import cli

    root = tmp_path / "mixed"
    good, bad = _folder_with_blank_uids(root)
    arch = tmp_path / "archive"
    cli.main(["--archive", str(arch), "import", "--json", "--no-progress", str(root)])
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["indexed"] == len(good) and out["counts"]["failed"] == len(bad)
    assert {Path(f["path"]).name: (f["reason"], f["message"].split(": ", 1)[1]) for f in out["failed"]} == {
        name: ("unsupported", f"empty {kw} (not an archivable instance)") for name, kw in bad.items()}
    rc = cli.main(["--archive", str(arch), "check", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["status"] == "ok", res


def test_missing_and_blank_uids_named_in_the_reason(tmp_path, ar):
    """A file lacking one UID and having another blank says both."""
    ds = dicomgen.dataset(sop_uid="1.2.826.0.12.3.1", extra={"StudyInstanceUID": _PLACEHOLDER})
    del ds.SeriesInstanceUID
    data = dicomgen.to_bytes(ds)
    off = data.rindex(_PLACEHOLDER.encode())
    (tmp_path / "in").mkdir()
    f = tmp_path / "in" / "x.dcm"
    f.write_bytes(data[:off - 2] + b"\0\0" + data[off + 16:])
    rep = ar.import_folder(tmp_path / "in")
    assert [(x.reason, x.message) for x in rep.failures] == [
        ("unsupported", f"{f}: no SeriesInstanceUID, empty StudyInstanceUID (not an archivable instance)")]


def test_blank_uid_hashes_to_zero_in_native_and_fallback_rows(tmp_path):
    """``HeaderBatch.uid_hash`` gives 0 for a blank UID, as for an absent one,
    from the native parser and from the pydicom fallback (a deflated file);
    before, a blank UID hashed like "" (never 0)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    files = []
    for kind, blank in _BLANKS.items():
        files.append(_blank_uid_file(tmp_path / f"{kind}.dcm", "SeriesInstanceUID", blank))
        data = files[-1].read_bytes()
        import pydicom
        ds = pydicom.dcmread(files[-1])
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(tmp_path / f"{kind}_deflated.dcm", enforce_file_format=True)
        files.append(tmp_path / f"{kind}_deflated.dcm")
        assert data != files[-1].read_bytes()
    files.append(dicomgen.write(tmp_path / "good.dcm", series_uid="1.2.826.0.12.4"))
    b = headers.parse_files([str(f) for f in files])
    assert b.n_fallback == len(_BLANKS) and b.n_failed == 0
    h = b.uid_hash("SeriesInstanceUID")
    assert h[:-1].tolist() == [0] * (len(files) - 1) and h[-1] != 0
    assert b.uid_blank("SeriesInstanceUID").tolist() == [True] * (len(files) - 1) + [False]
    assert b.uid_present("SeriesInstanceUID").all()
    assert b.uid_hash("SOPInstanceUID").all()


def test_media_session_refuses_blank_uids(tmp_path):
    """A no-trace media session (``open_media``) refuses them the same way."""
    root = tmp_path / "usb"
    good, bad = _folder_with_blank_uids(root)
    with pocketpacs.open_media(root) as ar:
        rep = ar.last_import
        assert {Path(f.path).name for f in rep.failures} == set(bad)
        assert ar.stats()["series"] == 1 and ar.stats()["instances"] == len(good)


def test_assemble_path_never_groups_files_without_a_series_uid(tmp_path, capsys):
    """``assemble_path`` and ``report PATH`` read each file with a blank (or
    absent) Series Instance UID on its own and say which file and why; the
    good series is assembled as before.  Before the fix all of them were one
    series of unrelated files."""
    from pocketpacs import cli

    root = tmp_path / "mixed"
    good = dicomgen.write_series(root, 3, series_uid="1.2.826.0.12.5.1")
    alone = {}
    for j, (kind, blank) in enumerate(_BLANKS.items()):
        f = _blank_uid_file(root / f"blank_{kind}.dcm", "SeriesInstanceUID", blank,
                            sop_uid=f"1.2.826.0.12.6.{j}", instance_number=j + 1, z=float(j))
        alone[str(f)] = "empty SeriesInstanceUID"
    ds = dicomgen.dataset(sop_uid="1.2.826.0.12.7.1", z=9.0)
    del ds.SeriesInstanceUID
    (root / "zz_absent.dcm").write_bytes(dicomgen.to_bytes(ds))
    alone[str(root / "zz_absent.dcm")] = "no SeriesInstanceUID"
    found = pocketpacs.assemble_path(root)
    assert len(found) == 1 + len(alone)
    whole = [sv for sv in found if sv.volumes[0].series_uid == "1.2.826.0.12.5.1"]
    assert len(whole) == 1 and whole[0].volumes[0].array.shape == (3, 4, 4)
    assert whole[0].report.n_files == len(good)
    assert not any("SeriesInstanceUID" in n for n in whole[0].report.notes)
    notes = {}
    for sv in found:
        if sv is whole[0]:
            continue
        assert sv.report.n_files == 1 and sv.volumes[0].array.shape == (1, 4, 4)
        (note,) = [n for n in sv.report.notes if "SeriesInstanceUID" in n]
        path, why, _ = note.split(": ")
        notes[path] = why
    assert notes == alone
    rc = cli.main(["report", str(root)])
    out = capsys.readouterr().out
    assert rc == 0 and sum(line.startswith("series ") for line in out.splitlines()) == 1 + len(alone)
    for path, why in alone.items():
        assert f"note: {path}: {why}: read on its own, not grouped with other files" in out
    # a single file with a blank UID still opens (there is nothing to merge it with)
    (sv,) = pocketpacs.assemble_path(root / "blank_spaces.dcm")
    assert sv.volumes[0].array.shape == (1, 4, 4)


def test_an_import_while_another_thread_is_importing_the_kernel_module(tmp_path, monkeypatch):
    """The app's warm-up thread imports the kernels (numba: a second or more) while
    the user loads a CD: an import meanwhile saw the kernel module half made (in
    ``sys.modules`` without its ``compile_seconds`` yet), failed with an internal
    error, and Load from CD/USB showed nothing.  Now it counts no compile time."""
    import sys
    import types

    from pocketpacs.dicom.headers import compile_seconds

    root = tmp_path / "usb"
    dicomgen.write_series(root, 3, series_uid="1.2.826.0.12.5.9")
    half = types.ModuleType("pocketpacs.native._jit")          # its body still running
    monkeypatch.setitem(sys.modules, "pocketpacs.native._jit", half)
    assert compile_seconds() == 0.0
    monkeypatch.undo()
    with pocketpacs.open_media(root) as ar:
        assert ar.stats()["instances"] == 3
