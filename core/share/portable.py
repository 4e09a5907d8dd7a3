"""The portable viewer of a CD/USB medium: a static web page that shows the exported series.

:func:`write_portable_viewer` reads each exported series back from the
medium with the series reader (:mod:`pocketpacs.series`, so the geometry and
values are the viewer's), and writes into ``VIEWER/`` of the medium: the
static page (``index.html``, ``viewer.js``, ``viewer.css``, copied from
``pocketpacs/ui/web/portable``), an index of the series (``index.json``, and
the same as ``index.js`` for the page) with a header per series like the
served volume header (shape, dtype, LPS affine, spacing, rescale, windows),
and each series' voxels as little-endian values (``series-N.raw``, and
base64 in ``series-N.js``).  Browsers refuse ``fetch()`` of ``file://``
URLs, so the page loads its data with ``<script>`` elements, which they
allow: it opens from the medium with no server and no network.  Names carry
only numbers; files are 0600, folders 0700.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..paths import ensure_private_dir

#: The static page's files (in the pocketpacs.ui package's ``web/portable`` folder).
ASSETS = ("index.html", "viewer.js", "viewer.css")


def assets_folder() -> str:
    """The folder of the static page (found without importing the UI package).

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        When the UI package (and so the page) is not installed.
    """
    spec = importlib.util.find_spec("pocketpacs.ui")
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = os.path.join(loc, "web", "portable")
        if all(os.path.isfile(os.path.join(folder, a)) for a in ASSETS):
            return folder
    raise FileNotFoundError("the portable viewer's page (pocketpacs/ui/web/portable) is not installed")


def _write(path: str, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _wire(array: np.ndarray) -> np.ndarray:
    """The values as the page reads them: int16 or uint16 when they are whole numbers in range, else float32."""
    a = np.asarray(array)
    if a.dtype in (np.int16, np.uint16):
        return a
    if a.dtype.kind in "iub" or np.all(np.isfinite(a)) and np.array_equal(a, np.round(a)):
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if -32768 <= lo and hi <= 32767:
            return a.astype(np.int16)
        if 0 <= lo and hi <= 65535:
            return a.astype(np.uint16)
    return a.astype(np.float32)


def series_header(vol: Any, label: str) -> dict[str, Any]:
    """The page's header of one exported series (like the served volume header).

    Parameters
    ----------
    vol : pocketpacs.images.volume.Volume
        One stack of the series, as :meth:`pocketpacs.series.SeriesReader.read_stack` gives it.
    label : str
        What the series list shows (no patient data).

    Returns
    -------
    dict
        ``label``, ``shape`` ``[slices, rows, columns]``, ``dtype``, ``affine_lps``, ``spacing``,
        ``rescale`` ``{slope, intercept}`` (the values are already rescaled: 1 and 0), ``windows``
        ``[{name, center, width}]`` (the first is the default), ``modality``, ``invert``.
    """
    nz, ny, nx = (int(v) for v in vol.array.shape[-3:])
    return {"label": label, "shape": [nz, ny, nx], "dtype": str(_wire(vol.array[:1]).dtype),
            "affine_lps": [[float(v) for v in row] for row in np.asarray(vol.affine_lps)],
            "spacing": [float(v) for v in vol.spacing], "rescale": {"slope": 1.0, "intercept": 0.0},
            "windows": [{"name": w.name, "center": float(w.center), "width": float(w.width)}
                        for w in vol.window_presets] or [{"name": "full", "center": 0.0, "width": 1.0}],
            "modality": vol.modality or "OT", "invert": vol.photometric == "MONOCHROME1"}


def write_portable_viewer(root: str, series_files: Sequence[Sequence[str]],
                          labels: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Write the static viewer and the exported series' data into ``root/VIEWER``.

    Parameters
    ----------
    root : str
        The medium's root folder (where the DICOMDIR is).
    series_files : sequence of sequence of str
        The exported files of each series (on the medium).
    labels : sequence of str, optional
        What the page lists for each series (default ``"Series N"``); no patient data.

    Returns
    -------
    (list of str, list of str)
        The files written and notes (series left out of the page, and why).

    Raises
    ------
    FileNotFoundError
        When the page's files are not installed (:func:`assets_folder`).
    """
    from ..series import open_series

    src = assets_folder()
    folder = os.path.join(root, "VIEWER")
    ensure_private_dir(folder)
    written: list[str] = []
    notes: list[str] = []
    index: list[dict[str, Any]] = []
    for i, files in enumerate(series_files, 1):
        label = labels[i - 1] if labels is not None else f"Series {i}"
        try:
            vol = open_series(list(files)).read_stack(0)
        except Exception as e:  # not an image (SR, RT...), or unreadable: left out of the page
            notes.append(f"series {i}: not in the portable viewer ({type(e).__name__})")
            continue
        arr = np.asarray(vol.array)
        if vol.photometric not in ("MONOCHROME1", "MONOCHROME2") or getattr(vol, "palette", None) is not None:
            notes.append(f"series {i}: colour images are not in the portable viewer")
            continue
        if arr.ndim == 4:
            notes.append(f"series {i}: the portable viewer shows its first volume of {arr.shape[0]}")
            arr = arr[0]
        n = len(index) + 1
        wire = _wire(arr)
        raw = np.ascontiguousarray(wire.astype(wire.dtype.newbyteorder("<"), copy=False)).tobytes()
        hdr = series_header(vol, label)
        hdr["file"] = f"series-{n}.raw"
        hdr["script"] = f"series-{n}.js"
        for name, data in ((hdr["file"], raw),
                           (hdr["script"], b"PPV.data(" + str(n).encode() + b', "' + base64.b64encode(raw)
                            + b'");\n')):
            path = os.path.join(folder, name)
            _write(path, data)
            written.append(path)
        index.append(hdr)
    doc = {"version": 1, "series": index}
    for name, data in (("index.json", json.dumps(doc, indent=1).encode()),
                       ("index.js", b"PPV.index(" + json.dumps(doc).encode() + b");\n")):
        path = os.path.join(folder, name)
        _write(path, data)
        written.append(path)
    for a in ASSETS:
        with open(os.path.join(src, a), "rb") as f:
            data = f.read()
        path = os.path.join(folder, a)
        _write(path, data)
        written.append(path)
    return written, notes
