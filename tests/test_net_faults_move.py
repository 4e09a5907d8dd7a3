"""C-MOVE with a slow peer (issue 14), against a real Orthanc.

A C-MOVE has two connections: our C-MOVE request to Orthanc, and Orthanc's
own association to our move listener carrying the instances (C-STORE).  Here
both go through a :class:`net_support.Relay`: the request to Orthanc's DICOM
port, and Orthanc's C-STOREs by way of a relay listening on the port Orthanc
knows for us (its ``pocket`` modality), forwarding to the node's move port.
Slowed down, the retrieve completes with a time-out shorter than one
instance's transfer (bytes keep moving); stalled in the middle of an
instance, it fails with a clear message after the time-out, nothing
half-written, and the same retrieve fetches the rest once the link is back.
"""
from __future__ import annotations

import json

from net_support import AET, Relay, check_same_as_orthanc, free_port, orthanc, synth_files  # noqa: F401
from test_net_faults import archived_files, check_store_consistent, get_as_expected, run

import pocketpacs
from pocketpacs.net.nodes import RemoteNode, save_node

#: The time-out of these tests (seconds).
TIMEOUT = 1
#: Bytes per second of the slow links: one 128x128 instance (32 KiB) takes about 1.4 s, longer than TIMEOUT.
SLOW_RATE = 24_000


def move_node(archive_dir, name: str, port: int, move_port: int) -> None:
    save_node(archive_dir, RemoteNode(name, "dimse", aet=AET, host="127.0.0.1", port=port, retrieve="move",
                                      move_port=move_port), replace=True)


def test_a_c_move_through_slow_links_is_not_cut_off_while_bytes_flow(orthanc, tmp_path, capsys):  # noqa: F811
    files = synth_files(tmp_path / "synth", series=1, slices=2, rows=128, cols=128, compressed_fraction=0.0,
                        implicit_fraction=0.0, seed=51)
    orthanc.clear()
    orthanc.upload(files)
    ar = tmp_path / "ar"
    ours = free_port()
    with Relay(orthanc.dicom_port, rate=SLOW_RATE) as to_orthanc, \
            Relay(ours, rate=SLOW_RATE, listen_port=orthanc.pocket_port) as to_us:
        move_node(ar, "slowmove", to_orthanc.port, ours)
        code, out, err = run(capsys, "--archive", ar, "remote", "find", "slowmove", "--timeout", TIMEOUT, "--json")
        assert code == 0, err
        study = json.loads(out)["results"][0]["study_instance_uid"]
        code, out, err = run(capsys, "--archive", ar, "remote", "get", "slowmove", study, "--timeout", TIMEOUT,
                             "--json")
        assert to_us.forwarded > 2 * 128 * 128 * 2  # both instances came by the slow link
    assert code == 0, err
    assert json.loads(out) == {"received": 2, "indexed": 2, "already": 0, "failed": []}
    with pocketpacs.open_archive(ar) as arch:
        check_same_as_orthanc(arch, orthanc)
        check_store_consistent(ar, arch)


def test_a_c_move_stalled_mid_instance_times_out_clearly_and_a_retry_completes(orthanc, tmp_path,  # noqa: F811
                                                                                capsys):
    files = synth_files(tmp_path / "synth", series=1, slices=3, rows=128, cols=128, compressed_fraction=0.0,
                        implicit_fraction=0.0, seed=52)
    orthanc.clear()
    orthanc.upload(files)
    ar = tmp_path / "ar"
    ours = free_port()
    move_node(ar, "move", orthanc.dicom_port, ours)
    # Orthanc's C-STOREs stop in the middle of the second instance (32 KiB each)
    with Relay(ours, stall_after=50_000, count="client", listen_port=orthanc.pocket_port) as to_us:
        code, out, err = run(capsys, "--archive", ar, "remote", "find", "move", "--json")
        assert code == 0, err
        study = json.loads(out)["results"][0]["study_instance_uid"]
        code, out, err = run(capsys, "--archive", ar, "remote", "get", "move", study, "--timeout", TIMEOUT, "--json")
        assert to_us.stalled
        assert code == 1, err
        assert (f"remote 'move' ({AET}@127.0.0.1:{orthanc.dicom_port}): nothing received or sent for {TIMEOUT} s "
                "(the time-out)") in err, err
        assert "partial retrieve" in err and "Traceback" not in err, err
        res = json.loads(out)
        assert res["received"] == 1 and res["indexed"] == 1
        assert [f["reason"] for f in res["failed"]] == ["not_received"] * 2
        with pocketpacs.open_archive(ar) as arch:
            check_store_consistent(ar, arch)
            assert len(archived_files(arch)) == 1

        # the link is back: the same retrieve fetches the other two
        to_us.resume()
        get_as_expected(capsys, ar, "move", study, orthanc,
                        {"received": 2, "indexed": 2, "already": 1, "failed": []}, TIMEOUT)
