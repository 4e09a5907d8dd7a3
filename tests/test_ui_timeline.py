"""Browser tests of the stack picker and the time slider (issue 12), headless Chromium.

A served archive holds one series of three stacks: the page shows a picker
("stack 1 of 3: axial, 7 slices") and the overlay says "first of several
stacks"; picking stack 2 opens the coronal stack.  A 4D NIfTI (nibabel's
``example4d.nii.gz`` from the corpus) opened with Open Other shows a time
slider; moving it draws another volume and the overlay says "volume t of N".
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S
from test_series_reader import AXIAL, CORONAL, _write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("ui_timeline")
    suid = generate_uid()
    frames = [((0, 0, 2.0 * k), AXIAL, {}) for k in range(7)]
    frames += [((0, 3.0 * k, 0), CORONAL, {}) for k in range(4)]
    _write(root / "files", suid, frames, rows=24, cols=20)
    _write(root / "files", suid, [((0, 0, 2.5 * k), AXIAL, {}) for k in range(3)],
           rows=6, cols=6, start=len(frames))
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
    return {"archive": root / "archive"}


@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 900, 640) as pg:
        yield pg


def _drawn(page):
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")


def test_the_stack_picker_opens_every_stack(page):
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length")
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.locator(S.SERIES_ROWS).nth(0).dblclick()
    _drawn(page)
    assert page.is_visible("#stack-pick")
    opts = page.evaluate("[...document.querySelectorAll('#stack-pick option')].map(o => o.textContent)")
    assert len(opts) == 3 and opts[0].startswith("stack 1 of 3: axial, 7 slices")
    assert "first of several stacks" in page.text_content("#corner-bl")
    assert S.dataset(page)["stack"] == "0"
    for i, shape in ((1, [4, 24, 20]), (2, [3, 6, 6])):
        page.evaluate("document.getElementById('view').dataset.drawn = ''")
        page.select_option("#stack-pick", str(i))
        S.wait_js(page, f"document.getElementById('view').dataset.stack === '{i}'")
        _drawn(page)
        hdr = S.fetch_header(page, S.dataset(page)["vid"])
        assert hdr["stack"]["index"] == i and hdr["shape"] == shape
        assert f"stack {i + 1} of 3" in page.text_content("#corner-bl")


def test_the_time_slider_shows_another_volume(page, corpus):
    path = corpus / "nibabel_test_data" / "nifti" / "example4d.nii.gz"
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.click("#btn-other")
    page.fill("#path-input", os.fspath(path))
    page.click("#path-ok")
    _drawn(page)
    n = int(S.dataset(page)["volumes"])
    assert n > 1 and page.is_visible("#time-slider")
    assert f"volume 1 of {n}" in page.text_content("#corner-bl")
    nib = pytest.importorskip("nibabel")
    data = np.asarray(nib.load(path).dataobj)
    z = int(S.dataset(page)["slice"])
    sums = [float(data[:, :, z, t].sum()) for t in range(2)]
    assert sums[0] != sums[1]
    page.evaluate("""() => { const s = document.getElementById('time-slider');
      s.value = '1'; s.dispatchEvent(new Event('input')); }""")
    S.wait_js(page, "document.getElementById('view').dataset.tDrawn === '1'")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    assert float(S.dataset(page)["tSum"]) == sums[1]                 # volume 2's slice on screen
    assert S.read_canvas(page).max() > 0
    assert f"volume 2 of {n}" in page.text_content("#corner-bl")
    page.click("#btn-time-play")                                      # cine over time
    S.wait_js(page, "document.getElementById('view').dataset.t !== '1'")
    page.click("#btn-time-play")
    assert page.text_content("#btn-time-play") == "Play"
    # Compare takes over the volume shown, and says which one it is
    page.evaluate("""() => { const s = document.getElementById('time-slider');
      s.value = '1'; s.dispatchEvent(new Event('input')); }""")
    S.wait_js(page, "document.getElementById('view').dataset.tDrawn === '1'")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    page.click("#btn-compare")
    S.wait_js(page, "document.querySelector('#cmp-vp0') && document.querySelector('#cmp-vp0').dataset.state === 'ready'")
    assert f"volume 2 of {n}" in page.locator("#cmp-vp0 .corner.bl").inner_text()
