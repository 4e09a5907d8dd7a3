"""Shared fixtures: where the real-data corpus is, and CI strictness."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_system(ok: bool, what: str) -> None:
    """Skip when a system part is missing -- but fail under CI=true."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing (CI=true: a missing system part is a failure)")
    pytest.skip(f"{what} is missing")


#: pip distribution of each optional peer, for the skip / failure message
PEER_DISTRIBUTIONS = {"gdcm": "python-gdcm", "xxhash": "xxhash", "SimpleITK": "SimpleITK",
                      "openjpeg": "pylibjpeg-openjpeg", "jpeg_ls": "pyjpegls", "PIL": "Pillow",
                      "libjpeg": "pylibjpeg-libjpeg"}


def peer(module: str):
    """Import an optional peer (another implementation a test compares against:
    GDCM, xxhash, SimpleITK, openjpeg, jpeg_ls, Pillow) and return the module.

    The one way tests reach a peer: when it cannot be imported the test skips,
    saying which package is missing and why -- but fails under CI=true, where
    the test extra installs every peer."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist = PEER_DISTRIBUTIONS.get(module.split(".")[0], module)
        require_system(False, f"optional peer {module} (pip install {dist}: {exc})")
        raise  # unreachable: require_system skipped or failed


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared real-data corpus; tests using it skip when it is absent."""
    if not (CORPUS / "HEADERS.jsonl").exists():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


# ---------------------------------------------------------------- served UI, headless Chromium
# Shared by the UI test modules; ``served`` serves the module's own ``built``
# archive (each module defines ``built``), one server and browser per module.
@pytest.fixture(scope="module")
def served(built):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "ui"))
    import ppui_support as S

    srv = S.Served(built["archive"])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "ui"))
    import ppui_support as S

    S.require_system(S.have_chromium(), "Debian's chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=S.CHROMIUM, args=S.CHROMIUM_ARGS)
        yield b
        b.close()
