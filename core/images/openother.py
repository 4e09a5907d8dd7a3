"""Open Other: non-archive files as :class:`~pocketpacs.images.volume.Volume` objects.

Supported, without entering the archive:

* NIfTI-1/NIfTI-2 (``.nii``, ``.nii.gz``), Analyze (``.hdr``/``.img``) and
  MGH/MGZ via nibabel (scaled values, the image's RAS affine);
* standalone JPEG 2000 / HTJ2K codestreams and JP2 files (``.j2k``, ``.j2c``,
  ``.jpc``, ``.jp2``, ``.jph``, ``.jhc``) via pylibjpeg-openjpeg;
* PNG (a built-in reader, or Pillow when installed) and JPEG (Pillow when
  installed, else pylibjpeg-libjpeg);
* DICOM files and folders (assembled like archive series).

2D images get a 1 mm pixel grid in the axial plane (the report says so).
Anything else raises :class:`OpenOtherError` with the reason.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any

import numpy as np

from ..errors import PocketPacsError
from .affine import LPS_TO_RAS, lps_to_ras
from .assemblyreport import StackReport
from .volume import Volume
from .windows import histogram_window, window_presets

NIBABEL_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".mgh", ".mgz", ".img.gz", ".hdr.gz")
J2K_SUFFIXES = (".j2k", ".j2c", ".jpc", ".jp2", ".jph", ".jhc", ".jpx")
PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")

_J2K_MAGIC = (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  \r\n\x87\n")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class OpenOtherError(PocketPacsError):
    """A file Open Other cannot read (the message says why)."""


def _kind_of(path: str) -> str:
    low = path.lower()
    if os.path.isdir(path):
        return "dicom"
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise OpenOtherError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
                             ) from None
    if not head:
        raise OpenOtherError(f"{path}: empty file")
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if any(head.startswith(m) for m in _J2K_MAGIC):
        return "j2k"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if low.endswith(NIBABEL_SUFFIXES):
        return "nibabel"
    if low.endswith(J2K_SUFFIXES):
        return "j2k"
    if low.endswith(PNG_SUFFIXES):
        return "png"
    if low.endswith(JPEG_SUFFIXES):
        return "jpeg"
    if low.endswith(".dcm") or low.endswith(".dcm.gz"):
        return "dicom"
    # NIfTI-1 / NIfTI-2 without a known suffix
    if len(head) >= 348 and struct.unpack("<i", head[:4])[0] in (348, 540):
        return "nibabel"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(4)
            if struct.unpack("<i", inner)[0] in (348, 540):
                return "nibabel"
        except (OSError, struct.error):
            pass
    return "dicom"


def open_other(path: str | os.PathLike[str]) -> list[Volume]:
    """Open a non-archive file (or a DICOM folder) as volumes.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of Volume
        One per image (or per DICOM stack).

    Raises
    ------
    OpenOtherError
        The file does not exist, is empty, or no reader understands it.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise OpenOtherError(f"{p}: no such file or folder")
    kind = _kind_of(p)
    try:
        if kind == "nibabel":
            return [open_nibabel(p)]
        if kind == "j2k":
            return [open_j2k(p)]
        if kind == "png":
            return [image_volume(read_png(p), p, "PNG")]
        if kind == "jpeg":
            return [image_volume(read_jpeg(p), p, "JPEG")]
        return open_dicom(p)
    except OpenOtherError as exc:
        if p in str(exc):
            raise
        raise OpenOtherError(f"{p}: {exc}") from None
    except Exception as exc:
        raise OpenOtherError(f"{p}: not readable as {kind} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None


def open_dicom(path: str) -> list[Volume]:
    """DICOM file or folder: every series, every stack."""
    from .volume import VolumeError, assemble_path

    try:
        out = [v for sv in assemble_path(path) for v in sv.volumes]
    except VolumeError as exc:
        raise OpenOtherError(f"{path}: {exc}") from None
    if not out:
        raise OpenOtherError(f"{path}: not a readable image (not NIfTI/Analyze/MGH, JPEG 2000, "
                             f"PNG, JPEG or DICOM with pixel data)")
    return out


def open_nibabel(path: str) -> Volume:
    """NIfTI-1/2, Analyze or MGH image via nibabel (scaled data, RAS affine).

    Returns
    -------
    Volume
        Array ``(k, j, i)`` or ``(t, k, j, i)`` (a transposed view of the
        image's ``(i, j, k[, t])`` data), ``affine_lps = diag(-1, -1, 1, 1) @
        affine``.
    """
    import nibabel as nib

    img = nib.load(path)
    if getattr(img, "affine", None) is None:
        raise OpenOtherError(f"{path}: {type(img).__name__} has no voxel grid (no affine); "
                             f"not a volume")
    shape = img.shape
    if len(shape) < 2 or len(shape) > 4 and any(s > 1 for s in shape[4:]):
        raise OpenOtherError(f"{path}: {len(shape)}D image is not a volume "
                             f"(only 2D, 3D and 4D images)")
    if img.__class__.__name__.startswith("Cifti") or len(shape) > 4:
        shape = shape[:4]
    dataobj = img.dataobj
    slope = getattr(dataobj, "slope", 1.0)
    inter = getattr(dataobj, "inter", 0.0)
    raw_dtype = np.dtype(img.get_data_dtype())
    if (slope in (1.0, None) or not np.isfinite(slope)) and (inter in (0.0, None)
                                                              or not np.isfinite(inter)):
        data = np.asanyarray(dataobj)
        rescaled = False
    else:
        data = np.asarray(img.get_fdata(dtype=np.float32))
        rescaled = True
    data = data.reshape(data.shape[:4]) if data.ndim > 4 else data
    if data.ndim == 2:
        data = data[:, :, None]
    arr = data.transpose(tuple(range(data.ndim))[::-1])
    if raw_dtype.byteorder not in ("=", "|") and arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    aff = np.asarray(img.affine, dtype=np.float64)
    aff_lps = LPS_TO_RAS @ aff
    zooms = img.header.get_zooms()
    spacing = tuple(float(np.linalg.norm(aff[:3, j])) for j in range(3))
    rep = StackReport(index=0, kind="volume", shape=list(arr.shape), n_frames=int(
        np.prod(arr.shape[:-2])), key={"format": type(img).__name__},
        spacing_mm=[float(s) for s in spacing], affine_lps=aff_lps.tolist(),
        affine_ras=aff.tolist(), notes=[f"{type(img).__name__} opened with nibabel"
                                        + (" (scaled)" if rescaled else "")])
    if len(zooms) > 3 and data.ndim == 4:
        rep.n_volumes = int(data.shape[3])
        rep.fourth_axis = "time"
    vol = Volume(array=arr, affine_lps=aff_lps, spacing=spacing,  # type: ignore[arg-type]
                 modality=None, kind="volume", report=rep, rescaled=rescaled)
    vol.window_presets = [histogram_window(arr)]
    return vol


def open_j2k(path: str) -> Volume:
    """A standalone JPEG 2000 / HTJ2K codestream or JP2 file."""
    from openjpeg import decode

    with open(path, "rb") as f:
        data = f.read()
    arr = np.asarray(decode(data))
    return image_volume(arr, path, "JPEG 2000")


def image_volume(img: np.ndarray, path: str, fmt: str) -> Volume:
    """Wrap a 2D grey or colour image into a one-slice Volume (1 mm pixels).

    Parameters
    ----------
    img : ndarray, (rows, cols) or (rows, cols, samples)
    path : str
    fmt : str
        Format name (for the report).

    Returns
    -------
    Volume
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise OpenOtherError(f"{path}: unexpected {fmt} image shape {img.shape}")
    samples = 1 if img.ndim == 2 else int(img.shape[2])
    arr = np.ascontiguousarray(img[None])
    aff = np.eye(4)
    rep = StackReport(index=0, kind="volume", shape=list(arr.shape), n_frames=1,
                      key={"format": fmt, "rows": int(img.shape[0]), "cols": int(img.shape[1]),
                           "samples": samples},
                      n_positions=1, spacing_mm=[1.0, 1.0, 1.0], affine_lps=aff.tolist(),
                      affine_ras=lps_to_ras(aff).tolist(),
                      notes=[f"{fmt} image: no world geometry, 1 mm pixels assumed"])
    vol = Volume(array=arr, affine_lps=aff, spacing=(1.0, 1.0, 1.0), modality=None,
                 kind="volume", report=rep, photometric="RGB" if samples > 1 else "MONOCHROME2",
                 rescaled=False)
    vol.window_presets = window_presets(arr, None, [], False, samples)
    return vol


# --------------------------------------------------------------------------
# PNG / JPEG readers
# --------------------------------------------------------------------------
def _pillow() -> Any:
    try:
        from PIL import Image  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Image


def read_jpeg(path: str) -> np.ndarray:
    """Decode a JPEG file (Pillow when installed, else pylibjpeg-libjpeg)."""
    Image = _pillow()
    if Image is not None:
        with Image.open(path) as im:
            return np.asarray(im)
    from libjpeg import decode

    with open(path, "rb") as f:
        return np.asarray(decode(f.read()))


def read_png(path: str) -> np.ndarray:
    """Decode a PNG file (Pillow when installed, else the built-in reader)."""
    Image = _pillow()
    if Image is not None:
        with Image.open(path) as im:
            return np.asarray(im)
    with open(path, "rb") as f:
        return png_decode(f.read())


def png_decode(data: bytes) -> np.ndarray:
    """Decode a non-interlaced PNG (grey, grey+alpha, RGB, RGBA, palette; 8/16 bit).

    Parameters
    ----------
    data : bytes

    Returns
    -------
    ndarray
        ``(h, w)`` or ``(h, w, channels)``, uint8 or uint16.

    Raises
    ------
    OpenOtherError
        Malformed or unsupported PNG (interlaced, bit depth < 8 except palette).
    """
    if not data.startswith(_PNG_MAGIC):
        raise OpenOtherError("not a PNG file")
    pos = 8
    idat = []
    ihdr = None
    plte = None
    while pos + 8 <= len(data):
        (ln,) = struct.unpack(">I", data[pos:pos + 4])
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + ln]
        pos += 12 + ln
        if tag == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"PLTE":
            plte = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
    if ihdr is None:
        raise OpenOtherError("PNG without IHDR")
    w, h, depth, ctype, _comp, _filt, interlace = ihdr
    if interlace:
        raise OpenOtherError("interlaced PNG is not supported without Pillow")
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if ch is None or depth not in (8, 16) and not (ctype == 3 and depth in (1, 2, 4)):
        raise OpenOtherError(f"PNG colour type {ctype} / depth {depth} not supported")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    if ctype == 3 and depth < 8:
        stride = (w * depth + 7) // 8
        bpp = 1
    else:
        bpp = ch * depth // 8
        stride = w * bpp
    rows = raw[: h * (stride + 1)].reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for r in range(h):
        ft = rows[r, 0]
        line = rows[r, 1:].astype(np.int32)
        if ft == 0:
            cur = line
        elif ft == 2:
            cur = (line + prev) & 0xFF
        elif ft in (1, 3, 4):
            cur = np.zeros(stride, dtype=np.int32)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                if ft == 1:
                    p = a
                elif ft == 3:
                    p = (a + prev[i]) >> 1
                else:
                    b = prev[i]
                    c = prev[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (line[i] + p) & 0xFF
        else:
            raise OpenOtherError(f"PNG filter type {ft} is invalid")
        out[r] = cur
        prev = cur
    if ctype == 3:
        if depth < 8:
            bits = np.unpackbits(out, axis=1)
            idx = bits.reshape(h, -1, depth)
            weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
            out = (idx * weights).sum(axis=2).astype(np.uint8)[:, :w]
        if plte is None:
            raise OpenOtherError("palette PNG without PLTE")
        return plte[out]
    if depth == 16:
        img = out.view(">u2").astype(np.uint16).reshape(h, w, ch)
    else:
        img = out.reshape(h, w, ch)
    return img[:, :, 0] if ch == 1 else img
