"""The one series reader (issue 12): every stack reachable, 4D with every volume.

:func:`pocketpacs.series.open_series` plans a series into the stacks export
assembles (:func:`pocketpacs.images.volume.assemble_series`), in the same order;
each stack read by the reader, by the viewer's source and over the served API
(``open_series`` with ``stack``, slices and streams with ``?t=``) has export's
shape, affine and values.  4D stacks, DICOM (temporal positions) and NIfTI
(nibabel's ``example4d.nii.gz`` in the corpus), give every volume.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import served_http
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import pocketpacs
from pocketpacs import series
from pocketpacs.images.volume import assemble_series
from pocketpacs.ui import protocol
from pocketpacs.ui.sources import DicomSeriesSource, ImageFileSource
from pocketpacs.ui.volumes import VolumeJob

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _write(folder, suid, frames, *, rows=10, cols=8, start=0):
    """MR slices of one series: ``frames`` is a list of ``(position, orientation, extra)``;
    the pixels encode the file's index so every slice differs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (pos, iop, extra) in enumerate(frames, start):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.SeriesInstanceUID = suid
        ds.PatientName, ds.PatientID = "Reader^Test", "R1"
        ds.Modality = "MR"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [float(v) for v in pos]
        ds.ImageOrientationPatient = list(iop)
        ds.PixelSpacing = [0.8, 0.9]
        ds.SliceThickness = 2.0
        for k, v in extra.items():
            setattr(ds, k, v)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        img = (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) + 37 * i) % 4000
        ds.PixelData = img.astype("<u2").tobytes()
        path = folder / f"im{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(os.fspath(path))
    return paths


@pytest.fixture(scope="module")
def multi_stack(tmp_path_factory):
    """One series of three stacks: 7 axial slices, 4 coronal ones, 3 axial slices of
    another size (what splits them: orientation, rows/columns)."""
    folder = tmp_path_factory.mktemp("multi")
    suid = generate_uid()
    frames = [((0, 0, 2.0 * k), AXIAL, {}) for k in range(7)]
    frames += [((0, 3.0 * k, 0), CORONAL, {}) for k in range(4)]
    paths = _write(folder, suid, frames)
    paths += _write(folder, suid, [((0, 0, 2.5 * k), AXIAL, {}) for k in range(3)],
                    rows=6, cols=6, start=len(frames))
    return paths


@pytest.fixture(scope="module")
def four_d(tmp_path_factory):
    """One 4D series: 5 positions x 3 temporal positions, files in no useful order."""
    folder = tmp_path_factory.mktemp("fourd")
    frames = [((0, 0, 3.0 * z), AXIAL, {"TemporalPositionIdentifier": t + 1,
                                        "NumberOfTemporalPositions": 3})
              for z in range(5) for t in range(3)]
    paths = _write(folder, generate_uid(), frames)
    return paths[::-1]


def _voxels(src):
    whole = src.whole()
    if whole is not None:
        return np.asarray(whole)
    n = int(src.header().shape[0]) * int(src.header().volumes.get("count", 1))
    out = np.empty((n,) + tuple(src.header().shape[1:]), dtype=src.header().dtype)
    src.read_into(0, n, out)
    return out


def test_every_stack_is_export_s_stack(multi_stack):
    sv = assemble_series(multi_stack)
    reader = series.open_series(multi_stack)
    assert len(reader.stacks) == len(sv.volumes) == 3
    for info, vol in zip(reader.stacks, sv.volumes):
        got = reader.read_stack(info.index)
        assert got.array.shape == vol.array.shape and info.shape == vol.array.shape
        np.testing.assert_allclose(got.affine_lps, vol.affine_lps)
        assert np.array_equal(got.array, vol.array)
        assert info.volumes.count == 1 and info.progressive
    labels = [st.label for st in reader.stacks]
    assert labels[0].startswith("axial, 7 slices") and labels[1].startswith("coronal, 4 slices")
    assert "6x6" in labels[2]                       # split by size: the size is in the label
    with pytest.raises(IndexError, match="stack 3 does not exist"):
        reader.read_stack(3)


def test_the_viewer_source_opens_each_stack(multi_stack):
    sv = assemble_series(multi_stack)
    for i, vol in enumerate(sv.volumes):
        src = DicomSeriesSource(multi_stack, stack=i)
        hdr = src.header()
        assert tuple(hdr.shape) == vol.array.shape
        np.testing.assert_allclose(hdr.affine_lps, vol.affine_lps)
        assert hdr.stack["index"] == i and hdr.stack["count"] == 3
        assert hdr.stack["labels"] == [st.label for st in series.open_series(multi_stack).stacks]
        real = _voxels(src).astype(np.float64) * hdr.slope + hdr.intercept
        assert np.array_equal(real, vol.array.astype(np.float64))
        assert src.slice_file(0) is not None
        src.close()


def test_a_4d_dicom_series_gives_every_volume(four_d):
    vol = assemble_series(four_d).volumes[0]
    assert vol.is_4d and vol.array.shape[:2] == (3, 5)
    reader = series.open_series(four_d)
    info = reader.stacks[0]
    assert info.volumes.count == 3 and info.volumes.axis == "time"
    assert info.volumes.values == [1.0, 2.0, 3.0] and info.shape == vol.array.shape[1:]
    assert info.progressive and "3 time points" in info.label
    job = VolumeJob(lambda: DicomSeriesSource(four_d)).start()
    hdr = job.wait_header(60)
    assert hdr["shape"] == list(vol.array.shape[1:])
    assert hdr["volumes"] == {"count": 3, "axis": "time", "values": [1.0, 2.0, 3.0]}
    for t in range(3):
        for z in (0, 2, 4):
            fh, vox = protocol.decode_frame(job.slice_frame(z, t))
            assert fh["slice"] == z and fh["t"] == t
            got = np.frombuffer(vox, dtype=fh["dtype"]).reshape(hdr["shape"][1:])
            assert np.array_equal(got, vol.array[t, z])
    assert job.slice_frame(0, 3) is None and job.slice_frame(5, 0) is None
    assert np.array_equal(job.array(), vol.array)
    streamed = b"".join(bytes(c) for c in job.iter_data(t=2))
    assert np.array_equal(np.frombuffer(streamed, dtype=hdr["dtype"]).reshape(vol.array.shape[1:]),
                          vol.array[2])


def test_a_4d_nifti_gives_every_volume(corpus):
    nib = pytest.importorskip("nibabel")
    path = corpus / "nibabel_test_data" / "nifti" / "example4d.nii.gz"
    data = np.asarray(nib.load(path).get_fdata(dtype=np.float32))
    assert data.ndim == 4 and data.shape[3] > 1
    job = VolumeJob(lambda: ImageFileSource(os.fspath(path))).start()
    hdr = job.wait_header(60)
    assert hdr["volumes"]["count"] == data.shape[3] and hdr["volumes"]["axis"] == "time"
    assert hdr["shape"] == [data.shape[2], data.shape[1], data.shape[0]]
    sl, ic = hdr["rescale"]["slope"], hdr["rescale"]["intercept"]
    for t in (0, data.shape[3] - 1):
        z = data.shape[2] // 2
        fh, vox = protocol.decode_frame(job.slice_frame(z, t))
        got = np.frombuffer(vox, dtype=fh["dtype"]).reshape(hdr["shape"][1:]).astype(np.float64)
        np.testing.assert_allclose(got * sl + ic, data[:, :, z, t].T, rtol=1e-5, atol=1e-3)
    a, b = (protocol.decode_frame(job.slice_frame(data.shape[2] // 2, t))[1] for t in (0, 1))
    assert bytes(a) != bytes(b)                     # the volumes differ


def test_export_and_report_go_through_the_reader(multi_stack, tmp_path):
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        ar.import_folder(os.path.dirname(multi_stack[0]))
        key = ar.search(level="series").hits[0].series[0].key
        reader = series.open_series(ar, key)
        assert reader.from_rows                     # planned from the stored rows
        sv = reader.assemble()
        ref = assemble_series(multi_stack)
        assert [v.array.shape for v in sv.volumes] == [v.array.shape for v in ref.volumes]
        for a, b in zip(sv.volumes, ref.volumes):
            assert np.array_equal(a.array, b.array)
        with pytest.raises(KeyError):
            series.open_series(ar, "1.2.3.4.5.6.7.8.9")


# ------------------------------------------------------------------ served
@pytest.fixture(scope="module")
def served(multi_stack, four_d, tmp_path_factory):
    from pocketpacs.ui.server import DataServer
    from pocketpacs.ui.session import Session

    root = tmp_path_factory.mktemp("served") / "archive"
    with pocketpacs.open_archive(root) as ar:
        ar.import_folder(os.path.dirname(multi_stack[0]))
        ar.import_folder(os.path.dirname(four_d[0]))
    session = Session(str(root), mode="serve")
    srv = DataServer(session).start()
    yield srv
    srv.stop()
    session.close()


def _req(srv, method, path, body=None):
    r, data = served_http.req(srv, method, path, body=body)
    return r.status, data


def _call(srv, name, args):
    st, data = _req(srv, "POST", f"/v1/call/{name}", args)
    assert st == 200
    return json.loads(data)


def _rows(srv):
    env = _call(srv, "search", {})
    assert env["ok"], env
    return {r["images"]: r["series_id"] for r in env["data"]["rows"]}


def test_served_stack_picker_and_time_axis(served, multi_stack, four_d):
    srv = served
    ids = _rows(srv)
    ref = assemble_series(multi_stack)
    for i, vol in enumerate(ref.volumes):
        env = _call(srv, "open_series", {"series_id": ids[len(multi_stack)], "stack": i})
        assert env["ok"], env
        st, data = _req(srv, "GET", f"/v1/volume/{env['data']['volume_id']}/header")
        hdr = json.loads(data)
        assert hdr["stack"]["index"] == i and len(hdr["stack"]["labels"]) == 3
        assert hdr["shape"] == list(vol.array.shape)
        np.testing.assert_allclose(hdr["affine_lps"], vol.affine_lps)
    env = _call(srv, "open_series", {"series_id": ids[len(multi_stack)], "stack": 7})
    vid = env["data"]["volume_id"]
    st, data = _req(srv, "GET", f"/v1/volume/{vid}/header")
    assert st == 409 and b"no such stack" in data

    vol = assemble_series(four_d).volumes[0]
    env = _call(srv, "open_series", {"series_id": ids[len(four_d)]})
    vid = env["data"]["volume_id"]
    st, data = _req(srv, "GET", f"/v1/volume/{vid}/header")
    assert json.loads(data)["volumes"]["count"] == 3
    st, frame = _req(srv, "GET", f"/v1/volume/{vid}/slice/1?t=2")
    assert st == 200
    fh, vox = protocol.decode_frame(frame)
    assert np.array_equal(np.frombuffer(vox, dtype=fh["dtype"]).reshape(vol.array.shape[2:]),
                          vol.array[2, 1])
    st, body = _req(srv, "GET", f"/v1/volume/{vid}/data?t=1")
    assert st == 200
    fh, vox = protocol.decode_frame(body)
    assert np.array_equal(np.frombuffer(vox, dtype=fh["dtype"]).reshape(vol.array.shape[1:]),
                          vol.array[1])
    assert _req(srv, "GET", f"/v1/volume/{vid}/slice/1?t=3")[0] == 404
    assert _req(srv, "GET", f"/v1/volume/{vid}/data?t=9")[0] == 404
    assert _req(srv, "GET", f"/v1/volume/{vid}/slice/1?t=x")[0] == 400


def test_a_folder_opens_series_by_series(multi_stack, four_d, tmp_path):
    import shutil

    folder = tmp_path / "two"
    folder.mkdir()
    for i, f in enumerate(multi_stack + four_d):
        shutil.copy(f, folder / f"f{i:03d}.dcm")
    readers = series.open_path(folder)
    assert sorted(len(r.stacks) for r in readers) == [1, 3]
    by_uid = {r.series_uid: r for r in readers}
    four = series.open_series(folder, next(u for u, r in by_uid.items() if len(r.stacks) == 1))
    assert four.stacks[0].volumes.count == 3
    with pytest.raises(ValueError, match="holds 2 image series"):
        series.open_series(folder)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        series.open_path(tmp_path / "absent")


def test_read_slices_gives_read_stack_s_values(multi_stack, four_d):
    for files in (multi_stack, four_d):
        reader = series.open_series(files)
        for info in reader.stacks:
            whole = reader.read_stack(info.index).array
            k = info.shape[0]
            for t in range(info.volumes.count):
                ref = whole[t] if info.volumes.count > 1 else whole
                got = reader.read_slices(info.index, 1, k - 1, t=t)
                assert np.array_equal(got, ref[1:k - 1])
    with pytest.raises(IndexError, match="outside stack 0"):
        reader.read_slices(0, 0, 99)


def test_every_synthetic_series_reads_as_export_assembles_it(tmp_path):
    """Synthetic CT/MR series (rescaled CT, compressed, implicit VR, enhanced
    multi-frame, junk files): the reader, from the archive's rows or the files,
    gives export's stacks and values, whole and slice by slice."""
    from pocketpacs import synth

    synth.generate(tmp_path / "files", patients=2, studies=1, series=3, slices=9, rows=24, cols=20,
                   seed=5, compressed_fraction=0.25, implicit_fraction=0.34, enhanced=1,
                   junk=2, workers=1)
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        ar.import_folder(tmp_path / "files")
        keys = [s.key for h in ar.search(level="series").hits for s in h.series]
        assert len(keys) >= 6
        from_rows = 0
        for key in keys:
            reader = series.open_series(ar, key)
            from_rows += reader.from_rows
            ref = assemble_series(ar.series_files(key)).volumes
            assert len(reader.stacks) == len(ref)
            for info, vol in zip(reader.stacks, ref):
                got = reader.read_stack(info.index)
                assert got.array.dtype == vol.array.dtype and np.array_equal(got.array, vol.array)
                np.testing.assert_allclose(got.affine_lps, vol.affine_lps)
                assert [w.center for w in got.window_presets] == [w.center for w in vol.window_presets]
                mid = info.shape[0] // 2
                sl = reader.read_slices(info.index, mid, mid + 1)
                first = vol.array[0] if vol.is_4d else vol.array
                assert sl.dtype.kind == first.dtype.kind and np.array_equal(sl[0], first[mid])
        assert from_rows >= 1


def test_report_names_each_stack_as_the_picker_does(multi_stack, four_d, capsys):
    from pocketpacs import cli

    folder = os.path.dirname(multi_stack[0])
    assert cli.main(["report", folder, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [st["label"] for st in d["stacks"]] == [s.label for s in series.open_path(folder)[0].stacks]
    assert cli.main(["report", os.path.dirname(four_d[0])]) == 0
    out = capsys.readouterr().out
    assert "stack 0 (axial, 5 slices, 3 time points)" in out
