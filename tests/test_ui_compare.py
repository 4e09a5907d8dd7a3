"""Compare (issue 17): two or four viewports, each with its own series, linked on demand.

The archive is written here with pydicom (:mod:`dicomgen`) so the Frame of
Reference, slice positions, dates and descriptions are chosen: one patient's
current CT study holds two series in one Frame of Reference with different
slice spacing and offset, a third in another Frame of Reference, and a series
whose files are gone; earlier and later CT studies (the priors), an MR series
and another patient's CT that ``priors`` must leave out.  The server side
(``priors``, the header's ``frame_of_reference``, one volume job per
viewport) is checked through the real session; the page through
`pocketpacs serve` in headless Chromium.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import dicomgen

FOR_A = "1.2.826.0.1.3680043.17.100"      # current study: series A1 and A2
FOR_B = "1.2.826.0.1.3680043.17.200"      # current study: series A3
PID = "CMP17"
AXIAL = [1, 0, 0, 0, 1, 0]
CORONAL = [1, 0, 0, 0, 0, -1]

#: (study, series uid suffix, modality, description, slices, first z, spacing, FoR, orientation)
SERIES = [
    ("A", "1", "CT", "Thorax 2.5mm", 20, 0.0, 2.5, FOR_A, AXIAL),
    ("A", "2", "CT", "Thorax 1.25mm", 40, 1.0, 1.25, FOR_A, AXIAL),
    ("A", "3", "CT", "Other frame", 15, 100.0, 3.0, FOR_B, AXIAL),
    ("A", "9", "CT", "Gone", 6, 0.0, 2.0, FOR_A, AXIAL),
    ("B", "1", "CT", "Thorax 2,5 mm", 18, 5.0, 2.5, "1.2.826.0.1.3680043.17.300", AXIAL),
    ("B", "2", "CT", "Thorax 2.5mm", 12, 0.0, 2.5, "1.2.826.0.1.3680043.17.300", CORONAL),
    ("B", "3", "MR", "Thorax 2.5mm", 10, 0.0, 2.5, "1.2.826.0.1.3680043.17.301", AXIAL),
    ("C", "1", "CT", "Chest", 10, 0.0, 5.0, "1.2.826.0.1.3680043.17.400", AXIAL),
    ("D", "1", "CT", "Thorax late", 10, 0.0, 5.0, "1.2.826.0.1.3680043.17.500", AXIAL),
    ("E", "1", "MR", "Head", 8, 0.0, 5.0, "1.2.826.0.1.3680043.17.600", AXIAL),
]
STUDIES = {"A": "20210501", "B": "20190301", "C": "20170110", "D": "20230815", "E": "20200101"}


def _uid(study: str, series: str | None = None) -> str:
    base = f"1.2.826.0.1.3680043.17.{ord(study)}"
    return base if series is None else f"{base}.{series}"


def write_archive(root: Path) -> dict:
    """Write and import the archive; delete the "Gone" series' files afterwards."""
    import pocketpacs

    files = root / "files"
    for st, se, mod, desc, n, z0, dz, fr, iop in SERIES:
        for i in range(n):
            z = z0 + i * dz
            pos = [0.0, 0.0, z] if iop is AXIAL else [0.0, z, 0.0]
            uid = _uid(st, se)
            dicomgen.write(files / st / se / f"IM{i:04d}.dcm", patient_name="Compare^Pat", patient_id=PID,
                           study_uid=_uid(st), series_uid=uid, sop_uid=f"{uid}.{i + 1}", modality=mod,
                           study_date=STUDIES[st], study_desc=f"Study {st}", series_desc=desc,
                           series_number=int(se), instance_number=i + 1, rows=32, cols=32,
                           extra={"FrameOfReferenceUID": fr, "ImagePositionPatient": pos,
                                  "ImageOrientationPatient": iop})
    # another patient's CT: never a prior of this one
    dicomgen.write_series(files / "other", 4, series_uid="1.2.826.0.1.3680043.17.999.1",
                          patient_name="Else^Other", patient_id="OTHER1", study_uid="1.2.826.0.1.3680043.17.999",
                          study_date="20180101", series_desc="Thorax 2.5mm", rows=32, cols=32)
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
        keys = {s.uid: s.key for st in ar.studies() for s in ar.series(st.key)}
    for p in (files / "A" / "9").iterdir():
        p.unlink()
    return {"archive": root / "archive", "keys": keys}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("ui_compare"))


def key(built, study: str, series: str) -> str:
    return built["keys"][_uid(study, series)]


# ------------------------------------------------------------------ server side
@pytest.fixture
def session(built):
    from pocketpacs.ui.session import Session

    s = Session(str(built["archive"]), readonly=True)
    yield s
    s.close()


def call(name: str, args: dict) -> dict:
    from pocketpacs.ui import bridge

    env = bridge.call(name, args)
    assert env["ok"], env
    return env["data"]


def test_priors_are_the_patients_other_studies_of_the_modality_newest_earlier_first(session, built):
    got = call("priors", {"series_id": key(built, "A", "1")})
    assert got["modality"] == "CT" and got["orientation"] == "axial"
    studies = got["studies"]
    # B (2019) and C (2017) are earlier: most recent first; D (2023) is later; E has no CT
    assert [s["study_date"] for s in studies] == ["2019-03-01", "2017-01-10", "2023-08-15"]
    assert [s["prior"] for s in studies] == [True, True, False]
    b = studies[0]
    assert {s["series_id"] for s in b["series"]} == {key(built, "B", "1"), key(built, "B", "2")}   # no MR
    assert {s["series_id"]: s["orientation"] for s in b["series"]} == {
        key(built, "B", "1"): "axial", key(built, "B", "2"): "coronal"}
    # the same orientation wins over the same description
    assert b["best"] == key(built, "B", "1")
    assert all(s["study_description"] != "Study A" for s in studies)
    # the other patient's CT is not there
    assert sum(len(s["series"]) for s in studies) == 4


def test_priors_of_an_unknown_series_is_a_clear_error(session):
    from pocketpacs.ui import bridge

    env = bridge.call("priors", {"series_id": "ab" * 16})
    assert not env["ok"] and env["error"] == {"code": "not_found", "message": "No such series in the archive."}
    env = bridge.call("priors", {"series_id": "../etc"})
    assert not env["ok"] and env["error"]["code"] == "bad_request"


def test_volume_header_carries_the_frame_of_reference(session, built):
    for (st, se), fr in {("A", "1"): FOR_A, ("A", "2"): FOR_A, ("A", "3"): FOR_B}.items():
        data = call("open_series", {"series_id": key(built, st, se), "slot": f"cmp{se}"})
        hdr = session.volumes.get(data["volume_id"]).wait_header(30.0)
        assert hdr is not None and hdr["frame_of_reference"] == fr


def test_each_viewport_slot_keeps_its_volume(session, built):
    """Four viewports and the main viewer: opening one cancels no other viewport's volume
    (the registry keeps the newest job of every slot), a second open of one slot replaces
    only that slot's job."""
    opened = {}
    for slot, (st, se) in {"main": ("A", "1"), "cmp0": ("A", "1"), "cmp1": ("A", "2"),
                           "cmp2": ("A", "3"), "cmp3": ("B", "1")}.items():
        opened[slot] = call("open_series", {"series_id": key(built, st, se), "slot": slot})["volume_id"]
    for slot, vid in opened.items():
        job = session.volumes.get(vid)
        assert job is not None, slot
        assert job.join(30.0) and job.status()["done"] and not job.status().get("error"), slot
    again = call("open_series", {"series_id": key(built, "C", "1"), "slot": "cmp1"})["volume_id"]
    assert session.volumes.get(again) is not None
    for slot in ("main", "cmp0", "cmp2", "cmp3"):
        assert session.volumes.get(opened[slot]) is not None, slot
