"""The import's read-ahead helper process (``pocketpacs.archive.readahead``): heads equal
to reading in process, archives identical with it on and off, a failing helper
changes nothing but speed."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import dicomgen
import pocketpacs
from pocketpacs.dicom import headers, heads

from pocketpacs.archive import deepread, ingest, readahead
pytestmark = pytest.mark.skipif(not readahead.available(), reason="read-ahead is Linux-only")


def _tree(root: Path) -> int:
    n = dicomgen.write_tree(root, patients=2, studies=2, series=3, slices=8)
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "empty.dcm").write_bytes(b"")
    good = next(root.rglob("IM00001")).read_bytes()
    (junk / "truncated.dcm").write_bytes(good[:300])
    os.mkfifo(junk / "pipe")
    os.symlink(junk / "nowhere", junk / "broken")
    # a name that is not UTF-8 (surrogate-escaped in Python, raw bytes for the helper)
    odd = root / "odd" / os.fsdecode(b"IM\xff\xfe.dcm")
    dicomgen.write(odd, series_uid="1.2.826.0.77.1", sop_uid="1.2.826.0.77.1.1")
    return n + 1


def _snapshot(ar) -> list[tuple]:
    return sorted((r["sop_instance_uid"], r["series_instance_uid"], r["patient_id"],
                   r["instance_number"], r["online"], tuple(sorted(r["paths"])))
                  for r in ar.iter_instances())


def test_helper_reads_what_python_reads(tmp_path):
    root = tmp_path / "d"
    _tree(root)
    files = sorted(str(p) for p in root.rglob("*") if not p.is_dir())
    files.append(str(root / "gone.dcm"))
    ra = readahead.ReadAhead(os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        for head in (4096, 512):          # the second chunk re-uses the other slot
            assert ra.submit(files, head)
            h = ra.collect()
            assert h is not None and h.got.shape == (len(files),)
            for i, p in enumerate(files):
                if p.endswith("gone.dcm") or p.endswith("broken"):
                    assert h.got[i] == heads.OPEN_FAILED
                    continue
                if p.endswith("pipe"):
                    assert h.got[i] == heads.NOT_REGULAR
                    continue
                st = os.stat(p)
                with open(p, "rb") as f:
                    data = f.read(head)
                assert h.got[i] == len(data)
                assert bytes(h.buf[i * head:i * head + len(data)]) == data
                assert (h.size[i], h.mtime_ns[i]) == (st.st_size, st.st_mtime_ns)
    finally:
        ra.close(wait=True)
    assert not ra.started


def test_parse_files_with_heads_equals_reading(tmp_path):
    root = tmp_path / "d"
    _tree(root)
    files = sorted(str(p) for p in root.rglob("*") if not p.is_dir() and p.name != "pipe")
    ra = readahead.ReadAhead(os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        assert ra.submit(files, 4096)
        h = ra.collect()
    finally:
        ra.close(wait=True)
    unknown = np.full(len(files), -1, dtype=np.int64)
    a = headers.parse_files(files, sizes=unknown.copy(), mtimes_ns=unknown.copy(), heads=h)
    b = headers.parse_files(files)
    assert list(a.status) == list(b.status)
    assert list(a.reason) == list(b.reason)
    assert np.array_equal(a.size, b.size) and np.array_equal(a.mtime_ns, b.mtime_ns)
    for kw in ("SOPInstanceUID", "PatientName", "SeriesInstanceUID"):
        assert a.text(kw) == b.text(kw)


def test_a_head_that_failed_for_the_moment_is_read_again_not_reported(tmp_path, monkeypatch):
    """A file whose batch read failed (too many files open at once, say) but
    that reads when read again alone is parsed, not reported: from a
    helper's heads and from the batch reader, sizes listed or not; a file
    that is really gone is still reported, with its reason."""
    root = tmp_path / "d"
    _tree(root)
    files = sorted(str(p) for p in root.rglob("IM*") if p.is_file())[:6] + [str(root / "gone.dcm")]
    want = headers.parse_files(files)
    assert list(want.reason)[-1] == "vanished" and set(want.status[:-1].tolist()) != {want.status[-1]}
    flaky = {files[1], files[4]}

    def read_heads_failing(paths, view, head, want_stat=True, flags=heads.OPEN_FLAGS):
        got, size, mtime = heads.read_heads(paths, view, head, want_stat, flags)
        for i, p in enumerate(paths):
            if p in flaky:
                got[i], size[i], mtime[i] = heads.OPEN_FAILED, 0, 0
        return got, size, mtime

    def same(b):
        assert list(b.status) == list(want.status) and list(b.reason) == list(want.reason)
        assert np.array_equal(b.size, want.size) and np.array_equal(b.mtime_ns, want.mtime_ns)
        assert b.text("SOPInstanceUID") == want.text("SOPInstanceUID")

    n, head = len(files), 4096
    buf = np.zeros(n * head, dtype=np.uint8)
    got, size, mtime = read_heads_failing(files, memoryview(buf), head)
    h = readahead.Heads(buf, head, np.asarray(got, dtype=np.int64), np.asarray(size, dtype=np.int64),
                        np.asarray(mtime, dtype=np.int64))
    unknown = np.full(n, -1, dtype=np.int64)
    same(headers.parse_files(files, sizes=unknown.copy(), mtimes_ns=unknown.copy(), heads=h))

    monkeypatch.setattr(headers, "read_heads", read_heads_failing)
    same(headers.parse_files(files, sizes=unknown.copy(), mtimes_ns=unknown.copy()))   # (listed without stat)
    listed = want.size.copy()
    same(headers.parse_files(files, sizes=listed, mtimes_ns=want.mtime_ns.copy()))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(ingest, "CHUNK", 16)
    monkeypatch.setattr(ingest, "READ_AHEAD_START", 1)


def _import(tmp_path, root, name, monkeypatch, on):
    monkeypatch.setattr(ingest, "READ_AHEAD", on)
    with pocketpacs.open_archive(tmp_path / name) as ar:
        rep = ar.import_folder(root)
        return rep, _snapshot(ar), sorted((Path(f.path).name, f.reason) for f in rep.failures)


def test_archive_is_the_same_with_and_without_the_helper(tmp_path, monkeypatch, small_chunks):
    root = tmp_path / "d"
    n = _tree(root)
    started = []
    real_start = readahead.ReadAhead.start

    def counting(self):
        started.append(1)
        return real_start(self)

    monkeypatch.setattr(readahead.ReadAhead, "start", counting)
    r_on, snap_on, fail_on = _import(tmp_path, root, "on", monkeypatch, True)
    assert started, "the helper was not used"
    r_off, snap_off, fail_off = _import(tmp_path, root, "off", monkeypatch, False)
    assert r_on.indexed == r_off.indexed == n
    assert snap_on == snap_off and fail_on == fail_off
    assert dict(fail_on) == {"notes.txt": "not_dicom", "empty.dcm": "truncated",
                             "truncated.dcm": "truncated", "pipe": "unsupported",
                             "broken": "vanished"}
    with pocketpacs.open_archive(tmp_path / "on") as ar:   # the listings hold real sizes
        rep = ar.import_folder(root)
        assert rep.parsed == 0 and rep.indexed == 0


def test_a_dying_helper_changes_nothing_but_speed(tmp_path, monkeypatch, small_chunks):
    root = tmp_path / "d"
    n = _tree(root)
    real_collect = readahead.ReadAhead.collect
    calls = []

    def killing(self):
        calls.append(1)
        if len(calls) == 2:             # the helper dies with a chunk in hand
            self._proc.kill()
            self._proc.wait()
        return real_collect(self)

    monkeypatch.setattr(readahead.ReadAhead, "collect", killing)
    r_on, snap_on, fail_on = _import(tmp_path, root, "on", monkeypatch, True)
    assert len(calls) == 2                # then it is off for the rest of the import
    monkeypatch.setattr(readahead.ReadAhead, "collect", real_collect)
    r_off, snap_off, fail_off = _import(tmp_path, root, "off", monkeypatch, False)
    assert r_on.indexed == r_off.indexed == n
    assert snap_on == snap_off and fail_on == fail_off


def test_no_helper_for_a_small_import_or_a_rescan(tmp_path, monkeypatch):
    root = tmp_path / "d"
    dicomgen.write_tree(root, patients=1, studies=1, series=1, slices=5)
    started = []
    monkeypatch.setattr(readahead.ReadAhead, "start", lambda self: started.append(1) or False)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(root).indexed == 5
        assert ar.import_folder(root).unchanged == 5
    assert started == []


def test_helper_is_a_plain_interpreter_with_no_files(tmp_path):
    """The helper starts with -S -I and imports nothing of PocketPACS but the
    standard-library-only file-head reader, loaded by its path; its shared
    memory is an anonymous memfd (nothing on any file system)."""
    ra = readahead.ReadAhead(os.O_RDONLY)
    try:
        assert ra.start()
        args = ra._proc.args
        assert args[0] == sys.executable and args[1:3] == ["-S", "-I"]
        assert "pocketpacs" not in args[4] and "numpy" not in args[4]
        assert args[-2:] == [heads.__file__, deepread.__file__]
        imported = {line.split()[1] for line in Path(heads.__file__).read_text().splitlines()
                    if line.startswith(("import ", "from "))}
        assert imported <= {"__future__", "os"}
        imported = {line.split()[1] for line in Path(deepread.__file__).read_text().splitlines()
                    if line.lstrip().startswith(("import ", "from "))}
        assert imported <= {"__future__", "os", "errno", "concurrent.futures"}
        link = os.readlink(f"/proc/self/fd/{ra._mfd}")
        assert link.startswith("/memfd:")
    finally:
        ra.close(wait=True)
