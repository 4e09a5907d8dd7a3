"""The default window never collapses, on every real file we have (issue 12, "Windows").

Every series of ``../shared/corpus`` (imported into one archive) and every
NIfTI/Analyze/MGH file of nibabel's test data (Open Other) is opened through
the served path -- ``open_series`` / ``open_other``, then the volume header
and the first volume's voxels over HTTP -- and the window the page starts
with (the header's first) is checked against the values shown: its width is
above zero, it covers at least 1 % of the range of the non-background values
(background: the most common value), and the middle slice drawn with it is
not all black or all white (under 99 % of its pixels at one extreme) when that
slice holds more than its background.  Before the whole-volume histogram,
``example4d.nii.gz`` opened with W 1 / L 0 (the strided subsample saw only
its zero column).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import served_http

from pocketpacs.ui import protocol
from pocketpacs.ui.server import DataServer
from pocketpacs.ui.session import Session

pytestmark = [pytest.mark.corpus, pytest.mark.usefixtures("first_read_size_restored")]

#: The least share of the non-background range a default window covers.
MIN_COVER = 0.01
#: The most pixels of the middle slice at one extreme of the default window.
MAX_EXTREME = 0.99


@pytest.fixture(scope="module")
def served_corpus(corpus_archive):
    session = Session(str(corpus_archive), mode="serve")
    srv = DataServer(session).start()
    yield srv
    srv.stop()
    session.close()


def _req(srv, method, path, body=None):
    r, data = served_http.req(srv, method, path, body=body)
    return r.status, data


def _call(srv, name, args=None):
    st, data = _req(srv, "POST", f"/v1/call/{name}", body=args or {})
    assert st == 200
    return json.loads(data)


def _shown(srv, vid):
    """Header and the first volume's real values ``(slices, rows, cols)`` of a served volume;
    None when the volume failed (its error is checked elsewhere)."""
    st, data = _req(srv, "GET", f"/v1/volume/{vid}/header")
    if st != 200:
        return None
    hdr = json.loads(data)
    st, whole = _req(srv, "GET", f"/v1/volume/{vid}/data?t=0")
    assert st == 200
    fh, vox = protocol.decode_frame(whole)
    spp = [3] if hdr.get("samples", 1) == 3 else []
    stored = np.frombuffer(vox, dtype=fh["dtype"]).reshape(list(hdr["shape"]) + spp)
    r = hdr["rescale"]
    return hdr, stored.astype(np.float64) * r["slope"] + r["intercept"]


def window_problems(hdr: dict, real: np.ndarray) -> list[str]:
    """What is wrong with the default window of a served volume (empty: nothing)."""
    if hdr.get("samples", 1) == 3:
        return []                                   # colour: shown as stored
    w = hdr["windows"][0]
    c, width = float(w["center"]), float(w["width"])
    if not width > 0:
        return [f"width {width}"]
    lo, hi = c - width / 2, c + width / 2
    out = []
    finite = real[np.isfinite(real)]
    values, counts = np.unique(finite, return_counts=True)
    rest = finite[finite != values[counts.argmax()]] if values.size > 1 else finite
    span = float(rest.max() - rest.min()) if rest.size else 0.0
    if span > 0:
        cover = min(hi, float(rest.max())) - max(lo, float(rest.min()))
        if cover < MIN_COVER * span:
            out.append(f"window {c:g}/{width:g} covers {cover:g} of the values' "
                       f"{rest.min():g}..{rest.max():g}")
    mid = real[real.shape[0] // 2]
    mid = mid[np.isfinite(mid)]
    mv, mc = np.unique(mid, return_counts=True)
    if mv.size > 1 and mc.max() < MAX_EXTREME * mid.size:     # more than its background
        black, white = np.mean(mid <= lo), np.mean(mid >= hi)
        if max(black, white) >= MAX_EXTREME:
            out.append(f"middle slice {black:.1%} black, {white:.1%} white at {c:g}/{width:g}")
    return out


def test_every_corpus_series_opens_with_a_window_that_shows_it(served_corpus):
    srv = served_corpus
    rows = _call(srv, "search", {"limit": 100000})["data"]["rows"]
    checked, bad = 0, {}
    for row in rows:
        env = _call(srv, "open_series", {"series_id": row["series_id"]})
        if not env["ok"]:
            assert env["error"]["code"] != protocol.INTERNAL, row
            continue
        got = _shown(srv, env["data"]["volume_id"])
        if got is None:
            continue
        checked += 1
        problems = window_problems(*got)
        if problems:
            bad[f"{row['modality']} {row['series_description']!r} ({row['series_id'][:8]})"] = problems
    assert checked >= 60, checked
    assert not bad, json.dumps(bad, indent=1)


def _nibabel_files(corpus: Path) -> list[Path]:
    d = corpus / "nibabel_test_data"
    return sorted(p for p in d.rglob("*") if p.is_file()
                  and p.name.lower().endswith((".nii", ".nii.gz", ".hdr", ".mgh", ".mgz")))


def test_every_nibabel_test_file_opens_with_a_window_that_shows_it(corpus, built_session):
    srv = built_session
    files = _nibabel_files(corpus)
    assert any(p.name == "example4d.nii.gz" for p in files)
    checked, bad = [], {}
    for p in files:
        env = _call(srv, "open_other", {"path": str(p)})
        assert env["ok"], (p.name, env)
        got = _shown(srv, env["data"]["volume_id"])
        if got is None:                              # e.g. an Analyze header without its .img
            st = _call(srv, "volume_status", {"volume_id": env["data"]["volume_id"]})["data"]
            assert st["error"]["code"] != protocol.INTERNAL, (p.name, st)
            continue
        checked.append(p.name)
        problems = window_problems(*got)
        if problems:
            bad[p.name] = problems
    assert "example4d.nii.gz" in checked and len(checked) >= 5, checked
    assert not bad, json.dumps(bad, indent=1)


@pytest.fixture(scope="module")
def built_session(tmp_path_factory):
    """A served session over an empty archive (Open Other needs no archived series)."""
    import pocketpacs

    root = tmp_path_factory.mktemp("windows_other") / "archive"
    pocketpacs.open_archive(root).close()
    session = Session(str(root), mode="serve")
    srv = DataServer(session).start()
    yield srv
    srv.stop()
    session.close()


def test_example4d_window_is_not_a_binary_threshold(corpus):
    """The file of the issue: W 1 / L 0 before, a window over its signal now."""
    from pocketpacs.images.openother import open_other

    vol = open_other(corpus / "nibabel_test_data" / "nifti" / "example4d.nii.gz")[0]
    w = vol.window_presets[0]
    assert w.width > 100 and w.center > 50, w
