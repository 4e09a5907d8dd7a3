"""Declared sizes of compressed frames, checked before a decoder allocates from them."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from pocketpacs.dicom.codestreams import (J2K_SYNTAXES, JPEG_SYNTAXES, CodestreamError, check_frame,
                                    declared_size)
from pydicom_data import bundled_files


def _compressed_testfiles():
    out = []
    for p in bundled_files("*.dcm"):
        try:
            ds = pydicom.dcmread(p)
            ts = str(ds.file_meta.TransferSyntaxUID)
        except Exception:
            continue
        if (ts in J2K_SYNTAXES or ts in JPEG_SYNTAXES) and "PixelData" in ds:
            out.append((p, ds, ts))
    return out


def test_declared_sizes_of_pydicom_files_match_their_headers():
    """pydicom's JPEG, JPEG-LS, JPEG 2000 and HTJ2K files: every frame declares
    the header's Rows x Columns, except files pydicom cannot decode either
    (refusing those loses nothing)."""
    import warnings

    files = _compressed_testfiles()
    assert len(files) >= 20
    checked, refused = 0, []
    for p, ds, ts in files:
        nfr = int(ds.get("NumberOfFrames", 1) or 1)
        try:
            frames = list(generate_frames(ds.PixelData, number_of_frames=nfr))
        except Exception:
            continue
        for fr in frames[:3]:
            try:
                check_frame(fr, ts, ds.Rows, ds.Columns, ds.BitsAllocated)
                checked += 1
            except CodestreamError:
                refused.append(p)
                break
    assert checked >= 30, checked   # 31 frames in pydicom 3.0.2
    for p in refused:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # each decoder plugin fails in its own way (ValueError, RuntimeError...)
            with pytest.raises(Exception):  # noqa: B017
                _ = pydicom.dcmread(p).pixel_array
    assert len(refused) <= 3, refused


def _j2k_series(tmp_path, n=6):
    from pydicom.uid import JPEG2000Lossless

    import test_volume as TV

    pos = [np.array([0.0, 0.0, 2.0 * k]) for k in range(n)]
    paths = TV.write_series(tmp_path / "j2k", pos, [1, 0, 0, 0, 1, 0], rows=64, cols=48)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(JPEG2000Lossless)
        ds.save_as(p)
    return paths


def test_a_frame_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    """A J2K frame whose SIZ claims 2,490,880 rows (one damaged byte, found by
    fuzzing: the decoder allocated 2.5 GB and ran 20 s) is reported for its file
    without being decoded; the other slices load."""
    from pocketpacs.images.volume import assemble_series

    paths = _j2k_series(tmp_path)
    ds = pydicom.dcmread(paths[2])
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    assert frame[:4] == b"\xff\x4f\xff\x51"
    frame[12:16] = struct.pack(">I", 2490880)          # Ysiz
    with pytest.raises(CodestreamError, match="2490880x48"):
        check_frame(bytes(frame), str(ds.file_meta.TransferSyntaxUID), 64, 48)
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(paths[2])
    vol = assemble_series(paths).volumes[0]
    assert vol.array.shape == (6, 64, 48)
    bad = [e for e in vol.errors]
    assert len(bad) == 1 and bad[0].path == str(paths[2])
    assert "declares 2490880x48" in bad[0].reason
    assert np.all(vol.array[2] == 0) and vol.array[3].any()


@pytest.mark.parametrize("damage", [b"", b"\xff\x4f", b"\x00" * 60, b"\xff\xd8\xff\xe0\x00\x02"])
def test_unreadable_declared_sizes_raise_codestream_errors(damage):
    for ts in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.50"):
        with pytest.raises(CodestreamError):
            declared_size(damage, ts)
    assert declared_size(damage, "1.2.840.10008.1.2.5") is None   # RLE: no size of its own


def _gdcm_decode(path, indices):
    """Decode a file with GDCM directly, without the declared-size check."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        ds.pixel_array_options(decoding_plugin="gdcm")
        return [np.ascontiguousarray(ds.pixel_array)]


def test_real_decoder_abort_is_isolated_and_refused_up_front(tmp_path):
    """A JPEG 2000 frame whose component precision byte is damaged (found by
    benchmarks/fuzz_codecs.py) makes GDCM abort its process (an uncaught C++
    exception).  In a decoder worker that loses only the file; the
    declared-size check refuses the frame before any decoder sees it."""
    pytest.importorskip("gdcm")
    from pocketpacs.images.decoders import DecoderPool
    from pocketpacs.images.volume import assemble_series

    paths = _j2k_series(tmp_path, n=4)
    ds = pydicom.dcmread(paths[1])
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[42] = 0xCD                      # Ssiz: signed, 78 bits
    ts = str(ds.file_meta.TransferSyntaxUID)
    with pytest.raises(CodestreamError, match="78-bit"):
        check_frame(bytes(frame), ts, 64, 48, 16)
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(paths[1])
    # the raw decoder really aborts its process
    import subprocess
    import sys
    child = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); "
                            "import test_codestreams as T; T._gdcm_decode(%r, None)"
                            % (str(Path(__file__).parent), str(paths[1]))],
                           capture_output=True, timeout=120)
    assert child.returncode < 0, (child.returncode, child.stderr[-500:])
    # in the pool: one crashed file, the others decoded, the pool still works
    pool = DecoderPool(1)
    try:
        got = {}
        errs = pool.run([(str(p), None) for p in paths],
                        lambda ti, idx, arrays: got.__setitem__(ti, arrays),
                        decode_fn=_gdcm_decode)
        assert [(e.path, e.crashed) for e in errs] == [(str(paths[1]), True)]
        assert sorted(got) == [0, 2, 3]
    finally:
        pool.close()
    # the real path refuses the frame up front: no crash, a reason
    vol = assemble_series(paths).volumes[0]
    assert [e.path for e in vol.errors] == [str(paths[1])]
    assert "78-bit" in vol.errors[0].reason and not vol.errors[0].crashed
