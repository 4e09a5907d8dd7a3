"""Colour shown in colour (issue 12): RGB, YBR and PALETTE COLOR DICOM go to the page as RGB8.

Core: :func:`pocketpacs.images.colour.palette_of` / :func:`~pocketpacs.images.colour.rgb8`
against pydicom's ``apply_color_lut`` and ``convert_color_space``.  Server: a
real :class:`~pocketpacs.ui.session.Session` behind a real
:class:`~pocketpacs.ui.server.DataServer` on an archive of pydicom's bundled
colour files; every colour series' header says ``samples: 3`` / ``uint8`` and
its slice bytes equal pydicom's RGB.  Browser: the served page draws an RGB
series in colour (a canvas pixel with R != G) and the probe shows R, G, B.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, convert_color_space, pixel_array

from pydicom_data import bundled_file

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

from pocketpacs.images.colour import ColourError, palette_of, rgb8

#: pydicom's bundled colour files: name -> patient name as the series list shows it.
COLOUR_FILES = {
    "examples_rgb_color.dcm": "CompressedSamples, US1",     # RGB, uncompressed
    "examples_ybr_color.dcm": "PLA",                         # YBR_FULL_422, JPEG, 30 frames
    "examples_palette.dcm": "OB",                            # PALETTE COLOR, 16-bit LUT entries
    "SC_ybr_full_422_uncompressed.dcm": "Lestrade, G",       # YBR_FULL_422, uncompressed
}


def expected_rgb8(path: str) -> np.ndarray:
    """What the page must get: pydicom's RGB of every frame, ``(frames, rows, cols, 3)`` uint8."""
    ds = pydicom.dcmread(path)
    pi = ds.PhotometricInterpretation
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(ds.pixel_array, ds)
    elif pi.startswith("YBR") and ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian:
        rgb = convert_color_space(pixel_array(path, raw=True), pi, "RGB")
    else:
        rgb = ds.pixel_array  # decoded and converted to RGB by pydicom's plugins
    if rgb.dtype != np.uint8:  # 16-bit LUT entries: their top 8 bits
        rgb = (rgb >> 8).astype(np.uint8)
    return rgb if rgb.ndim == 4 else rgb[None]


# ------------------------------------------------------------------ core
def test_palette_table_maps_every_stored_value_as_pydicom_does():
    p = bundled_file("examples_palette.dcm")
    ds = pydicom.dcmread(p)
    table = palette_of(p)
    assert table.shape[1] == 3 and table.dtype == np.uint8
    got = rgb8(ds.pixel_array, table)
    want = apply_color_lut(ds.pixel_array, ds) >> 8
    assert got.shape == ds.pixel_array.shape + (3,)
    assert np.array_equal(got, want)
    assert np.ptp(got[..., 0].astype(int) - got[..., 1]) > 0  # really colour


def test_rgb8_narrows_16_bit_keeps_8_bit_and_drops_alpha():
    a = np.array([[[0, 256, 65535]]], dtype=np.uint16)
    assert rgb8(a).tolist() == [[[0, 1, 255]]]
    b = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(rgb8(b), b[..., :3])
    with pytest.raises(ColourError, match="not colour"):
        rgb8(np.zeros((4, 4), np.uint8))


def test_a_palette_file_without_its_palette_says_which_file(tmp_path):
    ds = pydicom.dcmread(bundled_file("examples_palette.dcm"))
    del ds.RedPaletteColorLookupTableDescriptor
    p = tmp_path / "no_palette.dcm"
    ds.save_as(p)
    with pytest.raises(ColourError, match="no_palette.dcm: PALETTE COLOR without a usable palette"):
        palette_of(p)


# ------------------------------------------------------------------ server
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("colour")
    files = root / "files"
    files.mkdir()
    for name in COLOUR_FILES:
        shutil.copy(bundled_file(name), files / name)
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
    return {"archive": root / "archive", "files": files}


@pytest.fixture(scope="module")
def server(built):
    from pocketpacs.ui.server import DataServer
    from pocketpacs.ui.session import Session

    session = Session(str(built["archive"]), mode="serve")
    srv = DataServer(session).start()
    yield srv
    srv.stop()
    session.close()


def _get(srv, path, body=None):
    import http.client

    from pocketpacs.ui.server import TOKEN_HEADER

    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    h = {"Host": f"127.0.0.1:{srv.port}", TOKEN_HEADER: srv.token}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request("POST" if body is not None else "GET", path,
              body=None if body is None else json.dumps(body).encode(), headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_colour_series_go_to_the_page_as_rgb8(server, built):
    from pocketpacs.ui import protocol

    st, data = _get(server, "/v1/call/search", {})
    rows = json.loads(data)["data"]["rows"]
    by_name = {r["patient_name"]: r for r in rows}
    assert set(COLOUR_FILES.values()) <= set(by_name), sorted(by_name)
    for name, patient in COLOUR_FILES.items():
        st, data = _get(server, "/v1/call/open_series", {"series_id": by_name[patient]["series_id"]})
        env = json.loads(data)
        assert env["ok"], (name, env)
        vid = env["data"]["volume_id"]
        st, data = _get(server, f"/v1/volume/{vid}/header")
        hdr = json.loads(data)
        want = expected_rgb8(str(built["files"] / name))
        nz, ny, nx = hdr["shape"]
        assert hdr["samples"] == 3 and hdr["dtype"] == "uint8", name
        assert (nz, ny, nx) == want.shape[:3], name
        assert hdr["slice_bytes"] == ny * nx * 3
        assert hdr["rescale"] == {"slope": 1.0, "intercept": 0.0} and hdr["units"] == ""
        z = nz // 2
        st, frame = _get(server, f"/v1/volume/{vid}/slice/{z}")
        assert st == 200
        fh, vox = protocol.decode_frame(frame)
        got = np.frombuffer(vox, np.uint8).reshape(ny, nx, 3)
        assert np.array_equal(got, want[z]), name
        st, whole = _get(server, f"/v1/volume/{vid}/data")
        _, vox = protocol.decode_frame(whole)
        assert np.array_equal(np.frombuffer(vox, np.uint8).reshape(want.shape), want), name


# ------------------------------------------------------------------ browser
@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 900, 640) as pg:
        yield pg


def read_rgb(page) -> np.ndarray:
    """The view canvas as ``(h, w, 3)`` uint8, top row first."""
    import base64

    w, h, b64 = page.evaluate("""() => {
      const c = document.getElementById('view');
      const gl = c.getContext('webgl2');
      const px = new Uint8Array(c.width * c.height * 4);
      gl.readPixels(0, 0, c.width, c.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
      let s = '';
      for (let i = 0; i < px.length; i++) s += String.fromCharCode(px[i]);
      return [c.width, c.height, btoa(s)];
    }""")
    a = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w, 4)[..., :3]
    return a[::-1].copy()


@pytest.mark.slow
def test_the_page_draws_an_rgb_series_in_colour(page, built):
    rows = [r.get("patient_name", "") for r in S.tree_rows(page)]
    idx = rows.index(COLOUR_FILES["examples_rgb_color.dcm"])
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.locator(S.SERIES_ROWS).nth(idx).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    img = read_rgb(page).astype(int)
    want = expected_rgb8(str(built["files"] / "examples_rgb_color.dcm"))[0].astype(int)
    assert (np.abs(want[..., 0] - want[..., 1]) > 40).mean() > 0.01       # the file is colour
    coloured = np.abs(img[..., 0] - img[..., 1]) > 40
    assert coloured.mean() > 0.005, "no pixel with R != G: shown in grey"
    # the colours drawn are the file's: the colour of the canvas' most coloured pixel occurs in it
    y, x = np.unravel_index(np.argmax(np.abs(img[..., 0] - img[..., 1])), coloured.shape)
    assert np.abs(want.reshape(-1, 3) - img[y, x]).sum(1).min() <= 12
    assert "colour shown as grey in MPR/3D" in page.locator("#corner-bl").inner_text()
    # the value probe says R, G, B
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    S.wait_js(page, "document.getElementById('probe').textContent")
    assert " R " in page.locator("#probe").inner_text() and " B " in page.locator("#probe").inner_text()


def test_the_wire_header_of_colour_counts_three_bytes_per_pixel():
    from pocketpacs.ui import protocol

    h = protocol.VolumeHeader(shape=(4, 5, 7), dtype="uint8", affine_lps=np.eye(4).tolist(),
                              spacing=[1.0, 1.0, 1.0], samples=3).to_json()
    assert h["samples"] == 3 and h["slice_bytes"] == 5 * 7 * 3 and h["shape"] == [4, 5, 7]
    g = protocol.VolumeHeader(shape=(4, 5, 7), dtype="int16", affine_lps=np.eye(4).tolist(),
                              spacing=[1.0, 1.0, 1.0]).to_json()
    assert g["samples"] == 1 and g["slice_bytes"] == 5 * 7 * 2
