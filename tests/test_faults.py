"""Archive and files under faults (issue 7): kill -9 at several points of an
import, files that change or misbehave between the scan and the read,
unreadable folders and files (as a process without root's file-permission
override), symbolic link loops, FIFOs and devices, names that are not
UTF-8, 4 GB sparse files, a full disk, two processes on one archive, a
read-only archive folder, and a damaged database file.

The long version of the kill test is ``benchmarks/kill_import.py``."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dicomgen
import pocketpacs
from pocketpacs import cli
from pocketpacs.dicom import headers
from pocketpacs.errors import ArchiveDamaged
from pocketpacs.archive.datafile import OPEN_MARK, check_data_file
from pocketpacs.archive import records
from pocketpacs.archive.integrity import deep_check, load_roots, record_dump

SETPRIV = shutil.which("setpriv")
#: run a child as root *without* the capabilities that bypass file permissions
#: (CI runs as root: root reads a mode-000 file; this child does not)
NO_DAC = [SETPRIV or "setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory):
    """A command prefix whose children obey file permissions (skips when impossible)."""
    if os.getuid() != 0:
        return []
    if SETPRIV is None:
        pytest.skip("running as root and setpriv is not installed: cannot drop the permission override")
    f = tmp_path_factory.mktemp("priv") / "f"
    f.write_text("x")
    f.chmod(0)
    r = subprocess.run(NO_DAC + [sys.executable, "-c", f"open({str(f)!r}).read()"], capture_output=True)
    if r.returncode == 0 or b"PermissionError" not in r.stderr:
        pytest.skip("cannot drop root's file-permission override here (setpriv refused)")
    return NO_DAC


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def dump(path) -> dict:
    with pocketpacs.open_archive(path, readonly=True) as ar:
        with ar._store.read() as t:
            return record_dump(t)


# ---- kill -9 --------------------------------------------------------------------------------

_SLOW_IMPORT = r"""
import sys, time
import pocketpacs
from pocketpacs.archive import commit, ingest
ingest.CHUNK = 15
ingest.COMMIT_CHUNKS = 2  # commits of 15 then 30 files: the last round still lands mid-import
real = commit.commit_chunk
def slow(*a, **k):  # time spent inside the write transaction: kills land there
    out = real(*a, **k)
    time.sleep(0.08)
    return out
commit.commit_chunk = slow
with pocketpacs.open_archive(sys.argv[1]) as ar:
    ar.import_folder(sys.argv[2])
"""


@pytest.mark.slow
def test_kill_9_at_several_points_keeps_invariants_and_converges(tmp_path):
    root = tmp_path / "d"
    n = dicomgen.write_tree(root, patients=3, studies=2, series=3, slices=10)
    ref = tmp_path / "ref"
    with pocketpacs.open_archive(ref) as ar:
        ar.import_folder(root)
    secret = (ref / "secret.key").read_bytes()
    path = tmp_path / "archive"
    path.mkdir(mode=0o700)
    (path / "secret.key").write_bytes(secret)  # same patient keys as the reference
    rng = random.Random(7)
    landed = []
    for target in (20, 70, 130):
        proc = subprocess.Popen([sys.executable, "-c", _SLOW_IMPORT, str(path), str(root)])
        try:
            deadline = time.time() + 120
            seen = 0
            while time.time() < deadline and proc.poll() is None:
                if (path / "data.mdb").exists():
                    try:
                        with pocketpacs.open_archive(path, readonly=True) as ro:
                            seen = ro.stats()["instances"]
                    except pocketpacs.ArchiveError:
                        seen = 0
                    if seen >= target:
                        time.sleep(rng.uniform(0, 0.08))
                        break
                time.sleep(0.003)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the import must still run when it is killed"
        assert (path / OPEN_MARK).exists()  # the next open knows it was not closed cleanly
        dc = deep_check(path)
        assert dc.status == "ok", dc.message
        with pocketpacs.open_archive(path) as ar:
            assert ar.check() == []
            st = ar.stats()
            with ar._store.read() as t:
                for db in ("patients", "studies", "series", "instances"):
                    assert st[db] == sum(1 for _ in t.range(db)), db
            landed.append(st["instances"])
        assert not (path / OPEN_MARK).exists()
    assert landed == sorted(landed) and 0 < landed[0] and landed[-1] < n, landed
    with pocketpacs.open_archive(path) as ar:
        rep = ar.import_folder(root)
        assert rep.failed == 0 and ar.check() == []
    assert dump(path) == dump(ref)


# ---- files that change or misbehave between the scan and the read ----------------------------

def _import_guarded(ar, root, **kw):
    """Run an import in a thread; a blocked open would leave it running."""
    out: dict = {}

    def work():
        try:
            out["rep"] = ar.import_folder(root, **kw)
        except BaseException as e:
            out["err"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "the import blocked"
    if "err" in out:
        raise out["err"]
    return out["rep"]


def test_files_truncated_replaced_or_deleted_between_scan_and_read(tmp_path, monkeypatch):
    root = tmp_path / "d"
    files = dicomgen.write_series(root, 6, series_uid="1.2.3.9")
    good = files[0].read_bytes()
    real = headers.parse_files
    victims = {"short": files[1], "empty": files[2], "fifo": files[3], "gone": files[4]}

    def meddle(paths, **kw):
        victims["short"].write_bytes(good[:300])
        victims["empty"].write_bytes(b"")
        victims["fifo"].unlink()
        os.mkfifo(victims["fifo"])          # a regular file became a FIFO: must not block
        victims["gone"].unlink()
        return real(paths, **kw)

    monkeypatch.setattr(headers, "parse_files", meddle)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        rep = _import_guarded(ar, root)
        reasons = {Path(f.path).name: f.reason for f in rep.failures}
        assert reasons == {victims["short"].name: "truncated", victims["empty"].name: "truncated",
                           victims["fifo"].name: "unsupported", victims["gone"].name: "vanished"}
        for f in rep.failures:
            assert f.message.startswith(f.path) and "Doe" not in f.message
        assert rep.indexed == 2 and ar.check() == []
        # the files come back whole: the next import takes them
        monkeypatch.setattr(headers, "parse_files", real)
        victims["fifo"].unlink()
        for i, p in enumerate(files[1:5], 2):
            dicomgen.write(p, series_uid="1.2.3.9", sop_uid=f"1.2.3.9.{i}", instance_number=i, z=float(i))
        rep = _import_guarded(ar, root)
        assert rep.failed == 0 and ar.stats()["instances"] == 6 and ar.check() == []


def test_symlink_loops_fifos_and_devices_are_reported_not_opened(tmp_path):
    root = tmp_path / "d"
    dicomgen.write_series(root, 2, series_uid="1.2.3.8")
    os.symlink(root / "a", root / "b")
    os.symlink(root / "b", root / "a")                  # file symlink loop: ELOOP
    os.symlink(root, root / "up")                       # folder loop: not followed
    os.mkfifo(root / "pipe")
    os.symlink("/dev/zero", root / "zero")              # a device behind a link
    dev = root / "null"
    try:
        os.mknod(dev, 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 3))
    except OSError:
        os.symlink("/dev/null", dev)
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        rep = _import_guarded(ar, root)
        reasons = {Path(f.path).name: (f.reason, f.message) for f in rep.failures}
        assert reasons["a"][0] == reasons["b"][0] == "unsupported" and "loop" in reasons["a"][1]
        assert reasons["up"][0] == "unsupported" and "not followed" in reasons["up"][1]
        assert reasons["pipe"] == ("unsupported", f"{root / 'pipe'}: a FIFO, not a regular file")
        assert "character device" in reasons["zero"][1] and "character device" in reasons["null"][1]
        assert rep.indexed == 2 and ar.check() == []


_UNPRIV_IMPORT = r"""
import json, os, sys
import pocketpacs
from pocketpacs.dicom import headers
real = headers.parse_files
def meddle(paths, **kw):  # the folder becomes unreadable after the scan listed it
    os.chmod(sys.argv[3], 0)
    return real(paths, **kw)
headers.parse_files = meddle
with pocketpacs.open_archive(sys.argv[1]) as ar:
    rep = ar.import_folder(sys.argv[2])
    print(json.dumps({"rep": rep.to_json(), "check": ar.check(), "instances": ar.stats()["instances"]}))
"""


def test_unreadable_folders_and_files_are_reported(tmp_path, unprivileged):
    root = tmp_path / "d"
    dicomgen.write_series(root / "ok", 2, series_uid="1.2.3.1")
    dicomgen.write_series(root / "closed", 2, series_uid="1.2.3.2")
    dicomgen.write_series(root / "later", 2, series_uid="1.2.3.3")
    locked = dicomgen.write(root / "ok" / "locked.dcm", series_uid="1.2.3.1", sop_uid="1.2.3.1.9")
    (root / "closed").chmod(0)
    locked.chmod(0)
    arc = tmp_path / "a"
    try:
        r = subprocess.run(unprivileged + [sys.executable, "-c", _UNPRIV_IMPORT, str(arc), str(root),
                                           str(root / "later")], capture_output=True, timeout=300)
    finally:
        for p in (root / "closed", root / "later"):
            p.chmod(0o755)
        locked.chmod(0o644)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    out = json.loads(r.stdout)
    got = {(Path(f["path"]).relative_to(root).as_posix(), f["reason"]) for f in out["rep"]["failed"]}
    assert got == {("closed", "permission_denied"), ("ok/locked.dcm", "permission_denied"),
                   ("later/IM00001.dcm", "permission_denied"), ("later/IM00002.dcm", "permission_denied")}
    for f in out["rep"]["failed"]:
        assert f["message"].startswith(f["path"]) and "permission denied" in f["message"]
    assert out["instances"] == 2 and out["check"] == []
    with pocketpacs.open_archive(arc) as ar:  # readable again: retried and indexed
        rep = ar.import_folder(root)
        assert rep.failed == 0 and ar.stats()["instances"] == 7 and ar.check() == []


def test_names_that_are_not_utf8(tmp_path, capsys):
    root = tmp_path / "d"
    root.mkdir()
    broot = os.fsencode(root)
    folder = os.path.join(broot, b"dir\xe9")
    os.mkdir(folder)
    data = dicomgen.to_bytes(dicomgen.dataset(series_uid="1.2.3.7", sop_uid="1.2.3.7.1", instance_number=1))
    with open(os.path.join(folder, b"IM\xff\xfe.dcm"), "wb") as f:
        f.write(data)
    with open(os.path.join(broot, b"notes\xff.txt"), "wb") as f:
        f.write(b"not dicom")
    arc = tmp_path / "a"
    rc, out, err = run_cli(capsys, "--archive", arc, "import", "--json", root)
    assert rc == 1, err
    rep = json.loads(out)
    assert rep["counts"]["indexed"] == 1
    [bad] = rep["failed"]
    assert bad["reason"] == "not_dicom" and os.fsencode(bad["path"]) == os.path.join(broot, b"notes\xff.txt")
    rc, out, err = run_cli(capsys, "--archive", arc, "import", root)   # text report
    assert rc == 1 and "notes\\xff.txt" in out
    rc, out, _ = run_cli(capsys, "--archive", arc, "show", "--json")
    [row] = json.loads(out)
    assert os.fsencode(row["paths"][0]) == os.path.join(folder, b"IM\xff\xfe.dcm")
    with pocketpacs.open_archive(arc) as ar:
        assert ar.verify().ok and ar.check() == []
        [se] = ar.series(ar.studies()[0])
        assert [os.fsencode(p) for p in ar.series_files(se)] == [os.path.join(folder, b"IM\xff\xfe.dcm")]
        rep = ar.import_folder(root)
    from pocketpacs.ui.import_jobs import summarize_report

    summary = summarize_report(rep, os.fsdecode(broot))
    import orjson

    orjson.dumps(summary)  # the page's report holds no lone surrogates
    assert summary["skipped_files"][0]["name"] == "notes\ufffd.txt"


def test_sparse_4gb_files(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    big = 4 * 1024 ** 3 + 4096
    good = dicomgen.to_bytes(dicomgen.dataset(series_uid="1.2.3.6", sop_uid="1.2.3.6.1", instance_number=1))
    with open(root / "header.dcm", "wb") as f:
        f.write(good)
        f.truncate(big)
    with open(root / "zeros.dcm", "wb") as f:
        f.truncate(big)
    with open(root / "preamble.dcm", "wb") as f:   # 'DICM' then a hole
        f.write(b"\0" * 128 + b"DICM")
        f.truncate(big)
    if os.stat(root / "zeros.dcm").st_blocks * 512 > 1 << 20:
        pytest.skip("this filesystem does not store sparse files")
    with pocketpacs.open_archive(tmp_path / "a") as ar:
        rep = _import_guarded(ar, root)
        reasons = {Path(f.path).name: f.reason for f in rep.failures}
        assert reasons.keys() == {"zeros.dcm", "preamble.dcm"} and rep.indexed == 1
        [inst] = ar.iter_instances()
        assert ar.instance(inst["sop_instance_uid"]).size == big
        assert ar.check() == []


_DISK_FULL = r"""
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # writes past the limit fail with EFBIG
import pocketpacs
from pocketpacs.archive import ingest
ingest.CHUNK = 20
lim = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim))
try:
    with pocketpacs.open_archive(sys.argv[1]) as ar:
        ar.import_folder(sys.argv[2])
    print(json.dumps({"error": None}))
except pocketpacs.ArchiveError as e:
    print(json.dumps({"error": str(e), "type": type(e).__name__}))
"""


def test_disk_full_during_import_keeps_earlier_commits(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    n1 = dicomgen.write_tree(first, patients=1, studies=1, series=2, slices=5)
    n2 = dicomgen.write_tree(second, patients=30, studies=2, series=2, slices=5, seed=1)
    arc = tmp_path / "a"
    with pocketpacs.open_archive(arc) as ar:
        ar.import_folder(first)
    before = dump(arc)
    size = (arc / "data.mdb").stat().st_size
    r = subprocess.run([sys.executable, "-c", _DISK_FULL, str(arc), str(second), str(size + 64 * 1024)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    res = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert res["error"] and "disk is full" in res["error"] and res["type"] == "ArchiveError", res
    assert str(arc) in res["error"]
    assert deep_check(arc).status == "ok"
    with pocketpacs.open_archive(arc) as ar:
        assert ar.check() == []
        got = dump(arc)
        # everything committed before is still there (more may have been committed)
        assert {k for k, _ in before["instances"]} <= {k for k, _ in got["instances"]}
        rep = ar.import_folder(second)           # room again: the import completes
        assert rep.failed == 0 and ar.stats()["instances"] == n1 + n2 and ar.check() == []


_TMPFS_FULL = r"""
import json, os, sys
import pocketpacs
from pocketpacs.archive import ingest
from pocketpacs.archive.integrity import deep_check, load_roots, record_dump
ingest.CHUNK = 20
arc, first, second = sys.argv[1:4]
out = {}
with pocketpacs.open_archive(arc) as ar:
    ar.import_folder(first)
    with ar._store.read() as t:
        before = {k for k, _ in t.range("instances")}
st = os.statvfs(arc)
free = st.f_bavail * st.f_frsize
with open(os.path.join(os.path.dirname(arc), "filler"), "wb") as f:   # leave 48 KiB free
    f.write(b"\0" * max(0, free - 48 * 1024))
try:
    with pocketpacs.open_archive(arc) as ar:
        ar.import_folder(second)
except pocketpacs.ArchiveError as e:
    out["error"] = str(e)
out["roots"] = load_roots(arc)              # as a rebuild would find them, disk still full
out["left"] = sorted(os.listdir(arc))
os.unlink(os.path.join(os.path.dirname(arc), "filler"))
out["deep"] = deep_check(arc).status
with pocketpacs.open_archive(arc) as ar:
    out["check"] = ar.check()
    with ar._store.read() as t:
        out["kept"] = before <= {k for k, _ in t.range("instances")}
    rep = ar.import_folder(second)
    out["failed"] = rep.failed
    out["instances"] = ar.stats()["instances"]
    out["check_after"] = ar.check()
print(json.dumps(out))
"""


def test_full_tmpfs_during_import(tmp_path):
    """A real ENOSPC: a small tmpfs in a private mount namespace (skipped where mounting is refused)."""
    unshare = shutil.which("unshare")
    if os.getuid() != 0 or unshare is None:
        pytest.skip("a tmpfs mount needs root and unshare")
    probe = subprocess.run([unshare, "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (RLIMIT_FSIZE test covers the full disk)")
    first, second = tmp_path / "first", tmp_path / "second"
    n1 = dicomgen.write_tree(first, patients=1, studies=1, series=2, slices=5)
    n2 = dicomgen.write_tree(second, patients=30, studies=2, series=2, slices=5, seed=1)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "full.py"
    script.write_text(_TMPFS_FULL)
    cmd = (f"mount -t tmpfs -o size=4m tmpfs {mnt} && "
           f"{sys.executable} {script} {mnt / 'archive'} {first} {second}")
    r = subprocess.run([unshare, "-m", "sh", "-c", cmd], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    # LMDB reports the failed commit of a full tmpfs as EIO (its write of the pages got ENOSPC)
    assert "disk is full" in out["error"], out
    assert "No space left on device" in out["error"] or "Input/output error" in out["error"], out
    assert out["deep"] == "ok" and out["check"] == [] and out["kept"] is True
    # roots.json lists the folder whose instances were committed before the disk
    # filled up (a rebuild finds them), and no temporary file is left (issue 13)
    assert out["roots"] == sorted([str(first), str(second)]), out["roots"]
    assert not [n for n in out["left"] if n.endswith(".tmp") or n.startswith(".roots")], out["left"]
    assert out["failed"] == 0 and out["instances"] == n1 + n2 and out["check_after"] == []


# ---- two processes, read-only folders, damaged databases ---------------------------------------

_HOLD = r"""
import sys, time
import pocketpacs
ar = pocketpacs.open_archive(sys.argv[1])
print("ready", flush=True)
time.sleep(300)
"""


@pytest.fixture
def filled(tmp_path):
    root = tmp_path / "d"
    n = dicomgen.write_tree(root, patients=2, studies=1, series=2, slices=3)
    arc = tmp_path / "a"
    with pocketpacs.open_archive(arc) as ar:
        ar.import_folder(root)
    return arc, root, n


def test_second_app_instance_opens_read_only(filled, capsys):
    from pocketpacs.ui.session import Session

    arc, root, n = filled
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(arc)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        s = Session(str(arc), mode="serve")
        try:
            notice = s.startup_check()
            assert "Another PocketPACS is writing" in notice
            hello = s.cmd_hello({})
            assert hello["readonly"] is True and hello["archive_notice"] == notice
            rows = s.cmd_search({"limit": 100})["rows"]
            assert len(rows) == 4 and sum(r["images"] for r in rows) == n   # readers work
            with pytest.raises(Exception) as ei:
                s.cmd_import_start({"path": str(root)})
            assert "read-only" in str(ei.value.message)
        finally:
            s.close()
        rc, _, err = run_cli(capsys, "--archive", arc, "import", root)
        assert rc == 3 and "another PocketPACS process" in err
        assert p.poll() is None  # the writer is unharmed
    finally:
        p.kill()
        p.wait()
    with pocketpacs.open_archive(arc) as ar:
        assert ar.check() == [] and ar.stats()["instances"] == n


def _serve(arc, *extra):
    import re

    p = subprocess.Popen([sys.executable, "-m", "pocketpacs.ui", "--archive", str(arc), "serve", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = []
    for line in p.stdout:
        lines.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        if m:
            return p, lines, m.group(1), m.group(2)
    p.wait()
    raise AssertionError("".join(lines))


def _call(base, token, name, args=None) -> dict:
    import urllib.request

    req = urllib.request.Request(f"{base}/v1/call/{name}", data=json.dumps(args or {}).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-PocketPACS-Token": token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_two_app_processes_on_one_archive(filled):
    arc, root, n = filled
    a, a_lines, a_url, a_tok = _serve(arc)
    try:
        b, b_lines, b_url, b_tok = _serve(arc)
        try:
            assert not any("read-only" in ln for ln in a_lines)
            assert any("Another PocketPACS is writing to this archive" in ln for ln in b_lines), b_lines
            hello = _call(b_url, b_tok, "hello")["data"]
            assert hello["readonly"] is True and "read-only" in hello["archive_notice"]
            for url, tok in ((a_url, a_tok), (b_url, b_tok)):      # both read
                res = _call(url, tok, "search")
                assert res["ok"] and sum(r["images"] for r in res["data"]["rows"]) == n
            res = _call(b_url, b_tok, "import_start", {"path": str(root)})
            assert not res["ok"] and res["error"]["code"] == "read_only"
            res = _call(a_url, a_tok, "import_start", {"path": str(root)})   # the writer imports
            assert res["ok"], res
            for _ in range(600):
                st = _call(a_url, a_tok, "import_status", {"job_id": res["data"]["job_id"]})["data"]
                if st["done"]:
                    break
                time.sleep(0.05)
            assert st["done"] and st["error"] is None and st["report"]["unchanged"] == n
            assert b.poll() is None and a.poll() is None      # nobody crashed
        finally:
            b.send_signal(signal.SIGINT)
            b.wait(30)
    finally:
        a.send_signal(signal.SIGINT)
        a.wait(30)
    assert a.returncode == 0 and b.returncode == 0
    with pocketpacs.open_archive(arc) as ar:
        assert ar.check() == [] and ar.stats()["instances"] == n


_READONLY_FOLDER = r"""
import json, sys
import pocketpacs
from pocketpacs import cli
from pocketpacs.ui.session import Session
out = {}
try:
    pocketpacs.open_archive(sys.argv[1])
except pocketpacs.ArchiveError as e:
    out["writable"] = [type(e).__name__, str(e)]
with pocketpacs.open_archive(sys.argv[1], readonly=True) as ar:
    out["instances"] = ar.stats()["instances"]
    out["check"] = ar.check()
s = Session(sys.argv[1], mode="serve")
out["notice"] = s.startup_check()
out["rows"] = len(s.cmd_search({"limit": 100})["rows"])
s.close()
out["cli_import"] = cli.main(["--archive", sys.argv[1], "import", sys.argv[2]])
print(json.dumps(out))
"""


def test_read_only_archive_folder(filled, unprivileged):
    arc, root, n = filled
    arc.chmod(0o500)
    try:
        r = subprocess.run(unprivileged + [sys.executable, "-c", _READONLY_FOLDER, str(arc), str(root)],
                           capture_output=True, timeout=300)
    finally:
        arc.chmod(0o700)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["writable"][0] == "ArchiveReadOnly" and "cannot be written" in out["writable"][1]
    assert out["instances"] == n and out["check"] == []
    assert "cannot be written" in out["notice"] and out["rows"] == 4
    assert out["cli_import"] == cli.EXIT_ARCHIVE
    assert b"cannot be written" in r.stderr


def _truncate(p: Path) -> None:
    os.truncate(p, p.stat().st_size // 2)


def _garble(p: Path) -> None:
    size = p.stat().st_size
    rng = random.Random(3)
    with open(p, "r+b") as f:
        for _ in range(300):
            f.seek(rng.randrange(8192, size - 8))
            f.write(rng.randbytes(8))


def _wipe_header(p: Path) -> None:
    with open(p, "r+b") as f:
        f.write(b"\xff" * 8192)


@pytest.mark.parametrize("damage", [_truncate, _garble, _wipe_header], ids=["truncated", "garbled", "no-header"])
def test_damaged_database_is_detected_and_rebuilt_from_the_roots(filled, capsys, damage):
    from pocketpacs.ui.session import Session
    from pocketpacs.ui.protocol import BridgeError

    arc, root, n = filled
    want = {(r["sop_instance_uid"], tuple(r["paths"])) for r in _rows(arc)}
    assert load_roots(arc) == [str(root)]
    damage(arc / "data.mdb")
    dc = deep_check(arc)                     # never crashes this process
    assert dc.status == "damaged", dc
    rc, out, err = run_cli(capsys, "--archive", arc, "check")
    assert rc == cli.EXIT_DAMAGED and "damaged" in out and "pocketpacs rebuild" in out
    if damage is not _garble:  # caught before LMDB sees the file (a truncated one would SIGBUS it)
        assert check_data_file(arc / "data.mdb") is not None
        with pytest.raises(ArchiveDamaged):
            pocketpacs.open_archive(arc, readonly=True)
        rc, _, err = run_cli(capsys, "--archive", arc, "stats")
        assert rc == cli.EXIT_DAMAGED and "pocketpacs rebuild" in err
    s = Session(str(arc), mode="serve")      # the app says so and does not crash
    s.check_delay = 0
    try:
        notice = s.startup_check()
        if s._check_thread is not None:      # garbled pages: found by the background check
            s._check_thread.join(120)
        notice = s.cmd_hello({})["archive_notice"]
        assert "damaged" in notice and "pocketpacs rebuild" in notice
        with pytest.raises(BridgeError) as ei:
            s.cmd_search({"limit": 10})
        assert "rebuild" in ei.value.message
    finally:
        s.close()
    rc, out, err = run_cli(capsys, "--archive", arc, "rebuild")
    assert rc == 0, err
    assert "damaged" in out and "moved to" in out
    aside = [d for d in arc.iterdir() if d.name.startswith("damaged-")]
    assert len(aside) == 1 and (aside[0] / "data.mdb").exists()
    assert deep_check(arc).status == "ok"
    assert {(r["sop_instance_uid"], tuple(r["paths"])) for r in _rows(arc)} == want


def _rows(arc) -> list:
    with pocketpacs.open_archive(arc, readonly=True) as ar:
        return list(ar.iter_instances())


def test_serve_with_a_damaged_archive_starts_and_says_so(filled):
    arc, root, n = filled
    _truncate(arc / "data.mdb")
    p = subprocess.Popen([sys.executable, "-m", "pocketpacs.ui", "--archive", str(arc), "serve"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        assert any("damaged" in ln and "pocketpacs rebuild" in ln for ln in lines), lines
        assert any("http://127.0.0.1:" in ln for ln in lines) or "http://127.0.0.1:" in p.stdout.readline()
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_unclean_shutdown_mark_triggers_the_deep_check(filled):
    arc, root, n = filled
    (arc / OPEN_MARK).write_text("12345")
    _garble(arc / "data.mdb")
    with pytest.raises(ArchiveDamaged) as ei:
        pocketpacs.open_archive(arc)
    assert "pocketpacs rebuild" in str(ei.value)



def test_undecodable_record_is_reported_as_damage(filled, capsys):
    from pocketpacs.ui import bridge
    from pocketpacs.ui.session import Session

    arc, root, n = filled
    with pocketpacs.open_archive(arc) as ar:
        sk = bytes.fromhex(ar.studies()[0].key)
        # (as stored: a body past the Txn, which would not split what is no record)
        ar._store.write(lambda t: t._t.put(sk, records.SPLIT + b"\xff\xfe not json", db=t._dbs["studies"]))
    rc, _, err = run_cli(capsys, "--archive", arc, "stats")
    assert rc == cli.EXIT_DAMAGED and "pocketpacs rebuild" in err and "Traceback" not in err
    rc, out, _ = run_cli(capsys, "--archive", arc, "check")
    assert rc == cli.EXIT_DAMAGED and "cannot be read" in out
    s = Session(str(arc), mode="serve")
    try:
        assert s.startup_check(background=False) is None     # the file itself opens
        env = bridge.call("search", {"limit": 10})          # a command trips on the record:
        assert not env["ok"] and "damaged" in env["error"]["message"]   # confirmed in a child, said plainly
        assert "damaged" in s.cmd_hello({})["archive_notice"]
    finally:
        s.close()


def test_a_damaged_database_that_reads_no_roots_leaves_the_list_of_roots_alone(filled):
    """``roots.json`` is what a rebuild imports again: opening an archive whose
    damaged database reads back no roots (here its ``roots`` database emptied)
    adds to that list, never takes the roots out of it."""
    import lmdb

    from pocketpacs.archive import store as _store

    arc, root, n = filled
    env = lmdb.open(str(arc), max_dbs=len(_store.DBS) + 4)
    with env.begin(write=True) as t:
        t.drop(env.open_db(b"roots", txn=t), delete=False)
    env.close()
    with pocketpacs.open_archive(arc) as ar:
        assert ar.roots() == []
    assert load_roots(arc) == [str(root)]
    with pocketpacs.open_archive(arc) as ar:     # removing a root is what drops it from the list
        ar.import_folder(root)
        assert load_roots(arc) == [str(root)]
        ar.remove(root=root)
    assert load_roots(arc) == []


def test_crash_guard_of_the_console_entry(filled, capsys, monkeypatch):
    """The archive commands run in a forked child: a crash (what LMDB does on some
    damaged pages, see benchmarks/corrupt_archive.py) becomes advice and exit 5."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform: the commands run unguarded")
    arc, root, n = filled
    import faulthandler

    def crash(a):
        faulthandler.disable()   # (pytest's dump of the child's stack is noise here)
        os.abort()

    monkeypatch.setitem(cli.COMMANDS, "crash", cli.Command("crash", "test", lambda p: None, crash))
    monkeypatch.setattr(cli.guard, "GUARDED", cli.GUARDED | {"crash"})
    rc = cli.run_guarded(["--archive", str(arc), "crash"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_DAMAGED and "SIGABRT" in err and "pocketpacs check" in err
    assert "pocketpacs rebuild" in err
    # the child's exit status passes through; commands outside the guard run here
    assert cli.run_guarded(["--archive", str(arc), "search", "--name", "nobody"]) == cli.EXIT_ATTENTION
    assert cli.run_guarded(["--archive", str(tmp := arc.parent / "none"), "stats"]) == cli.EXIT_ARCHIVE
    assert not tmp.exists()
    r = subprocess.run([sys.executable, "-m", "pocketpacs", "--archive", str(arc), "stats", "--json"],
                       capture_output=True)
    assert r.returncode == 0 and json.loads(r.stdout)["instances"] == n


def test_deep_check_that_cannot_start_says_unchecked(tmp_path, monkeypatch):
    """No Python to run the checking child (e.g. not executable for this
    user): the result is "unchecked", not "damaged", and the CLI says so."""
    import pocketpacs
    from pocketpacs import cli
    from pocketpacs.archive import integrity

    with pocketpacs.open_archive(tmp_path / "a"):
        pass
    monkeypatch.setattr(integrity.sys, "executable", str(tmp_path / "no-python"))
    res = integrity.deep_check(tmp_path / "a")
    assert res.status == "unchecked" and "could not be started" in res.message
    assert cli.main(["--archive", str(tmp_path / "a"), "check"]) == cli.EXIT_ARCHIVE
