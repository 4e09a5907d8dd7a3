"""Retrieve and send against a real Orthanc (issue 14): C-GET, C-MOVE and WADO-RS
round trips of synthetic series and of real files in mixed transfer syntaxes
(the archive then holds exactly Orthanc's SOP Instance UIDs, pixel data byte
for byte), no second fetch of what is archived, send back to an empty Orthanc,
and a server killed mid-retrieve (nothing half-written, a retry completes)."""
from __future__ import annotations

import json
import shutil
import threading

import pytest
from net_support import (AET, add_nodes, dcmtk_tool, archived_files, check_private, check_same_as_orthanc,  # noqa: F401
                         kill_midway_then_retry, kill_series, orthanc, own_orthanc, synth_files)

import pocketpacs
import pocketpacs.net  # gives Archive.remote
from pocketpacs.cli import main
from pocketpacs.net.nodes import RemoteNode, save_node


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synth_files(tmp_path_factory.mktemp("synth"))


@pytest.mark.parametrize("method", ["get", "move", "web"])
def test_round_trip_of_synthetic_series(orthanc, synth, tmp_path, capsys, method):  # noqa: F811
    orthanc.clear()
    orthanc.upload(synth)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        study = ar.remote(method).find()[0]["study_instance_uid"]
    capsys.readouterr()
    code = main(["--archive", str(tmp_path / "ar"), "remote", "get", method, study, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out == {"received": 8, "indexed": 8, "already": 0, "failed": []}
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        check_same_as_orthanc(ar, orthanc)
        assert ar.remote(method).find()[0]["in_archive"] is True
    check_private(tmp_path / "ar" / "store")
    # again: nothing is fetched
    capsys.readouterr()
    assert main(["--archive", str(tmp_path / "ar"), "remote", "get", method, study, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"received": 0, "indexed": 0, "already": 8, "failed": []}


def test_get_one_series_then_the_rest(orthanc, synth, tmp_path):  # noqa: F811
    orthanc.clear()
    orthanc.upload(synth)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        pacs = ar.remote("get")
        study = pacs.find()[0]["study_instance_uid"]
        from pocketpacs.net import dimse

        series = sorted({se for se, _, _ in dimse.list_instances(pacs.node, study)})
        res = pacs.get(study, [series[0]])
        assert res.complete and res.received == 4
        res = pacs.get(study)
        assert (res.received, res.already, res.failed) == (4, 4, [])
        check_same_as_orthanc(ar, orthanc)


@pytest.mark.corpus
@pytest.mark.parametrize("method", ["get", "move", "web"])
def test_round_trip_of_real_files_in_mixed_transfer_syntaxes(orthanc, corpus, tmp_path, method):  # noqa: F811
    """dcm_qa_ts: one Siemens series in explicit/implicit/big-endian VR, RLE, JPEG lossless,
    JPEG-LS and JPEG 2000, plus a Philips CT series: each file arrives in its own syntax."""
    files = sorted((corpus / "dcm_qa_ts" / "In").glob("*.dcm"))
    files += sorted((corpus / "dcm_qa_ct_philips_S21570").rglob("*.dcm"))[:6]
    orthanc.clear()
    orthanc.upload(files)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        pacs = ar.remote(method)
        studies = pacs.find()
        assert studies
        for st in studies:
            res = pacs.get(st["study_instance_uid"])
            assert res.complete, res
        check_same_as_orthanc(ar, orthanc)
        syntaxes = {i.transfer_syntax for se in (s for st in ar.studies() for s in ar.series(st))
                    for i in ar.instances(se)}
        assert len(syntaxes) >= 6, syntaxes


@pytest.mark.parametrize("kind", ["dimse", "web"])
def test_send_back_to_an_empty_orthanc(orthanc, synth, tmp_path, capsys, kind):  # noqa: F811
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        ar.import_folder(synth[0].parent)
        study = ar.studies()[0].uid
        want = set(archived_files(ar))
    orthanc.clear()
    add_nodes(tmp_path / "ar", orthanc)
    capsys.readouterr()
    code = main(["--archive", str(tmp_path / "ar"), "remote", "send", "get" if kind == "dimse" else "web", study,
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out == {"sent": len(want), "failed": []}
    assert set(orthanc.sop_uids()) == want
    code = main(["--archive", str(tmp_path / "ar"), "remote", "send", "get", "1.2.3.4.5.6.7"])
    assert code == 4 and "no patient ID, study, series or instance" in capsys.readouterr().err


def test_server_down(tmp_path, capsys):
    from net_support import free_port

    ar = tmp_path / "ar"
    save_node(ar, RemoteNode("down", "dimse", aet=AET, host="127.0.0.1", port=free_port()))
    code = main(["--archive", str(ar), "remote", "get", "down", "1.2.3"])
    err = capsys.readouterr().err
    assert code == 4 and "cannot connect" in err and "Traceback" not in err


def test_orthanc_killed_mid_retrieve_then_a_retry_completes(own_orthanc, kill_series, tmp_path):  # noqa: F811
    """A server that dies during a C-GET: a clear partial result, no half-written
    file in the store, and a retry (server back) fetches only what is missing."""
    own_orthanc.upload(kill_series)
    add_nodes(tmp_path / "ar", own_orthanc)
    res = kill_midway_then_retry(own_orthanc, tmp_path / "ar", "get")
    assert "remote 'get'" in res.problem and "connection was lost" in res.problem


def test_cancel_stops_cleanly_and_a_retry_completes(orthanc, tmp_path):  # noqa: F811
    files = synth_files(tmp_path / "synth", series=1, slices=40, compressed_fraction=0.0, seed=11)
    orthanc.clear()
    orthanc.upload(files)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        pacs = ar.remote("get")
        study = pacs.find()[0]["study_instance_uid"]
        cancel = threading.Event()

        def progress(done, total):
            if done >= 10:
                cancel.set()

        res = pacs.get(study, cancel=cancel, progress=progress)
        assert res.cancelled and not res.complete and res.problem == "cancelled"
        assert 10 <= res.received < 40 and res.indexed == res.received
        assert not list((tmp_path / "ar" / "store-incoming").iterdir())
        again = pacs.get(study)
        assert again.complete and again.already == res.received
        check_same_as_orthanc(ar, orthanc)


def test_send_transcodes_only_what_the_peer_refuses(synth, tmp_path):
    """DCMTK's storescp accepts only uncompressed syntaxes by default: the JPEG 2000 /
    RLE / JPEG lossless files are sent decompressed (same pixel values), the others as they are."""
    import socket
    import subprocess
    import time

    import numpy as np
    import pydicom
    from conftest import require_system
    from net_support import free_port

    storescp = dcmtk_tool("storescp")
    require_system(storescp is not None, "DCMTK's storescp (apt-get install dcmtk)")
    port = free_port()
    out = tmp_path / "received"
    out.mkdir()
    p = subprocess.Popen([storescp, "-aet", "STORESCP", "-od", str(out), str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        with pocketpacs.open_archive(tmp_path / "ar") as ar:
            ar.import_folder(synth[0].parent)
            save_node(ar.path, RemoteNode("scp", "dimse", aet="STORESCP", host="127.0.0.1", port=port))
            res = ar.remote("scp").send([ar.studies()[0].uid])
    finally:
        p.terminate()
        p.wait(30)
    originals = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in synth}
    compressed = {k for k, ds in originals.items() if ds.file_meta.TransferSyntaxUID.is_compressed}
    assert compressed and res.sent == len(synth) and not res.failed
    assert res.transcoded == len(compressed)
    got = [pydicom.dcmread(f) for f in out.iterdir()]
    assert {str(ds.SOPInstanceUID) for ds in got} == set(originals)
    for ds in got:
        orig = originals[str(ds.SOPInstanceUID)]
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        if str(ds.SOPInstanceUID) in compressed:
            assert np.array_equal(ds.pixel_array, orig.pixel_array)
        else:
            assert ds.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
            assert ds.PixelData == orig.PixelData


@pytest.mark.corpus
def test_send_to_a_peer_accepting_only_explicit_little_endian(corpus, tmp_path):
    """Big endian and JPEG lossless files of dcm_qa_ts reach a peer (a pynetdicom SCP) that
    accepts only explicit VR little endian: decoded values equal, UIDs kept."""
    import numpy as np
    import pydicom
    from pynetdicom import AE, evt

    src = corpus / "dcm_qa_ts" / "In"
    (tmp_path / "in").mkdir()
    for n in ("1", "2", "3", "5"):   # explicit LE, implicit LE, explicit BE, JPEG lossless
        shutil.copy(src / f"{n}.dcm", tmp_path / "in" / f"{n}.dcm")
    got = {}

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        got[str(ds.SOPInstanceUID)] = ds
        return 0

    ae = AE("ONLYELE")
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.4", ["1.2.840.10008.1.2.1"])
    srv = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        with pocketpacs.open_archive(tmp_path / "ar") as ar:
            ar.import_folder(tmp_path / "in")
            save_node(ar.path, RemoteNode("e", "dimse", aet="ONLYELE", host="127.0.0.1",
                                          port=srv.server_address[1]))
            res = ar.remote("e").send([ar.studies()[0].uid])
    finally:
        srv.shutdown()
    assert res.sent == 4 and not res.failed
    for f in (tmp_path / "in").iterdir():
        orig = pydicom.dcmread(f)
        ds = got[str(orig.SOPInstanceUID)]
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert np.array_equal(ds.pixel_array, orig.pixel_array), f.name
