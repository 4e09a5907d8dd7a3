"""The app's log file (issue 12, "A log"): rotating, 0600 in a 0700 folder,
file paths hashed, shown by ``pocketpacs log``."""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pocketpacs import log


@pytest.fixture
def log_folder(tmp_path):
    folder = tmp_path / "state" / "pocketpacs" / "log"
    old = os.umask(0o022)
    try:
        path = log.start_log_file(folder)
    finally:
        os.umask(old)
    yield path
    log.stop_log_file()


def test_log_file_is_private_and_paths_in_it_are_hashed(log_folder, tmp_path):
    secret = "/scans/DOE^JOHN 1950/IM0001.dcm"
    lg = logging.getLogger("pocketpacs.ui.volumes")
    lg.warning("volume job failed for %s", secret)
    try:
        raise FileNotFoundError(2, "No such file or directory", secret)
    except FileNotFoundError:
        lg.warning("open failed", exc_info=True)
    for h in logging.getLogger("pocketpacs").handlers:
        h.flush()
    text = log_folder.read_text()
    assert "DOE" not in text and "IM0001" not in text and "/scans" not in text
    assert text.count("<file ") >= 2 and "FileNotFoundError" in text
    assert log.log_file() == log_folder
    assert stat.S_IMODE(log_folder.stat().st_mode) == 0o600
    for d in (log_folder.parent, log_folder.parent.parent, tmp_path / "state"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_a_librarys_exception_message_is_not_logged(log_folder):
    """pydicom's and numpy's messages can quote header values: only the type
    and where it happened are kept."""
    value = "^".join(["DOE", "JOHN"])  # not on the raising line: tracebacks quote source lines
    try:
        raise ValueError(f"Invalid value for VR PN: {value!r}")
    except ValueError:
        logging.getLogger("pocketpacs.ui.bridge").warning("bridge: command x failed", exc_info=True)
    for h in logging.getLogger("pocketpacs").handlers:
        h.flush()
    text = log_folder.read_text()
    assert "DOE" not in text and "ValueError (its message is not logged" in text
    assert "test_log_file.py" in text  # where it happened


def test_same_path_same_token_within_a_run():
    red = log.PathRedactor()
    # a path may hold spaces (``DOE^JOHN 1950``): the words after one, up to a
    # quote or the end, are taken as part of it (too much hidden, never too little)
    a = red.redact("reading '/data/P1 x/a.dcm' then '/data/P1 x/a.dcm', and '/data/P2/b.dcm'")
    assert a.count("<file ") == 3 and "/data" not in a and "P1" not in a
    first, second, third = [a.split("<file ")[i][:8] for i in (1, 2, 3)]
    assert first == second != third, a


def test_paths_of_the_installation_stay_readable():
    red = log.PathRedactor()
    own = os.path.realpath(log.__file__)
    assert red.redact(f'File "{own}", line 3') == f'File "{own}", line 3'


def test_rotation_keeps_files_private(log_folder):
    handler = next(h for h in logging.getLogger("pocketpacs").handlers if isinstance(h, logging.FileHandler))
    for i in range(3):
        logging.getLogger("pocketpacs").warning("record %d", i)
        handler.doRollover()
    files = list(log_folder.parent.iterdir())
    assert len(files) >= 3
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_nothing_on_disk_until_a_problem_and_nothing_while_paused(log_folder):
    lg = logging.getLogger("pocketpacs.ui.session")
    lg.info("an ordinary event")  # below the file's level
    assert not log_folder.parent.exists(), "a run with nothing to report made the log folder"
    log.pause_log_file(True)
    try:
        lg.warning("a problem during a CD/USB session")
        assert not log_folder.parent.exists(), "a media session left a log file"
    finally:
        log.pause_log_file(False)
    lg.warning("a problem after it")
    text = log_folder.read_text()
    assert "after it" in text and "CD/USB" not in text


def test_pocketpacs_log_command_shows_the_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"))
    code = ("from pocketpacs import log; import logging; p = log.start_log_file(); "
            "logging.getLogger('pocketpacs').warning('hello from %s', '/scans/DOE^JOHN'); print(p)")
    made = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    r = subprocess.run([sys.executable, "-m", "pocketpacs", "log", "--json"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == str(path) and out["exists"]
    assert any("hello from <file " in ln for ln in out["lines"])
    assert not any("DOE" in ln for ln in out["lines"])
    r = subprocess.run([sys.executable, "-m", "pocketpacs", "log", "--tail", "-1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2


def test_an_answer_about_the_data_is_not_logged_as_a_problem(log_folder):
    """'Not an image' and other answers the page shows are not problems of
    ours: the log (problems only) gets no warning or traceback for them; an
    internal error does get one."""
    from pocketpacs.images.volume import VolumeError
    from pocketpacs.ui.volumes import VolumeJob

    def refused():
        raise VolumeError("these files are not a volume")

    def broken():
        raise RuntimeError("a bug of ours")

    for make in (refused, broken):
        job = VolumeJob(make).start()
        job.join(30)
    for h in logging.getLogger("pocketpacs").handlers:
        h.flush()
    text = log_folder.read_text()
    assert "volume job failed: RuntimeError" in text and "Traceback" in text
    assert "VolumeError" not in text
