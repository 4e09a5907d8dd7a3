"""Network faults (issue 14) against a real Orthanc: a slow peer, a stalled peer, a full disk
during a retrieve, and a SOP Instance UID the archive holds with other content.

The slow peer is a small TCP relay between us and Orthanc's DICOM port
(:class:`net_support.Relay`: it forwards real DIMSE bytes at a set rate, with
small socket buffers so that the sender feels the pace as on a thin link, and
it can stop forwarding while keeping the connection open).  The full disk is
a small tmpfs mounted on the archive's store folder (root in a container that
allows mounts: skipped with mount's reason elsewhere).  Every case checks the
message, that the store holds no half-written file and no file the index
does not name (nor the reverse), and that running the same command again
completes.  The server down, an association rejected and Orthanc killed
mid-retrieve are in test_net_remote.py / test_net_rejected.py /
test_net_retrieve.py; the DICOMweb faults in test_net_faults_web.py, a slow
and a stalled C-MOVE in test_net_faults_move.py.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest
from conftest import require_system
from net_support import AET, POCKET_AET, Orthanc, Relay, orthanc, pixel_bytes, synth_files  # noqa: F401

import pocketpacs
from pocketpacs.cli import main
from pocketpacs.net import Remote, listen
from pocketpacs.net.nodes import RemoteNode, save_node

#: Bytes per second of the slow relay: one 256x256 instance (128 KiB) takes about 3.3 s.
SLOW_RATE = 40_000
#: The time-out of these tests (seconds): shorter than one instance's transfer through the relay.
TIMEOUT = 2


# ---------------------------------------------------------------- helpers
def archived_files(ar) -> dict[str, list[str]]:
    """SOP Instance UID -> files, of every archived instance."""
    out = {}
    for st in ar.studies():
        for se in ar.series(st):
            for i in ar.instances(se):
                out[i.sop_instance_uid] = list(i.paths)
    return out


def check_store_consistent(archive_dir: Path, ar) -> None:
    """No temporary file anywhere, and the store's files are exactly the indexed ones."""
    incoming = archive_dir / "store-incoming"
    assert not incoming.exists() or not list(incoming.iterdir()), "a temporary file was left"
    in_store = {os.path.realpath(p) for p in (archive_dir / "store").rglob("*") if p.is_file()}
    assert all(p.endswith(".dcm") for p in in_store), in_store
    indexed = {os.path.realpath(p) for paths in archived_files(ar).values() for p in paths}
    assert in_store == {p for p in indexed if p.startswith(os.path.realpath(archive_dir / "store"))}


def check_same_as_orthanc(ar, o: Orthanc) -> None:
    held = o.sop_uids()
    files = archived_files(ar)
    assert set(files) == set(held)
    for sop, iid in held.items():
        assert pixel_bytes(Path(files[sop][0]).read_bytes()) == pixel_bytes(o.file(iid)), sop


def run(capsys, *argv):
    capsys.readouterr()
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def get_as_expected(capsys, ar: Path, node: str, study: str, server, want: dict, timeout=None) -> None:
    """``remote get --json`` of *study* from *node* exits 0 answering *want*; the archive then
    holds exactly what *server* holds, with nothing else in its store."""
    extra = ["--timeout", timeout] if timeout is not None else []
    code, out, err = run(capsys, "--archive", ar, "remote", "get", node, study, *extra, "--json")
    assert code == 0, err
    assert json.loads(out) == want
    with pocketpacs.open_archive(ar) as arch:
        check_same_as_orthanc(arch, server)
        check_store_consistent(ar, arch)


def send_back(capsys, ar: Path, node: str, study: str, server, n: int, timeout=None) -> None:
    """Empty *server*, then ``remote send --json`` *study* to *node*: all *n* instances arrive."""
    server.clear()
    extra = ["--timeout", timeout] if timeout is not None else []
    code, out, err = run(capsys, "--archive", ar, "remote", "send", node, study, *extra, "--json")
    assert code == 0, err
    assert json.loads(out) == {"sent": n, "failed": []}
    assert len(server.sop_uids()) == n


# ---------------------------------------------------------------- a slow and a stalled peer
@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Three 256x256 uncompressed instances (128 KiB each: each takes longer than TIMEOUT through the relay)."""
    return synth_files(tmp_path_factory.mktemp("large"), series=1, slices=3, rows=256, cols=256,
                       compressed_fraction=0.0, implicit_fraction=0.0, seed=21)


def test_a_slow_peer_is_not_cut_off_while_bytes_flow(orthanc, large, tmp_path, capsys):  # noqa: F811
    """find, get and send through a relay at 40 kB/s with a 2 s time-out, each instance taking
    about 3.3 s: nothing times out, since bytes keep moving (a time-out per DIMSE message would fire)."""
    orthanc.clear()
    orthanc.upload(large)
    relay = Relay(orthanc.dicom_port, rate=SLOW_RATE)
    ar = tmp_path / "ar"
    try:
        save_node(ar, RemoteNode("slow", "dimse", aet=AET, host="127.0.0.1", port=relay.port))
        with pocketpacs.open_archive(ar) as arch:
            study = Remote(arch, "slow", timeout=TIMEOUT).find()[0]["study_instance_uid"]
        get_as_expected(capsys, ar, "slow", study, orthanc,
                        {"received": 3, "indexed": 3, "already": 0, "failed": []}, TIMEOUT)
        send_back(capsys, ar, "slow", study, orthanc, 3, TIMEOUT)
    finally:
        relay.close()


def test_a_stalled_peer_times_out_clearly_cancel_is_immediate_and_a_retry_completes(orthanc, large, tmp_path,  # noqa: F811
                                                                                     capsys):
    orthanc.clear()
    orthanc.upload(large)
    ar = tmp_path / "ar"
    save_node(ar, RemoteNode("direct", "dimse", aet=AET, host="127.0.0.1", port=orthanc.dicom_port))
    with pocketpacs.open_archive(ar) as arch:
        study = arch.remote("direct").find()[0]["study_instance_uid"]

    # a peer that never answers the association request: find says so after the time-out
    mute = Relay(orthanc.dicom_port, stall_after=0)
    try:
        save_node(ar, RemoteNode("mute", "dimse", aet=AET, host="127.0.0.1", port=mute.port))
        code, _, err = run(capsys, "--archive", ar, "remote", "find", "mute", "--timeout", TIMEOUT)
        assert code == 4 and "no answer to the association request within 2 s" in err, err
        assert "Traceback" not in err
    finally:
        mute.close()

    # a retrieve whose peer stops sending in the middle of the second instance
    relay = Relay(orthanc.dicom_port, stall_after=200_000)
    try:
        save_node(ar, RemoteNode("stall", "dimse", aet=AET, host="127.0.0.1", port=relay.port))
        code, out, err = run(capsys, "--archive", ar, "remote", "get", "stall", study, "--timeout", TIMEOUT, "--json")
        assert relay.stalled
        assert code == 1, err
        assert "nothing received or sent for 2 s" in err and "partial retrieve" in err, err
        res = json.loads(out)
        assert 1 <= res["received"] < 3 and res["indexed"] == res["received"]
        assert {f["reason"] for f in res["failed"]} == {"not_received"}
    finally:
        relay.close()
    with pocketpacs.open_archive(ar) as arch:
        check_store_consistent(ar, arch)
        got = len(archived_files(arch))

        # stalled again, with a long time-out: cancel ends it at once (not after the time-out)
        relay = Relay(orthanc.dicom_port, stall_after=60_000)
        cancel = threading.Event()
        guard = threading.Timer(120, relay.close)   # never hang the suite if cancel failed

        def cancel_when_stalled() -> None:
            while not relay.stalled and not relay.closed:
                time.sleep(0.05)
            time.sleep(0.5)
            cancel.set()

        try:
            save_node(ar, RemoteNode("stall", "dimse", aet=AET, host="127.0.0.1", port=relay.port), replace=True)
            guard.start()
            threading.Thread(target=cancel_when_stalled, daemon=True).start()
            res = Remote(arch, "stall", timeout=3600).get(study, cancel=cancel)
        finally:
            guard.cancel()
            closed_by_guard = relay.closed
            relay.close()
        assert not closed_by_guard, "the cancelled retrieve did not end while the peer was stalled"
        assert res.cancelled and res.problem == "cancelled" and not res.complete
        check_store_consistent(ar, arch)

        # the peer is back: the same retrieve fetches the rest
        again = arch.remote("direct").get(study)
        assert again.complete and again.already >= got and again.already + again.received == 3
        check_same_as_orthanc(arch, orthanc)
        check_store_consistent(ar, arch)


# ---------------------------------------------------------------- a full disk
def _mount_tmpfs(where: Path, size: str) -> None:
    """Mount a small tmpfs at *where*, or skip saying why.

    Mounting needs root *and* a container that allows it (CAP_SYS_ADMIN): a
    permission of the machine, not a package ``.ci/run`` could install, so a
    refusal skips (with mount's own message) under CI=true too; a missing
    ``mount`` command is a missing system part (a failure under CI=true).
    """
    import shutil

    require_system(shutil.which("mount") is not None, "the mount command (util-linux)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine does not let the test mount a tmpfs for the full-disk case "
                    f"(needs root and CAP_SYS_ADMIN; mount said: {(r.stderr or r.stdout).strip()})")


def full_disk_then_retry(capsys, ar: Path, server: Orthanc, node: str) -> None:
    """Retrieve the one study of *server* (30 instances of 33 kB) from *node* into a
    320 KiB store: a clear partial retrieve, only whole files kept and indexed; then,
    with room made, the same command fetches the rest (DIMSE and DICOMweb alike)."""
    with pocketpacs.open_archive(ar) as arch:
        study = arch.remote(node).find()[0]["study_instance_uid"]
    store = ar / "store"
    store.mkdir(mode=0o700)
    _mount_tmpfs(store, "320k")       # room for about 8 of the 30 instances (33 kB each)
    try:
        code, out, err = run(capsys, "--archive", ar, "remote", "get", node, study, "--json")
        assert code == 1, err
        assert "no space left" in err and str(store) in err and "partial retrieve" in err, err
        assert "Traceback" not in err
        res = json.loads(out)
        assert 1 <= res["received"] < 30 and res["indexed"] == res["received"]
        reasons = [f["reason"] for f in res["failed"]]
        assert len(reasons) == 30 - res["received"]
        assert "write_failed: no space left on device" in reasons
        assert set(reasons) <= {"write_failed: no space left on device", "not_received"}
        with pocketpacs.open_archive(ar) as arch:
            check_store_consistent(ar, arch)
            held = server.sop_uids()
            for sop, paths in archived_files(arch).items():   # what was written is whole
                assert pixel_bytes(Path(paths[0]).read_bytes()) == pixel_bytes(server.file(held[sop]))
            assert len(archived_files(arch)) == res["received"]
        # space freed: the same command fetches the rest
        subprocess.run(["mount", "-o", "remount,size=4m", str(store)], check=True)
        code, out, err = run(capsys, "--archive", ar, "remote", "get", node, study, "--json")
        assert code == 0, err
        again = json.loads(out)
        assert again["already"] == res["received"] and again["received"] == 30 - res["received"]
        with pocketpacs.open_archive(ar) as arch:
            check_same_as_orthanc(arch, server)
            check_store_consistent(ar, arch)
    finally:
        subprocess.run(["umount", "-l", str(store)], capture_output=True)


def test_a_full_disk_during_a_retrieve_stops_cleanly_and_a_retry_completes(orthanc, tmp_path, capsys):  # noqa: F811
    files = synth_files(tmp_path / "synth", series=1, slices=30, rows=128, cols=128, compressed_fraction=0.0,
                        implicit_fraction=0.0, seed=31)
    orthanc.clear()
    orthanc.upload(files)
    ar = tmp_path / "ar"
    save_node(ar, RemoteNode("pacs", "dimse", aet=AET, host="127.0.0.1", port=orthanc.dicom_port))
    full_disk_then_retry(capsys, ar, orthanc, "pacs")


# ---------------------------------------------------------------- the same SOP UID, other content
def test_a_sop_uid_the_archive_holds_with_other_content_is_never_overwritten(orthanc, tmp_path, capsys):  # noqa: F811
    """get and listen alike: the archived file stays as it was, and the other instance is reported
    as a conflict (get: the node's instance lies in another series, so it is not fetched; listen:
    the pushed file is kept apart and the importer flags it)."""
    files = synth_files(tmp_path / "synth", series=1, slices=4, rows=32, cols=32, compressed_fraction=0.0,
                        implicit_fraction=0.0, seed=41)
    orthanc.clear()
    orthanc.upload(files)
    # the archive holds the first instance's SOP UID in a series of its own, with other content
    mine = tmp_path / "mine"
    mine.mkdir()
    ds = pydicom.dcmread(files[0])
    sop = str(ds.SOPInstanceUID)
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesDescription = "edited here"
    ds.save_as(mine / "edited.dcm")
    before = (mine / "edited.dcm").read_bytes()
    ar = tmp_path / "ar"
    save_node(ar, RemoteNode("pacs", "dimse", aet=AET, host="127.0.0.1", port=orthanc.dicom_port))
    with pocketpacs.open_archive(ar) as arch:
        arch.import_folder(mine)
        study = arch.remote("pacs").find()[0]["study_instance_uid"]
    code, out, err = run(capsys, "--archive", ar, "remote", "get", "pacs", study, "--json")
    res = json.loads(out)
    assert code == 1, err
    assert (res["received"], res["already"], res["failed"]) == (3, 1, [])
    assert [c["sop_instance_uid"] for c in res["conflicts"]] == [sop]
    assert res["conflicts"][0]["reason"].startswith("conflict: the archive holds this SOP Instance UID in "
                                                     "another series")
    assert "never overwritten" in err
    assert (mine / "edited.dcm").read_bytes() == before
    with pocketpacs.open_archive(ar) as arch:
        assert archived_files(arch)[sop] == [str(mine / "edited.dcm")]
        check_store_consistent(ar, arch)

        # listen: Orthanc pushes its instance of that SOP UID; kept apart and counted as a conflict
        with listen(arch, port=orthanc.pocket_port, aet=POCKET_AET) as lst:
            orthanc.push_to_pocket([orthanc.sop_uids()[sop]])
        assert (lst.status.received, lst.status.conflicts) == (1, 1)
        assert (mine / "edited.dcm").read_bytes() == before
        assert archived_files(arch)[sop] == [str(mine / "edited.dcm")]
        assert len(arch.conflicts()) == 1
        kept = [p for p in (ar / "store").rglob("*.dcm") if p.stat().st_size and
                str(pydicom.dcmread(io.BytesIO(p.read_bytes()), stop_before_pixels=True).SOPInstanceUID) == sop]
        assert len(kept) == 1 and pixel_bytes(kept[0].read_bytes()) == pixel_bytes(files[0].read_bytes())


# ---------------------------------------------------------------- listen off loopback
def test_listen_checks_its_address_and_warns_when_other_computers_can_connect(tmp_path, capsys):
    import select
    import signal
    import sys

    from conftest import REPO
    from net_support import free_port

    code, _, err = run(capsys, "--archive", tmp_path / "ar", "listen", "--port", "0", "--bind", "no such address!")
    assert code == 4 and "bind address 'no such address!': expected an IP address" in err
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-m", "pocketpacs", "--archive", str(tmp_path / "ar"), "listen",
                          "--port", str(port), "--bind", "0.0.0.0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([p.stdout], [], [], 120)
        assert ready, "pocketpacs listen printed no ready line within 120 s"
        assert f"listening as POCKETPACS on 0.0.0.0:{port}" in p.stdout.readline()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert (f"warning: listening on every interface: other computers on the network can connect to port {port}"
            in err) and "any calling AE title is accepted (no --allow list)" in err
