"""Canary sweep: patient data stays in the archive and the user's exports (issue 7).

Files whose patient name, patient ID and folder names are canary strings (a
fresh random token per run) go through a whole life cycle with HOME, TMPDIR
and every XDG folder pointed into a temporary folder:

* ``pocketpacs import`` (a good series, a truncated file, garbage files, an
  element pydicom warns about), ``pocketpacs export`` to NIfTI and PNG in a
  folder the user chose;
* ``pocketpacs serve`` with logging switched on (INFO): search, open the
  series (header, voxels, slices, thumbnail, header panel, assembly report),
  an import from the page, failing opens (a missing file, a file that is not
  an image, a truncated series), then ``kill -9`` in the middle of a volume
  stream; serve again after the crash, then a normal exit;
* the desktop app (Qt WebEngine under Xvfb) opened on the archive.

Then every file under HOME, TMPDIR, the XDG runtime folder, /var/tmp, /dev/shm
and numba's kernel cache is searched for the canaries (ASCII in any case,
UTF-16 LE/BE, and MD5/SHA-1/SHA-256 hex digests of the name and the ID), file
and folder names included.  Allowed: the archive folder and the export
folder.  The stderr and stdout of the server and the app and the stderr of
the CLI must not hold them either.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

import dicomgen

pytestmark = pytest.mark.slow

CANARY = "Qzv" + secrets.token_hex(5)
PATIENT_NAME = f"{CANARY}Fam^{CANARY}Giv"
PATIENT_ID = f"{CANARY}Pid"
FOLDER = f"{CANARY}_Folder"


def needles() -> dict[str, bytes]:
    """Byte patterns (lower case) whose presence means a canary leaked."""
    out = {}
    for label, text in (("canary", CANARY),):
        low = text.lower()
        out[f"{label} ascii"] = low.encode()
        out[f"{label} utf-16-le"] = low.encode("utf-16-le")
        out[f"{label} utf-16-be"] = low.encode("utf-16-be")
    for label, text in (("name", PATIENT_NAME), ("id", PATIENT_ID)):
        for algo in ("md5", "sha1", "sha256"):
            h = hashlib.new(algo, text.encode())
            out[f"{label} {algo} hex"] = h.hexdigest().encode()
            out[f"{label} {algo} raw"] = h.digest().lower()
    return out


def scan_bytes(data: bytes) -> list[str]:
    low = data.lower()
    return [k for k, n in needles().items() if n in low]


def sweep(roots: list[Path], allowed: list[Path]) -> tuple[list[str], int]:
    """Canary hits (path: what) under *roots*, outside *allowed*; and files read."""
    hits, files = [], 0
    allowed_r = [os.path.realpath(a) for a in allowed]
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            if any(os.path.realpath(dirpath) == a or os.path.realpath(dirpath).startswith(a + os.sep)
                   for a in allowed_r):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                if CANARY.lower() in name.lower():
                    hits.append(f"{os.path.join(dirpath, name)}: canary in the name")
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    if not os.path.isfile(p) or os.path.islink(p) or os.path.getsize(p) > 512 << 20:
                        continue
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                files += 1
                hits += [f"{p}: {w}" for w in scan_bytes(data)]
    return hits, files


def test_the_sweep_finds_every_form(tmp_path):
    """The detector itself: each encoding of the canary is found, in names too."""
    forms = {"a": CANARY.upper().encode(), "b": CANARY.encode("utf-16-le"), "c": CANARY.encode("utf-16-be"),
             "d": hashlib.sha256(PATIENT_ID.encode()).hexdigest().upper().encode(),
             "e": hashlib.md5(PATIENT_NAME.encode()).digest()}
    for name, data in forms.items():
        (tmp_path / name).write_bytes(b"xx" + data + b"yy")
    (tmp_path / f"x{CANARY}").mkdir()
    hits, n = sweep([tmp_path], [])
    assert n == len(forms) and len(hits) == len(forms) + 1, hits
    assert sweep([tmp_path], [tmp_path])[0] == []


# --------------------------------------------------------------------------- data
def add_raw_elements(path: Path, raw: dict[int, tuple[str, str]]) -> None:
    """Rewrite *path* with elements whose values do not fit their VR (as a broken
    modality would write them): added as LO, then the VR bytes are patched."""
    import struct

    from pydicom import dcmread

    ds = dcmread(path)
    for tag, (_vr, value) in raw.items():
        ds.add_new(tag, "LO", value)
    data = bytearray(dicomgen.to_bytes(ds))
    for tag, (vr, _value) in raw.items():
        key = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"LO"
        i = data.find(key, 132)
        assert i > 0
        data[i + 4:i + 6] = vr.encode()
    path.write_bytes(bytes(data))


def write_data(root: Path) -> dict:
    study = root / FOLDER / f"{CANARY}_Study"
    good = dicomgen.write_series(study / f"{CANARY}_CT", 6, series_uid="1.2.826.0.1.3680043.55.1.1",
                                 patient_name=PATIENT_NAME, patient_id=PATIENT_ID,
                                 study_uid="1.2.826.0.1.3680043.55.1", study_desc=f"{CANARY} head",
                                 series_desc=f"{CANARY} axial", accession=CANARY[:16], rows=32, cols=32,
                                 extra={"InstitutionName": f"{CANARY} Hospital",
                                        "ReferringPhysicianName": f"{CANARY}^Doctor",
                                        # invalid CS (lower case, too long): pydicom warns with the value
                                        "BodyPartExamined": f"{CANARY.lower()} body part of patient",
                                        "PatientComments": f"{CANARY} comments"})
    # values pydicom calls invalid -- and reports, value included, unless told not to
    add_raw_elements(good[0], {0x00081155: ("UI", f"{CANARY}.1.2"), 0x00200012: ("IS", f"{CANARY}"),
                               0x00081040: ("UI", f"9.{CANARY}")})
    broken = dicomgen.write_series(study / f"{CANARY}_broken", 3, series_uid="1.2.826.0.1.3680043.55.1.2",
                                   patient_name=PATIENT_NAME, patient_id=PATIENT_ID,
                                   study_uid="1.2.826.0.1.3680043.55.1", rows=32, cols=32)
    data = broken[1].read_bytes()
    broken[1].write_bytes(data[:-700])            # pixel data cut short
    (study / f"{CANARY}_junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + CANARY.encode() * 8)
    (study / f"{CANARY}_notes.txt").write_text(f"{PATIENT_NAME} {PATIENT_ID}\n")
    gone = dicomgen.write_series(study / f"{CANARY}_gone", 2, series_uid="1.2.826.0.1.3680043.55.1.3",
                                 patient_name=PATIENT_NAME, patient_id=PATIENT_ID,
                                 study_uid="1.2.826.0.1.3680043.55.1", rows=16, cols=16)
    later = root / f"{CANARY}_Later"
    dicomgen.write_series(later / f"{CANARY}_MR", 3, series_uid="1.2.826.0.1.3680043.55.2.1",
                          patient_name=PATIENT_NAME, patient_id=PATIENT_ID, modality="MR",
                          study_uid="1.2.826.0.1.3680043.55.2", rows=16, cols=16)
    return {"top": root / FOLDER, "study": study, "good": good, "gone": gone, "later": later,
            "junk": study / f"{CANARY}_junk.dcm"}


class Env:
    def __init__(self, tmp: Path):
        self.home = tmp / "home"
        self.tmp = tmp / "tmp"
        self.run = tmp / "run"
        self.logs = tmp / "logs"
        for d in (self.home, self.tmp, self.run, self.logs):
            d.mkdir()
        self.run.chmod(0o700)
        from pocketpacs.native import _jit  # compiled code, not data: keep the real kernel cache

        self.numba = Path(_jit.cache_dir())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "POCKETPACS"))}
        env.update(HOME=str(self.home), TMPDIR=str(self.tmp), TMP=str(self.tmp), TEMP=str(self.tmp),
                   XDG_CONFIG_HOME=str(self.home / ".config"), XDG_CACHE_HOME=str(self.home / ".cache"),
                   XDG_DATA_HOME=str(self.home / ".local/share"),
                   XDG_STATE_HOME=str(self.home / ".local/state"), XDG_RUNTIME_DIR=str(self.run),
                   NUMBA_CACHE_DIR=str(self.numba), PYTHONUNBUFFERED="1")
        self.env = env
        self.stderr: list[tuple[str, str]] = []
        self.archive = Path(subprocess.run(
            [sys.executable, "-c", "from pocketpacs.paths import default_archive_dir as d; print(d())"],
            env=env, capture_output=True, text=True, check=True).stdout.strip())
        assert str(self.archive).startswith(str(self.home))

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "pocketpacs", *args], env=self.env, capture_output=True,
                           text=True, timeout=180)
        self.stderr.append((f"pocketpacs {' '.join(args)} (stderr)", r.stderr))
        if ok:
            assert r.returncode == 0, (args, r.stdout[-1500:], r.stderr[-1500:])
        return r


# the server with logging on, so every log line it writes is in its output
SERVE = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
         "from pocketpacs.ui.launch import main; sys.exit(main(['serve']))")


class Server:
    def __init__(self, env: Env, name: str):
        self.out = env.logs / f"{name}.out"
        self.err = env.logs / f"{name}.err"
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE], env=env.env, stdout=open(self.out, "w"),
                                     stderr=open(self.err, "w"))
        end = time.monotonic() + 60
        self.base = None
        while time.monotonic() < end and self.proc.poll() is None:
            text = self.out.read_text()
            if "token=" in text:
                url = text.split("token=")[0].split()[-1]
                self.base = url.split("/?")[0]
                self.token = text.split("token=")[1].split()[0]
                break
            time.sleep(0.05)
        assert self.base, self.err.read_text()

    def call(self, name: str, args: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.base}/v1/call/{name}", data=json.dumps(args or {}).encode(),
                                     headers={"X-PocketPACS-Token": self.token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path, headers={"X-PocketPACS-Token": self.token})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def logs(self) -> list[tuple[str, str]]:
        return [(str(self.out), self.out.read_text()), (str(self.err), self.err.read_text())]


def canary_series(srv: Server) -> dict[str, str]:
    rows = srv.call("search", {"patient_id": PATIENT_ID})["data"]["rows"]
    return {r["series_description"] or r["series_id"]: r["series_id"] for r in rows}


def view_everything(srv: Server, sid: str) -> str:
    vid = srv.call("open_series", {"series_id": sid})["data"]["volume_id"]
    st, hdr = srv.get(f"/v1/volume/{vid}/header")
    assert st == 200, hdr
    nz = json.loads(hdr)["shape"][0]
    assert srv.get(f"/v1/volume/{vid}/data")[0] == 200
    assert srv.get(f"/v1/volume/{vid}/slice/{nz - 1}")[0] == 200
    assert srv.get(f"/v1/thumb/{sid}")[0] == 200
    env = srv.call("instance_header", {"volume_id": vid, "slice": 0})
    assert env["ok"] and any(CANARY in e["value"] for e in env["data"]["elements"])
    assert srv.call("volume_report", {"volume_id": vid})["ok"]
    return vid


def run_app(env: Env) -> list[tuple[str, str]]:
    """The desktop window on the archive (lists the canary patient), closed after its self-test."""
    xvfb, display = S.start_xvfb()
    report = env.logs / "selftest.json"
    args = ["-c", SERVE.replace("['serve']", f"['app', '--selftest', {str(report)!r}]")]
    try:
        with S.app_selftest(args, S.app_env(env.env, display), report, merge_stderr=False) as (app, rep):
            assert rep["ready"] == "1" and int(rep["rows"]) >= 2, rep
        out, err = app.communicate(timeout=60)
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    return [("app stdout", out), ("app stderr", err)]


def test_no_canary_outside_the_archive_and_the_exports(tmp_path):
    env = Env(tmp_path)
    data = write_data(tmp_path / "data")
    exports = env.home / "Chosen exports"
    exports.mkdir()
    outputs: list[tuple[str, str]] = []

    # ---- CLI: import, export
    r = env.cli("import", str(data["top"]), ok=False)
    assert r.returncode in (0, 1), r.stderr
    env.cli("export", "1.2.826.0.1.3680043.55.1.1", str(exports / f"{CANARY}_ct.nii.gz"), "--report")
    env.cli("export", "1.2.826.0.1.3680043.55.1.1", str(exports / f"{CANARY}_ct.png"))
    env.cli("export", str(data["study"] / f"{CANARY}_CT"), str(exports / "from_folder.png"))
    env.cli("export", "1.2.826.0.1.3680043.55.9.9", str(exports / "missing.png"), ok=False)
    for p in data["gone"]:
        p.unlink()                                # imported, then deleted from the disk

    # ---- serve: view, import from the page, failures, then kill -9 mid-stream
    srv = Server(env, "serve1")
    try:
        series = canary_series(srv)
        assert len(series) == 3, series           # good, truncated, deleted
        good = series[f"{CANARY} axial"]
        view_everything(srv, good)
        others = [s for s in series.values() if s != good]
        for sid in others:                        # a truncated series and a deleted one
            vid = srv.call("open_series", {"series_id": sid})["data"]["volume_id"]
            srv.get(f"/v1/volume/{vid}/header")
            srv.get(f"/v1/volume/{vid}/data")
            srv.get(f"/v1/thumb/{sid}")
        job = srv.call("import_start", {"path": str(data["later"])})["data"]["job_id"]
        end = time.monotonic() + 60
        while not srv.call("import_status", {"job_id": job})["data"]["done"] and time.monotonic() < end:
            time.sleep(0.1)
        assert srv.call("import_status", {"job_id": job})["data"]["report"]["added"] == 3
        env_ = srv.call("open_other", {"path": str(data["junk"])})
        if env_["ok"]:
            srv.get(f"/v1/volume/{env_['data']['volume_id']}/header")
        assert not srv.call("import_start", {"path": str(data["top"] / "no such folder")})["ok"]
        assert not srv.call("open_other", {"path": str(data["top"] / "missing.nii")})["ok"]
        # a volume is streaming when the server dies
        vid = srv.call("open_series", {"series_id": good})["data"]["volume_id"]
        def stream() -> None:
            try:
                srv.get(f"/v1/volume/{vid}/data")
            except OSError:
                pass                              # the server died under it: expected

        t = threading.Thread(target=stream, daemon=True)
        t.start()
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        t.join(10)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    outputs += srv.logs()

    # ---- serve again after the crash, then a normal exit
    srv = Server(env, "serve2")
    try:
        series = canary_series(srv)
        assert len(series) == 4, series
        view_everything(srv, series[f"{CANARY} axial"])
    finally:
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(20)
    assert srv.proc.returncode == 0
    outputs += srv.logs()

    # ---- the desktop window
    S.require_qt_window()
    outputs += run_app(env)

    # ---- the sweep
    roots = [env.home, env.tmp, env.run, Path("/var/tmp"), Path("/dev/shm"), env.numba]
    hits, nfiles = sweep(roots, allowed=[env.archive, exports])
    assert hits == [], hits
    leaks = [(where, scan_bytes(text.encode("utf-8", "replace")) + (["canary"] if CANARY.lower() in text.lower() else []))
             for where, text in outputs + env.stderr]
    assert [(w, k) for w, k in leaks if k] == [], [(w, t[-3000:]) for (w, t) in outputs + env.stderr
                                                    if CANARY.lower() in t.lower()]
    # not vacuous: the archive and the exports do hold the canary, the sweep read files
    arch_hits, _ = sweep([env.archive], [])
    assert arch_hits, "the archive should hold the patient's name"
    assert len(list(exports.iterdir())) >= 4
    assert nfiles > 10
    print(f"canary sweep: {nfiles} files read, {len(needles())} patterns, 0 hits")


def crashing_decoder(path, indices):
    """Kills its own process (fault injection for the decoder pool)."""
    os.kill(os.getpid(), signal.SIGABRT)


def test_a_decoder_crash_is_logged_without_the_file_path(caplog):
    """The pool's crash warning named the file; folder names can be patient names."""
    import logging

    from pocketpacs.images.decoders import DecoderPool

    pool = DecoderPool(1)
    try:
        with caplog.at_level(logging.DEBUG, logger="pocketpacs"):
            errs = pool.run([(f"/media/{FOLDER}/{CANARY}_CT/IM1", None)], lambda *a: None,
                            decode_fn=crashing_decoder)
    finally:
        pool.close()
    assert len(errs) == 1 and errs[0].crashed and CANARY in errs[0].path   # the caller still gets it
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "pixel decoder crashed" in text and CANARY not in text, text
