"""Opening an archived series from its stored header rows (no header parse).

:func:`pocketpacs.series.archive_rows` stands the archive's stored rows in
for the parsed headers; the stack it plans must be the one the parse path
plans: same files in the same order, same affine, spacing, windows and voxels.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import pocketpacs
from pocketpacs.archive import records
from pocketpacs import synth
from pocketpacs import series
from pocketpacs.series import rows as series_rows
from pocketpacs.ui import sources


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui_sources")
    synth.generate(root / "files", patients=2, studies=1, series=3, slices=12, rows=40, cols=48,
                   seed=11, compressed_fraction=0.25, implicit_fraction=0.34, enhanced=1,
                   junk=2, workers=1)
    ar = pocketpacs.open_archive(root / "archive")
    ar.import_folder(root / "files")
    yield ar
    ar.close()


def _series(ar):
    return [s for h in ar.search(level="series").hits for s in h.series]


def _voxels(src):
    whole = src.whole()
    if whole is not None:
        return np.asarray(whole)
    hdr = src.header()
    out = np.empty(tuple(hdr.shape), dtype=hdr.dtype)
    src.read_into(0, out.shape[0], out)
    return out


def _same(a, b):
    ha, hb = a.header().to_json(), b.header().to_json()
    assert ha == hb                                   # shape, dtype, affine, spacing, windows...
    assert a.paths == b.paths                         # file order
    assert a._slice_files == b._slice_files           # slice order
    assert a.report == b.report
    va, vb = _voxels(a), _voxels(b)
    assert va.dtype == vb.dtype and va.shape == vb.shape
    assert np.array_equal(va, vb)


def test_rows_plan_the_same_stack_as_the_parsed_headers(arc):
    used = skipped = 0
    for se in _series(arc):
        got = series.archive_rows(arc, se.key)
        if got is None:
            skipped += 1
            continue
        used += 1
        paths, batch = got
        parsed = sources.DicomSeriesSource([os.fspath(p) for p in arc.series_files(se.key)])
        rows = sources.DicomSeriesSource(paths, batch=batch)
        assert rows.from_rows and not parsed.from_rows
        _same(rows, parsed)
        # the middle slice read first and cached is the one read later
        hdr = rows.header()
        mid = hdr.shape[0] // 2
        one = np.empty((1,) + tuple(hdr.shape[1:]), dtype=hdr.dtype)
        rows.read_into(mid, mid + 1, one)
        assert np.array_equal(one[0], _voxels(parsed)[mid])
    assert used >= 3          # the uncompressed single-frame series
    assert skipped >= 2       # compressed and enhanced series: parsed


def test_first_slice_needs_no_compiled_kernel(arc):
    """A series opened from its stored rows gets its header and middle slice
    without numba (a first open does not wait for numba's import); a job built
    on it has that slice ready with the header, equal to the compiled read."""
    import subprocess
    import sys

    keys = [se.key for se in _series(arc) if series.archive_rows(arc, se.key) is not None]
    assert keys
    child = f"""
import sys, numpy as np, pocketpacs
from pocketpacs import series
from pocketpacs.ui import sources
from pocketpacs.ui.volumes import VolumeJob
ar = pocketpacs.open_archive({str(arc.path)!r}, readonly=True)
paths, rows = series.archive_rows(ar, {keys[0]!r})
job = VolumeJob(lambda: sources.DicomSeriesSource(paths, batch=rows)).start()
hdr = job.wait_header(60)
mid = hdr["shape"][0] // 2
ready = bool(job._ready[mid])
print("numba" in sys.modules, ready)
import io
buf = io.BytesIO()  # np.save straight to a pipe needs a seekable file with some numpy builds
np.save(buf, job._array[mid].copy())
sys.stdout.flush()
sys.stdout.buffer.write(buf.getvalue())
job.cancel()
job.join(60)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    first, _, rest = out.stdout.partition(b"\n")
    assert first.split() == [b"False", b"True"]       # no numba; the slice came with the header
    import io
    got = np.load(io.BytesIO(rest))
    paths, rows = series.archive_rows(arc, keys[0])
    src = sources.DicomSeriesSource(paths, batch=rows)
    hdr = src.header()
    compiled = np.empty((hdr.shape[0],) + tuple(hdr.shape[1:]), dtype=hdr.dtype)
    src._mid = None                                   # read every slice with the kernels
    src.read_into(0, hdr.shape[0], compiled)
    assert np.array_equal(got, compiled[hdr.shape[0] // 2])


def test_open_dicom_series_takes_rows_only_where_they_are_exact(arc):
    for se in _series(arc):
        src = sources.open_dicom_series(arc, se.key)
        try:
            inst = arc.instances(se.key)
            simple = all(not i.encapsulated for i in inst) and not any(
                i.sop_class_uid.startswith(series_rows._PER_FRAME_SOP) for i in inst)
            assert src.from_rows == simple
        finally:
            src.close()


def test_a_file_changed_since_import_falls_back_to_parsing(arc):
    se = next(s for s in _series(arc) if series.archive_rows(arc, s.key) is not None)
    paths, _ = series.archive_rows(arc, se.key)
    st = os.stat(paths[3])
    try:
        os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert series.archive_rows(arc, se.key) is None
        src = sources.open_dicom_series(arc, se.key)
        assert not src.from_rows
        src.close()
    finally:
        os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert series.archive_rows(arc, se.key) is not None


def test_media_sessions_parse(arc, tmp_path):
    se = next(s for s in _series(arc) if series.archive_rows(arc, s.key) is not None)
    folder = os.path.dirname(arc.series_files(se.key)[0])
    media = pocketpacs.open_media(folder)
    try:
        for s in _series(media):
            assert series.archive_rows(media, s.key) is None
    finally:
        media.close()


def test_records_without_the_viewer_texts_still_decode_and_are_not_used():
    head = np.zeros(1, dtype=records.INST_DTYPE)[0]
    old = records.join_instance(head, {"SOPInstanceUID": "1.2", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
                                 "TransferSyntaxUID": "1.2.840.10008.1.2.1"}, ["/a", "/b"])
    h, texts, paths = records.split_instance(old)
    assert paths == ["/a", "/b"] and "ImageType" not in texts
    assert records.join_instance(h, texts, paths) == old      # rewritten as it was
    full = dict(texts, PhotometricInterpretation="MONOCHROME2", ImageType="ORIGINAL\\PRIMARY")
    new = records.join_instance(h, full, paths)
    assert new.startswith(old)                          # paths where older readers look
    assert records.split_instance(new)[1:] == (full, paths)


def test_session_close_waits_for_its_workers(arc):
    """Closing a session cancels the volume jobs and the warm-up and waits for
    their threads: none may still run native code while Python finalises."""
    import threading

    from pocketpacs.ui import bridge
    from pocketpacs.ui.session import Session

    s = Session(str(arc.path), readonly=True)
    try:
        rows = bridge.call("search", {})["data"]["rows"]
        vid = bridge.call("open_series", {"series_id": rows[0]["series_id"]})["data"]["volume_id"]
        job = s.volume_stream(vid)
        assert job is not None
    finally:
        s.close()
    alive = [t.name for t in threading.enumerate() if t.name == "pocketpacs-warmup"]
    assert not alive
    assert job.join(0) and job.status()["done"]


def test_ct_windows_come_from_the_one_table(arc):
    """A rescaled CT series' wire windows: its header window, then
    ``MODALITY_WINDOWS["CT"]`` as they are (the only preset table; the page
    takes them from the header), then the histogram window."""
    from pocketpacs.images.windows import MODALITY_WINDOWS

    table = [{"name": n, "center": c, "width": w} for n, c, w in MODALITY_WINDOWS["CT"]]
    seen = 0
    for se in _series(arc):
        src = sources.DicomSeriesSource([os.fspath(p) for p in arc.series_files(se.key)])
        hdr = src.header()
        if hdr.modality != "CT" or hdr.units != "HU":
            continue
        names = [w["name"] for w in hdr.windows]
        start = names.index("header") + 1 if "header" in names else 0
        assert names[:start] in (["header"], [])
        assert hdr.windows[start:start + len(table)] == table
        assert names[start + len(table):] == ["auto"]
        seen += 1
    assert seen


# ---------------------------------------------------------------- every series opens or says why
def _nibabel_mosaics():
    import nibabel

    d = os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data")
    files = [os.path.join(d, f) for f in ("0.dcm", "1.dcm")]
    if not all(os.path.isfile(f) for f in files):
        pytest.skip("nibabel's bundled Siemens mosaics are not installed")
    return files


def test_siemens_mosaics_open_as_export_assembles_them():
    """Siemens mosaics (nibabel's bundled DWI pair) open through the viewer's
    source with export's geometry and values: both volumes of the 4D pair, one
    after the other, the slices tiled apart (the viewer refused them with 'no
    image frames', then showed the first volume only)."""
    from pocketpacs.images.volume import assemble_series

    files = _nibabel_mosaics()
    src = sources.DicomSeriesSource(files)
    vol = assemble_series(files).volumes[0]
    assert vol.report.key["mosaic"] and vol.is_4d
    hdr = src.header()
    assert tuple(hdr.shape) == vol.array.shape[1:]
    assert hdr.stack["index"] == 0 and hdr.stack["count"] == 1 and len(hdr.stack["labels"]) == 1
    assert hdr.volumes["count"] == 2 == vol.array.shape[0]
    assert np.allclose(hdr.affine_lps, vol.affine_lps)
    real = _voxels(src).astype(np.float64) * hdr.slope + hdr.intercept
    assert np.array_equal(real.reshape(vol.array.shape), vol.array.astype(np.float64))
    assert src.slice_file(0) == files[0]                  # the header browser's file: the first volume's


def test_objects_without_pixels_say_what_they_are(tmp_path):
    """Reports, RT objects, waveforms and pixel-less images answer 'Not an image: <kind>'
    (the SOP Class name) through open_series, never a generic or internal error."""
    import shutil

    import pydicom_data
    from pocketpacs.ui import protocol
    from pocketpacs.ui.session import Session

    want = {"rtplan.dcm": "RT Plan Storage", "test-SR.dcm": "Comprehensive SR Storage",
            "waveform_ecg.dcm": "12-lead ECG Waveform Storage"}
    (tmp_path / "in").mkdir()
    for name in want:
        shutil.copy(pydicom_data.TEST_FILES / name, tmp_path / "in" / name)
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        ar.import_folder(tmp_path / "in")
    s = Session(str(tmp_path / "archive"), mode="serve")
    try:
        rows = s.call("search", {})["data"]["rows"]
        assert len(rows) == len(want)
        got = set()
        for row in rows:
            env = s.call("open_series", {"series_id": row["series_id"], "slot": "main"})
            job = s.volume_stream(env["data"]["volume_id"])
            assert job.wait_header() is None
            err = job.status()["error"]
            assert err["code"] == protocol.NOT_A_VOLUME
            got.add(err["message"])
        assert got == {f"Not an image: {k}" for k in want.values()}
    finally:
        s.close()


def test_32_bit_values_are_not_wrapped():
    """An RT dose of 32-bit stored values above the int16 range streams the values
    export gives (the viewer used to convert them to int16, wrapping them)."""
    import pydicom_data
    from pocketpacs.images.volume import assemble_series

    files = [str(pydicom_data.TEST_FILES / "rtdose.dcm")]
    src = sources.DicomSeriesSource(files)
    vol = assemble_series(files).volumes[0]
    assert float(np.max(vol.array)) > 65535
    hdr = src.header()
    real = _voxels(src).astype(np.float64) * hdr.slope + hdr.intercept
    assert np.array_equal(real, vol.array.astype(np.float64))


def test_the_kind_of_a_pixel_less_object_names_no_header_text(tmp_path):
    """The kind shown for an object without pixels: the SOP Class name (pydicom's,
    or the Siemens CSA non-image class of Phoenix reports), else a plain Modality
    code, else "unknown object" (never other header text); viewer and export agree."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from pocketpacs.images.volume import NotAnImageError, assemble_series

    def write(name, sop, modality):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.SeriesInstanceUID, ds.Modality = sop, generate_uid(), modality
        p = tmp_path / name
        ds.save_as(p, enforce_file_format=True)
        return str(p)

    cases = {write("phoenix.dcm", "1.3.12.2.1107.5.9.1", "MR"):
             "Siemens CSA Non-Image Storage (e.g. a Phoenix report)",
             write("pdf.dcm", "1.2.840.10008.5.1.4.1.1.104.1", "DOC"): "Encapsulated PDF Storage",
             write("private.dcm", "1.2.3.4.5", "OT"): "OT",
             write("odd.dcm", "1.2.3.4.6", "Jane Doe"): "unknown object"}
    for path, kind in cases.items():
        with pytest.raises(NotAnImageError) as e:
            assemble_series([path])
        assert e.value.kind == kind
        with pytest.raises(NotAnImageError) as e:
            sources.DicomSeriesSource([path])
        assert e.value.kind == kind
