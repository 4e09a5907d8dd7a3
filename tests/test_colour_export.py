"""Colour in PNG export and thumbnails (issue 12, "Colour shown in colour").

pydicom's bundled colour files (RGB, YBR_FULL_422 JPEG and uncompressed,
PALETTE COLOR with 16-bit entries): the PNG export of a slice
(:func:`pocketpacs.images.export.export_png`), the core thumbnail
(:func:`pocketpacs.images.thumbs.thumbnail`) and the archive list's
thumbnails (a real :class:`~pocketpacs.ui.session.Session` behind a real
server, ``GET /v1/thumb/<series>``, and the canvases of the served page in
headless Chromium) hold pydicom's RGB, not grey stored values or palette
indices.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pydicom_data import bundled_file
from test_colour import COLOUR_FILES, expected_rgb8

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S


def _shrunk(img: np.ndarray, size: int) -> np.ndarray:
    from pocketpacs.images.thumbs import shrink

    return shrink(img, size)


@pytest.mark.parametrize("name", sorted(COLOUR_FILES))
def test_png_export_of_a_colour_slice_is_its_rgb(name, tmp_path):
    from PIL import Image

    from pocketpacs.images.export import export_png
    from pocketpacs.images.volume import assemble_series

    path = bundled_file(name)
    vol = assemble_series([path]).volumes[0]
    want = expected_rgb8(path)
    mid = want.shape[0] // 2
    out = export_png(vol, tmp_path / "slice.png")
    with Image.open(out) as im:
        assert im.mode == "RGB", name
        got = np.asarray(im)
    assert got.shape == want.shape[1:], name
    # lossy YBR JPEG: decoders differ by a few levels; the rest is exact
    tol = 8 if "examples_ybr_color" in name else 0
    assert np.abs(got.astype(int) - want[mid]).max() <= tol, name


def test_core_thumbnail_of_a_palette_series_is_colour():
    from pocketpacs.images.thumbs import THUMB_SIZE, thumbnail
    from pocketpacs.images.volume import assemble_series

    path = bundled_file("examples_palette.dcm")
    th = thumbnail(assemble_series([path]).volumes[0])
    want = _shrunk(expected_rgb8(path)[0], THUMB_SIZE)
    assert th.shape == want.shape and th.shape[2] == 3
    assert np.abs(th.astype(int) - want).max() <= 1


# ------------------------------------------------------------------ archive list
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("colour_thumbs")
    files = root / "files"
    files.mkdir()
    for name in COLOUR_FILES:
        shutil.copy(bundled_file(name), files / name)
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
    return {"archive": root / "archive", "files": files}


@pytest.fixture(scope="module")
def session(built):
    from pocketpacs.ui.session import Session

    s = Session(str(built["archive"]), mode="serve")
    yield s
    s.close()


def test_archive_list_thumbnails_of_colour_series_are_rgb(session, built):
    from pocketpacs.ui import protocol
    from pocketpacs.ui.thumbnails import THUMB_SIZE

    env = session.call("search", {"limit": 1000})
    assert env["ok"], env
    by_file = {}
    for r in env["data"]["rows"]:
        files = session.archive.series_files(r["series_id"], check=False)
        by_file[Path(files[0]).name] = r["series_id"]
    assert set(COLOUR_FILES) <= set(by_file), sorted(by_file)
    for name in COLOUR_FILES:
        frame = session.thumbnail(by_file[name])
        assert frame is not None, name
        fh, vox = protocol.decode_frame(frame)
        got = np.frombuffer(vox, np.uint8).reshape(fh["shape"])
        want = expected_rgb8(str(built["files"] / name))
        want = _shrunk(want[want.shape[0] // 2], THUMB_SIZE)
        assert got.shape == want.shape, name
        # lossy YBR JPEG: decoders differ by a few levels
        assert np.abs(got.astype(int) - want).max() <= 8, name


@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 1100, 700) as pg:
        yield pg


@pytest.mark.slow
def test_the_series_list_draws_colour_thumbnails_in_colour(page, built):
    """The thumbnail canvases show the series' RGB (before: grey, from the first third of
    the RGB bytes)."""
    from pocketpacs.ui.thumbnails import THUMB_SIZE

    S.wait_js(page, """(() => { const c = [...document.querySelectorAll('canvas.thumb')];
        return c.length >= 4 && c.every((x) => x.width !== 64 || x.height !== 64); })()""")
    # the archive tree: series rows follow their patient's row
    drawn = page.evaluate("""(() => { const out = []; let patient = '';
        for (const tr of document.querySelectorAll('#series-table tbody tr')) {
          if (tr.classList.contains('patient')) {
            patient = tr.querySelector('td[data-col=patient_name]').textContent;
            continue;
          }
          const cv = tr.classList.contains('series') && tr.querySelector('canvas.thumb');
          if (!cv) continue;
          const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
          out.push([patient, cv.height, cv.width, Array.from(d)]);
        }
        return out; })()""")
    by_patient = {p: np.array(d, np.uint8).reshape(h, w, 4)[..., :3] for p, h, w, d in drawn}
    for name, patient in COLOUR_FILES.items():
        want = expected_rgb8(str(built["files"] / name))
        want = _shrunk(want[want.shape[0] // 2], THUMB_SIZE)
        got = by_patient[patient]
        assert got.shape == want.shape, name
        assert np.abs(got.astype(int) - want).max() <= 8, name
