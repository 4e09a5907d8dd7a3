"""Blanking of burned-in text: rectangles of pixels set to zero, chosen by rules.

A :class:`BlankRule` names the images it covers by their size (Rows x
Columns) and their maker (Manufacturer, optionally ManufacturerModelName and
Modality), and lists the rectangles ``[x, y, w, h]`` (pixels; x along a row,
y down the columns) where that device burns names and dates into its images.
:func:`match_rule` finds the rule of an instance and :func:`blank_rectangles`
sets those pixels to zero in every frame and sample: in place in the raw
bytes of native (uncompressed) pixel data, so every other pixel stays
byte-equal; compressed pixel data is decoded and written uncompressed in
explicit VR little endian (the warning says so).  This is the PS3.15 Clean
Pixel Data Option for the images a rule covers.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Transfer syntaxes whose pixel data is native (blanked in place, the syntax kept).
NATIVE_SYNTAXES = {"1.2.840.10008.1.2": "<", "1.2.840.10008.1.2.1": "<", "1.2.840.10008.1.2.1.99": "<",
                   "1.2.840.10008.1.2.2": ">"}


class BlankingError(Exception):
    """The pixels of an instance a rule covers cannot be blanked (the message says why)."""


@dataclass(frozen=True)
class BlankRule:
    """Rectangles to blank on the images of one size from one maker.

    Attributes
    ----------
    name : str
        Shown in warnings (no patient data).
    rows, columns : int
        The image size it covers.
    manufacturer : str
        Manufacturer (0008,0070), compared without case and surrounding spaces.
    model, modality : str or None
        ManufacturerModelName (0008,1090) and Modality (0008,0060), when the rule names them.
    rectangles : tuple of (x, y, w, h)
        Pixel rectangles; x counts columns from the left, y rows from the top.
    """
    name: str
    rows: int
    columns: int
    manufacturer: str
    rectangles: tuple[tuple[int, int, int, int], ...]
    model: str | None = None
    modality: str | None = None

    def covers(self, header: Any) -> bool:
        """Whether an instance's header matches the rule.

        Parameters
        ----------
        header : mapping or pydicom.Dataset
            Anything with ``.get(keyword)``: Rows, Columns, Manufacturer, ManufacturerModelName, Modality.

        Returns
        -------
        bool
        """
        try:
            if int(header.get("Rows") or -1) != self.rows or int(header.get("Columns") or -1) != self.columns:
                return False
        except (TypeError, ValueError):
            return False
        if _norm(header.get("Manufacturer")) != _norm(self.manufacturer):
            return False
        if self.model is not None and _norm(header.get("ManufacturerModelName")) != _norm(self.model):
            return False
        return self.modality is None or _norm(header.get("Modality")) == _norm(self.modality)


def _norm(v: Any) -> str:
    return str(v if v is not None else "").strip().upper()


def match_rule(rules: Iterable[BlankRule], header: Any) -> BlankRule | None:
    """The first rule that covers an instance, or None.

    Parameters
    ----------
    rules : iterable of BlankRule
    header : mapping or pydicom.Dataset
        As :meth:`BlankRule.covers` takes it.

    Returns
    -------
    BlankRule or None
    """
    for r in rules:
        if r.covers(header):
            return r
    return None


def _fill(arr: Any, rects: Sequence[tuple[int, int, int, int]], rows_axis: int) -> None:
    """Zero the rectangles of an array whose axes ``rows_axis`` and ``rows_axis + 1`` are rows and columns."""
    for x, y, w, h in rects:
        index = [slice(None)] * arr.ndim
        index[rows_axis] = slice(y, y + h)
        index[rows_axis + 1] = slice(x, x + w)
        arr[tuple(index)] = 0


def blank_rectangles(ds: Any, rule: BlankRule) -> list[str]:
    """Set the pixels of ``rule``'s rectangles to zero in every frame of ``ds`` (in place).

    Native pixel data is changed in its raw bytes (the transfer syntax is kept
    and every other byte stays equal); compressed pixel data is decoded with
    pydicom's plugins and written uncompressed, the transfer syntax becoming
    explicit VR little endian (YBR colour becomes RGB, as decoded).

    Parameters
    ----------
    ds : pydicom.Dataset
        A whole instance with ``file_meta``.
    rule : BlankRule

    Returns
    -------
    list of str
        Warnings (the rule's name and what was done; no patient data).

    Raises
    ------
    BlankingError
        No pixel data, a bit depth that is not 8, 16 or 32, or compressed pixels no installed plugin decodes.
    """
    import numpy as np

    if "PixelData" not in ds:
        raise BlankingError(f"rule {rule.name!r} covers an instance without Pixel Data")
    bits = int(ds.get("BitsAllocated") or 0)
    if bits not in (8, 16, 32):
        raise BlankingError(f"rule {rule.name!r}: cannot blank pixels of {bits} bits allocated")
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames") or 1)
    spp = int(ds.get("SamplesPerPixel") or 1)
    planar = int(ds.get("PlanarConfiguration") or 0) if spp > 1 else 0
    for x, y, w, h in rule.rectangles:
        if x >= cols or y >= rows:
            raise BlankingError(f"rule {rule.name!r}: rectangle {[x, y, w, h]} lies outside the "
                                f"{cols}x{rows} image")
    ts = str(ds.file_meta.TransferSyntaxUID)
    order = NATIVE_SYNTAXES.get(ts)
    n = len(rule.rectangles)
    if order is not None:
        dtype = np.dtype(f"{order}u{bits // 8}")
        need = frames * rows * cols * spp
        raw = np.frombuffer(bytes(ds.PixelData), dtype=dtype, count=min(need, len(ds.PixelData) // dtype.itemsize))
        if raw.size < need:
            raise BlankingError(f"rule {rule.name!r}: Pixel Data is shorter than {frames} frame(s) of "
                                f"{cols}x{rows}x{spp}")
        arr = raw.copy()
        if planar:
            view = arr.reshape(frames, spp, rows, cols)
            _fill(view, rule.rectangles, 2)
        else:
            view = arr.reshape(frames, rows, cols, spp)
            _fill(view, rule.rectangles, 1)
        data = bytes(ds.PixelData)
        body = arr.tobytes()
        ds.PixelData = body + data[len(body):]  # (padding after the frames kept)
        return [f"pixels blanked in {n} rectangle(s) by rule {rule.name!r}"]
    from pydicom.uid import UID, ExplicitVRLittleEndian

    try:
        arr = np.array(ds.pixel_array, copy=True)
    except Exception as e:
        raise BlankingError(f"rule {rule.name!r}: the {UID(ts).name} pixel data could not be decoded to "
                            f"blank it ({type(e).__name__})") from None
    if frames == 1:
        arr = arr[np.newaxis]
    if spp == 1:
        arr = arr[..., np.newaxis]
    _fill(arr, rule.rectangles, 1)
    arr = arr.astype(np.dtype(f"<{'i' if int(ds.get('PixelRepresentation') or 0) else 'u'}{bits // 8}"),
                     copy=False)
    for t in (0x7FE00001, 0x7FE00002):  # the extended offset table of the compressed frames
        if t in ds:
            del ds[t]
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    if spp > 1:
        ds.PlanarConfiguration = 0
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"  # pydicom's decoders give RGB
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return [f"pixels blanked in {n} rectangle(s) by rule {rule.name!r}; decoded from {UID(ts).name} and "
            "written uncompressed (explicit VR little endian)"]
