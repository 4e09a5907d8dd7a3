"""DICOMweb faults (issue 14) against a real Orthanc: QIDO-RS, WADO-RS and STOW-RS with a
server that never answers, one that answers slowly, one that stalls in the middle of an
answer, a full store disk during a WADO-RS retrieve, and Orthanc killed mid-retrieve.

The slow and stalling servers are Orthanc's HTTP port behind a
:class:`net_support.Relay`; the server that never answers is a
:class:`net_support.Mute` port (connections accepted, requests never read).
Every case checks the message (it names the node and says what happened, no
traceback), that the store holds no half-written file and no file the index
does not name (nor the reverse), and that running the same command again
completes.  The full disk is a small tmpfs mounted on the store folder, as
in test_net_faults.py (skipped, saying why, where the machine does not allow
mounts).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from net_support import (Mute, Relay, add_nodes, check_same_as_orthanc, kill_midway_then_retry,  # noqa: F401
                         orthanc, own_orthanc, pixel_bytes, synth_files)
from test_net_faults import archived_files, check_store_consistent, full_disk_then_retry, get_as_expected, run, send_back

import pocketpacs
import pocketpacs.net  # gives Archive.remote
from pocketpacs.net.nodes import RemoteNode, save_node
from pocketpacs.net.web import CutShort, multipart_parts

#: The time-out of these tests (seconds).
TIMEOUT = 1
#: Bytes per second of the slow server: the three 128 KiB instances, answered or sent in one
#: request, take about 2.6 s, longer than TIMEOUT.
SLOW_RATE = 150_000


def web_node(archive_dir: Path, name: str, port: int) -> None:
    save_node(archive_dir, RemoteNode(name, "dicomweb", url=f"http://127.0.0.1:{port}/dicom-web"), replace=True)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Three uncompressed 256x256 instances of one series (128 KiB each)."""
    return synth_files(tmp_path_factory.mktemp("large"), series=1, slices=3, rows=256, cols=256,
                       compressed_fraction=0.0, implicit_fraction=0.0, seed=23)


# ---------------------------------------------------------------- the multipart reader
def test_multipart_parts_hands_out_whole_parts_only():
    body = (b"preamble\r\n--BND\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--BND\r\n"
            b"Content-Type: application/dicom\r\n\r\nsecond\r\n--BND--\r\nepilogue")
    for size in (1, 3, 7, len(body)):  # the same parts however the bytes arrive
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        assert list(multipart_parts(chunks, b"BND")) == [b"first", b"second"]
    # a body starting with its first delimiter (no preamble, no CRLF before it)
    assert list(multipart_parts([b"--B\r\n\r\nx\r\n--B--"], b"B")) == [b"x"]
    # cut short: the parts whose delimiter arrived, then CutShort; the cut part never comes out
    cut = body[:body.index(b"second") + 3]
    got = []
    with pytest.raises(CutShort, match="ended before its closing delimiter"):
        for part in multipart_parts([cut], b"BND"):
            got.append(part)
    assert got == [b"first"]
    with pytest.raises(CutShort):
        list(multipart_parts([b""], b"BND"))


# ---------------------------------------------------------------- a server that never answers
def test_a_dicomweb_server_that_never_answers_times_out_naming_the_node(orthanc, large, tmp_path,  # noqa: F811
                                                                        capsys):
    orthanc.clear()
    orthanc.upload(large)
    ar = tmp_path / "ar"
    add_nodes(ar, orthanc)
    with pocketpacs.open_archive(ar) as arch:
        study = arch.remote("web").find()[0]["study_instance_uid"]
        arch.import_folder(large[0].parent)  # something to send
    with Mute() as mute:
        web_node(ar, "mute", mute.port)
        for argv in (["echo", "mute"], ["find", "mute"], ["get", "mute", study], ["send", "mute", study]):
            code, _, err = run(capsys, "--archive", ar, "remote", *argv, "--timeout", TIMEOUT)
            assert code == 4, (argv, err)
            assert f"remote 'mute' (http://127.0.0.1:{mute.port}/dicom-web)" in err, err
            assert f"nothing received for {TIMEOUT} s (the time-out)" in err and "--timeout" in err, err
            assert "Traceback" not in err
    assert not (ar / "store").exists() or not [p for p in (ar / "store").rglob("*") if p.is_file()]


def test_a_dicomweb_server_that_hangs_up_is_said_as_a_cut_connection(tmp_path, capsys):
    """A port that accepts each connection and closes it without a word: "the connection was
    cut", not "cannot connect" (the connection was made)."""
    import socket
    import threading

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)

    def hang_up() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        port = lsock.getsockname()[1]
        web_node(tmp_path / "ar", "gone", port)
        code, _, err = run(capsys, "--archive", tmp_path / "ar", "remote", "find", "gone", "--timeout", TIMEOUT)
    finally:
        lsock.shutdown(socket.SHUT_RDWR)
        lsock.close()
    assert code == 4, err
    assert (f"remote 'gone' (http://127.0.0.1:{port}/dicom-web): the connection was cut during a QIDO-RS study "
            "search") in err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------- a slow server
def test_a_slow_dicomweb_server_is_not_cut_off_while_bytes_flow(orthanc, large, tmp_path, capsys):  # noqa: F811
    """QIDO, WADO-RS and STOW-RS through a relay at 150 kB/s with a 1 s time-out, the WADO-RS
    answer and the STOW-RS upload taking about 2.6 s each: nothing times out, since bytes keep
    moving.  (The upload used to time out: requests' read time-out ran while the body waited
    in the socket's send buffer, see web.py's SocketWatch.)"""
    orthanc.clear()
    orthanc.upload(large)
    ar = tmp_path / "ar"
    with Relay(orthanc.http_port, rate=SLOW_RATE) as relay:
        web_node(ar, "slow", relay.port)
        code, out, err = run(capsys, "--archive", ar, "remote", "find", "slow", "--timeout", TIMEOUT, "--json")
        assert code == 0, err
        study = json.loads(out)["results"][0]["study_instance_uid"]
        get_as_expected(capsys, ar, "slow", study, orthanc,
                        {"received": 3, "indexed": 3, "already": 0, "failed": []}, TIMEOUT)
        send_back(capsys, ar, "slow", study, orthanc, 3, TIMEOUT)


# ---------------------------------------------------------------- a server stalling mid-answer
def test_a_dicomweb_server_stalling_mid_retrieve_and_mid_send_then_a_retry_completes(orthanc, large,  # noqa: F811
                                                                                     tmp_path, capsys):
    orthanc.clear()
    orthanc.upload(large)
    ar = tmp_path / "ar"
    add_nodes(ar, orthanc)
    with pocketpacs.open_archive(ar) as arch:
        study = arch.remote("web").find()[0]["study_instance_uid"]

    # WADO-RS of the whole series: the server stops sending in the middle of the second instance
    with Relay(orthanc.http_port, stall_after=200_000) as relay:
        web_node(ar, "stall", relay.port)
        code, out, err = run(capsys, "--archive", ar, "remote", "get", "stall", study, "--timeout", TIMEOUT, "--json")
        assert relay.stalled
    assert code == 1, err
    assert f"remote 'stall' (http://127.0.0.1:{relay.port}/dicom-web)" in err, err
    assert f"nothing received for {TIMEOUT} s (the time-out) during the WADO-RS retrieve" in err, err
    assert "partial retrieve" in err and "Traceback" not in err, err
    res = json.loads(out)
    assert res["received"] == 1 and res["indexed"] == 1 and res["already"] == 0
    assert [f["reason"] for f in res["failed"]] == ["not_received"] * 2
    with pocketpacs.open_archive(ar) as arch:
        check_store_consistent(ar, arch)
        assert len(archived_files(arch)) == 1

    # the server answers again: the same retrieve fetches the other two (instance by instance)
    get_as_expected(capsys, ar, "web", study, orthanc, {"received": 2, "indexed": 2, "already": 1, "failed": []},
                    TIMEOUT)

    # STOW-RS whose answer never comes: a clear message; sent again, it completes
    orthanc.clear()
    with Relay(orthanc.http_port, stall_after=1) as relay:
        web_node(ar, "stall", relay.port)
        code, out, err = run(capsys, "--archive", ar, "remote", "send", "stall", study, "--timeout", TIMEOUT)
        assert relay.stalled
    assert code == 4, err
    assert "remote 'stall'" in err and f"nothing received for {TIMEOUT} s (the time-out) during STOW-RS" in err, err
    assert "Traceback" not in err
    code, out, err = run(capsys, "--archive", ar, "remote", "send", "web", study, "--json")
    assert code == 0, err
    assert json.loads(out) == {"sent": 3, "failed": []}
    assert len(orthanc.sop_uids()) == 3


def test_cancel_ends_a_wado_rs_retrieve_from_a_stalled_server_at_once(orthanc, large, tmp_path):  # noqa: F811
    """A long time-out, the server stalled mid-answer: cancel cuts the waiting request at once
    (not after the time-out); what came whole is kept, nothing half-written, and the same
    retrieve fetches the rest once the server answers again."""
    import threading
    import time

    orthanc.clear()
    orthanc.upload(large)
    ar = tmp_path / "ar"
    with Relay(orthanc.http_port, stall_after=200_000) as relay:
        web_node(ar, "stall", relay.port)
        cancel = threading.Event()
        guard = threading.Timer(120, relay.close)   # never hang the suite if cancel failed

        def cancel_when_stalled() -> None:
            while not relay.stalled and not relay.closed:
                time.sleep(0.05)
            time.sleep(0.5)
            cancel.set()

        with pocketpacs.open_archive(ar) as arch:
            study = arch.remote("stall").find()[0]["study_instance_uid"]
            guard.start()
            threading.Thread(target=cancel_when_stalled, daemon=True).start()
            try:
                res = arch.remote("stall", timeout=3600).get(study, cancel=cancel)
            finally:
                guard.cancel()
                closed_by_guard = relay.closed
            assert not closed_by_guard, "the cancelled retrieve did not end while the server was stalled"
            assert res.cancelled and res.problem == "cancelled" and not res.complete
            assert res.received == res.indexed and res.received < 3
            check_store_consistent(ar, arch)
            relay.resume()   # the server answers again: the same retrieve fetches the rest
            again = arch.remote("stall").get(study)
            assert again.complete and again.already == res.received and again.received == 3 - res.received
            check_same_as_orthanc(arch, orthanc)
            check_store_consistent(ar, arch)


# ---------------------------------------------------------------- a full store disk
def test_a_full_disk_during_a_wado_rs_retrieve_stops_cleanly_and_a_retry_completes(orthanc, tmp_path,  # noqa: F811
                                                                                   capsys):
    files = synth_files(tmp_path / "synth", series=1, slices=30, rows=128, cols=128, compressed_fraction=0.0,
                        implicit_fraction=0.0, seed=33)
    orthanc.clear()
    orthanc.upload(files)
    ar = tmp_path / "ar"
    add_nodes(ar, orthanc)
    full_disk_then_retry(capsys, ar, orthanc, "web")


# ---------------------------------------------------------------- Orthanc killed mid-retrieve
def test_orthanc_killed_mid_wado_rs_retrieve_then_a_retry_completes(own_orthanc, tmp_path):  # noqa: F811
    """A server that dies while a WADO-RS series streams in (paced by a relay, so that the
    killed server had not sent it all yet): the instances that came whole are kept, the one
    cut in the middle is not, and the retry fetches only the rest."""
    # 80 instances of 128 KiB (10 MB), killed after 15 (2 MB): the server cannot have sent the
    # rest, its socket buffer holding at most 4 MB (Linux's default tcp_wmem maximum)
    files = synth_files(tmp_path / "synth", series=1, slices=80, rows=256, cols=256, compressed_fraction=0.0,
                        implicit_fraction=0.0, seed=43)
    own_orthanc.upload(files)
    ar = tmp_path / "ar"
    with Relay(own_orthanc.http_port, rate=8_000_000) as relay:
        web_node(ar, "paced", relay.port)
        res = kill_midway_then_retry(own_orthanc, ar, "paced", at=15)
    assert res.problem.startswith(f"remote 'paced' (http://127.0.0.1:{relay.port}/dicom-web): ")
    assert "the connection was cut during the WADO-RS retrieve" in res.problem, res.problem
