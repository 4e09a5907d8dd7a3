"""Slices that cannot be decoded are never shown as if they were images (issue 12).

Two of pydicom's bundled files cannot be decoded by any plugin here:
``JPEG-lossy.dcm`` (12-bit JPEG Extended) and
``JPEG2000-embedded-sequence-delimiter.dcm`` (a damaged J2K codestream).
Alone, and mixed into series of readable NM and CT slices (copies of them with
the series' geometry written into their headers, their pixel data untouched),
they must be reported slice by slice on every path: the series reader (slice
by slice and whole), the assembly report, ``pocketpacs report`` / ``export``,
the served volume header, ``volume_status`` and slice answers, and the page
(headless Chromium) that draws such a slice as an explicit placeholder.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import served_http
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pydicom_data import bundled_file

from pocketpacs.series import open_series

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

JPEG_LOSSY = "JPEG-lossy.dcm"
J2K_DAMAGED = "JPEG2000-embedded-sequence-delimiter.dcm"
ROWS, COLS = 1024, 256                       # the size of both undecodable files
NM_DESC, CT_DESC = "NM with one undecodable slice", "CT irregular with two undecodable slices"


def _place(ds, series_uid: str, modality: str, z: float, number: int, desc: str) -> None:
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.12.1"
    ds.PatientName, ds.PatientID = "Unreadable^Test", "UNDEC1"
    ds.Modality = modality
    ds.SeriesDescription = desc
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [2.26, 2.26]
    ds.SliceThickness = 1.0
    for kw in ("NumberOfFrames", "DetectorInformationSequence", "FrameIncrementPointer"):
        if kw in ds:
            delattr(ds, kw)


def undecodable_copy(name: str, out: Path, series_uid: str, modality: str, z: float, number: int,
                     desc: str) -> Path:
    """A copy of an undecodable bundled file placed in a series (its pixel data untouched)."""
    ds = pydicom.dcmread(bundled_file(name))
    _place(ds, series_uid, modality, z, number, desc)
    ds.save_as(out, enforce_file_format=True)
    return out


def readable_slice(out: Path, series_uid: str, modality: str, z: float, number: int, desc: str,
                   signed: bool, seed: int) -> Path:
    """An uncompressed slice of the same size, with random stored values."""
    rng = np.random.default_rng(seed)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.20" if modality == "NM" else "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    _place(ds, series_uid, modality, z, number, desc)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    if signed:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        a = rng.integers(-1000, 2000, size=(ROWS, COLS), dtype=np.int16)
    else:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        a = rng.integers(0, 4096, size=(ROWS, COLS), dtype=np.uint16)
    ds.PixelData = a.tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out


def nm_series(folder: Path) -> list[Path]:
    """Five NM slices 1 mm apart; slice 2 (the middle one) is JPEG-lossy.dcm."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    out = []
    for i in range(5):
        p = folder / f"nm{i}.dcm"
        if i == 2:
            out.append(undecodable_copy(JPEG_LOSSY, p, uid, "NM", i, i + 1, NM_DESC))
        else:
            out.append(readable_slice(p, uid, "NM", i, i + 1, NM_DESC, False, i))
    return out


#: Positions of the CT series: a gap after 3 mm, so export resamples to 1 mm (0..5: six slices).
CT_Z = [0.0, 1.0, 2.0, 3.0, 5.0]
#: Its undecodable source slices, and the resampled slices they leave without an image:
#: 1 -> 1; 3 -> 3 and 4 (4 mm blends the slices at 3 and 5 mm).
CT_BAD_SOURCE, CT_BAD_OUT = {1, 3}, [1, 3, 4]


def ct_series(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    out = []
    for i, z in enumerate(CT_Z):
        p = folder / f"ct{i}.dcm"
        if i in CT_BAD_SOURCE:
            out.append(undecodable_copy(J2K_DAMAGED, p, uid, "CT", z, i + 1, CT_DESC))
        else:
            out.append(readable_slice(p, uid, "CT", z, i + 1, CT_DESC, True, 10 + i))
    return out


def _no_path(reason: str, paths) -> None:
    assert reason
    for p in paths:
        assert os.fspath(p) not in reason and os.path.basename(p) not in reason


# ---------------------------------------------------------------- core
@pytest.mark.parametrize("name", [JPEG_LOSSY, J2K_DAMAGED])
def test_an_undecodable_file_alone_is_reported_on_both_paths(name):
    path = bundled_file(name)
    r = open_series([path])
    ss = r.slices(0)
    assert ss is not None                                       # one frame: read slice by slice
    assert ss.unreadable == {}
    a = ss.read(0, 1)
    assert not a.any()
    assert list(ss.unreadable) == [0]
    _no_path(ss.unreadable[0], [path])
    assert r.unreadable(0) == ss.unreadable
    assert ss.unreadable_frames() == [{"slice": 0, "volume": 0, "reason": ss.unreadable[0]}]
    # the whole stack, as export assembles it
    r2 = open_series([path])
    vol = r2.read_stack(0)
    assert vol.unreadable == ss.unreadable
    assert r2.unreadable_frames(0) == ss.unreadable_frames()
    # the assembly report lists it (no path), and warns
    d = r2.assemble().report_dict()
    assert d["stacks"][0]["unreadable_frames"] == ss.unreadable_frames()
    assert any("1 of 1 slice could not be decoded" in w for w in d["warnings"])
    assert path not in json.dumps(d["stacks"]) and path not in json.dumps(d["warnings"])


def _pydicom_values(p: Path) -> np.ndarray:
    ds = pydicom.dcmread(p)
    return ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def test_nm_series_with_an_undecodable_slice(tmp_path):
    files = nm_series(tmp_path / "nm")
    r = open_series([str(f) for f in files])
    assert len(r.stacks) == 1 and r.stacks[0].shape == (5, ROWS, COLS) and r.stacks[0].progressive
    ss = r.slices(0)
    arr = ss.read(0, 5)
    assert sorted(ss.unreadable) == [2]
    assert "Unable to decode" in ss.unreadable[2]
    _no_path(ss.unreadable[2], files)
    assert not arr[2].any()
    for z in (0, 1, 3, 4):                                  # the readable slices: pydicom's values
        np.testing.assert_array_equal(arr[z] * ss.slope + ss.intercept, _pydicom_values(files[z]))
    # whole assembly: the same list, the same values
    vol = open_series([str(f) for f in files]).read_stack(0)
    assert vol.unreadable == ss.unreadable
    for z in (0, 1, 3, 4):
        np.testing.assert_array_equal(np.asarray(vol.array[z], np.float64), _pydicom_values(files[z]))
    # read_slices (the reader's values slice by slice) records it too
    r3 = open_series([str(f) for f in files])
    r3.read_slices(0, 2, 3)
    assert r3.unreadable(0) == ss.unreadable
    assert r3.report.stacks[0].unreadable_frames == [{"slice": 2, "volume": 0, "reason": ss.unreadable[2]}]


def test_ct_series_resampled_whole_maps_undecodable_slices(tmp_path):
    files = ct_series(tmp_path / "ct")
    r = open_series([str(f) for f in files])
    info = r.stacks[0]
    assert info.shape[0] == 6 and not info.progressive     # the gap: resampled whole
    vol = r.read_stack(0)
    assert sorted(vol.unreadable) == CT_BAD_OUT
    assert all(why.startswith("CodestreamError: ") for why in vol.unreadable.values())
    _no_path(vol.unreadable[1], files)
    assert [f["slice"] for f in r.unreadable_frames(0)] == CT_BAD_OUT
    # slices 0, 2 and 5 come from one readable source slice each (weights 0 / 1)
    for z, src in ((0, 0), (2, 2), (5, 4)):
        np.testing.assert_array_equal(np.asarray(vol.array[z], np.float64), _pydicom_values(files[src]))
    for z in CT_BAD_OUT[:2]:
        assert not np.asarray(vol.array[z]).any()


def test_cli_report_and_export_say_which_slices(tmp_path, capsys):
    from pocketpacs import cli

    nm_series(tmp_path / "nm")
    rc = cli.main(["report", str(tmp_path / "nm"), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    frames = d["stacks"][0]["unreadable_frames"]
    assert [(f["slice"], f["volume"]) for f in frames] == [(2, 0)]
    assert str(tmp_path) not in json.dumps(frames)
    rc = cli.main(["export", str(tmp_path / "nm"), str(tmp_path / "out" / "nm.nii.gz"), "--json", "--report"])
    got = capsys.readouterr()
    assert rc == 1                                          # written, but partial: attention
    e = json.loads(got.out)
    assert e["written"] == [str(tmp_path / "out" / "nm.nii.gz"), str(tmp_path / "out" / "nm.json")]
    assert [(f["stack"], f["slice"], f["volume"]) for f in e["unreadable_frames"]] == [(0, 2, 0)]
    assert str(tmp_path) not in json.dumps(e["unreadable_frames"])
    assert len(e["warnings"]) == 1 and "1 of 5 slices could not be decoded" in e["warnings"][0]
    # the sidecar report says so too
    side = json.loads((tmp_path / "out" / "nm.json").read_text())
    assert [f["slice"] for f in side["stacks"][0]["unreadable_frames"]] == [2]
    assert any("1 of 5 slices could not be decoded" in w for w in side["warnings"])
    # the text output: a warning line on stderr
    rc = cli.main(["export", str(tmp_path / "nm"), str(tmp_path / "out" / "nm2.nii")])
    got = capsys.readouterr()
    assert rc == 1 and "warning:" in got.err and "slice 3" in got.err


# ---------------------------------------------------------------- served
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("undec")
    nm_series(root / "files" / "nm")
    ct_series(root / "files" / "ct")
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
    return {"archive": root / "archive"}


def _req(srv, method, path, body=None):
    r, data = served_http.req(srv, method, path, body=body)
    return r.status, dict(r.getheaders()), data


def _call(srv, name, args=None):
    st, _h, data = _req(srv, "POST", f"/v1/call/{name}", body=args or {})
    assert st == 200
    env = json.loads(data)
    assert env["ok"], env
    return env["data"]


def _open(srv, desc):
    rows = _call(srv, "search", {"limit": 100})["rows"]
    sid = next(r["series_id"] for r in rows if r["series_description"] == desc)
    vid = _call(srv, "open_series", {"series_id": sid})["volume_id"]
    st, _h, data = _req(srv, "GET", f"/v1/volume/{vid}/header")
    assert st == 200
    return vid, json.loads(data)


def test_served_progressive_series_says_which_slices(served):
    vid, hdr = _open(served, NM_DESC)
    assert hdr["shape"] == [5, ROWS, COLS]
    # the middle slice was read for the header: known at open
    assert [(f["slice"], f["volume"]) for f in hdr["unreadable"]] == [(2, 0)]
    st, h, frame = _req(served, "GET", f"/v1/volume/{vid}/slice/2")
    assert st == 200 and h.get("X-PocketPACS-Unreadable") == "1"
    from pocketpacs.ui import protocol

    fh, vox = protocol.decode_frame(frame)
    assert not np.frombuffer(vox, dtype=fh["dtype"]).any()
    assert [f["slice"] for f in fh["unreadable"]] == [2] and "Unable to decode" in fh["unreadable"][0]["reason"]
    for z in (0, 4):
        st, h, _ = _req(served, "GET", f"/v1/volume/{vid}/slice/{z}")
        assert st == 200 and "X-PocketPACS-Unreadable" not in h
    st, _h, body = _req(served, "GET", f"/v1/volume/{vid}/data")   # every slice read
    assert st == 200
    status = _call(served, "volume_status", {"volume_id": vid})
    assert status["done"] and [(f["slice"], f["volume"]) for f in status["unreadable"]] == [(2, 0)]
    report = _call(served, "volume_report", {"volume_id": vid})["report"]
    assert [f["slice"] for f in report["unreadable_frames"]] == [2]
    assert "nm2.dcm" not in json.dumps(report) and "nm2.dcm" not in json.dumps(status)


def test_served_whole_series_lists_them_in_its_header(served):
    vid, hdr = _open(served, CT_DESC)
    assert hdr["shape"][0] == 6
    assert [f["slice"] for f in hdr["unreadable"]] == CT_BAD_OUT
    assert all(f["reason"].startswith("CodestreamError: ") for f in hdr["unreadable"])
    status = _call(served, "volume_status", {"volume_id": vid})
    assert [f["slice"] for f in status["unreadable"]] == CT_BAD_OUT
    for z in range(6):
        st, h, _ = _req(served, "GET", f"/v1/volume/{vid}/slice/{z}")
        assert st == 200 and (h.get("X-PocketPACS-Unreadable") == "1") == (z in CT_BAD_OUT), z


# ---------------------------------------------------------------- the page
@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 900, 640) as pg:
        yield pg


def _open_row(page, desc):
    idx = next(i for i, r in enumerate(S.tree_rows(page)) if r["series_description"] == desc)
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.locator("#series-table tbody tr.series").nth(idx).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")


def _message(page) -> str:
    return page.evaluate("(() => { const e = document.getElementById('unreadable-msg');"
                         " return e && !e.hidden ? e.textContent : ''; })()")


def _overlay_centre(page) -> list:
    return page.evaluate("""(() => { const o = document.getElementById('overlay');
      return [...o.getContext('2d').getImageData(o.width >> 1, o.height >> 1, 1, 1).data]; })()""")


@pytest.mark.slow
def test_page_shows_an_undecodable_slice_as_a_placeholder(page):
    _open_row(page, NM_DESC)
    # opened on the middle slice: the undecodable one
    S.wait_js(page, "document.getElementById('view').dataset.drawn === '2'")
    S.wait_js(page, "(document.getElementById('unreadable-msg') || {}).textContent")
    msg = _message(page)
    assert msg.startswith("slice 3 could not be decoded: RuntimeError: Unable to decode"), msg
    assert page.locator("#unreadable-msg").is_visible()
    S.wait_js(page, "document.getElementById('corner-bl').textContent.includes('could not be decoded')")
    assert "1 of 5 slices could not be decoded" in page.locator("#corner-bl").inner_text()
    # blank there: the overlay covers the slice's zeros with an opaque black placeholder
    assert _overlay_centre(page) == [0, 0, 0, 255]
    # the value probe shows nothing over it
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 40)
    assert page.locator("#probe").inner_text() == ""
    # a readable slice: no message, the probe reads it; back to the undecodable one
    page.locator("#stage").focus()
    page.keyboard.press("ArrowDown")
    S.wait_js(page, "document.getElementById('view').dataset.drawn === '3'")
    assert _message(page) == ""
    assert _overlay_centre(page)[3] == 0
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 20)
    assert "stored" in page.locator("#probe").inner_text()
    assert "1 of 5 slices could not be decoded" in page.locator("#corner-bl").inner_text()
    page.keyboard.press("ArrowUp")
    S.wait_js(page, "document.getElementById('view').dataset.drawn === '2'")
    assert _message(page).startswith("slice 3 could not be decoded")
    # MPR and 3D: the notice
    S.wait_js(page, "(document.getElementById('view').dataset.unreadableNotice || '').length > 0")
    assert page.evaluate("document.getElementById('view').dataset.unreadableNotice") == "1 slice missing (shown as 0)"


def _compare_placeholder_checks(page, i: int) -> None:
    vp = f"#cmp-vp{i}"
    S.wait_js(page, f"document.querySelector('{vp}') && document.querySelector('{vp}').dataset.state === 'ready'")
    d = S.dataset(page, vp)
    # on the middle slice: the undecodable one, blank with the reason
    assert d["slice"] == "2" and d["drawn"] == "" and d["unreadable"] == "1", d
    msg = page.locator(f"{vp} .cmp-msg").inner_text()
    assert msg.startswith("slice 3 could not be decoded: RuntimeError: Unable to decode"), msg
    assert "1 of 5 slices could not be decoded" in page.locator(f"{vp} .corner.bl").inner_text()
    # a readable slice is drawn and the message goes
    page.locator(f"{vp} canvas").click()
    page.keyboard.press("ArrowDown")
    S.wait_js(page, f"document.querySelector('{vp}').dataset.drawn === '3'")
    assert page.locator(f"{vp} .cmp-msg").inner_text() == ""
    page.keyboard.press("ArrowUp")
    S.wait_js(page, f"document.querySelector('{vp}').dataset.slice === '2'")
    assert S.dataset(page, vp)["drawn"] == ""
    assert page.locator(f"{vp} .cmp-msg").inner_text().startswith("slice 3 could not be decoded")


@pytest.mark.slow
def test_compare_viewports_show_an_undecodable_slice_as_a_placeholder(page, served):
    """A Compare viewport never draws an undecodable slice's zeros as an image either:
    the one that takes over the viewer's whole volume, and one that opens the series itself."""
    _open_row(page, NM_DESC)
    page.click("#btn-compare")
    _compare_placeholder_checks(page, 0)
    page.add_init_script("window.POCKETPACS_TEST_LIMITS = {};")
    page.reload()
    S.wait_js(page, "document.body.dataset.ready")
    rows = _call(served, "search", {"limit": 100})["rows"]
    sid = next(r["series_id"] for r in rows if r["series_description"] == NM_DESC)
    page.evaluate("([sid, i]) => window.POCKETPACS_TEST_HOOK.viewer.openInViewport(sid, i)", [sid, 1])
    _compare_placeholder_checks(page, 1)
