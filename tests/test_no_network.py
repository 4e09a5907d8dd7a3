"""The tests never touch the network (conftest.py): a connection elsewhere than
this machine and a download of pydicom's extra test files fail at once."""
from __future__ import annotations

import socket
import threading
import time

import pytest

import conftest
from pydicom_data import TEST_FILES, bundled_file, bundled_files


@pytest.fixture
def expect_blocked():
    """The test below triggers the guard on purpose: do not fail it for that."""
    yield
    assert conftest.BLOCKED, "the guard did not record the attempt"
    conftest.BLOCKED.clear()


def test_connect_elsewhere_raises_at_once(expect_blocked):
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        with pytest.raises(conftest.NetworkBlocked, match="192.0.2.1"):
            s.connect(("192.0.2.1", 80))           # TEST-NET-1: would hang until the timeout
        with pytest.raises(conftest.NetworkBlocked):
            s.connect_ex(("192.0.2.1", 80))
    with pytest.raises(OSError):
        socket.create_connection(("example.org", 443), timeout=30)
    with pytest.raises(OSError):
        socket.create_connection(("2001:db8::1", 443), timeout=30)
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen("http://192.0.2.1/", timeout=30)
    assert time.monotonic() - t0 < 5


def test_pydicom_download_fails_at_once():
    from pydicom.data import get_testdata_file, get_testdata_files

    t0 = time.monotonic()
    # a file that lives only in pydicom-data on GitHub: pydicom would download it
    with pytest.raises(conftest.DownloadBlocked, match="pydicom_data.py"):
        get_testdata_file("emri_small_jpeg_2k_lossless.dcm")
    with pytest.raises(conftest.DownloadBlocked):      # pydicom catches Exception; not this
        get_testdata_files("*.dcm")
    import pydicom.data.download as download

    with pytest.raises(conftest.DownloadBlocked):
        download.data_path_with_download("693_J2KI.dcm")
    assert time.monotonic() - t0 < 5


def test_loopback_and_unix_sockets_still_work(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        accepted = []
        th = threading.Thread(target=lambda: accepted.append(srv.accept()[0].close()))
        th.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        th.join(10)
    assert accepted
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.connect_ex(("localhost", port))            # allowed (nothing listens there any more)
    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(path)
        srv.listen()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(path)
    assert conftest._loopback_host("::1") and conftest._loopback_host("::ffff:127.0.0.1")
    assert conftest._loopback_host("127.8.9.10") and not conftest._loopback_host("10.0.0.1")
    assert not conftest.BLOCKED


def test_bundled_files_are_local():
    files = bundled_files("*.dcm")
    assert len(files) > 50 and all(f.startswith(str(TEST_FILES)) for f in files)
    assert any("DICOMDIR" in f for f in bundled_files())
    assert bundled_file("CT_small.dcm").endswith("CT_small.dcm")
    with pytest.raises(FileNotFoundError):
        bundled_file("emri_small_jpeg_2k_lossless.dcm")
