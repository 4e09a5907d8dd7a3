"""Colour images as 8-bit RGB for display.

The frame readers already give colour DICOM as RGB (YBR_FULL converted by
:mod:`pocketpacs.images.frames`, the subsampled YBR kinds and JPEG colour by
pydicom's decoders, samples last); PALETTE COLOR images come out as their
stored indices.  :func:`palette_of` reads a file's palette (Red/Green/Blue
Palette Color Lookup Tables, through pydicom's ``apply_color_lut``) and
:func:`rgb8` turns a colour or palette volume into ``uint8`` RGB: 8-bit
samples unchanged, deeper samples (16-bit RGB, 16-bit palette entries)
shifted down to their top 8 bits, a fourth (alpha) sample dropped.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ..errors import PocketPacsError


class ColourError(PocketPacsError):
    """A palette or colour image cannot be turned into RGB (says which file and why)."""


def palette_of(path: str | os.PathLike[str]) -> np.ndarray:
    """The palette of a PALETTE COLOR file as a table indexed by stored value.

    Parameters
    ----------
    path : path-like
        A DICOM file with Red/Green/Blue Palette Color Lookup Table
        Descriptor and Data (or Segmented Data).

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` uint8: the RGB of stored values ``0 .. n-1`` (values below
        the descriptor's first mapped value take its first entry, as the
        standard says; values past the last take the last entry).

    Raises
    ------
    ColourError
        When the file has no usable palette (names the file and why).
    """
    from pydicom.pixels import apply_color_lut

    from ..dicom.fallback import read_dataset_capped

    p = os.fspath(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = read_dataset_capped(p, stop_before_pixels=True)
            desc = ds.RedPaletteColorLookupTableDescriptor
            n = int(desc[0]) or 65536
            first = int(desc[1])
            bits = int(desc[2])
            # every stored value the pixel cell can hold (8 or 16 bits)
            top = max(first + n, 256 if int(ds.get("BitsStored", 8) or 8) <= 8 else 65536)
            ramp = np.arange(top, dtype=np.uint16 if top > 256 else np.uint8)
            table = np.asarray(apply_color_lut(ramp, ds))
        except Exception as exc:
            raise ColourError(f"{p}: PALETTE COLOR without a usable palette "
                              f"({type(exc).__name__})") from None
    if table.ndim != 2 or table.shape[1] != 3:
        raise ColourError(f"{p}: PALETTE COLOR palette has the shape {table.shape}, not (n, 3)")
    if bits > 8 or int(table.max(initial=0)) > 255:  # 16-bit entries: their top 8 bits
        table = table.astype(np.uint32) >> 8
    return np.asarray(table, dtype=np.uint8)


def rgb8(array: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """A colour or palette array as 8-bit RGB, samples last.

    Parameters
    ----------
    array : numpy.ndarray
        ``(..., samples)`` RGB/RGBA with 3 or 4 samples, or stored palette
        indices (any shape) when *palette* is given.
    palette : numpy.ndarray, optional
        ``(n, 3)`` uint8 table from :func:`palette_of`.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` uint8, C-contiguous.

    Raises
    ------
    ColourError
        When the array is neither colour nor palette indices.
    """
    a = np.asarray(array)
    if palette is not None:
        idx = np.clip(a.astype(np.int64, copy=False), 0, palette.shape[0] - 1)
        return np.ascontiguousarray(palette[idx])
    if a.ndim < 3 or a.shape[-1] not in (3, 4):
        raise ColourError(f"an array of shape {a.shape} is not colour (3 or 4 samples last)")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        hi = float(np.nanmax(a)) if a.size else 0.0
        scale = 255.0 / hi if hi > 255.0 else 1.0
        return np.ascontiguousarray(np.clip(np.nan_to_num(a) * scale, 0, 255).astype(np.uint8))
    hi = int(a.max()) if a.size else 0
    shift = max(0, hi.bit_length() - 8)
    out = np.clip(a.astype(np.int64) >> shift, 0, 255)
    return np.ascontiguousarray(out.astype(np.uint8))


def display_rgb(vol: Any) -> np.ndarray | None:
    """The 8-bit RGB of a colour or palette :class:`~pocketpacs.images.volume.Volume`, else None.

    Parameters
    ----------
    vol : pocketpacs.images.volume.Volume
        Any volume (4D: the first volume).

    Returns
    -------
    numpy.ndarray or None
        ``(slices, rows, cols, 3)`` uint8, or None for greyscale volumes.
    """
    arr = np.asarray(vol.array)
    if getattr(vol, "is_4d", False):
        arr = arr[0]
    pal = getattr(vol, "palette", None)
    if pal is not None:
        out = rgb8(arr, pal)
    elif getattr(vol, "samples", 1) > 1:
        out = rgb8(arr)
    else:
        return None
    return out[None] if out.ndim == 3 else out
