"""Cold disks and rescans (issue 16): file heads read with many reads in flight
when they are not in the page cache (``pocketpacs.archive.deepread``), the same
bytes and archives as reading one file at a time; the bulk folder listing equal
to the entry-by-entry one; a rescan of an unchanged tree writes nothing.

Files are taken out of the page cache one by one (``fsync`` then
``posix_fadvise(DONTNEED)``, no root needed): the kernel then says they are not
cached (``RWF_NOWAIT``), which is what switches the reader to its threads.
Where the file system cannot tell (tmpfs), the tests of the cold path skip.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path

import pytest

import dicomgen
import pocketpacs
from pocketpacs.archive import coldimport, deepread, dirstamps, ingest, scan
from pocketpacs.dicom import heads

HEAD = 4096


def _tree(root: Path) -> list[str]:
    """A small tree with the files an import meets: DICOM, junk, a FIFO, a
    broken link, a link to a file, a name that is not UTF-8."""
    dicomgen.write_tree(root, patients=2, studies=1, series=3, slices=6)
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "empty.dcm").write_bytes(b"")
    good = next(root.rglob("IM00001*")).read_bytes()
    (junk / "truncated.dcm").write_bytes(good[:300])
    (junk / "long.bin").write_bytes(os.urandom(3 * HEAD + 17))
    os.mkfifo(junk / "pipe")
    os.symlink(junk / "nowhere", junk / "broken")
    os.symlink(next(root.rglob("IM00002*")), junk / "link.dcm")
    dicomgen.write(root / "odd" / os.fsdecode(b"IM\xff\xfe.dcm"), series_uid="1.2.826.0.77.2",
                   sop_uid="1.2.826.0.77.2.1")
    return sorted(str(p) for p in root.rglob("*") if not p.is_dir())


def _evict(paths: list[str]) -> None:
    """Take the files' pages out of the page cache (written to disk first)."""
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if os.path.isfile(p):
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cold_or_skip(paths: list[str], where: Path) -> None:
    """Take ``paths`` out of the page cache, or skip where the kernel cannot
    say what is cached (asked of a file of its own: asking reads it in)."""
    probe = where / "probe.bin"
    probe.write_bytes(os.urandom(2 * HEAD))
    _evict([str(probe)])
    if deepread.cached(str(probe)) is not False:
        pytest.skip("this file system does not say whether a file is cached (RWF_NOWAIT): no cold path")
    # in one CI run no file had left after one fadvise: it is tried again, and the heads
    # are checked with mincore (a read, even RWF_NOWAIT, would start reading them in)
    files = [p for p in paths if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 0]
    for _ in range(5):
        _evict(paths)
        if not any(_resident(p) for p in files):
            return
        time.sleep(0.2)
    pytest.skip("the kernel kept the files in the page cache after fsync + POSIX_FADV_DONTNEED: no cold path")


def _resident(path: str) -> bool:
    """Whether the first page of `path` is in the page cache (mincore of a private
    mapping: mapping it reads nothing)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), min(HEAD, os.fstat(f.fileno()).st_size), flags=mmap.MAP_PRIVATE,
                                          prot=mmap.PROT_READ | mmap.PROT_WRITE) as m:
        anchor = ctypes.c_char.from_buffer(m)
        try:
            vec = ctypes.create_string_buffer(1)
            if libc.mincore(ctypes.addressof(anchor), len(m), vec) != 0:
                return False   # cannot tell: the readers' own check decides
            return bool(vec.raw[0] & 1)
        finally:
            del anchor


def _read(reader, paths, want_stat=True):
    view = memoryview(bytearray(len(paths) * HEAD))
    got, size, mtime = reader(paths, view, HEAD, want_stat)
    return got, size, mtime, bytes(view)


def test_cached_says_whether_a_head_is_in_the_page_cache(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(2 * HEAD))
    _evict([str(f)])
    if deepread.cached(str(f)) is None:
        pytest.skip("this file system does not say whether a file is cached (RWF_NOWAIT)")
    _evict([str(f)])
    assert deepread.cached(str(f)) is False
    f.read_bytes()
    assert deepread.cached(str(f)) is True
    assert deepread.cached(str(tmp_path / "gone")) is None


@pytest.mark.parametrize("want_stat", [True, False])
def test_heads_asked_for_together_equal_one_by_one_reads(tmp_path, want_stat):
    """``read_heads_ahead`` (every file of the block open and its head asked
    for before the first is read) gives what ``read_heads`` gives: bytes,
    sizes, times and codes, cached and not, a FIFO, a broken link and a
    vanished file among them; no descriptor is left open."""
    paths = _tree(tmp_path / "d") + [str(tmp_path / "d" / "gone.dcm")]
    expected = _read(heads.read_heads, paths, want_stat)
    assert _read(heads.read_heads_ahead, paths, want_stat) == expected
    _evict(paths)
    assert _read(heads.read_heads_ahead, paths, want_stat) == expected
    assert _open_under(tmp_path / "d") == []


def _open_under(root: Path) -> list[str]:
    """This process's descriptors open on a file under ``root`` (Linux; [] elsewhere)."""
    found = []
    if os.path.isdir("/proc/self/fd"):
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(root) + os.sep):
                found.append(target)
    return found


@pytest.mark.parametrize("want_stat", [True, False])
def test_cold_heads_are_read_by_threads_and_equal_one_by_one_reads(tmp_path, want_stat):
    paths = _tree(tmp_path / "d") + [str(tmp_path / "d" / "gone.dcm")]
    expected = _read(heads.read_heads, paths, want_stat)
    _cold_or_skip(paths, tmp_path)
    reader = deepread.DeepReader(heads, depth=8)
    cold = _read(reader.read, paths, want_stat)
    assert reader.deep_files > 0          # not cached: read by the threads
    assert cold == expected
    got = dict(zip(paths, cold[0]))
    assert got[str(tmp_path / "d" / "gone.dcm")] == heads.OPEN_FAILED
    assert got[str(tmp_path / "d" / "junk" / "broken")] == heads.OPEN_FAILED
    if want_stat:
        assert got[str(tmp_path / "d" / "junk" / "pipe")] == heads.NOT_REGULAR
    # now cached: read in the calling thread, nothing more by the threads
    deep = reader.deep_files
    assert _read(reader.read, paths, want_stat) == expected
    assert reader.deep_files == deep


def test_a_few_evicted_files_go_to_the_threads_alone(tmp_path):
    """A folder mostly in the page cache, a few of its files evicted (as the
    kernel does to a large folder read long ago): the calling thread reads the
    cached ones and only the misses go to the threads (before, every file after
    the first miss did: 32 threads on cached files, measured at 66 s of CPU for
    a million files); the bytes are those of one-by-one reads."""
    paths = _tree(tmp_path / "d")
    expected = _read(heads.read_heads, paths)
    regular = [p for p in paths if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 0]
    assert len(regular) >= 3 * deepread.DENSE[1]
    gone = regular[len(regular) // 2:len(regular) // 2 + 1] + regular[-1:]   # 2 of them, apart
    _cold_or_skip(gone, tmp_path)
    reader = deepread.DeepReader(heads, depth=8)
    assert _read(reader.read, paths) == expected
    assert reader.deep_files == len(gone)


def test_dense_misses_hand_the_rest_to_the_threads(tmp_path):
    """A cold folder: once the misses are dense the threads take every file
    left (the calling thread's open would wait for the disk too)."""
    paths = _tree(tmp_path / "d")
    expected = _read(heads.read_heads, paths)
    _cold_or_skip(paths, tmp_path)
    misses = [i for i, p in enumerate(paths)
              if os.path.isfile(p) and os.path.getsize(p) > 0 and not _resident(p)]
    n, every = deepread.DENSE
    assert len(misses) >= n and n * every >= misses[n - 1] + 1   # (dense at the n-th miss)
    reader = deepread.DeepReader(heads, depth=8)
    assert _read(reader.read, paths) == expected
    # the calling thread stops at the n-th miss: the misses so far and every later file are the threads'
    assert reader.deep_files == n + len(paths) - (misses[n - 1] + 1)


def test_one_thread_reads_everything_itself(tmp_path):
    paths = _tree(tmp_path / "d")
    expected = _read(heads.read_heads, paths)
    _evict(paths)
    reader = deepread.DeepReader(heads, depth=1)
    assert _read(reader.read, paths) == expected
    assert reader.deep_files == 0 and not reader.nowait


def _snapshot(ar) -> list[tuple]:
    return sorted((r["sop_instance_uid"], r["series_instance_uid"], r["patient_id"],
                   r["instance_number"], r["online"], tuple(sorted(r["paths"])))
                  for r in ar.iter_instances())


def _report(rep) -> tuple:
    return (rep.seen, rep.indexed, rep.unchanged, sorted((f.path, f.reason) for f in rep.failures))


def test_cold_import_equals_warm_import(tmp_path, monkeypatch):
    """A tree out of the page cache: the walk goes on with threads, the heads are
    read with many reads in flight; archive and report equal to a warm import."""
    root = tmp_path / "d"
    paths = _tree(root)
    # no folder stamp (its folders listed by every walk, as on an untrusted
    # file system): a folder whose stamp holds is not listed, so a rescan
    # would not go deep however slow this test runs (test_rescan_stamps has them)
    monkeypatch.setattr(dirstamps, "SETTLED_NS", 10 ** 18)
    with pocketpacs.open_archive(tmp_path / "warm") as ar:
        warm_rep = _report(ar.import_folder(root))
        warm = _snapshot(ar)
        warm_again = _report(ar.import_folder(root))
    _cold_or_skip(paths, tmp_path)
    deep_walks = []
    real_walk_deep = ingest.Importer._walk_deep

    def walk_deep(self, stack, exclude):
        deep_walks.append(len(stack))
        yield from real_walk_deep(self, stack, exclude)

    monkeypatch.setattr(ingest.Importer, "_walk_deep", walk_deep)
    read_here = []
    real_read_here = ingest.Importer._read_here

    def spy_read_here(self, chunk):
        read_here.append(len(chunk))
        return real_read_here(self, chunk)

    monkeypatch.setattr(ingest.Importer, "_read_here", spy_read_here)
    with pocketpacs.open_archive(tmp_path / "cold") as ar:
        rep = ar.import_folder(root)
        assert read_here   # no helper for a small import: read here, with reads in flight
        assert _report(rep) == warm_rep
        assert _snapshot(ar) == warm
        # and the rescan of the cold-imported tree finds every file unchanged
        again = ar.import_folder(root)
        assert again.parsed == 0 and _report(again) == warm_again
        assert len(deep_walks) == 1
        # a rescan on a cold disk: listed by threads too, nothing read again
        _evict(paths)
        again = ar.import_folder(root)
        assert again.parsed == 0 and _report(again) == warm_again
        assert len(deep_walks) == 2
        assert _snapshot(ar) == warm
    assert len(warm) == warm_rep[1] > 0


def test_bulk_listing_equals_entry_by_entry(tmp_path):
    root = tmp_path / "d"
    dicomgen.write_tree(root, patients=1, studies=1, series=2, slices=4)
    for d in [root] + [p for p in root.rglob("*") if p.is_dir()]:
        entries = list(os.scandir(d))
        for stat in (True, False):
            bulk, one = scan.Folder(str(d)), scan.Folder(str(d))
            subdirs = scan._bulk(bulk, entries, stat)
            assert subdirs is not None   # only folders and regular files here
            assert subdirs == scan._one_by_one(one, entries, stat)
            assert (bulk.names, bulk.sizes, bulk.mtimes) == (one.names, one.sizes, one.mtimes)
            assert bulk.problems == one.problems == []


def test_listing_with_links_and_fifos_reports_each(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.dcm").write_bytes(b"x" * 10)
    (d / "sub").mkdir()
    os.mkfifo(d / "pipe")
    os.symlink(d / "nowhere", d / "broken")
    os.symlink(d / "a.dcm", d / "link.dcm")
    os.symlink(d / "sub", d / "dirlink")
    for stat in (True, False):
        folder, subdirs = scan.list_folder(str(d), stat=stat)
        assert subdirs == [str(d / "sub")]
        assert sorted(folder.names) == ["a.dcm", "link.dcm"]
        reasons = sorted((Path(p.path).name, p.reason) for p in folder.problems)
        assert reasons == [("broken", "vanished"), ("dirlink", "unsupported"), ("pipe", "unsupported")]
        if stat:
            assert sorted(folder.sizes) == [10, 10]


def test_rescan_of_an_unchanged_tree_writes_nothing(tmp_path, monkeypatch):
    """Folders of folders (patient, study) have no listing: a rescan commits no
    transaction at all (each would cost a sync)."""
    monkeypatch.setattr(dirstamps, "SETTLED_NS", 10 ** 18)   # (no folder stamp to store: see test_rescan_stamps)
    root = tmp_path / "d"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=3)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        assert ar.import_folder(root).indexed == n
        env = ar._store.env
        before = env.info()["last_txnid"]
        rep = ar.import_folder(root)
        assert rep.unchanged == n and rep.parsed == 0 and rep.indexed == 0
        assert env.info()["last_txnid"] == before
        # a change is still seen
        victim = next(root.rglob("IM00001*"))
        os.utime(victim, ns=(0, 12345))
        rep = ar.import_folder(root)
        assert rep.parsed == 1 and rep.unchanged == n   # read again: the same instance
        assert env.info()["last_txnid"] > before


def test_cold_walk_takes_folders_in_the_order_of_the_warm_walk(tmp_path, monkeypatch):
    """Which file of a study commits first decides some of its record (the
    import is resumable in that order): a cold disk must not change it."""
    root = tmp_path / "d"
    paths = _tree(root)
    order: list[str] = []
    real_add = ingest.Importer._add_folder

    def add_folder(self, folder, *a, **k):
        if folder.names:   # (a folder of folders has nothing to commit: the warm walk hands none over)
            order.append(folder.path)
        return real_add(self, folder, *a, **k)

    monkeypatch.setattr(ingest.Importer, "_add_folder", add_folder)
    with pocketpacs.open_archive(tmp_path / "warm") as ar:
        ar.import_folder(root)
    warm, order[:] = list(order), []
    _cold_or_skip(paths, tmp_path)
    deep = []
    real_walk_deep = ingest.Importer._walk_deep

    def walk_deep(self, stack, exclude):
        deep.append(1)
        yield from real_walk_deep(self, stack, exclude)

    monkeypatch.setattr(ingest.Importer, "_walk_deep", walk_deep)
    with pocketpacs.open_archive(tmp_path / "cold") as ar:
        ar.import_folder(root)
    assert deep and order == warm and len(warm) > 5


# ---- the cold helper: heads read as the walk lists the files (coldreads.ColdReads) ----------------

@pytest.mark.parametrize("threads, block, crawlers", [(None, None, None), (1, 1, 1), (8, 3, 2)])
def test_cold_helper_reads_what_python_reads(tmp_path, monkeypatch, threads, block, crawlers):
    """The helper's heads are those read one by one in Python, whatever its
    threads reading and listing and the files each opens at a time."""
    from pocketpacs.archive import coldreads, readahead

    if not readahead.available():
        pytest.skip("the read-ahead helper is Linux-only")
    for name, v in (("COLD_THREADS", threads), ("COLD_BLOCK", block), ("COLD_CRAWLERS", crawlers)):
        if v is not None:
            monkeypatch.setattr(coldreads, name, v)
    paths = _tree(tmp_path / "d") + [str(tmp_path / "d" / "gone.dcm")]
    expected = _read(heads.read_heads, paths)
    _evict(paths)
    cap = 8
    cr = coldreads.ColdReads(heads.OPEN_FLAGS, HEAD, cap, 3)
    try:
        assert cr.crawl([str(tmp_path / "d")])
        got: list = []
        sizes: list = []
        mtimes: list = []
        data = b""
        # chunks of `cap` rows, each handed over in two parts (as two folders
        # would be); the slots are used again after the third chunk
        for tag, a in enumerate(range(0, len(paths), cap)):
            part = paths[a:a + cap]
            half = len(part) // 2
            assert cr.queue(tag, 0, part[:half]) if half else True
            assert cr.queue(tag, half, part[half:])
            h = cr.wait(tag, len(part))
            assert h is not None and cr.ready(tag, 0)
            got += h.got.tolist()
            sizes += h.size.tolist()
            mtimes += h.mtime_ns.tolist()
            data += bytes(h.buf)
        assert (got, sizes, mtimes) == expected[:3]
        for i, g in enumerate(got):   # (past what was read, a slot holds what it held before)
            a = i * HEAD
            assert data[a:a + max(g, 0)] == expected[3][a:a + max(g, 0)]
    finally:
        cr.close()
    assert not cr.broken


@pytest.fixture
def cold_helper(monkeypatch):
    """Small chunks, and the helper for every cold import however small."""
    monkeypatch.setattr(ingest, "CHUNK", 8)
    monkeypatch.setattr(coldimport, "COLD_AHEAD", 2)
    monkeypatch.setattr(coldimport, "COLD_START", 1)
    monkeypatch.setattr(coldimport, "COLD_SEND", 3)


def _spy(monkeypatch, cls, name):
    calls = []
    real = getattr(cls, name)

    def spy(self, *a, **k):
        calls.append(a)
        return real(self, *a, **k)

    monkeypatch.setattr(cls, name, spy)
    return calls


@pytest.mark.parametrize("kill", [False, True])
def test_cold_import_through_the_helper_equals_warm_import(tmp_path, monkeypatch, cold_helper, kill):
    """Files handed to the helper folder by folder, chunks committed while the
    walk goes on: the same archive, report and folder order as a warm import;
    a helper that dies changes nothing but speed (the rest is read here)."""
    from pocketpacs.archive import coldreads, readahead

    if not readahead.available():
        pytest.skip("the read-ahead helper is Linux-only")
    root = tmp_path / "d"
    paths = _tree(root)
    order: list[str] = []
    real_add = ingest.Importer._add_folder

    def add_folder(self, folder, *a, **k):
        order.append(folder.path)
        return real_add(self, folder, *a, **k)

    monkeypatch.setattr(ingest.Importer, "_add_folder", add_folder)
    with pocketpacs.open_archive(tmp_path / "warm") as ar:
        warm_rep = _report(ar.import_folder(root))
        warm = _snapshot(ar)
        warm_order, order[:] = list(order), []
        warm_again = _report(ar.import_folder(root))
        order[:] = []
    _cold_or_skip(paths, tmp_path)
    queued = _spy(monkeypatch, coldreads.ColdReads, "queue")
    waits = _spy(monkeypatch, coldreads.ColdReads, "wait")
    if kill:
        real_wait = coldreads.ColdReads.wait

        def killing(self, tag, n):
            if tag == 1:             # the helper dies with chunks in hand
                self._proc.kill()
                self._proc.wait()
            return real_wait(self, tag, n)

        monkeypatch.setattr(coldreads.ColdReads, "wait", killing)
    with pocketpacs.open_archive(tmp_path / "cold") as ar:
        rep = ar.import_folder(root)
        assert queued and (waits or kill)
        assert _report(rep) == warm_rep
        assert _snapshot(ar) == warm
        assert order == warm_order
        again = ar.import_folder(root)   # the listings hold the sizes and times fstat gave
        assert again.parsed == 0 and _report(again) == warm_again
    assert len(warm) == warm_rep[1] > 0


def test_new_root_is_recorded_in_the_first_commit(tmp_path):
    """A new root's record costs no commit of its own (a sync before the walk):
    it goes with the import's first commit; an import that commits nothing
    else (an empty folder) still records it, once."""
    root = tmp_path / "d"
    n = dicomgen.write_tree(root, patients=1, studies=1, series=1, slices=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        env = ar._store.env
        before = env.info()["last_txnid"]
        assert ar.import_folder(root).indexed == n
        assert env.info()["last_txnid"] == before + 1   # one commit: the files, their listing and the root
        assert ar.roots() == [str(root)]
        ar.import_folder(empty)
        assert sorted(ar.roots()) == sorted([str(root), str(empty)])
        txn = env.info()["last_txnid"]
        ar.import_folder(empty)   # known: nothing written
        assert env.info()["last_txnid"] == txn
