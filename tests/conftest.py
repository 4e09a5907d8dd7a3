"""Shared fixtures: where the real-data corpus is, CI strictness, and no network."""
from __future__ import annotations

import ipaddress
import os
import socket
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


# ---------------------------------------------------------------- no network
# The tests never reach the network: a connection to anything but this
# machine (127.0.0.0/8, ::1, a Unix socket) raises at once instead of waiting
# for a timeout, and the test that tried it fails; pydicom's download of its
# extra test files (pydicom_data.py lists the bundled ones) fails the test
# even where pydicom would swallow the error.  Child processes are not
# patched (UI servers and Chromium talk over 127.0.0.1 anyway).


class NetworkBlocked(OSError):
    """A test tried to connect to a machine other than this one."""


class DownloadBlocked(BaseException):
    """A test tried to download pydicom's extra test files.

    A BaseException so that pydicom's ``except Exception`` around each
    download cannot turn it into a warning and a long wait.
    """


#: Connections refused since the current test started (checked after each test;
#: a blocked download fails the test by itself).
BLOCKED: list[str] = []


def _loopback_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%", 1)[0]
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)      # ::ffff:127.0.0.1
    return (mapped or ip).is_loopback


def _allowed(family: int, address: object) -> bool:
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    if isinstance(address, tuple) and address:
        return _loopback_host(address[0])
    return False


def _refuse(address: object) -> NetworkBlocked:
    what = f"tests must not use the network: connection to {address!r} refused"
    BLOCKED.append(what)
    return NetworkBlocked(what)


def _guard_network() -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self, address):
        if not _allowed(self.family, address):
            raise _refuse(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _allowed(self.family, address):
            raise _refuse(address)
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not _allowed(socket.AF_INET, address):   # checked before any name lookup
            raise _refuse(address)
        return real_create_connection(address, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.create_connection = create_connection

    def no_download(*args, **kwargs):
        name = args[0] if args else kwargs.get("filename", kwargs.get("url", "?"))
        what = (f"tests must not download pydicom test data ({name}): use tests/pydicom_data.py "
                "(pydicom's bundled files) instead of pydicom.data.get_testdata_file(s)")
        raise DownloadBlocked(what)

    import pydicom.data.data_manager as data_manager
    import pydicom.data.download as download

    for mod in (data_manager, download):
        for name in ("data_path_with_download", "download_with_progress", "fetch_data_files"):
            if hasattr(mod, name):
                setattr(mod, name, no_download)


def pytest_configure(config: pytest.Config) -> None:
    _guard_network()


@pytest.fixture(autouse=True)
def _no_network_attempt():
    """Fail the test that tried to reach the network, even if it caught the error."""
    BLOCKED.clear()
    yield
    tried, BLOCKED[:] = list(BLOCKED), []
    if tried:
        pytest.fail("; ".join(dict.fromkeys(tried)), pytrace=False)


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


# ---------------------------------------------------------------- SIGINT in the test process
# A shell that starts the suite as a background job without job control (``cmd &``
# in a script) leaves SIGINT ignored, and every process the tests start inherits
# that: a `pocketpacs serve` child would then not stop on the SIGINT the tests send
# it (Python keeps an ignored SIGINT at start).  The suite runs as if started from
# a terminal.
import signal as _signal  # noqa: E402

if _signal.getsignal(_signal.SIGINT) is _signal.SIG_IGN:
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)


# ---------------------------------------------------------------- the corpus, imported once
@pytest.fixture(scope="session")
def corpus_archive(corpus, tmp_path_factory) -> Path:
    """An archive holding the whole ``../shared/corpus``, imported once per session.

    Shared by the modules that serve or read it: they must not change it
    (open it read-only, or serve it in a session that only reads).
    """
    import pocketpacs

    root = tmp_path_factory.mktemp("corpus_archive") / "archive"
    with pocketpacs.open_archive(root) as ar:
        ar.import_folder(corpus)
    return root


@pytest.fixture(scope="module")
def first_read_size_restored():
    """Keep the header parser's learnt first-read size across a module.

    The parser learns its first-read size from the headers it sees (a speed
    heuristic); the corpus's large Siemens/GE headers must not change it for
    the modules after one that reads them (tests/test_volume.py measures peak
    memory).  Use with ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    from pocketpacs.dicom import headers

    size = headers._HEAD.size
    yield
    headers._HEAD.size = size
