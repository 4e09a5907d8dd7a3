"""Open Other: non-archive files as :class:`~pocketpacs.images.volume.Volume` objects.

Supported, without entering the archive:

* NIfTI-1/NIfTI-2 (``.nii``, ``.nii.gz``), Analyze (``.hdr``/``.img``) and
  MGH/MGZ via nibabel (scaled values, the image's RAS affine);
* standalone JPEG 2000 / HTJ2K codestreams and JP2 files (``.j2k``, ``.j2c``,
  ``.jpc``, ``.jp2``, ``.jph``, ``.jhc``) via pylibjpeg-openjpeg;
* PNG and JPEG via Pillow;
* DICOM files and folders (assembled like archive series).

2D images (PNG, JPEG, JPEG 2000) are uncalibrated: a unit pixel grid in the
axial plane with calibration ``kind "none"`` (measured in pixels, without
orientation letters; the report says so).  NIfTI/Analyze/MGH keep their affine
(calibrated in the patient).
Anything else raises :class:`OpenOtherError` with the reason.

Every image's declared size is checked against :data:`MAX_DECODED_BYTES`
before it is decoded (the PNG/JPEG header as Pillow reads it before
``load()``, with Pillow's own decompression-bomb limit too; a NIfTI/Analyze/MGH
header's shape and data type; a JPEG 2000 SIZ marker): a small file that
declares a huge image (an image bomb) is refused with a message, not decoded.
"""
from __future__ import annotations

import gzip
import os
import struct
import warnings

import numpy as np

from ..errors import PocketPacsError
from .affine import LPS_TO_RAS, lps_to_ras
from . import calibration
from .assemblyreport import StackReport
from .volume import Volume
from .windows import histogram_window, window_presets

NIBABEL_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".mgh", ".mgz", ".img.gz", ".hdr.gz")
J2K_SUFFIXES = (".j2k", ".j2c", ".jpc", ".jp2", ".jph", ".jhc", ".jpx")
PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")

_J2K_MAGIC = (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  \r\n\x87\n")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Open Other's memory budget: the most bytes one image may decode to (its
#: array, or a decoder's working buffer where that is larger).  An image that
#: declares more is refused before anything is decoded.
MAX_DECODED_BYTES = 1 << 30


class OpenOtherError(PocketPacsError):
    """A file Open Other cannot read (the message says why)."""


def check_budget(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """Refuse an image whose declared ``shape`` x ``itemsize`` bytes exceed
    :data:`MAX_DECODED_BYTES` (``what`` names the format in the message)."""
    n = itemsize
    for d in shape:
        n *= max(0, int(d))
    if n > MAX_DECODED_BYTES:
        dims = "x".join(str(int(d)) for d in shape)
        raise OpenOtherError(f"{what} declares {dims} samples ({n / (1 << 20):.0f} MiB decoded): "
                             f"over Open Other's limit of {MAX_DECODED_BYTES >> 20} MiB per image")


#: A volume (NIfTI, Analyze, MGH) may decode to more than
#: :data:`MAX_DECODED_BYTES` (a long fMRI run is several GB): up to a quarter
#: of this computer's memory, unless it is inflated from a file more than
#: :data:`MAX_COMPRESSION_RATIO` times smaller -- what real volumes never
#: are and a decompression bomb always is.
MAX_COMPRESSION_RATIO = 100


def volume_budget() -> int:
    """The most bytes a volume may decode to here (see :data:`MAX_COMPRESSION_RATIO`)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: the 2D budget
        ram = 0
    return max(MAX_DECODED_BYTES, ram // 4)


def check_volume_budget(shape: tuple[int, ...], itemsize: int, what: str, path: str) -> None:
    """Like :func:`check_budget` for a volume: larger than one image may be,
    within :func:`volume_budget`, and not a bomb (a file inflating more than
    :data:`MAX_COMPRESSION_RATIO` times past :data:`MAX_DECODED_BYTES`)."""
    n = itemsize
    for d in shape:
        n *= max(0, int(d))
    if n <= MAX_DECODED_BYTES:
        return
    dims = "x".join(str(int(d)) for d in shape)
    budget = volume_budget()
    if n > budget:
        raise OpenOtherError(f"{what} declares {dims} samples ({n / (1 << 20):.0f} MiB decoded): "
                             f"over Open Other's limit of {budget >> 20} MiB per volume on this computer")
    size = os.path.getsize(path)
    if n > MAX_COMPRESSION_RATIO * max(size, 1):
        raise OpenOtherError(f"{what} declares {dims} samples ({n / (1 << 20):.0f} MiB decoded) from a "
                             f"{size / (1 << 20):.1f} MiB file: over {MAX_COMPRESSION_RATIO} times its size "
                             f"(a decompression bomb), over Open Other's limit of "
                             f"{MAX_DECODED_BYTES >> 20} MiB")


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
    if isinstance(img, nib.cifti2.Cifti2Image) or len(shape) > 4:
        shape = shape[:4]
    dataobj = img.dataobj
    slope = getattr(dataobj, "slope", 1.0)
    inter = getattr(dataobj, "inter", 0.0)
    raw_dtype = np.dtype(img.get_data_dtype())
    rescaled = not ((slope in (1.0, None) or not np.isfinite(slope))
                    and (inter in (0.0, None) or not np.isfinite(inter)))
    # the header's shape and type, before a byte of data is read or inflated
    check_volume_budget(tuple(shape), 4 if rescaled else raw_dtype.itemsize, type(img).__name__, path)
    if not rescaled:
        data = np.asanyarray(dataobj)
    else:
        data = np.asarray(img.get_fdata(dtype=np.float32))
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
    """A standalone JPEG 2000 / HTJ2K codestream or JP2 file.

    The SIZ marker's size is checked against :data:`MAX_DECODED_BYTES`
    first: OpenJPEG decodes into a 32-bit buffer per sample.
    """
    from openjpeg import decode

    from ..dicom.codestreams import CodestreamError, j2k_declared_size

    if os.path.getsize(path) > MAX_DECODED_BYTES:
        raise OpenOtherError(f"{path}: JPEG 2000 file larger than Open Other's limit of "
                             f"{MAX_DECODED_BYTES >> 20} MiB")
    with open(path, "rb") as f:
        data = f.read()
    try:
        rows, cols, comps, _bits = j2k_declared_size(data)
    except CodestreamError as exc:
        raise OpenOtherError(f"{path}: {exc}") from None
    check_budget((rows, cols, comps), 4, "JPEG 2000 codestream")
    arr = np.asarray(decode(data))
    return image_volume(arr, path, "JPEG 2000")


def image_volume(img: np.ndarray, path: str, fmt: str) -> Volume:
    """Wrap a 2D grey or colour image into a one-slice, uncalibrated Volume (1 px grid).

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
                      notes=[f"{fmt} image: no world geometry, uncalibrated (a 1 px grid, not mm)"])
    cal = calibration.uncalibrated(f"uncalibrated: a {fmt} image has no pixel size; distances in pixels")
    vol = Volume(array=arr, affine_lps=aff, spacing=(1.0, 1.0, 1.0), modality=None,
                 kind="volume", report=rep, photometric="RGB" if samples > 1 else "MONOCHROME2",
                 rescaled=False, calibration=cal)
    vol.window_presets = window_presets(arr, None, [], False, samples)
    return vol


# --------------------------------------------------------------------------
# PNG / JPEG readers (Pillow)
# --------------------------------------------------------------------------
#: Bytes per sample of Pillow's image modes that are not 8 bits per band.
_MODE_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "1": 1}


def _read_pillow(src, fmt: str) -> np.ndarray:
    """Decode a PNG or JPEG (a path or a file object) with Pillow.

    Pillow reads the header at ``open``: its size and mode are checked
    against :data:`MAX_DECODED_BYTES` before ``load()`` decodes anything;
    Pillow's own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``,
    which refuses at ``open``) is reported the same way.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # the budget below is the check: Pillow's warning would reach stderr
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(src) as im:
                if fmt == "PNG" and im.format != "PNG":
                    raise OpenOtherError(f"not a PNG file ({im.format or 'unknown'} data)")
                w, h = im.size
                bands = len(im.getbands())
                check_budget((h, w, bands), _MODE_BYTES.get(im.mode, 1), fmt)
                im.load()
                return np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise OpenOtherError(f"{fmt} declares more pixels than Open Other decodes "
                             f"(Pillow: {exc})") from None


def read_jpeg(path: str) -> np.ndarray:
    """Decode a JPEG file (Pillow), its declared size checked first."""
    return _read_pillow(path, "JPEG")


def read_png(path: str) -> np.ndarray:
    """Decode a PNG file (Pillow), its declared size checked first."""
    return _read_pillow(path, "PNG")


def png_decode(data: bytes) -> np.ndarray:
    """Decode PNG bytes (Pillow), its declared size checked first.

    Returns
    -------
    ndarray
        ``(h, w)`` or ``(h, w, channels)`` as Pillow gives it.

    Raises
    ------
    OpenOtherError
        Not a PNG, or an image over :data:`MAX_DECODED_BYTES`.
    """
    import io

    if not data.startswith(_PNG_MAGIC):
        raise OpenOtherError("not a PNG file")
    return _read_pillow(io.BytesIO(data), "PNG")
