"""Calibration as the standard says: what one pixel measures, from core to the page.

PixelSpacing (patient), else ImagerPixelSpacing (at the detector, or divided
by the Estimated Radiographic Magnification Factor: at the isocenter), else
the Sequence of Ultrasound Regions (PhysicalDelta in cm -> mm, per region),
otherwise uncalibrated (px, no orientation letters, no mm).  Rules on
pydicom-built data sets and files, real scanner files of the corpus, the
volume header the server sends, and the served page in headless Chromium.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pocketpacs.images import calibration
from pocketpacs.images.volume import assemble_series

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def _region(x0, y0, x1, y1, dx_cm, dy_cm, ux=3, uy=3):
    r = Dataset()
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, y1
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = ux, uy
    r.PhysicalDeltaX, r.PhysicalDeltaY = dx_cm, dy_cm
    r.RegionSpatialFormat = 1
    return r


def image_file(path, *, modality="OT", sop=DX_IMAGE, rows=80, cols=120, desc="", extra=None,
               series_uid=None):
    """A single-frame greyscale 16-bit file with the given attributes (no Pixel Spacing unless given)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.1"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName, ds.PatientID = "Calib^Test", "CAL1"
    ds.Modality = modality
    ds.SeriesDescription = desc
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    img = np.zeros((rows, cols), np.uint16)
    img[rows // 4: 3 * rows // 4, cols // 4: 3 * cols // 4] = 3000
    ds.PixelData = img.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


# ------------------------------------------------------------------ the rules
def test_pixel_spacing_is_patient_calibration_even_beside_imager_spacing():
    ds = Dataset()
    ds.PixelSpacing = [0.5, 0.25]
    ds.ImagerPixelSpacing = [0.6, 0.3]
    ds.SequenceOfUltrasoundRegions = [_region(0, 0, 9, 9, 0.1, 0.1)]
    cal = calibration.from_dataset(ds)
    assert cal["kind"] == "patient" and cal["spacing_mm"] == [0.5, 0.25]


def test_imager_pixel_spacing_is_at_the_detector_unless_corrected():
    ds = Dataset()
    ds.ImagerPixelSpacing = [0.15, 0.15]
    cal = calibration.from_dataset(ds)
    assert cal["kind"] == "detector" and cal["spacing_mm"] == [0.15, 0.15]
    assert "detector" in cal["note"]
    ds.EstimatedRadiographicMagnificationFactor = 1.2
    cal = calibration.from_dataset(ds)
    assert cal["kind"] == "detector_corrected"
    assert cal["spacing_mm"] == pytest.approx([0.125, 0.125])
    assert cal["magnification"] == pytest.approx(1.2)
    assert "isocenter" in cal["note"]
    ds.EstimatedRadiographicMagnificationFactor = 0    # not a factor: left uncorrected
    assert calibration.from_dataset(ds)["kind"] == "detector"


def test_ultrasound_regions_in_cm_give_mm_per_region():
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [
        _region(0, 0, 49, 19, 0.004, 0.004, ux=4, uy=7),          # a Doppler strip: s, cm/s
        _region(10, 20, 109, 79, 0.00277, 0.003),                  # B-mode: 0.0277 x 0.03 mm
        _region(110, 20, 129, 39, 0.01, 0.01),                     # a small inset
    ]
    cal = calibration.from_dataset(ds)
    assert cal["kind"] == "us_region"
    assert cal["spacing_mm"] == pytest.approx([0.03, 0.0277])      # the largest spatial region, [dy, dx]
    assert [r["bbox"] for r in cal["regions"]] == [[10, 20, 109, 79], [110, 20, 129, 39]]
    assert cal["regions"][1]["spacing_mm"] == pytest.approx([0.1, 0.1])


def test_no_spacing_at_all_is_uncalibrated():
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [_region(0, 0, 9, 9, 1.0, 1.0, ux=0, uy=0)]  # no units
    ds.PixelSpacing = ["0", "0"]                                     # not a spacing
    cal = calibration.from_dataset(ds)
    assert cal == {"kind": "none", "spacing_mm": None, "note": calibration.NOTES["none"]}
    assert not calibration.is_calibrated(cal) and calibration.warning(cal)


# ------------------------------------------------------------------ files -> volumes
def test_series_without_pixel_spacing_take_imager_spacing_or_us_regions(tmp_path):
    dx = image_file(tmp_path / "dx.dcm", modality="DX",
                    extra={"ImagerPixelSpacing": [0.2, 0.1], "EstimatedRadiographicMagnificationFactor": 1.25})
    us = image_file(tmp_path / "us.dcm", modality="US", sop=US_IMAGE,
                    extra={"SequenceOfUltrasoundRegions": [_region(5, 5, 110, 75, 0.00277, 0.00277)]})
    ot = image_file(tmp_path / "ot.dcm")
    v = assemble_series([dx]).volumes[0]
    assert v.calibration["kind"] == "detector_corrected"
    assert v.spacing[:2] == pytest.approx((0.08, 0.16))             # (col, row) = ImagerPixelSpacing / 1.25
    assert np.linalg.norm(v.affine_lps[:3, 0]) == pytest.approx(0.08)
    v = assemble_series([us]).volumes[0]
    assert v.calibration["kind"] == "us_region"
    assert v.spacing[:2] == pytest.approx((0.0277, 0.0277))         # 332 px = 9.2 mm, not 332 mm
    sv = assemble_series([ot])
    v = sv.volumes[0]
    assert v.calibration["kind"] == "none" and v.spacing[:2] == (1.0, 1.0)
    d = sv.report_dict()
    assert d["stacks"][0]["calibration"]["kind"] == "none"
    assert any("uncalibrated" in w for w in d["warnings"])


def test_open_other_images_are_uncalibrated_and_nifti_is_patient(tmp_path):
    from PIL import Image

    from pocketpacs.images.export import export_nifti
    from pocketpacs.images.openother import open_other

    png = tmp_path / "x.png"
    Image.fromarray(np.arange(60 * 40, dtype=np.uint8).reshape(40, 60)).save(png)
    v = open_other(png)[0]
    assert v.calibration["kind"] == "none" and v.calibration["spacing_mm"] is None
    np.testing.assert_array_equal(v.affine_lps, np.eye(4))         # a unit grid, marked uncalibrated
    written = export_nifti(v, tmp_path / "x.nii.gz", report=True)
    rep = json.loads((tmp_path / "x.json").read_text())
    assert rep["stacks"][0]["calibration"]["kind"] == "none"
    assert any("uncalibrated" in w and "not 1 mm" in w for w in rep["warnings"])
    nii = open_other(written[0])[0]                                 # NIfTI keeps its affine: patient
    assert nii.calibration["kind"] == "patient"
    assert nii.calibration["spacing_mm"] == [1.0, 1.0]


def test_report_json_includes_the_calibration(tmp_path, capsys):
    from pocketpacs.cli import main

    us = image_file(tmp_path / "us.dcm", modality="US", sop=US_IMAGE,
                    extra={"SequenceOfUltrasoundRegions": [_region(0, 0, 119, 79, 0.01, 0.02)]})
    assert main(["report", us, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    cal = d["stacks"][0]["calibration"]
    assert cal["kind"] == "us_region" and cal["spacing_mm"] == pytest.approx([0.2, 0.1])
    png = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    assert main(["report", str(png), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stacks"][0]["calibration"]["kind"] == "none"
    assert main(["report", str(png)]) == 0                          # the text report: no mm either
    out = capsys.readouterr().out
    assert "px (uncalibrated)" in out and "mm" not in out.replace("uncalibrated", ""), out
    assert main(["report", us]) == 0
    out = capsys.readouterr().out
    assert "spacing 0.1 x 0.2 x 1 mm" in out and "ultrasound region calibration" in out, out


def test_real_ultrasound_and_detector_files(corpus):
    from pocketpacs.images.volume import assemble_path

    ds = corpus / "pylibjpeg_data" / "ds"
    want = {"LittleEndianExplicit/OBXXXX1A.dcm": ("us_region", 0.2622878766),   # palette colour
            "JPEGLosslessSV1/JPEGLosslessP14SV1_1s_1f_u_08_08.dcm": ("us_region", 0.2547669659),
            "JPEG2000Lossless/JPEG2KLossless_1s_1f_u_16_16.dcm": ("detector", 0.4)}
    for name, (kind, mm) in want.items():
        v = assemble_path(ds / name)[0].volumes[0]
        assert v.calibration["kind"] == kind, name
        assert v.calibration["spacing_mm"] == pytest.approx([mm, mm]), name
        assert v.spacing[:2] == pytest.approx((mm, mm)), name


# ------------------------------------------------------------------ the served header
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("calibration")
    files = root / "files"
    image_file(files / "us.dcm", modality="US", sop=US_IMAGE, rows=160, cols=200, desc="US regions",
               extra={"SequenceOfUltrasoundRegions": [_region(10, 10, 189, 149, 0.01, 0.02)]})
    image_file(files / "dx.dcm", modality="DX", desc="DX detector", extra={"ImagerPixelSpacing": [0.15, 0.15]})
    image_file(files / "ot.dcm", desc="OT plain")
    image_file(files / "ct.dcm", modality="CT", desc="CT spacing",
               extra={"PixelSpacing": [0.7, 0.7], "ImagePositionPatient": [0, 0, 0],
                      "ImageOrientationPatient": [1, 0, 0, 0, 1, 0]})
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
    return {"archive": root / "archive", "root": root}


def test_volume_headers_carry_the_calibration(built, tmp_path):
    import http.client

    from PIL import Image

    from pocketpacs.ui.server import TOKEN_HEADER, DataServer
    from pocketpacs.ui.session import Session

    session = Session(str(built["archive"]), mode="serve")
    srv = DataServer(session).start()

    def call(name, args):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        c.request("POST", f"/v1/call/{name}", body=json.dumps(args).encode(),
                  headers={"Host": f"127.0.0.1:{srv.port}", TOKEN_HEADER: srv.token,
                           "Content-Type": "application/json"})
        env = json.loads(c.getresponse().read())
        c.close()
        assert env["ok"], env
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        c.request("GET", f"/v1/volume/{env['data']['volume_id']}/header",
                  headers={"Host": f"127.0.0.1:{srv.port}", TOKEN_HEADER: srv.token})
        hdr = json.loads(c.getresponse().read())
        c.close()
        return hdr

    try:
        rows = {r["series_description"]: r for r in series_rows(srv)}
        got = {d: call("open_series", {"series_id": r["series_id"]}) for d, r in rows.items()}
        assert got["US regions"]["calibration"]["kind"] == "us_region"
        assert got["US regions"]["calibration"]["regions"] == [{"bbox": [10, 10, 189, 149],
                                                               "spacing_mm": [0.2, 0.1]}]
        assert got["US regions"]["spacing"][:2] == pytest.approx([0.1, 0.2])
        assert got["DX detector"]["calibration"]["kind"] == "detector"
        assert got["DX detector"]["spacing"][:2] == pytest.approx([0.15, 0.15])
        assert got["OT plain"]["calibration"] == {"kind": "none", "spacing_mm": None,
                                                  "note": calibration.NOTES["none"]}
        assert got["CT spacing"]["calibration"]["kind"] == "patient"
        assert got["CT spacing"]["calibration"]["spacing_mm"] == [0.7, 0.7]
        png = tmp_path / "x.png"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
        assert call("open_other", {"path": str(png)})["calibration"]["kind"] == "none"
    finally:
        srv.stop()
        session.close()


def series_rows(srv):
    """Every series row of the archive (the bridge's search)."""
    import http.client

    from pocketpacs.ui.server import TOKEN_HEADER

    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/v1/call/search", body=b"{}",
              headers={"Host": f"127.0.0.1:{srv.port}", TOKEN_HEADER: srv.token,
                       "Content-Type": "application/json"})
    env = json.loads(c.getresponse().read())
    c.close()
    assert env["ok"], env
    return env["data"]["rows"]


# ------------------------------------------------------------------ the page
def _support():
    sys.path.insert(0, str(Path(__file__).parent / "ui"))
    import ppui_support as S

    return S


@pytest.fixture
def page(browser, served):
    S = _support()
    with S.open_page(browser, served.url, 900, 640) as pg:
        yield pg


def _measure_across(page, S, i0, i1, j, n=1):
    """Draw a distance from voxel (i0, j) to (i1, j) of the shown slice (the n-th); its list text."""
    sx, sy, ox, oy = (float(v) for v in S.dataset(page)["xform"].split(","))
    box = page.locator("#view").bounding_box()
    a = (box["x"] + ox + (i0 + 0.5) * sx, box["y"] + oy + (j + 0.5) * sy)
    b = (box["x"] + ox + (i1 + 0.5) * sx, box["y"] + oy + (j + 0.5) * sy)
    page.click("[data-tool=distance]")
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=6)
    page.mouse.up()
    S.wait_js(page, f"document.querySelectorAll('#measure-list li').length === {n}")
    return page.locator("#measure-list li").nth(n - 1).inner_text(), sx


def _letters(page):
    return {k: page.locator(f"#vp0 .orient.{k}").inner_text() for k in ("left", "right", "top", "bottom")}


@pytest.mark.slow
def test_png_shows_no_letters_and_measures_in_px(page, tmp_path):
    from PIL import Image

    S = _support()
    png = tmp_path / "photo.png"
    img = np.zeros((100, 160), np.uint8)
    img[30:70, 40:120] = 200
    Image.fromarray(img).save(png)
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.click("#btn-other")
    page.fill("#path-input", str(png))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    assert all(v == "" for v in _letters(page).values()), _letters(page)
    bl = page.locator("#corner-bl").inner_text()
    assert "uncalibrated" in bl and "mm" not in bl, bl
    text, sx = _measure_across(page, S, 20, 120, 50)
    assert "px (uncalibrated)" in text and "mm" not in text, text
    assert float(text.split()[1]) == pytest.approx(100.0, abs=1.0 / sx + 0.1)


@pytest.mark.slow
def test_ultrasound_region_measures_in_mm_with_its_spacing(page):
    S = _support()
    descs = page.evaluate("""[...document.querySelectorAll('#series-table tbody tr.series')].map(tr =>
        tr.querySelector('td[data-col=series_description]').textContent)""")
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.locator("#series-table tbody tr.series").nth(descs.index("US regions")).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    assert all(v == "" for v in _letters(page).values()), _letters(page)
    assert "mm (US region)" in page.locator("#corner-bl").inner_text()
    # 100 columns inside the region at 0.1 mm each (PhysicalDeltaX 0.01 cm): 10 mm, not 100
    text, sx = _measure_across(page, S, 30, 130, 60)
    assert text.startswith("Distance") and " mm" in text and "px" not in text, text
    assert float(text.split()[1]) == pytest.approx(10.0, abs=0.1 / sx + 0.1)
    # below the region (rows 150-159): no calibration there, so pixels
    text, sx = _measure_across(page, S, 30, 130, 156, n=2)
    assert "px (outside the calibrated region)" in text and "mm" not in text, text
    assert float(text.split()[1]) == pytest.approx(100.0, abs=1.0 / sx + 0.1)
