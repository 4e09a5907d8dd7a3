"""Writing a synthetic archive: the fast single-frame writer, junk files and :func:`generate`.

Single-frame files are written without building a pydicom data set per
file: the template of a series is encoded once (:func:`_static_segments`)
and the per-slice elements are encoded by hand between its segments
(:func:`_slice_bytes`), which gives exactly the bytes pydicom writes for the
whole data set (the tests check that).  :func:`_junk_bytes` makes the
non-DICOM and truncated files; :func:`generate` plans the archive and writes
every series (in worker processes if asked), the junk and ``manifest.json``.
"""
from __future__ import annotations

import bisect
import json
import os
import struct
import sys
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from .datasets import (
    _dataset_bytes,
    _enhanced_dataset,
    _pixel_value,
    _series_template,
    _slice_values,
    _stored_frame,
)
from .dicom_values import (
    _COMPRESSED_CODECS,
    _SLICE_TAGS,
    _TAG_ACQUISITION_TIME,
    _TAG_INSTANCE_NUMBER,
    _TAG_IPP,
    _TAG_SLICE_LOCATION,
    _TAG_SOP_INSTANCE_UID,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    _uid,
)
from .encoders import encode_jpeg_lossless
from .manifest import _manifest
from .options import _options
from .phantom import phantom_hu, slice_points
from .plan import _IOP, _Junk, _make_plan, _Plan, _Series

_S_IMPLICIT = struct.Struct("<HHI")
_S_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_S_EXPLICIT_LONG = struct.Struct("<HH2sHI")


def _short_elem(tag: int, vr: bytes, value: bytes, implicit: bool) -> bytes:
    """Encode one little-endian element with a 2-byte-length VR (UI, IS, DS, TM, SH, UL)."""
    if len(value) & 1:
        value += b"\x00" if vr == b"UI" else b" "
    if implicit:
        return _S_IMPLICIT.pack(tag >> 16, tag & 0xFFFF, len(value)) + value
    return _S_EXPLICIT_SHORT.pack(tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _file_meta_bytes(sop_class: str, sop_instance: str, ts: str) -> bytes:
    """Preamble, ``DICM`` and the file meta group, as pydicom writes them."""
    body = b"".join((
        _S_EXPLICIT_LONG.pack(0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01",
        _short_elem(0x00020002, b"UI", sop_class.encode(), False),
        _short_elem(0x00020003, b"UI", sop_instance.encode(), False),
        _short_elem(0x00020010, b"UI", ts.encode(), False),
        _short_elem(0x00020012, b"UI", IMPLEMENTATION_CLASS_UID.encode(), False),
        _short_elem(0x00020013, b"SH", IMPLEMENTATION_VERSION_NAME.encode(), False),
    ))
    return (b"\x00" * 128 + b"DICM" + _S_EXPLICIT_SHORT.pack(0x0002, 0x0000, b"UL", 4)
            + struct.pack("<I", len(body)) + body)


def _static_segments(template: Dataset, implicit: bool) -> list[bytes]:
    """Encode *template* once, split where the per-slice elements go."""
    encodings = convert_encodings(template.SpecificCharacterSet)
    segs = [bytearray() for _ in range(len(_SLICE_TAGS) + 1)]
    for elem in template:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = implicit
        write_data_element(fp, elem, encodings)
        segs[bisect.bisect_left(_SLICE_TAGS, elem.tag)] += fp.getvalue()
    return [bytes(b) for b in segs]


def _slice_bytes(s: _Series, segs: list[bytes], i: int, pixel_value: bytes) -> bytes:
    """One single-frame file: hand-encoded per-slice elements between the static segments."""
    imp = s.implicit
    uid, acq, inst, ipp, loc = _slice_values(s, i)
    if s.codec in _COMPRESSED_CODECS:
        pixel = (_S_EXPLICIT_LONG.pack(0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + pixel_value
                 + _S_IMPLICIT.pack(0xFFFE, 0xE0DD, 0))
    elif imp:
        pixel = _S_IMPLICIT.pack(0x7FE0, 0x0010, len(pixel_value)) + pixel_value
    else:
        pixel = _S_EXPLICIT_LONG.pack(0x7FE0, 0x0010, b"OW", 0, len(pixel_value)) + pixel_value
    return b"".join((
        _file_meta_bytes(s.sop_class, uid, s.ts),
        segs[0], _short_elem(_TAG_SOP_INSTANCE_UID, b"UI", uid.encode(), imp),
        segs[1], _short_elem(_TAG_ACQUISITION_TIME, b"TM", acq.encode(), imp),
        segs[2], _short_elem(_TAG_INSTANCE_NUMBER, b"IS", inst.encode(), imp),
        segs[3], _short_elem(_TAG_IPP, b"DS", "\\".join(ipp).encode(), imp),
        segs[4], _short_elem(_TAG_SLICE_LOCATION, b"DS", loc.encode(), imp),
        segs[5], pixel,
    ))


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_series(s: _Series, out_dir: str) -> tuple[int, int]:
    """Write every file of series *s*; return (files, bytes)."""
    if s.kind == "enhanced":
        data = _dataset_bytes(_enhanced_dataset(s))
        _write_file(os.path.join(out_dir, s.paths[0]), data)
        return 1, len(data)
    segs = _static_segments(_series_template(s), s.implicit)
    total = 0
    for i, rel in enumerate(s.paths):
        data = _slice_bytes(s, segs, i, _pixel_value(s, [_stored_frame(s, i)]))
        _write_file(os.path.join(out_dir, rel), data)
        total += len(data)
    return len(s.paths), total


def _write_series_task(args: tuple[_Series, str]) -> tuple[int, int]:
    return _write_series(*args)


def _element_starts(data: bytes, start: int, stop: int, implicit: bool) -> list[int]:
    """Offsets of the top-level elements of a little-endian data set in data[start:stop]."""
    out, pos = [], start
    long_vrs = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC", b"UR", b"SV", b"UV"}
    while pos + 8 <= stop:
        out.append(pos)
        if implicit:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            head = 8
        else:
            vr = data[pos + 4:pos + 6]
            if vr in long_vrs:
                length = struct.unpack_from("<I", data, pos + 8)[0]
                head = 12
            else:
                length = struct.unpack_from("<H", data, pos + 6)[0]
                head = 8
        if length == 0xFFFFFFFF:
            break  # sequences are not walked; the caller does not need them
        pos += head + length
    return out


def _junk_bytes(plan: _Plan, j: _Junk) -> bytes:
    """The content of junk file *j* (and its details in ``j.info``)."""
    rng = np.random.default_rng([0x1C4, int(plan.options["seed"]), j.index])
    if j.kind == "text":
        return (f"PocketPACS synthetic archive -- junk file #{j.index}.\n"
                "This is not a DICOM file; an importer should skip it.\n"
                "Übung macht den Meister. Ça va?\n").encode()
    if j.kind == "empty":
        return b""
    if j.kind == "dicm_garbage":
        return b"\x00" * 128 + b"DICM" + rng.integers(0, 256, 200 + 37 * j.index, dtype=np.uint8).tobytes()
    if j.kind in ("jpeg", "png"):
        pts = slice_points([-180.0, -180.0, 71.3], _IOP["axial"], [11.25, 11.25], 32, 32)
        img = ((phantom_hu(pts).astype(np.int32) + 1000) // 9).clip(0, 255).astype(np.uint8)
        if j.kind == "jpeg":
            return encode_jpeg_lossless(img, 8)

        def chunk(tag: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

        raw = b"".join(b"\x00" + row.tobytes() for row in img)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    # truncated DICOM files: a valid file of a dedicated series, then cut
    base = next((s for s in plan.series if s.kind == "single-frame"), None)
    if base is None:
        raise ValueError("truncated DICOM junk needs at least one single-frame series")
    uid = _uid(plan.ns, "junk-instance", j.index)
    junk_series = _Series(**{**base.__dict__, "uid": _uid(plan.ns, "junk-series", j.index),
                             "sop_uids": [uid], "positions": base.positions[:1],
                             "slice_locations": base.slice_locations[:1],
                             "codec": "explicit", "private_block": False})
    segs = _static_segments(_series_template(junk_series), False)
    data = _slice_bytes(junk_series, segs, 0, _pixel_value(junk_series, [_stored_frame(junk_series, 0)]))
    pixel_at = len(data) - 2 * junk_series.rows * junk_series.cols - 12
    j.info["series_instance_uid"] = junk_series.uid
    j.info["sop_instance_uid"] = uid
    j.info["full_size"] = len(data)
    if j.kind == "truncated_pixels":
        cut = pixel_at + 12 + junk_series.rows * junk_series.cols
    else:
        meta_end = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
        starts = _element_starts(data, meta_end, pixel_at, False)
        mid = meta_end + (pixel_at - meta_end) // 2
        cut = starts[max(0, bisect.bisect_right(starts, mid) - 1)] + 5
    j.info["cut_at"] = cut
    return data[:cut]


def generate(out_dir: str | os.PathLike[str], *, patients: int = 2, studies: int = 1,
             series: int = 2, slices: int = 20, rows: int = 64, cols: int = 64, seed: int = 0,
             compressed_fraction: float = 0.25, implicit_fraction: float = 0.25,
             enhanced: int = 1, junk: int = 5, nested: bool = True, workers: int = 1,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write a synthetic DICOM archive and its ``manifest.json``.

    Parameters
    ----------
    out_dir : path
        Output folder (created if needed).  Existing files are not removed;
        files of the same names are overwritten.
    patients, studies, series, slices : int
        Patients; studies per patient; single-frame series per study; slices
        (files) per single-frame series, which is also the number of frames
        of each enhanced series.
    rows, cols : int
        Image size.
    seed : int
        Seed; with the other options it decides every value and file name.
    compressed_fraction : float
        Share of single-frame series that are compressed, in turn JPEG
        lossless SV1, JPEG 2000 lossless and RLE lossless (no JPEG 2000 when
        rows or cols < 32: OpenJPEG cannot encode such small images).
    implicit_fraction : float
        Share of single-frame series (of all of them, taken from the
        uncompressed ones) written in implicit VR little endian; the rest are
        explicit VR little endian.
    enhanced : int
        Number of extra Enhanced CT/MR multi-frame series (one file each),
        attached to the studies in turn; transfer syntaxes in turn explicit
        VR LE, RLE, implicit VR LE, JPEG 2000 lossless (RLE below 32 pixels).
    junk : int
        Number of junk files, kinds in the order of :data:`JUNK_KINDS`.
    nested : bool
        Files in two levels of folders (``3a/0c/name``, 64 x 16 folders) or
        all in *out_dir*.
    workers : int
        Processes writing series in parallel (the output does not depend on it).
    progress : callable, optional
        Called as ``progress(files_done, files_total)`` after each series.

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``).
    """
    opts = _options(patients=patients, studies=studies, series=series, slices=slices, rows=rows,
                    cols=cols, seed=seed, compressed_fraction=compressed_fraction,
                    implicit_fraction=implicit_fraction, enhanced=enhanced, junk=junk,
                    nested=nested)
    plan = _make_plan(opts)
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    all_paths = [p for s in plan.series for p in s.paths] + [j.path for j in plan.junk]
    for d in sorted({os.path.dirname(p) for p in all_paths} - {""}):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    total = len(all_paths)
    done = 0
    tasks = [(s, out) for s in plan.series]
    if workers > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        phantom_hu(np.zeros((1, 3)))  # compile before forking
        encode_jpeg_lossless(np.zeros((2, 2), np.uint16), 12)
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            for nf, _ in ex.map(_write_series_task, tasks, chunksize=1):
                done += nf
                if progress:
                    progress(done, total)
    else:
        for task in tasks:
            nf, _ = _write_series(*task)
            done += nf
            if progress:
                progress(done, total)
    for j in plan.junk:
        _write_file(os.path.join(out, j.path), _junk_bytes(plan, j))
        done += 1
    if progress and plan.junk:
        progress(done, total)
    manifest = _manifest(plan)
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return manifest
