"""The start-up benchmark's measuring parts (issues 16 and 18): real ``pocketpacs`` processes.

No timing threshold: what is checked is that a first run's background
compile is found and has ended before the next figure, that a failing
command is reported rather than timed, and that the scripts still run alone.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from pocketpacs.benchmarks import bench_startup as B


@pytest.fixture(scope="module")
def first_files(tmp_path_factory):
    """More files than a batch the interpreted kernels parse while numba is not loaded (kernels.SMALL_MAX)."""
    from pocketpacs import synth

    folder = tmp_path_factory.mktemp("first") / "files"
    synth.generate(folder, patients=1, studies=1, series=1, slices=60, rows=32, cols=32, compressed_fraction=0.0,
                   implicit_fraction=0.5, enhanced=0, junk=0)
    return folder


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finding the background compile needs /proc (Linux)")
def test_first_run_stops_its_background_compile_before_returning(tmp_path, first_files):
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    got = B.first_run(first_files, work, wait=False)
    assert got["wall"] > 0 and got["compile_s"] == 0.0  # parsed interpreted: nothing compiled in the import
    assert got["started"] >= 1, "the first run started no background compile"
    assert got["background"] is None  # not waited for
    # it has ended, and its private folder (archive and empty kernel cache) is gone
    for name in os.listdir("/proc"):
        if name.isdigit() and b"pocketpacs.dicom.warmup" in B._proc_text(name, "cmdline"):
            assert str(work).encode() not in B._proc_text(name, "environ"), name
    assert list(work.iterdir()) == []


def test_a_failing_command_is_reported_not_timed(tmp_path):
    with pytest.raises(RuntimeError, match=r"pocketpacs nosuchcommand exited 2"):
        B.wall(["nosuchcommand"], B.child_env(tmp_path / "archive"))


def test_the_design_floor_parses_its_file_with_the_compiled_kernels(tmp_path, first_files):
    """The floor beside the import row is a real parse by the compiled kernels
    (its code checks that numba was loaded), and a file it cannot read fails it."""
    path = B.dicom_files(first_files)[0]
    assert B.floor_seconds(path, B.child_env(tmp_path / "archive")) > 0
    with pytest.raises(RuntimeError, match="exited 1"):
        B.floor_seconds(str(tmp_path / "missing.dcm"), B.child_env(tmp_path / "archive"))


def test_the_floor_file_is_the_first_the_compiled_kernels_parse(tmp_path, first_files):
    """A --data folder may begin with files that are not DICOM: the floor parses the first that is."""
    junk = tmp_path / "a-notes.txt"
    junk.write_text("not a DICOM file")
    paths = B.dicom_files(first_files)
    assert B.floor_file([str(junk), str(tmp_path / "gone.dcm"), *paths]) == paths[0]
    assert B.floor_file([str(junk)]) is None


def test_command_is_the_installed_console_script_or_the_module():
    cmd = B.command()
    assert cmd == [str(B.Path(sys.executable).with_name("pocketpacs"))] or cmd == [sys.executable, "-m", "pocketpacs"]
    assert subprocess.run([*cmd, "--help"], capture_output=True, timeout=120).returncode == 0


@pytest.mark.parametrize("script", ["bench_startup.py", "bench_compare.py"])
def test_the_scripts_still_run_alone_as_their_suite_benchmark(script):
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "pocketpacs bench" in p.stdout and "--quick" in p.stdout
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--nosuch"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "--nosuch" in p.stderr
