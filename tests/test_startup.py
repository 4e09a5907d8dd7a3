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

import pytest

import dicomgen

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
    # the import of new files loads the parser and its kernels when it needs them
    assert "numba" in res["modules"] and "pocketpacs.native.dicomparse" in res["modules"]
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
    assert "numba" in res["modules"] and "pocketpacs.native.dicomparse" in res["modules"]
    res = _run(["stats", "--json"], archive)
    assert json.loads(res["out"])["instances"] == n + m


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
    """With an empty kernel cache the import says it prepared the parser, and
    for how long; its files/s leaves that out.  With the cache warm: nothing."""
    data = tmp_path / "data"
    n = dicomgen.write_tree(data, patients=1, studies=1, series=1, slices=3)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT") and not k.startswith("XDG_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), POCKETPACS_ARCHIVE=str(tmp_path / "a1"))
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
