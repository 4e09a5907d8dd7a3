"""The portable viewer of a CD/USB medium (``export --dicom --dicomdir --viewer``, issue 15).

A study of the real-data corpus is exported de-identified as a medium with
the viewer; ``VIEWER/index.html`` is opened from ``file://`` in Chromium (no
server), a series is picked, and the drawn slice is compared pixel by pixel
with the series read back from the medium by :mod:`pocketpacs.series`
through its first window (the DICOM linear window of PocketPACS's viewer).
Skips without the corpus or Chromium; fails under CI=true without Chromium.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import pocketpacs
from pocketpacs.share import ExportError, export_dicom

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def medium(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("portable")
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(corpus / "dcm_qa_ct_philips_S21570")
        with pytest.raises(ExportError, match="dicomdir"):
            export_dicom(ar, [st.uid for st in ar.studies()], root / "no", viewer=True)
        res = export_dicom(ar, [st.uid for st in ar.studies()], root / "cd", deidentify=True, dicomdir=True,
                           viewer=True)
    assert res.refused == 0 and not res.notes, (res.warnings, res.notes)
    return root / "cd", res


def _wait(page, expr, timeout=60.0):
    """Poll a JS expression (the page's CSP forbids the eval that wait_for_function uses)."""
    end = time.monotonic() + timeout
    while not page.evaluate(expr):
        assert time.monotonic() < end, f"timed out waiting for {expr}"
        time.sleep(0.05)


def _expected(files, window):
    from pocketpacs.series import open_series

    vol = open_series(list(files)).read_stack(0)
    c, w = window["center"], window["width"]
    y = np.clip((vol.array.astype(float) - (c - 0.5)) / max(w - 1, 1e-6) + 0.5, 0, 1)
    return vol, np.round(y * 255)


def test_the_medium_holds_the_viewer_and_one_header_per_series(medium):
    root, res = medium
    viewer = root / "VIEWER"
    assert (root / "DICOMDIR").is_file()
    doc = json.loads((viewer / "index.json").read_text())
    assert len(doc["series"]) == res.series == 2
    for n, h in enumerate(doc["series"], 1):
        assert h["file"] == f"series-{n}.raw" and h["script"] == f"series-{n}.js"
        nz, ny, nx = h["shape"]
        raw = (viewer / h["file"]).read_bytes()
        assert len(raw) == nz * ny * nx * np.dtype(h["dtype"]).itemsize
        assert h["windows"] and len(h["affine_lps"]) == 4 and h["rescale"] == {"slope": 1.0, "intercept": 0.0}
        assert h["label"].startswith(f"Series {n} · CT · ")
    for d, _dirs, files in os.walk(root):
        assert oct(os.stat(d).st_mode & 0o777) == "0o700"
        for f in files:
            assert oct(os.stat(os.path.join(d, f)).st_mode & 0o777) == "0o600"


def test_the_page_opens_from_file_and_draws_the_series_values_through_the_first_window(medium, browser):
    root, res = medium
    doc = json.loads((root / "VIEWER" / "index.json").read_text())
    n = max(range(len(doc["series"])), key=lambda i: doc["series"][i]["shape"][0]) + 1
    h = doc["series"][n - 1]
    by_series: dict[str, list[str]] = {}
    import pydicom

    for _src, out in res.pairs:
        by_series.setdefault(pydicom.dcmread(out, stop_before_pixels=True).SeriesInstanceUID, []).append(out)
    files = next(f for f in by_series.values() if len(f) == h["shape"][0])
    vol, want = _expected(files, h["windows"][0])
    assert list(vol.array.shape) == h["shape"]
    assert np.allclose(vol.affine_lps, h["affine_lps"])
    raw = np.frombuffer((root / "VIEWER" / h["file"]).read_bytes(), dtype=np.dtype(h["dtype"]).newbyteorder("<"))
    assert np.array_equal(raw.reshape(h["shape"]), vol.array)

    page = browser.new_page(viewport={"width": 900, "height": 700})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((root / "VIEWER" / "index.html").as_uri())
    _wait(page, "document.body.dataset.series === '2'")
    page.click(f"#series-list button[data-n='{n}']")
    _wait(page, "document.getElementById('slice').dataset.drawn", 120)
    drawn = page.evaluate("document.getElementById('slice').dataset.drawn")
    z = h["shape"][0] // 2
    assert drawn.startswith(f"{n}:{z}:")
    got = np.array(page.evaluate("""() => {
        const c = document.getElementById('slice');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0));
    }"""), dtype=float).reshape(h["shape"][1:])
    assert np.ptp(got) > 50
    assert np.abs(got - want[z]).max() <= 1.0
    # the next slice with the wheel
    page.mouse.move(450, 400)
    page.mouse.wheel(0, 100)
    _wait(page, f"document.getElementById('slice').dataset.drawn.startsWith('{n}:{z + 1}:')")
    page.close()
    assert not errors, errors
