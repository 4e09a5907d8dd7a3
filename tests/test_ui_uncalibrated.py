"""Uncalibrated images say so everywhere the page would show mm (issue 12).

2D images opened with Open Other (PNG, JPEG 2000) and DICOM images without
Pixel Spacing, Imager Pixel Spacing or ultrasound regions have no pixel size: the
served page (headless Chromium) shows them in all layouts (acquired slice,
MPR, 3D with its clip-box sliders) and with the assembly panel open, and no
"mm" appears anywhere in the viewer.  The colour PNG is also drawn in colour.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pydicom_data import bundled_file

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow
MM = re.compile(r"\bmm\b")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("uncal")
    (root / "files").mkdir()
    shutil.copy(bundled_file("CT_small.dcm"), root / "files" / "ct.dcm")
    # an ultrasound image without Pixel Spacing or region calibration: uncalibrated DICOM
    shutil.copy(bundled_file("examples_rgb_color.dcm"), root / "files" / "us.dcm")
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
    return {"archive": root / "archive"}


@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 1000, 700) as pg:
        yield pg


def colour_png(path: Path) -> Path:
    from PIL import Image

    a = np.zeros((60, 90, 3), np.uint8)
    a[:, :30] = (220, 30, 30)          # red, green and blue bands
    a[:, 30:60] = (30, 200, 40)
    a[:, 60:] = (20, 40, 230)
    Image.fromarray(a).save(path)
    return path


def _open_other(page, path):
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.click("#btn-other")
    page.fill("#path-input", str(path))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")


def _texts_with_mm(page) -> list[str]:
    """Every text node of the viewer (shown or hidden) that says mm."""
    texts = page.evaluate("""() => {
      const out = [];
      const w = document.createTreeWalker(document.getElementById('viewer'), NodeFilter.SHOW_TEXT);
      while (w.nextNode()) if (w.currentNode.textContent.trim()) out.push(w.currentNode.textContent);
      return out;
    }""")
    return [t for t in texts if MM.search(t)]


def _every_view(page):
    """Yield after showing each layout / view: acquired, axial, 3D, 2x2; with the assembly panel."""
    page.click("#btn-panel")
    page.click("#panel [data-tab=assembly]")
    for single in ("native", "axial", "3d"):
        page.select_option("#layout", "1")
        page.select_option("#single", single)
        page.wait_for_timeout(150)
        yield f"1 view {single}"
    page.select_option("#layout", "2x2")
    page.wait_for_timeout(300)
    yield "2x2"


def test_an_open_other_png_shows_no_mm_and_draws_in_colour(page, tmp_path):
    _open_other(page, colour_png(tmp_path / "bands.png"))
    hdr = S.fetch_header(page, S.dataset(page)["vid"])
    assert hdr["calibration"]["kind"] == "none" and hdr["samples"] == 3
    img = np.asarray(page.evaluate("""() => {
      const c = document.getElementById('view'), gl = c.getContext('webgl2');
      const px = new Uint8Array(4); const out = [];
      for (const fx of [0.3, 0.5, 0.7]) {
        gl.readPixels(Math.floor(c.width * fx), Math.floor(c.height / 2), 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        out.push([px[0], px[1], px[2]]);
      }
      return out;
    }"""), dtype=int)
    assert img[0][0] > 150 and img[0][1] < 80              # red band drawn red
    assert img[1][1] > 150 and img[1][0] < 80              # green band green
    assert img[2][2] > 150 and img[2][0] < 80              # blue band blue
    assert "uncalibrated" in page.locator("#corner-bl").inner_text()
    for where in _every_view(page):
        assert _texts_with_mm(page) == [], where
    labels = page.evaluate("[...document.querySelectorAll('#tools-3d [data-axis]')].map(e => e.textContent)")
    assert labels == ["columns (px)", "rows (px)", "slices"]


def test_an_open_other_jpeg_2000_shows_no_mm(page, corpus):
    path = corpus / "pylibjpeg_data" / "jpg" / "15444" / "2KLS" / "693.j2k"
    if not path.exists():
        pytest.skip("the corpus has no 693.j2k")
    _open_other(page, path)
    hdr = S.fetch_header(page, S.dataset(page)["vid"])
    assert hdr["calibration"]["kind"] == "none"
    for where in _every_view(page):
        assert _texts_with_mm(page) == [], where


def test_an_uncalibrated_dicom_series_shows_no_mm_in_the_assembly_panel(page):
    names = [r.get("modality", "") for r in S.tree_rows(page)]
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.locator(S.SERIES_ROWS).nth(names.index("US")).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    hdr = S.fetch_header(page, S.dataset(page)["vid"])
    assert hdr["calibration"]["kind"] == "none"
    for where in _every_view(page):
        if where == "1 view native":
            S.wait_js(page, "document.getElementById('report-body').dataset.stacks")
            assert "uncalibrated (measured in px)" in page.locator("#report-body").inner_text()
        assert _texts_with_mm(page) == [], where
