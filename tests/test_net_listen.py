"""``listen`` (issue 14): a C-STORE SCP archiving what DCMTK's ``storescu`` and a
real Orthanc push, refusing calling AE titles not in ``--allow``; the command
line starts, reports and stops cleanly on SIGTERM."""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, require_system
from net_support import POCKET_AET, dcmtk_tool, free_port, orthanc, pixel_bytes, synth_files  # noqa: F401

import pocketpacs
from pocketpacs.net import NetError, listen

STORESCU = dcmtk_tool("storescu")


#: storescu's option proposing a transfer syntax first
PROPOSE = {"1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.4.70": "-xs", "1.2.840.10008.1.2.5": "-xr",
           "1.2.840.10008.1.2.1": "-xe", "1.2.840.10008.1.2": "-xi"}


def storescu(port: int, files: list[Path], calling: str = "STORESCU", called: str = POCKET_AET, syntax: str = ""):
    require_system(STORESCU is not None, "DCMTK's storescu (apt-get install dcmtk)")
    opts = [PROPOSE[syntax]] if syntax else []
    return subprocess.run([STORESCU, *opts, "-aet", calling, "-aec", called, "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def archived(ar) -> dict[str, str]:
    out = {}
    for st in ar.studies():
        for se in ar.series(st):
            for i in ar.instances(se):
                out[i.sop_instance_uid] = i.paths[0]
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synth_files(tmp_path_factory.mktemp("synth"))


def sop_of(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_listen_receives_what_storescu_pushes(synth, tmp_path):
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        with listen(ar, port=0) as lst:
            import pydicom

            by_syntax: dict[str, list[Path]] = {}
            for p in synth:
                ts = str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                by_syntax.setdefault(ts, []).append(p)
            assert len(by_syntax) >= 2  # JPEG 2000 and uncompressed
            for ts, files in by_syntax.items():  # storescu proposes one compressed syntax at a time
                r = storescu(lst.port, files, syntax=ts)
                assert r.returncode == 0, r.stderr
            assert lst.status.received == len(synth)
            lst.index_now()
        files = archived(ar)
        assert set(files) == {sop_of(p) for p in synth}
        by_sop = {sop_of(p): p for p in synth}
        for sop, f in files.items():
            assert pixel_bytes(Path(f).read_bytes()) == pixel_bytes(by_sop[sop].read_bytes())
            # the data set is stored as it arrived, after a file meta group of our own (incoming.part10)
            got, sent = pydicom.dcmread(f), pydicom.dcmread(by_sop[sop])
            assert got.file_meta.MediaStorageSOPInstanceUID == sop
            assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
            assert got.file_meta.SourceApplicationEntityTitle == "STORESCU"
            assert got.file_meta.ImplementationVersionName == "POCKETPACS_NET1"
            assert Path(f).read_bytes().endswith(by_sop[sop].read_bytes()[-1000:])
        assert lst.status.by_caller == {"STORESCU": len(synth)}


def test_listen_receives_what_orthanc_pushes(orthanc, synth, tmp_path):  # noqa: F811
    orthanc.clear()
    orthanc.upload(synth)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        with listen(ar, port=orthanc.pocket_port, aet=POCKET_AET, allow=["ORTHANC"]) as lst:
            orthanc.push_to_pocket(list(orthanc.sop_uids().values()))
        assert lst.status.received == len(synth)
        assert set(archived(ar)) == set(orthanc.sop_uids())


def syntax_of(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def test_allow_refuses_unknown_calling_aets(synth, tmp_path):
    synth = [p for p in synth if syntax_of(p) == "1.2.840.10008.1.2.1"]
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        with listen(ar, port=0, allow=["TRUSTED"]) as lst:
            r = storescu(lst.port, synth[:2], calling="INTRUDER")
            assert r.returncode != 0
            assert lst.status.received == 0 and lst.status.refused_associations >= 1
            r = storescu(lst.port, synth[:2], calling="TRUSTED")
            assert r.returncode == 0, r.stderr
        assert len(archived(ar)) == 2


def test_bad_settings_are_clear(tmp_path):
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        with pytest.raises(NetError, match="AE title"):
            listen(ar, port=0, aet="A" * 17)
        with listen(ar, port=0) as lst:
            with pytest.raises(NetError, match="cannot listen"):
                listen(ar, port=lst.port)


def test_listen_command_runs_until_sigterm(synth, tmp_path):
    synth = [p for p in synth if syntax_of(p) == "1.2.840.10008.1.2.1"]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-m", "pocketpacs", "--archive", str(tmp_path / "ar"), "listen",
                          "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # the ready line, or a clear failure (never a hang: a line held in a pipe's buffer hung CI)
        ready, _, _ = select.select([p.stdout], [], [], 120)
        assert ready, "pocketpacs listen printed no ready line within 120 s"
        line = p.stdout.readline()
        assert f"listening as POCKETPACS on 127.0.0.1:{port}" in line, p.stderr.read() if p.poll() else line
        assert storescu(port, synth[:3]).returncode == 0
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "received 3, indexed 3" in out
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        assert len(archived(ar)) == 3


def test_same_uid_with_other_content_is_kept_apart_as_a_conflict(synth, tmp_path):
    import pydicom

    plain = [p for p in synth if syntax_of(p) == "1.2.840.10008.1.2.1"][0]
    changed = tmp_path / "changed.dcm"
    ds = pydicom.dcmread(plain)
    ds.SeriesDescription = "changed content, same SOP Instance UID"
    ds.save_as(changed)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        with listen(ar, port=0) as lst:
            assert storescu(lst.port, [plain]).returncode == 0
            lst.index_now()
            first = archived(ar)[sop_of(plain)]
            assert storescu(lst.port, [plain]).returncode == 0       # the same again: nothing new
            assert storescu(lst.port, [changed]).returncode == 0     # other content: kept beside it
        kept = pydicom.dcmread(first)                                # never overwritten
        assert kept.SeriesDescription == pydicom.dcmread(plain).SeriesDescription != ds.SeriesDescription
        assert len(list(Path(first).parent.iterdir())) == 2
        assert [c for c in ar.conflicts()], "the importer flags the second file as a conflict"


@pytest.mark.parametrize("conv,propose", [("+ti", "-xi"), ("+td", "-xd")], ids=["implicit", "deflated"])
def test_each_instance_is_filed_under_its_own_study_and_series(synth, tmp_path, conv, propose):
    """The listener reads a received data set's Study and Series UIDs without its pixels
    (incoming.study_and_series); implicit VR and deflated data sets are read right too."""
    import pydicom

    from pocketpacs.net.incoming import file_name, store_folder

    dcmconv = shutil.which("dcmconv")
    require_system(dcmconv is not None and STORESCU is not None, "DCMTK's dcmconv and storescu (apt-get install dcmtk)")
    plain = [p for p in synth if syntax_of(p) in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")][:4]
    assert plain
    sent = []
    for i, p in enumerate(plain):
        out = tmp_path / f"conv{i}.dcm"
        subprocess.run([dcmconv, conv, str(p), str(out)], check=True, capture_output=True)
        sent.append(out)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        with listen(ar, port=0) as lst:
            r = subprocess.run([STORESCU, propose, "-aet", "STORESCU", "-aec", POCKET_AET, "127.0.0.1",
                                str(lst.port), *map(str, sent)], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
        assert lst.status.received == len(sent) and lst.status.failed == 0
        for p in sent:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            where = store_folder(ar) / file_name(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                                 str(ds.SOPInstanceUID))
            assert where.is_file()
            assert pydicom.dcmread(where).file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
