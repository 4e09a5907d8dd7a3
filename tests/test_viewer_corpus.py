"""Every corpus series opens in the viewer or says why, with the reference geometry (issue 12).

The whole real-data corpus (``../shared/corpus``) is imported into one archive,
served by a real :class:`~pocketpacs.ui.session.Session` behind a real
:class:`~pocketpacs.ui.server.DataServer`, and every series is opened the way
the page opens it: ``open_series``, then the volume header and slices over
HTTP.  No open may end in the generic internal error; objects without image
pixels (SR, RT, waveforms, pixel-less images) answer "Not an image: <kind>";
every series export assembles (:func:`pocketpacs.images.volume.assemble_series`)
opens; trusted MANIFEST references match the header's shape and world corners
within 0.1 mm; streamed slices hold export's values.
"""
from __future__ import annotations

import collections
import http.client
import json
import re
from pathlib import Path

import numpy as np
import pytest

import served_http

from pocketpacs.images.affine import corner_distance, corner_voxels_world, lps_to_ras
from pocketpacs.images.volume import NotAnImageError, VolumeError, assemble_series
from pocketpacs.ui import protocol
from pocketpacs.ui.server import TOKEN_HEADER, DataServer
from pocketpacs.ui.session import Session

pytestmark = [pytest.mark.corpus, pytest.mark.usefixtures("first_read_size_restored")]


@pytest.fixture(scope="module")
def served(corpus_archive):
    session = Session(str(corpus_archive), mode="serve")
    srv = DataServer(session).start()
    yield srv, session
    srv.stop()
    session.close()


def _req(srv, method, path, body=None):
    r, data = served_http.req(srv, method, path, body=body)
    return r.status, data


def _call(srv, name, args=None):
    st, data = _req(srv, "POST", f"/v1/call/{name}", body=args or {})
    assert st == 200
    return json.loads(data)


@pytest.fixture(scope="module")
def opened(served):
    """Every archived series opened as the page does: series key -> result dict."""
    srv, session = served
    env = _call(srv, "search", {"limit": 100000})
    assert env["ok"], env
    out = {}
    for row in env["data"]["rows"]:
        sid = row["series_id"]
        env = _call(srv, "open_series", {"series_id": sid})
        res = {"row": row, "files": session.archive.series_files(sid, check=False)}
        if not env["ok"]:
            res["error"] = env["error"]
        else:
            vid = env["data"]["volume_id"]
            st, data = _req(srv, "GET", f"/v1/volume/{vid}/header")
            if st == 200:
                res["header"] = hdr = json.loads(data)
                # a few slices now (the session keeps only its newest volumes)
                res["slices"] = {}
                nz = hdr["shape"][0]
                for z in sorted({0, nz // 2, nz - 1}):
                    st, frame = _req(srv, "GET", f"/v1/volume/{vid}/slice/{z}")
                    assert st == 200, row["series_description"]
                    fh, vox = protocol.decode_frame(frame)
                    spp = [3] if hdr.get("samples", 1) == 3 else []     # colour: RGB8
                    res["slices"][z] = np.frombuffer(vox, dtype=fh["dtype"]).reshape(hdr["shape"][1:] + spp)
            else:
                res["error"] = _call(srv, "volume_status", {"volume_id": vid})["data"]["error"]
        out[sid] = res
    assert out, "the corpus gave no series"
    return out


def _export(files):
    """What export makes of the files: the first volume, or the exception."""
    try:
        return assemble_series(files).volumes[0]
    except VolumeError as exc:
        return exc


def test_every_series_opens_or_says_why(served, opened):
    refused = collections.Counter()
    for res in opened.values():
        name = f"{res['row']['modality']} {res['row']['series_description']!r}"
        err = res.get("error")
        if err is not None:
            refused[f"{err['code']}: {err['message']}"] += 1
            assert err["code"] != protocol.INTERNAL, name
        exp = _export(res["files"])
        if isinstance(exp, NotAnImageError):
            # a report, SR, RT object, waveform or an image without pixel data
            assert err is not None and err["code"] == protocol.NOT_A_VOLUME, name
            assert err["message"] == f"Not an image: {exp.kind}", name
        elif not isinstance(exp, VolumeError):
            assert err is None, (name, err)           # export assembles it: the viewer opens it
    n_open = sum("header" in r for r in opened.values())
    print(f"\nviewer corpus: {len(opened)} series, {n_open} opened, "
          f"{len(opened) - n_open} refused: {dict(refused)}")
    not_images = [r for r in opened.values() if r["row"]["modality"] in ("SR", "RTPLAN", "RTSTRUCT", "ECG")]
    assert not_images and all(r["error"]["message"].startswith("Not an image: ") for r in not_images)
    # every Siemens mosaic of the corpus opens (each set holds some)
    mosaics = [r for r in opened.values()
               if any(s in f for f in r["files"] for s in ("dcm_qa_ts/", "dcm_qa_orientation/"))]
    assert len(mosaics) >= 6 and all("header" in r for r in mosaics)


# ---------------------------------------------------------------- trusted references
def _manifest_files(corpus: Path, st: dict, s: dict) -> list[str]:
    """The files of one MANIFEST series (as tests/test_volume.py selects them)."""
    from pocketpacs.dicom.headers import parse_files
    from pocketpacs.images.volume import dicom_files_in

    d = corpus / st["path"] / s["dir"]
    uid = s["SeriesInstanceUID"]
    mm = re.match(r"(.*) \[(file|SeriesNumber) (.*)\]$", uid)
    if mm and mm.group(2) == "file":
        return [str(d / mm.group(3))]
    files = dicom_files_in(d)
    b = parse_files(files)
    uids = b.text("SeriesInstanceUID")
    if mm:
        num = b.number("SeriesNumber")
        return [f for f, u, n in zip(files, uids, num) if u == mm.group(1) and n == float(mm.group(3))]
    return [f for f, u in zip(files, uids) if u == uid]


def _trusted(corpus: Path) -> list[tuple[dict, dict]]:
    m = json.loads((corpus / "MANIFEST.shared.json").read_text())
    return [(st, s) for st in m["sets"] for s in st["series"] if s.get("expected")
            and "not independently confirmed" not in s["expected"]["trusted_reference"]]


def _distance(expected: dict, shape: list, affine_lps: np.ndarray) -> float:
    """Largest distance (mm) between the corner voxels of a shown stack and of the
    trusted reference; inf when the shapes differ."""
    nz, ny, nx = shape
    if expected["trusted_reference"].startswith("own"):
        g = expected["dicom_stack_geometry"]
        if list(g["array_shape"][-3:]) != [nz, ny, nx]:
            return np.inf
        ref = corner_voxels_world(np.array(g["affine_LPS_index_c_r_k"]), (nx, ny, nz))
        return corner_distance(ref, corner_voxels_world(affine_lps, (nx, ny, nz)))
    ref_v = expected["reference_volumes"][0]
    if sorted(ref_v["shape"][:3]) != sorted([nx, ny, nz]):
        return np.inf
    ref = corner_voxels_world(np.array(ref_v["affine_RAS"]), ref_v["shape"][:3])
    return corner_distance(ref, corner_voxels_world(lps_to_ras(affine_lps), (nx, ny, nz)))


def _open_stack(srv, sid, i):
    """The served header of stack *i* of a series (the stack picker's open)."""
    env = _call(srv, "open_series", {"series_id": sid, "stack": i})
    assert env["ok"], env
    st, data = _req(srv, "GET", f"/v1/volume/{env['data']['volume_id']}/header")
    assert st == 200, data
    return json.loads(data)


def _shape3(v):
    """One volume's ``(slices, rows, cols)`` of an assembled volume (4D, colour)."""
    return list(v.array.shape[-3:] if v.samples == 1 else v.array.shape[-4:-1])


def test_trusted_series_show_the_reference_geometry(corpus, served, opened):
    by_file = {str(Path(f).resolve()): sid for sid, r in opened.items() for f in r["files"]}
    cases = _trusted(corpus)
    assert len(cases) >= 25
    matched, wrong, not_archived, in_other_stack = 0, [], [], []
    for st, s in cases:
        name = f"{st['id']}/{s['dir']}/{s['SeriesInstanceUID'][-24:]}"
        files = _manifest_files(corpus, st, s)
        sids = {by_file.get(str(Path(f).resolve())) for f in files}
        if sids == {None}:
            # the archive kept another file of the same SOP Instance UID (the object in
            # another transfer syntax or frame count): that file is the one it shows
            not_archived.append(name)
            continue
        sids.discard(None)          # files of it the archive kept under another file
        assert len(sids) == 1, name
        res = opened[sids.pop()]
        hdr = res.get("header")
        if hdr is None:
            wrong.append((name, res.get("error")))
            continue
        dist = _distance(s["expected"], hdr["shape"], np.array(hdr["affine_lps"]))
        if dist <= 0.1:
            matched += 1
            continue
        if hdr["stack"]["count"] > 1:
            # the series holds several stacks, the largest shown first: the reference
            # is another stack of it (export's, as a stack picker would give it)
            vols = assemble_series(res["files"]).volumes
            assert hdr["stack"]["index"] == 0 and hdr["stack"]["count"] == len(vols), name
            assert len(hdr["stack"]["labels"]) == len(vols), name
            assert vols[0].array.size >= max(v.array.size for v in vols), name
            others = [_distance(s["expected"], _shape3(v), v.affine_lps) for v in vols[1:]]
            if min(others) <= 0.1:
                # the picker reaches it: the served stack has the reference geometry
                i = 1 + int(np.argmin(others))
                other = _open_stack(served[0], res["row"]["series_id"], i)
                assert _distance(s["expected"], other["shape"], np.array(other["affine_lps"])) <= 0.1
                in_other_stack.append(name)
                continue
        wrong.append((name, hdr["shape"], round(float(dist), 3)))
    print(f"\ntrusted references: {matched} of {len(cases) - len(not_archived)} archived ones shown "
          f"with the reference geometry, {len(in_other_stack)} in another stack of their series "
          f"{in_other_stack}; {len(not_archived)} not archived (same SOP Instance UID as another "
          f"file): {not_archived}")
    assert not wrong, wrong
    assert matched >= 25


def test_every_stack_of_a_series_opens_with_export_s_geometry(served, opened):
    """The stack picker reaches every stack: each one served (``open_series`` with
    ``stack``) has the shape, affine and number of volumes export assembles."""
    srv = served[0]
    multi = 0
    for sid, res in opened.items():
        hdr = res.get("header")
        if hdr is None or hdr["stack"]["count"] < 2:
            continue
        multi += 1
        vols = assemble_series(res["files"]).volumes
        for i, v in enumerate(vols):
            got = hdr if i == 0 else _open_stack(srv, sid, i)
            name = (res["row"]["series_description"], i)
            assert got["stack"]["index"] == i and got["shape"] == _shape3(v), name
            np.testing.assert_allclose(got["affine_lps"], v.affine_lps, atol=1e-4, err_msg=str(name))
            assert got["volumes"]["count"] == (v.array.shape[0] if v.is_4d else 1), name
    print(f"\nmulti-stack series: {multi}, every stack opened")
    assert multi >= 1


# ---------------------------------------------------------------- values
def test_streamed_slices_hold_the_values_export_gives(served, opened):
    compared = 0
    with_errors = []
    for sid, res in opened.items():
        hdr = res.get("header")
        if hdr is None:
            continue
        exp = _export(res["files"])
        assert not isinstance(exp, Exception), res["row"]["series_description"]
        if exp.errors:
            with_errors.append((sid, exp))
        arr = np.asarray(exp.array)
        if exp.is_4d:
            assert hdr["volumes"]["count"] == arr.shape[0], res["row"]["series_description"]
            arr = arr[0]                                  # volume 0 unless ?t= asks for another
        if hdr.get("samples", 1) == 3:                    # colour and palette: export's RGB as 8 bits
            from pocketpacs.images.colour import display_rgb

            arr = display_rgb(exp)
        if arr.ndim == 2:
            arr = arr[None]
        assert list(arr.shape[:3]) == hdr["shape"], res["row"]["series_description"]
        sl, ic = hdr["rescale"]["slope"], hdr["rescale"]["intercept"]
        for z, stored in res["slices"].items():
            got = stored * sl + ic
            want = arr[z].astype(np.float64)
            tol = 1e-6 * max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(got, want, rtol=0, atol=tol,
                                       err_msg=f"{res['row']['series_description']} slice {z}")
            compared += 1
    print(f"\nvalues: {compared} slices equal export's")
    assert compared >= 50
    _served_unreadable_as_export(served[0], opened, with_errors)


def _served_unreadable_as_export(srv, opened, with_errors):
    """Every series whose export could not decode some frames (``Volume.errors``): the
    served header lists the same slices as unreadable when it was assembled whole (a
    subset when read slice by slice), and ``volume_status`` lists exactly them once
    every slice is read; each such slice answers ``X-PocketPACS-Unreadable: 1``."""
    from pocketpacs.images.unreadable import frames_list

    for sid, exp in with_errors:
        name = opened[sid]["row"]["series_description"]
        k = exp.shape[1 if exp.is_4d else 0]
        want = {(f["slice"], f["volume"]) for f in frames_list(exp.unreadable, k)}
        assert want, name                     # the errors name slices of the stack
        env = _call(srv, "open_series", {"series_id": sid})
        vid = env["data"]["volume_id"]
        st, data = _req(srv, "GET", f"/v1/volume/{vid}/header")
        assert st == 200, name
        hdr = json.loads(data)
        known = {(f["slice"], f["volume"]) for f in hdr["unreadable"]}
        assert known <= want, name
        for t in range(hdr["volumes"]["count"]):          # every slice of every volume read
            st, _ = _req(srv, "GET", f"/v1/volume/{vid}/data" + (f"?t={t}" if t else ""))
            assert st == 200, name
        status = _call(srv, "volume_status", {"volume_id": vid})["data"]
        assert status["done"], name
        assert {(f["slice"], f["volume"]) for f in status["unreadable"]} == want, name
        files = [str(f) for f in opened[sid]["files"]]
        assert all(f["reason"] and not any(p in f["reason"] for p in files) for f in status["unreadable"]), name
        z, t = min(want, key=lambda p: (p[1], p[0]))
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        c.request("GET", f"/v1/volume/{vid}/slice/{z}" + (f"?t={t}" if t else ""),
                  headers={"Host": f"127.0.0.1:{srv.port}", TOKEN_HEADER: srv.token})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 200 and r.getheader(protocol.UNREADABLE_HEADER) == "1", name
    print(f"\nseries with undecodable frames: {len(with_errors)}, each served with the same unreadable slices")


def test_4d_series_serve_every_volume(served, opened):
    """4D series (fMRI, DTI, multi-volume mosaics) give every volume: slice z of the
    last volume (``?t=``) holds export's values of that volume."""
    srv = served[0]
    four_d = 0
    for sid, res in opened.items():
        hdr = res.get("header")
        if hdr is None or hdr["volumes"]["count"] < 2:
            continue
        four_d += 1
        exp = _export(res["files"])
        last = np.asarray(exp.array)[-1]
        env = _call(srv, "open_series", {"series_id": sid})
        vid = env["data"]["volume_id"]
        t = hdr["volumes"]["count"] - 1
        z = hdr["shape"][0] // 2
        st, frame = _req(srv, "GET", f"/v1/volume/{vid}/slice/{z}?t={t}")
        assert st == 200, res["row"]["series_description"]
        fh, vox = protocol.decode_frame(frame)
        assert fh["t"] == t
        got = np.frombuffer(vox, dtype=fh["dtype"]).reshape(hdr["shape"][1:]) * fh["rescale"]["slope"] \
            + fh["rescale"]["intercept"]
        np.testing.assert_allclose(got, last[z].astype(np.float64), rtol=0,
                                   atol=1e-6 * max(1.0, float(np.abs(last[z]).max())))
    print(f"\n4D series: {four_d}, the last volume of each served")
    assert four_d >= 1
