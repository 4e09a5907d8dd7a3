"""Series assembly end to end: synthetic archives, hand-written edge cases, real corpus."""
from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from pocketpacs import synth
from pocketpacs.images.affine import corner_distance, corner_voxels_world, normal_from_orientation
from pocketpacs.images.decoders import DecoderPool
from pocketpacs.images.resample import resample_z
from pocketpacs.images.stackread import choose_dtype, read_resampled, read_stack
from pocketpacs.images.stacksplit import plan_series
from pocketpacs.images.volume import assemble_series, dicom_files_in


@pytest.fixture(scope="module")
def pool():
    p = DecoderPool(2)
    yield p
    p.close()


def voxel_world(vol, k_idx=None):
    """LPS coordinates of every voxel centre of a 3D volume, (k, r, c, 3)."""
    k, r, c = vol.array.shape[-3:]
    kk, rr, cc = np.meshgrid(np.arange(k), np.arange(r), np.arange(c), indexing="ij")
    ijk = np.stack([cc, rr, kk], -1).reshape(-1, 3).astype(float)
    return (ijk @ vol.affine_lps[:3, :3].T + vol.affine_lps[:3, 3]).reshape(k, r, c, 3)


# ---------------------------------------------------------------- synthetic archive
@pytest.fixture(scope="module")
def synth_archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    man = synth.generate(out, patients=1, studies=1, series=6, slices=9, rows=32, cols=32,
                         compressed_fraction=0.5, implicit_fraction=0.2, enhanced=4, junk=0,
                         nested=False, seed=3)
    return out, man, synth


def test_synthetic_series_land_where_the_affine_says(synth_archive, pool):
    out, man, synth = synth_archive
    codecs = set()
    for s in man["series"]:
        files = [str(out / f) for f in s["files"]]
        sv = assemble_series(files[::-1], pool=pool)  # shuffled order on purpose
        assert len(sv.volumes) == 1 and not sv.errors, s["codec"]
        v = sv.volumes[0]
        assert v.kind == "volume" and v.array.shape == (s["num_frames"], s["rows"], s["cols"])
        assert v.array.dtype.kind == "i" and v.rescaled  # int16, or int32 for 16-bit stored + intercept
        hu = synth.phantom_hu(voxel_world(v).reshape(-1, 3)).reshape(v.array.shape)
        np.testing.assert_array_equal(v.array, hu, err_msg=f"{s['codec']} {s['orientation']}")
        assert v.window_presets[0].source == "header"
        assert v.window_presets[0].center == s["window_center"][0]
        codecs.add((s["kind"], s["codec"]))
    assert len(codecs) >= 5


def test_synthetic_localizer_mixed_in(synth_archive, pool, tmp_path):
    out, man, synth = synth_archive
    s = next(x for x in man["series"] if x["kind"] == "single-frame" and x["codec"] == "explicit")
    files = [str(out / f) for f in s["files"]]
    ds = pydicom.dcmread(files[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.SOPInstanceUID = generate_uid()
    loc = tmp_path / "loc.dcm"
    ds.save_as(loc)
    sv = assemble_series(files + [str(loc)], pool=pool)
    assert [v.array.shape[0] for v in sv.volumes] == [len(files), 1]
    assert {"localizer", "orientation"} <= set(sv.report.split_by)


# ---------------------------------------------------------------- hand-written edge cases
def write_series(folder, positions, iop, *, big_endian=False, rows=16, cols=12, ps=(1.0, 1.0),
                 slope=1.0, intercept=-1024.0, instance=None, gantry=None):
    """CT slices whose stored pixels sample phantom_hu-like marker: value = 1000 at one voxel."""
    folder.mkdir(parents=True, exist_ok=True)
    suid = generate_uid()
    paths = []
    for i, p in enumerate(positions):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SeriesInstanceUID = suid
        ds.Modality = "CT"
        ds.InstanceNumber = int(instance[i]) if instance is not None else i + 1
        ds.ImagePositionPatient = [float(x) for x in p]
        ds.ImageOrientationPatient = list(iop)
        ds.PixelSpacing = list(ps)
        ds.SliceThickness = 2.0
        if gantry is not None:
            ds.GantryDetectorTilt = gantry
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        img = np.full((rows, cols), 24, np.int16) + np.int16(i)
        img[3, 2] = 2000  # asymmetric marker: row 3, column 2
        ds.PixelData = img.astype(">i2" if big_endian else "<i2").tobytes()
        path = folder / f"f{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True, little_endian=not big_endian, implicit_vr=False)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("big_endian", [False, True])
def test_marker_and_big_endian(tmp_path, big_endian):
    iop = [0, 1, 0, 0, 0, -1]  # sagittal
    nrm = normal_from_orientation(iop)
    pos = [np.array([5.0, -10.0, 20.0]) + k * 3.0 * nrm for k in range(5)]
    paths = write_series(tmp_path / "s", pos, iop, big_endian=big_endian, slope=2.0)
    v = assemble_series(paths[::-1]).volumes[0]
    # 16 stored bits x slope 2 could exceed int16, but the actual values fit it
    assert v.array.dtype == np.int16
    assert v.array[:, 3, 2].tolist() == [2000 * 2 - 1024] * 5
    np.testing.assert_array_equal(v.array[:, 0, 0], [24 * 2 - 1024 + 2 * k for k in range(5)])
    # marker (col 2, row 3) of slice k: position + 2*rowcos + 3*colcos
    w = v.affine_lps @ [2, 3, 4, 1]
    np.testing.assert_allclose(w[:3], pos[4] + 2 * np.array(iop[:3]) + 3 * np.array(iop[3:]))


def test_tilted_series_resampled_keeps_marker_in_world(tmp_path):
    t = np.tan(np.radians(12.0))
    pos = [np.array([0.0, k * 2.0 * t, k * 2.0]) for k in range(6)]
    paths = write_series(tmp_path / "tilt", pos, [1, 0, 0, 0, 1, 0], gantry=12.0)
    sv = assemble_series(paths)
    v, rep = sv.volumes[0], sv.report.stacks[0]
    assert rep.tilt_action == "resampled" and rep.tilt_deg == pytest.approx(12.0, abs=1e-3)
    # source marker of slice k is at world pos[k] + (2, 3, 0); after resampling find it there
    for k in range(6):
        world = pos[k] + np.array([2.0, 3.0, 0.0])
        ijk = np.linalg.solve(v.affine_lps[:3, :3], world - v.affine_lps[:3, 3])
        c, r = ijk[0], ijk[1]
        if np.floor(r) == r and 0 <= r < 16:
            assert v.array[k, int(r), int(c)] == 2000 - 1024
    sheared = assemble_series(paths, tilt="shear")
    assert sheared.volumes[0].report.tilt_action == "sheared"
    assert sheared.volumes[0].array[:, 3, 2].tolist() == [976] * 6


def test_dtype_from_actual_values_widens_when_needed(tmp_path):
    pos = [np.array([0.0, 0.0, 2.0 * k]) for k in range(3)]
    paths = write_series(tmp_path / "w", pos, [1, 0, 0, 0, 1, 0], slope=2.0)
    ds = pydicom.dcmread(paths[1])
    img = ds.pixel_array.copy()
    img[5, 5] = 30000  # 30000 * 2 - 1024 does not fit int16 (and -976 not uint16)
    ds.PixelData = img.tobytes()
    ds.save_as(paths[1])
    v = assemble_series(paths).volumes[0]
    assert v.array.dtype == np.int32
    assert v.array[1, 5, 5] == 30000 * 2 - 1024 and v.array[1, 3, 2] == 2000 * 2 - 1024
    assert v.array[0, 0, 0] == 24 * 2 - 1024


def _peak_ratio(paths, pool=None):
    import tracemalloc

    assemble_series(paths, pool=pool)  # warm (kernels, decoders)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sv = assemble_series(paths, pool=pool)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / sv.volumes[0].array.nbytes, sv.volumes[0]


@pytest.mark.parametrize("case", ["int16", "float32 from int16", "jpeg2000", "resampled gap",
                                  "resampled uneven"])
def test_peak_memory_while_loading(tmp_path, pool, case):
    """numpy reports its allocations to tracemalloc: peak <= 1.25x the final array
    (JPEG 2000: plus the decoders' shared-memory slots, which it does not see)."""
    pos = [np.array([0.0, 0.0, 2.0 * k]) for k in range(16)]
    if case == "resampled gap":          # one slice missing: resampled onto 2 mm
        del pos[7]
    elif case == "resampled uneven":     # spacing alternating 1.5 / 2.5 mm
        pos = [np.array([0.0, 0.0, 4.0 * (k // 2) + 1.5 * (k % 2)]) for k in range(16)]
    slope = 0.5 if case.startswith("float32") else 1.0
    paths = write_series(tmp_path / "m", pos, [1, 0, 0, 0, 1, 0], rows=256, cols=256,
                         slope=slope)
    if case == "jpeg2000":
        from pydicom.uid import JPEG2000Lossless

        for p in paths:
            ds = pydicom.dcmread(p)
            ds.compress(JPEG2000Lossless)
            ds.save_as(p)
    ratio, v = _peak_ratio(paths, pool)
    if case == "jpeg2000":
        ratio += pool.stats.get("shm_bytes", 0.0) / v.array.nbytes
    if case.startswith("resampled"):
        assert v.report.spacing_action.startswith("resampled"), v.report.spacing_action
    assert v.array.dtype == (np.float32 if slope != 1.0 else np.int16)
    assert ratio <= 1.25, ratio


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, None])
@pytest.mark.parametrize("target", ["denser", "sparser", "gap"])
def test_resampling_while_reading_equals_resampling_after(tmp_path, chunk, target):
    """read_resampled (chunks of source slices) gives exactly read_stack + resample_z."""
    from pocketpacs.dicom.headers import parse_files
    from pocketpacs.images.seriesframes import frames_from_batch

    rng = np.random.default_rng(7)
    z = np.cumsum(rng.uniform(0.5, 3.0, 13))
    z -= z[0]
    pos = [np.array([0.0, 0.0, float(v)]) for v in z]
    paths = [str(p) for p in write_series(tmp_path / target, pos, [1, 0, 0, 0, 1, 0], rows=9,
                                          cols=11, slope=1.0 if target == "gap" else 0.25)]
    fr = frames_from_batch(paths, parse_files(paths))
    plans, _ = plan_series(fr.ft, paths=paths)
    plan = plans[0]
    rows_idx = plan.frames.reshape(-1)
    files = fr.ft.file[rows_idx]
    refs = np.stack([files, fr.ft.frame[rows_idx]], axis=1)
    fmts = [fr.formats[int(f)] for f in np.unique(files)]
    sl, ic = fr.slope[rows_idx], fr.intercept[rows_idx]
    shape = (len(rows_idx), plan.rows, plan.cols)
    zs = z[np.argsort(z)] - z.min()
    zt = {"denser": np.arange(0.0, zs[-1], 0.7), "sparser": np.arange(0.0, zs[-1], 4.1),
          "gap": np.linspace(0.0, zs[-1], 13)}[target]
    src, applied, _ = read_stack(paths, fr.formats, refs, shape, fmts, sl, ic, True, None)
    want = resample_z(src, zs, zt)
    got, applied2, errs = read_resampled(paths, fr.formats, refs, shape, fmts, sl, ic, True,
                                     None, zs, zt, chunk=chunk)
    assert applied2 == applied and not errs
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_missing_and_duplicate_slices(tmp_path):
    pos = [np.array([0.0, 0.0, 2.0 * k]) for k in range(8)]
    del pos[5]
    pos.append(pos[2].copy())
    inst = list(range(1, 8)) + [0]
    paths = write_series(tmp_path / "gap", pos, [1, 0, 0, 0, 1, 0], instance=inst)
    sv = assemble_series(paths)
    st = sv.report.stacks[0]
    assert st.gaps and st.gaps[0]["missing_slices"] == 1
    assert st.duplicates and st.dropped_frames == 1
    assert sv.volumes[0].array.shape[0] == 8  # 7 positions, gap filled by resampling
    json.loads(json.dumps(sv.report_dict()))


def test_choose_dtype():
    from pocketpacs.images.pixelformat import PixelFormat

    u12 = PixelFormat(rows=1, cols=1, bits_stored=12)
    u16 = PixelFormat(rows=1, cols=1, bits_stored=16)
    one, z = np.ones(2), np.zeros(2)
    assert choose_dtype([u12], one, z - 1024, True) == (np.int16, True)
    assert choose_dtype([u16], one, z, True) == (np.uint16, True)
    assert choose_dtype([u16], one, z - 1024, True) == (np.int32, True)
    assert choose_dtype([u12], one * 0.5, z, True) == (np.float32, True)
    assert choose_dtype([u12], one * 0.5, z, False) == (np.uint16, False)


# ---------------------------------------------------------------- real corpus
def _corpus_series(corpus):
    m = json.loads((corpus / "MANIFEST.shared.json").read_text())
    return [(st, s) for st in m["sets"] for s in st["series"] if s.get("expected")]


def _files_of(corpus, st, s):
    d = corpus / st["path"] / s["dir"]
    uid = s["SeriesInstanceUID"]
    mm = re.match(r"(.*) \[(file|SeriesNumber) (.*)\]$", uid)
    files = dicom_files_in(d)
    from pocketpacs.dicom.headers import parse_files

    b = parse_files(files)
    uids = b.text("SeriesInstanceUID")
    if mm and mm.group(2) == "file":
        return [str(d / mm.group(3))]
    if mm:
        num = b.number("SeriesNumber")
        return [f for f, u, n in zip(files, uids, num)
                if u == mm.group(1) and n == float(mm.group(3))]
    return [f for f, u in zip(files, uids) if u == uid]


@pytest.mark.corpus
def test_corpus_stack_geometry_and_stored_values(pool, corpus):
    cases = [(st, s) for st, s in _corpus_series(corpus)
             if (s["expected"].get("dicom_stack_geometry") or {}).get("array_shape")
             and "not independently confirmed" not in s["expected"]["trusted_reference"]]
    assert cases, "the corpus manifest lists no such series"
    for st, s in cases:
        g = s["expected"]["dicom_stack_geometry"]
        sv = assemble_series(_files_of(corpus, st, s), rescale=False, pool=pool)
        v = sv.volumes[0]
        name = f"{st['id']}/{s['dir']}"
        assert list(v.array.shape) == g["array_shape"], name
        a = np.ascontiguousarray(v.array).astype(np.dtype(g["raw_dtype"]).newbyteorder("<"))
        assert hashlib.sha256(a.tobytes()).hexdigest() == g["raw_sha256"], name
        k, r, c = g["array_shape"][-3:]
        ref = corner_voxels_world(np.array(g["affine_LPS_index_c_r_k"]), (c, r, k))
        assert corner_distance(ref, v.corners_world()) <= 0.1, name
        if g.get("n_volumes", 1) > 1:
            assert sv.report.stacks[0].n_volumes == g["n_volumes"]
    assert len(cases) >= 8


@pytest.mark.corpus
def test_corpus_upstream_reference_volumes(pool, corpus):
    """Series whose trusted reference is dcm2niix's upstream NIfTI (incl. Siemens mosaics)."""
    cases = [(st, s) for st, s in _corpus_series(corpus)
             if s["expected"]["trusted_reference"].startswith("UPSTREAM")]
    assert cases, "the corpus manifest lists no such series"
    for st, s in cases:
        ref = s["expected"]["reference_volumes"][0]
        sv = assemble_series(_files_of(corpus, st, s), pool=pool)
        v = sv.volumes[0]
        name = f"{st['id']}/{s['dir']}/{s['SeriesInstanceUID'][-16:]}"
        shape = list(v.to_nifti_array().shape)
        if len(ref["shape"]) == 3 and len(shape) == 4 and shape[3] > 1:
            # files sharing one Series Instance UID (dcm_qa_ts): one volume per file
            shape = shape[:3]
        assert sorted(shape) == sorted(ref["shape"]), name
        refc = corner_voxels_world(np.array(ref["affine_RAS"]), ref["shape"][:3])
        assert corner_distance(refc, v.corners_world(ras=True)) <= 0.1, name
        stt = ref["scaled_stats"]
        a = v.array.astype(np.float64)
        assert a.min() == pytest.approx(stt["min"], abs=1e-3) and \
            a.max() == pytest.approx(stt["max"], abs=1e-3), name
        assert a.mean() == pytest.approx(stt["mean"], rel=1e-3), name
    assert len(cases) >= 15


@pytest.mark.corpus
def test_corpus_multiframe_without_positions_is_sequence(pool, corpus):
    cases = [(st, s) for st, s in _corpus_series(corpus)
             if str((s.get("own") or {}).get("status", "")).startswith("not applicable")]
    assert cases, "the corpus manifest lists no such series"
    for st, s in cases:
        sv = assemble_series(_files_of(corpus, st, s), pool=pool)
        v = sv.volumes[0]
        assert v.kind == "sequence" and v.array.shape[0] == s["n_frames_total"]
        assert sv.report.stacks[0].why_sequence


def test_a_mosaic_without_its_csa_header_opens_as_the_tiled_image_it_is(corpus, tmp_path):
    """A Siemens mosaic whose private CSA header is gone (a de-identified copy with
    the Basic profile) cannot be tiled apart: it was "no image frames among 1
    file(s)" with no reason; now it opens as the stored, tiled image, and the
    reports say why its slices are not apart."""
    import pydicom

    from pocketpacs.images.volume import assemble_series
    from pocketpacs.series import SeriesReader

    src = corpus / "dcm_qa_ts" / "In" / "1.dcm"
    ds = pydicom.dcmread(src)
    assert "MOSAIC" in [str(v).upper() for v in ds.ImageType]
    ds.remove_private_tags()
    out = tmp_path / "mosaic.dcm"
    ds.save_as(out)
    sv = assemble_series([out])
    (vol,) = sv.volumes
    assert vol.array.shape == (1, ds.Rows, ds.Columns)
    assert np.array_equal(vol.array[0], ds.pixel_array.astype(vol.array.dtype))
    note = [n for n in sv.report.notes if "Siemens CSA header" in n]
    assert note and "cannot be told apart" in note[0] and note[0] in vol.report.notes
    assert not sv.report.excluded
    # the viewer's path (a series reader) shows the same image and note
    reader = SeriesReader([out])
    got = reader.read_stack(0)
    assert np.array_equal(np.asarray(got.array if hasattr(got, "array") else got)[0],
                          ds.pixel_array.astype(vol.array.dtype))
    assert any("cannot be told apart" in n for n in reader.assemble().report.notes)
