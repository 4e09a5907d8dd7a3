"""An association rejected by the peer (issue 14): every DIMSE command to a real Orthanc
that checks the called AE title (``DicomCheckCalledAet``), called with a wrong one.

``remote echo``, ``find``, ``get`` (C-GET and C-MOVE) and ``send`` (one association,
and several in worker processes) each end with exit 4 and a message naming the
node, saying the association was rejected and why (the called AE title), and
naming both AE titles to check; no traceback, nothing written to the store and
nothing added to the archive.  (Our calling AE title unknown to the peer, which
Orthanc accepts for C-ECHO but not for C-FIND, is in test_net_remote.py.)
"""
from __future__ import annotations

import pytest
from net_support import AET, archived_files, free_port, orthanc, synth_files  # noqa: F401

import pocketpacs
import pocketpacs.net  # gives Archive.remote
from pocketpacs.cli import main
from pocketpacs.net import NetError
from pocketpacs.net.nodes import RemoteNode, save_node

WRONG = "NOTORTHANC"


@pytest.fixture(scope="module")
def held(orthanc, tmp_path_factory):  # noqa: F811
    """Orthanc holding one synthetic study; the study's files and UID."""
    files = synth_files(tmp_path_factory.mktemp("synth"), seed=61)
    orthanc.clear()
    orthanc.upload(files)
    import pydicom

    return files, str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _expected(o) -> str:
    return (f"remote 'wrong' ({WRONG}@127.0.0.1:{o.dicom_port}) rejected the association: the called AE title is "
            f"not recognised by the peer (called AE '{WRONG}', calling AE 'POCKETPACS'")


@pytest.mark.parametrize("argv", [["echo"], ["find"], ["get", "STUDY"], ["get", "STUDY", "--move"],
                                  ["send", "STUDY"]], ids=["echo", "find", "get", "get-move", "send"])
def test_a_wrong_called_aet_is_said_for_each_command(orthanc, held, tmp_path, capsys, argv):  # noqa: F811
    files, study = held
    ar = tmp_path / "ar"
    move = "--move" in argv
    argv = [study if a == "STUDY" else a for a in argv if a != "--move"]
    save_node(ar, RemoteNode("wrong", "dimse", aet=WRONG, host="127.0.0.1", port=orthanc.dicom_port,
                             retrieve="move" if move else "get", move_port=free_port()))
    with pocketpacs.open_archive(ar) as arch:
        if argv[0] == "send":
            arch.import_folder(files[0].parent)
        before = set(archived_files(arch))
    capsys.readouterr()
    code = main(["--archive", str(ar), "remote", argv[0], "wrong", *argv[1:]])
    out, err = capsys.readouterr()
    assert code == 4, err
    assert _expected(orthanc) in err, err
    assert "Traceback" not in err and "Traceback" not in out
    with pocketpacs.open_archive(ar, readonly=True) as arch:
        assert set(archived_files(arch)) == before
    assert not (ar / "store").exists() or not [p for p in (ar / "store").rglob("*") if p.is_file()]


def test_a_wrong_called_aet_for_a_send_in_worker_processes(orthanc, held, tmp_path):  # noqa: F811
    files, study = held
    ar = tmp_path / "ar"
    save_node(ar, RemoteNode("wrong", "dimse", aet=WRONG, host="127.0.0.1", port=orthanc.dicom_port))
    with pocketpacs.open_archive(ar) as arch:
        arch.import_folder(files[0].parent)
    with pocketpacs.open_archive(ar, readonly=True) as arch:
        with pytest.raises(NetError) as e:
            arch.remote("wrong").send([study], workers=2)
    assert _expected(orthanc) in str(e.value)


def test_a_rejection_read_before_the_requester_looks_is_still_said(orthanc, monkeypatch):  # noqa: F811
    """pynetdicom's race, made certain: the requesting thread is late (a loaded machine),
    so the reactor has read the reject and the close before it looks whether the
    connection opened; the reason is still the peer's, not "ended before it was set up"."""
    import time

    from pynetdicom.acse import ACSE

    from pocketpacs.net import dimse

    send_request = ACSE.send_request

    def late(self, *a, **kw):
        send_request(self, *a, **kw)
        time.sleep(0.5)

    monkeypatch.setattr(ACSE, "send_request", late)
    node = RemoteNode("wrong", "dimse", aet=WRONG, host="127.0.0.1", port=orthanc.dicom_port)
    ae = dimse.make_ae(node.calling_aet)
    ae.add_requested_context("1.2.840.10008.1.1")
    with pytest.raises(NetError) as e:
        dimse.associate(node, ae)
    assert _expected(orthanc) in str(e.value)
