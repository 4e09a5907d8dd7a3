"""Load from CD/USB leaves no trace: nothing new under HOME, the archive
folder or the temp folder, the medium untouched, no patient data in logs,
no file of the medium left open."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import dicomgen
import pocketpacs

CANARY = "Canary^Zebulon"


def listing(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


def media_state(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p)] = (st.st_mode, st.st_mtime_ns,
                       hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
    return out


SESSION = textwrap.dedent("""
    import json, logging, os, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    import pocketpacs
    media = sys.argv[1]
    ar = pocketpacs.open_media(media)
    rep = ar.last_import
    out = {"indexed": rep.indexed, "failed": rep.failed, "dicomdir": rep.dicomdir}
    for p in ar.patients():
        for st in ar.studies(p):
            for se in ar.series(st):
                out.setdefault("files", []).extend(ar.series_files(se))
                for inst in ar.instances(se):
                    ar.header(inst)
    out["search"] = len(ar.search(name="canary", modality="CT"))
    out["rows"] = len(list(ar.iter_instances()))
    out["stats"] = ar.stats()["instances"]
    ar.close()
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    out["open_media_fds"] = [f for f in fds if f.startswith(media)]
    print(json.dumps(out))
""")


def test_media_session_leaves_no_trace(tmp_path):
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    media = tmp_path / "media"
    src = tmp_path / "src"
    paths = dicomgen.write_series(src, 4, series_uid="1.2.840.77.1", patient_name=CANARY,
                                  patient_id="CANARY-ID", extra={"StudyID": "1"})
    fs = FileSet()
    for p in paths:
        fs.add(dcmread(p))
    fs.write(media)
    dicomgen.write(media / "loose" / "extra.dcm", patient_name=CANARY, patient_id="CANARY-ID",
                   series_uid="1.2.840.77.2", sop_uid="1.2.840.77.2.1")
    for p in [media, *media.rglob("*")]:  # the medium is read-only
        p.chmod(0o555 if p.is_dir() else 0o444)
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    (home / ".profile").write_text("existing file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "POCKETPACS"))}
    # numba's compiled-kernel cache is code, not data: keep using the real one
    from pocketpacs.native import _jit  # compiled code, not data: keep the real kernel cache
    env.update(HOME=str(home), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp),
               NUMBA_CACHE_DIR=_jit.cache_dir())
    archive_dir = Path(subprocess.run(
        [sys.executable, "-c", "from pocketpacs.paths import default_archive_dir; print(default_archive_dir())"],
        env=env, capture_output=True, text=True, check=True).stdout.strip())
    assert str(archive_dir).startswith(str(home))
    before = {**listing(home), **listing(tmp)}
    media_before = media_state(media)
    try:
        res = subprocess.run([sys.executable, "-c", SESSION, str(media)], env=env, capture_output=True,
                             text=True, timeout=120)
    finally:
        for p in [media, *media.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["indexed"] == 5 and out["failed"] == 0 and out["stats"] == 5 and out["rows"] == 5
    assert out["search"] == 1 and len(out["files"]) == 5
    assert out["dicomdir"]["found"] == 4
    assert out["open_media_fds"] == []
    after = {**listing(home), **listing(tmp)}
    assert after == before, sorted(set(after) ^ set(before))
    assert not archive_dir.exists()
    # the medium is untouched (content, modes, mtimes)
    for p in [media, *media.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    assert media_state(media) == media_before
    for p in [media, *media.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    # no patient data in the logs
    assert "Canary" not in res.stderr and "CANARY" not in res.stderr and "Zebulon" not in res.stderr


def test_open_media_in_process_is_memory_only(tmp_path):
    media = tmp_path / "usb"
    dicomgen.write_series(media, 2, series_uid="1.2.840.78.1")
    ar = pocketpacs.open_media(media)
    try:
        assert ar.media and ar.path is None and ar.stats()["instances"] == 2
        assert ar.stats()["database_bytes"] == 0
    finally:
        ar.close()
    assert sorted(p.name for p in media.iterdir()) == ["IM00001.dcm", "IM00002.dcm"]
