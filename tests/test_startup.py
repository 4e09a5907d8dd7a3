"""Start-up: what each ``pocketpacs`` command imports (issue 16).

The commands a user types most (``--help``, ``stats``, ``search``, ``show``
and the rescan of an unchanged folder) must not load numba, llvmlite, the
compiled kernels (``pocketpacs.native.*``), pydicom, nibabel, Pillow or
SciPy, nor the desktop app beyond registering its commands.  Each command
runs in a fresh interpreter through the console entry (plugins loaded as
``pocketpacs`` loads them), which then reports ``sys.modules``: the
assertions are about what was imported, never about time.  An import of new
files still loads the parser and gives a correct result.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dicomgen
from pocketpacs.dicom import kernels

#: Loaded by no command that only reads the archive (prefixes of module names).
HEAVY = ("numba", "llvmlite", "pocketpacs.native", "pydicom", "nibabel", "PIL", "scipy",
         "webview", "PyQt6", "gdcm", "pocketpacs.ui.server", "pocketpacs.ui.app",
         "pocketpacs.ui.bridge", "pocketpacs.images.volume", "pocketpacs.images.decoders")

# Runs one command line as `pocketpacs` does (plugins included, in this
# process: no crash-guard fork), its output swallowed, then prints the exit
# code and the loaded modules as JSON on the real stdout.
_CHILD = r"""
import contextlib, io, json, sys
real = sys.stdout
from pocketpacs.cli import entry
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        rc = entry(json.loads(sys.argv[1]))
    except SystemExit as e:
        rc = e.code
real.write(json.dumps({"rc": rc, "out": out.getvalue(), "modules": sorted(sys.modules)}) + "\n")
"""


def _run(argv: list[str], archive) -> dict:
    env = dict(os.environ, POCKETPACS_ARCHIVE=str(archive), POCKETPACS_NO_GUARD="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    r = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(argv)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A folder of synthetic DICOM files, imported into an archive (in a child process)."""
    base = tmp_path_factory.mktemp("startup")
    root = base / "data"
    n = dicomgen.write_tree(root, patients=2, studies=1, series=2, slices=3)
    archive = base / "archive"
    res = _run(["import", "--json", "--no-progress", str(root)], archive)
    assert res["rc"] == 0, res["out"]
    assert json.loads(res["out"])["counts"]["indexed"] == n
    # a few new files: parsed by the interpreted kernels, sooner than numba loads
    assert n <= kernels.SMALL_MAX
    assert "pocketpacs.native._interpreted.dicomparse" in res["modules"]
    assert not [m for m in res["modules"] if m.split(".")[0] in ("numba", "llvmlite", "pydicom")]
    return root, archive, n


def test_help_imports_nothing_heavy(tmp_path):
    res = _run(["--help"], tmp_path / "archive")
    assert res["rc"] == 0 and "import" in res["out"] and "serve" in res["out"]  # the app's commands too
    assert _heavy(res["modules"]) == []
    assert "pocketpacs.archive.api" not in res["modules"]  # no archive code for the help
    assert not (tmp_path / "archive").exists()


@pytest.mark.parametrize("argv", [["stats"], ["stats", "--json"], ["search", "--modality", "MR"],
                                  ["search", "--json", "--name", "patient1"], ["show"], ["show", "--json"]])
def test_archive_reading_commands_import_nothing_heavy(imported, argv):
    _root, archive, n = imported
    res = _run(argv, archive)
    assert res["rc"] == 0, res["out"]
    assert res["out"].strip()  # they answered
    assert _heavy(res["modules"]) == []
    if argv == ["stats", "--json"]:
        assert json.loads(res["out"])["instances"] == n


def test_rescan_of_unchanged_files_loads_no_parser(imported):
    root, archive, n = imported
    res = _run(["import", "--json", "--no-progress", str(root)], archive)
    assert res["rc"] == 0
    counts = json.loads(res["out"])["counts"]
    assert counts["unchanged"] == n and counts["indexed"] == 0
    assert _heavy(res["modules"]) == []


def test_new_file_after_rescan_still_parsed(imported, tmp_path):
    """An import that finds a new file loads the parser then, and indexes it."""
    root, archive, n = imported
    extra = tmp_path / "more"
    m = dicomgen.write_tree(extra, patients=1, studies=1, series=1, slices=2, seed=7)
    res = _run(["import", "--json", "--no-progress", str(root), str(extra)], archive)
    assert res["rc"] == 0
    reps = json.loads(res["out"])
    assert [r["counts"]["unchanged"] for r in reps] == [n, 0]
    assert reps[1]["counts"]["indexed"] == m
    assert "pocketpacs.native._interpreted.dicomparse" in res["modules"] and "numba" not in res["modules"]
    res = _run(["stats", "--json"], archive)
    assert json.loads(res["out"])["instances"] == n + m


def test_more_new_files_load_numba_and_the_compiled_kernels(tmp_path, monkeypatch):
    """Above kernels.SMALL_MAX new files the compiled kernels parse (numba is loaded
    then); a few at a time, the interpreted ones give the archive the compiled ones give."""
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=1, series=2, slices=13)
    assert n > kernels.SMALL_MAX
    res = _run(["import", "--json", "--no-progress", str(root)], tmp_path / "a1")
    assert res["rc"] == 0 and json.loads(res["out"])["counts"]["indexed"] == n
    assert "numba" in res["modules"] and "pocketpacs.native.dicomparse" in res["modules"]
    assert "pocketpacs.native._interpreted.dicomparse" not in res["modules"]
    folders = sorted(p for p in root.rglob("*") if p.is_dir() and any(f.is_file() for f in p.iterdir()))
    for archive, compiled in (("a2", False), ("a3", True)):
        if compiled:
            monkeypatch.setenv(kernels.ENV_FIRST_RUN, "compile")  # never interpreted
        for folder in folders:
            res = _run(["import", "--json", "--no-progress", str(folder)], tmp_path / archive)
            assert res["rc"] == 0 and ("numba" in res["modules"]) == compiled, folder
    shown = [json.loads(_run(["show", "--json"], tmp_path / a)["out"]) for a in ("a2", "a3")]
    assert len(shown[0]) == n and shown[0] == shown[1]


def test_import_pocketpacs_is_light_and_names_load_on_use():
    code = ("import sys, pocketpacs\n"
            "light = 'pocketpacs.archive.api' not in sys.modules and 'numpy' not in sys.modules\n"
            "names = {n: getattr(pocketpacs, n).__name__ for n in pocketpacs.__all__ if n != '__version__'}\n"
            "from pocketpacs import open_archive, Volume\n"
            "print(light, names['open_archive'], names['Volume'], open_archive is pocketpacs.open_archive,"
            " set(pocketpacs.__all__) <= set(dir(pocketpacs)), pocketpacs.__version__)\n"
            "try:\n    pocketpacs.no_such_name\nexcept AttributeError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    assert first.split() == ["True", "open_archive", "Volume", "True", "True", "0.1.0"]
    assert second == "module 'pocketpacs' has no attribute 'no_such_name'"


def test_pydicom_quietened_when_it_loads_later():
    """The command line's pydicom settings apply to a pydicom imported after them."""
    code = ("import sys\n"
            "from pocketpacs.log import protect_patient_data\n"
            "protect_patient_data(); protect_patient_data()\n"
            "assert 'pydicom' not in sys.modules\n"
            "from pydicom import config\n"
            "print(config.settings.reading_validation_mode == config.IGNORE)\n"
            "protect_patient_data()\n"
            "print(config.settings.reading_validation_mode == config.IGNORE)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


def test_first_run_reports_preparing_the_parser_apart(tmp_path):
    """With an empty kernel cache, an import that compiles says it prepared the
    parser, and for how long; its files/s leaves that out.  With the cache
    warm: nothing."""
    data = tmp_path / "data"
    n = dicomgen.write_tree(data, patients=1, studies=1, series=1, slices=3)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT") and not k.startswith("XDG_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), POCKETPACS_ARCHIVE=str(tmp_path / "a1"),
               POCKETPACS_FIRST_RUN="compile")  # compile now, even for a small import
    cmd = [sys.executable, "-m", "pocketpacs", "import", "--no-progress"]
    r = subprocess.run([*cmd, str(data)], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()
    assert first[0].startswith(f"{data}: {n} files in ")
    assert first[1].startswith("  preparing the parser (first run, ") and first[1].endswith(" s)")
    env["POCKETPACS_ARCHIVE"] = str(tmp_path / "a2")
    r = subprocess.run([*cmd, "--json", str(data)], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["counts"]["indexed"] == n and rep["compile_s"] == 0.0  # loaded from the cache
    assert rep["files_per_s"] > 0


def _cold_env(tmp_path, archive: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "POCKETPACS_FIRST_RUN") and not k.startswith("XDG_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), POCKETPACS_ARCHIVE=str(tmp_path / archive),
               POCKETPACS_NO_GUARD="1")
    return env


_FIRST_RUN_CHILD = r"""
import contextlib, io, json, sys
from pocketpacs.cli import entry
from pocketpacs.dicom import kernels
spawned = []
kernels._spawn = spawned.append     # (the test runs the warm-up itself, below)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = entry(["import", "--json", "--no-progress", sys.argv[1]])
print(json.dumps({"rc": rc, "report": json.loads(out.getvalue()), "spawned": spawned,
                  "interpreted": "pocketpacs.native._interpreted.dicomparse" in sys.modules}))
"""


def test_first_small_import_runs_the_kernels_interpreted_then_compiled(tmp_path):
    """Empty kernel cache, small import: parsed at once by the interpreted kernels
    (nothing compiled, a background compile asked for); the background compile
    fills the cache; the next import runs the compiled kernels."""
    data = tmp_path / "data"
    n = dicomgen.write_tree(data, patients=1, studies=1, series=2, slices=25)
    assert kernels.SMALL_MAX < n <= kernels.INTERPRET_MAX  # (fewer would never load numba at all)
    env = _cold_env(tmp_path, "a1")
    r = subprocess.run([sys.executable, "-c", _FIRST_RUN_CHILD, str(data)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rc"] == 0 and res["report"]["counts"]["indexed"] == n
    assert res["report"]["compile_s"] == 0.0 and res["interpreted"]
    assert res["spawned"] == ["parse_serial"]
    assert not list((tmp_path / "cache").rglob("*.nbi"))  # nothing compiled
    # what the background process runs (here in the foreground): no file of ours named
    r = subprocess.run([sys.executable, "-m", "pocketpacs.dicom.warmup", "parse_serial"], capture_output=True,
                       text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    names = {p.name.split("-")[0] for p in (tmp_path / "cache").rglob("*.nbi")}
    assert {"dicomparse.parse_serial", "dicomvalues.gather_values"} <= names
    env["POCKETPACS_ARCHIVE"] = str(tmp_path / "a2")
    r = subprocess.run([sys.executable, "-c", _FIRST_RUN_CHILD, str(data)], capture_output=True, text=True,
                       env=env, timeout=600)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["report"]["counts"]["indexed"] == n and res["report"]["compile_s"] == 0.0
    assert not res["interpreted"] and res["spawned"] == []


def _columns(batch) -> dict:
    cols = {name: getattr(batch, name).copy() for name in
            ("status", "fingerprint", "header_end", "pixel_offset", "pixel_length", "encapsulated",
             "little_endian", "explicit_vr")}
    cols.update(reason=list(batch.reason), message=list(batch.message), voff=batch._voff.copy(),
                vlen=batch._vlen.copy(), vrs=batch._vrs.copy(), uid=batch._uid_hash.copy(),
                nums=np.nan_to_num(batch._nums, nan=-1e300).copy(), numflag=batch._numflag.copy())
    for kw in ("PatientName", "PatientID", "SOPInstanceUID", "SeriesInstanceUID", "Modality", "ImageType"):
        cols[kw] = batch.text(kw)
    return cols


def _same_both_ways(paths: list[str], monkeypatch) -> None:
    from pocketpacs.dicom import headers, kernels

    paths = paths[:kernels.INTERPRET_MAX]
    # one read per file, the same in both runs (the adaptive first read would
    # differ between them; a header longer than the first read of a file
    # without pixel data gets a fingerprint that varies between runs: a known
    # problem of the re-read path, compiled or not)
    head = headers.MAX_BATCH_HEADER_BYTES // 1024
    monkeypatch.setenv(kernels.ENV_FIRST_RUN, "compile")
    compiled = _columns(headers.parse_files(paths, head_size=head))
    monkeypatch.delenv(kernels.ENV_FIRST_RUN)
    monkeypatch.setattr(kernels, "_compiled_ready", lambda disp: False)
    monkeypatch.setattr(kernels, "warm_in_background", lambda kernel: None)
    with kernels.first_run_interpreted():
        interp = _columns(headers.parse_files(paths, head_size=head))
    assert "pocketpacs.native._interpreted.dicomparse" in sys.modules
    assert (compiled["status"] == 0).sum() > 20
    for name, want in compiled.items():
        got = interp[name]
        if isinstance(want, np.ndarray):
            assert np.array_equal(got, want), name
        else:
            assert got == want, name


def test_interpreted_kernels_parse_as_the_compiled_ones(tmp_path, monkeypatch):
    """The first run's interpreted kernels give the compiled kernels' results, file
    for file and column for column (pydicom's bundled files, a synthetic tree)."""
    from pydicom_data import bundled_files

    dicomgen.write_tree(tmp_path / "gen", patients=2, studies=1, series=2, slices=3)
    _same_both_ways(bundled_files() + sorted(str(p) for p in (tmp_path / "gen").rglob("*") if p.is_file()),
                    monkeypatch)


@pytest.mark.corpus
def test_interpreted_kernels_parse_the_corpus_as_the_compiled_ones(corpus, monkeypatch):
    _same_both_ways(sorted(str(p) for p in corpus.rglob("*") if p.is_file()), monkeypatch)


def test_only_an_import_runs_the_kernels_interpreted(monkeypatch):
    """Parsing outside an import (a CD/USB session, the viewer) compiles as
    before and starts no background process."""
    from pocketpacs.dicom import kernels
    from pocketpacs.native import dicomparse

    spawned = []
    monkeypatch.setattr(kernels, "_compiled_ready", lambda disp: False)
    monkeypatch.setattr(kernels, "_spawn", spawned.append)
    monkeypatch.setattr(kernels, "_warm_started", set())
    monkeypatch.delenv(kernels.ENV_FIRST_RUN, raising=False)
    assert kernels.choose("dicomparse", "parse_serial", 10) is dicomparse and spawned == []
    with kernels.first_run_interpreted():
        assert kernels.choose("dicomparse", "parse_serial", 10) is kernels.interpreted("dicomparse")
        assert kernels.choose("dicomparse", "parse_serial", kernels.INTERPRET_MAX + 1) is dicomparse
        assert kernels.choose("dicomvalues", "gather_values", 10) is kernels.interpreted("dicomvalues")
    assert spawned == ["parse_serial"]  # one background compile (it covers gather_values too)
    assert kernels.choose("dicomparse", "parse_serial", 10) is dicomparse


_BIG_HEADER_CHILD = r"""
import json, sys
from pocketpacs.dicom import headers, kernels
with kernels.first_run_interpreted():
    batch = headers.parse_files([sys.argv[1]])
print(json.dumps({"status": int(batch.status[0]), "numba": "numba" in sys.modules,
                  "interpreted": "pocketpacs.native._interpreted.dicomparse" in sys.modules}))
"""


@pytest.mark.parametrize("big", [False, True])
def test_a_long_header_is_parsed_by_the_compiled_kernels(tmp_path, big):
    """One file, but more header than kernels.SMALL_BYTES: the compiled kernels
    parse it (the interpreted ones walk ~2 MB of header a second)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = "X1", "OT"
    ds.ImageComments = "x" * (kernels.SMALL_BYTES + 1000 if big else 100)
    path = tmp_path / "one.dcm"
    ds.save_as(path, enforce_file_format=True)
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    env.pop(kernels.ENV_FIRST_RUN, None)
    r = subprocess.run([sys.executable, "-c", _BIG_HEADER_CHILD, str(path)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == 0  # parsed natively
    assert res["numba"] is big
