"""Retrieve and send over several associations at once, in worker processes
(issue 14, ``pocketpacs.net.parallel``; C-MOVE: every worker listening on the
move port with ``SO_REUSEPORT``), against a real Orthanc: the same
promises as one association -- every instance archived and indexed byte for
byte, nothing half-written, a cancel stops every worker and a retry fetches
only the rest, a server killed mid-retrieve gives a partial result that a
retry completes -- and the split itself."""
from __future__ import annotations

import threading

import pytest
from net_support import (add_nodes, archived_files, check_private, check_same_as_orthanc,  # noqa: F401
                         kill_midway_then_retry, kill_series, orthanc, own_orthanc, synth_files)

import pocketpacs
import pocketpacs.net  # gives Archive.remote
from pocketpacs.net import parallel


def test_split_keeps_order_and_sizes():
    items = list(range(10))
    parts = parallel.split(items, 3)
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert parallel.split([1], 1) == [[1]]
    assert parallel.worker_count(5, workers=8) == 5
    assert parallel.worker_count(1000, workers=1) == 1
    assert parallel.worker_count(10) == 1  # too few to be worth a process


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    return synth_files(tmp_path_factory.mktemp("synth"), series=2, slices=30, rows=64, cols=64, seed=5)


@pytest.mark.parametrize("method", ["get", "move"])
def test_parallel_retrieve_then_nothing_again(orthanc, series_files, tmp_path, method):  # noqa: F811
    orthanc.clear()
    orthanc.upload(series_files)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        pacs = ar.remote(method)
        study = pacs.find()[0]["study_instance_uid"]
        seen = []
        res = pacs.get(study, workers=3, progress=lambda done, total: seen.append((done, total)))
        assert res.complete and res.problem is None, res
        assert (res.received, res.indexed, res.already) == (60, 60, 0)
        assert seen[-1] == (60, 60) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        check_same_as_orthanc(ar, orthanc)
        again = pacs.get(study, workers=3)
        assert (again.received, again.already) == (0, 60)
    check_private(tmp_path / "ar" / "store")
    assert not list((tmp_path / "ar" / "store-incoming").iterdir())


@pytest.mark.parametrize("method", ["get", "move"])
def test_parallel_cancel_stops_every_worker_and_a_retry_completes(orthanc, series_files, tmp_path,  # noqa: F811
                                                                  method):
    orthanc.clear()
    orthanc.upload(series_files)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        pacs = ar.remote(method)
        study = pacs.find()[0]["study_instance_uid"]
        cancel = threading.Event()

        def progress(done, total):
            if done >= 10:
                cancel.set()

        res = pacs.get(study, cancel=cancel, progress=progress, workers=2)
        assert res.cancelled and not res.complete and res.problem == "cancelled"
        assert 10 <= res.received < 60 and res.indexed == res.received
        assert {f["reason"] for f in res.failed} <= {"not_received"}
        assert not list((tmp_path / "ar" / "store-incoming").iterdir())
        again = pacs.get(study, workers=2)
        assert again.complete and again.already == res.received and again.received == 60 - res.received
        check_same_as_orthanc(ar, orthanc)


def test_parallel_get_from_a_server_killed_midway(own_orthanc, kill_series, tmp_path):  # noqa: F811
    own_orthanc.upload(kill_series)
    add_nodes(tmp_path / "ar", own_orthanc)
    kill_midway_then_retry(own_orthanc, tmp_path / "ar", "get", workers=2)


def test_parallel_send_to_an_empty_orthanc(orthanc, series_files, tmp_path):  # noqa: F811
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        ar.import_folder(series_files[0].parent)
        study = ar.studies()[0].uid
        want = set(archived_files(ar))
    orthanc.clear()
    add_nodes(tmp_path / "ar", orthanc)
    seen = []
    with pocketpacs.open_archive(tmp_path / "ar", readonly=True) as ar:
        res = ar.remote("get").send([study], workers=3, progress=lambda done, total: seen.append((done, total)))
    assert res.sent == len(want) and res.failed == []
    assert seen[-1] == (len(want), len(want))
    assert set(orthanc.sop_uids()) == want


def test_parallel_send_to_a_dead_port_says_why(series_files, tmp_path):
    from net_support import AET, free_port

    from pocketpacs.net import NetError, RemoteNode, save_node

    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        ar.import_folder(series_files[0].parent)
        study = ar.studies()[0].uid
    save_node(tmp_path / "ar", RemoteNode("down", "dimse", aet=AET, host="127.0.0.1", port=free_port()))
    with pocketpacs.open_archive(tmp_path / "ar", readonly=True) as ar:
        with pytest.raises(NetError, match="cannot connect"):
            ar.remote("down").send([study], workers=2)


@pytest.mark.parametrize("method", ["get", "move"])
def test_ctrl_c_during_a_parallel_retrieve(orthanc, series_files, tmp_path, method):  # noqa: F811
    """A KeyboardInterrupt in the parent (what Ctrl-C raises there; the workers ignore
    SIGINT) stops every worker: it comes out of ``get`` (the CLI's exit 130), no worker
    is left, nothing is half-written, and the same ``get`` fetches the rest."""
    import multiprocessing

    orthanc.clear()
    orthanc.upload(series_files)
    add_nodes(tmp_path / "ar", orthanc)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        pacs = ar.remote(method)
        study = pacs.find()[0]["study_instance_uid"]

        def progress(done, total):
            if done == 10:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            pacs.get(study, progress=progress, workers=2)
        # every worker of the retrieve has ended (other children of this test process, such
        # as a decoder pool an earlier test left running, are not ours to count)
        assert [p for p in multiprocessing.active_children() if p.name.startswith("pocketpacs-net-")] == []
        assert not list((tmp_path / "ar" / "store-incoming").iterdir())
        again = pacs.get(study, workers=2)
        assert again.complete and again.received + again.already == 60
        check_same_as_orthanc(ar, orthanc)
