"""pydicom's *bundled* test files, read straight from the installed package.

pydicom's own ``get_testdata_files`` / ``get_testdata_file`` also list the
files of the pydicom-data repository and download each missing one from
GitHub (minutes of retries per file on a machine without internet).  The
tests use these helpers instead: only the files shipped in the wheel, never
the network.  (conftest.py makes any download attempt fail the run at once.)
"""
from __future__ import annotations

import os
from pathlib import Path

import pydicom.data

#: The folder of pydicom's bundled data (``test_files``, ``charset_files``, ...).
DATA_ROOT = Path(pydicom.data.DATA_ROOT)
TEST_FILES = DATA_ROOT / "test_files"


def bundled_files(pattern: str = "**/*", folder: str = "test_files") -> list[str]:
    """Paths of pydicom's bundled files matching *pattern* (a ``Path.glob`` pattern).

    Parameters
    ----------
    pattern : str
        Glob pattern relative to the folder (``"*.dcm"``; ``"**/*"`` for
        every file below it).
    folder : str
        ``"test_files"`` (the datasets) or ``"charset_files"``.

    Returns
    -------
    list of str
        Sorted absolute paths of regular files (Python modules left out).
    """
    if os.path.isabs(pattern):
        raise ValueError("bundled_files takes a pattern relative to pydicom's data folder")
    base = DATA_ROOT / folder
    return sorted(os.fspath(p) for p in base.glob(pattern) if p.is_file() and p.suffix != ".py")


def bundled_file(name: str) -> str:
    """Absolute path of the bundled file called *name* (first match below ``test_files``).

    Raises
    ------
    FileNotFoundError
        When pydicom does not ship *name* (it would have to be downloaded).
    """
    for p in sorted(TEST_FILES.rglob(name)):
        if p.is_file():
            return os.fspath(p)
    raise FileNotFoundError(f"{name} is not among pydicom's bundled test files ({TEST_FILES})")
