"""The archive's stored header rows of a series, standing in for a parse of its files.

:func:`archive_rows` returns a series' files and an :class:`ArchiveRows` (the
stored rows in the shape of a header batch) when every instance is a plain
single-frame greyscale image the native readers take as stored and its file is
unchanged since import, so the series reader plans it without reading a file.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np


class ArchiveRows:
    """The archive's stored header rows of a series, in the shape of a header batch.

    Stands in for :class:`pocketpacs.dicom.batch.HeaderBatch` where
    :func:`pocketpacs.images.seriesframes.frames_from_batch` and
    :func:`pocketpacs.images.pixelformat.formats_from_batch` read one, so a series is
    planned exactly as from its parsed headers without reading the files.
    Build it with :func:`archive_rows`.

    Parameters
    ----------
    rows : numpy.ndarray of records.INST_DTYPE
        One row per file.
    texts : list of dict
        Stored text values of each instance (``records.INSTANCE_TEXT``).
    series : dict
        Series-level text values (``Modality``, ``SeriesInstanceUID``, ``FrameOfReferenceUID``).
    """

    def __init__(self, rows: np.ndarray, texts: list[dict], series: dict):
        from ..archive import records

        self.n = int(rows.shape[0])
        self._rows = rows
        self._texts = texts
        self._series = series
        self.status = np.zeros(self.n, dtype=np.int8)          # every row: parsed natively
        self.reason: list[str | None] = [None] * self.n
        self.fallback_reason: list[str | None] = [None] * self.n    # never gzip: see archive_rows
        self.size = rows["size"].astype(np.int64)                   # checked against the files
        self.pixel_offset = rows["pixel_offset"].astype(np.int64)
        self.pixel_length = rows["pixel_length"].astype(np.int64)
        self.encapsulated = (rows["flags"] & records.ENCAPSULATED).astype(bool)

    def values(self, keyword: str) -> np.ndarray:
        """Numeric values of a tag, ``(n, nvals)`` float64 (NaN when absent)."""
        from ..dicom import tags

        k = tags.INDEX[keyword]
        c, cnt = int(tags.NUM_START[k]), int(tags.NUM_COUNT[k])
        if c < 0:
            raise KeyError(f"{keyword} is not a numeric tag of the archive")
        return self._rows["nums"][:, c:c + cnt].astype(np.float64)

    def number(self, keyword: str) -> np.ndarray:
        """First value of a numeric tag."""
        return self.values(keyword)[:, 0]

    def text(self, keyword: str) -> list[str | None]:
        """Stored text values of a tag (None when absent); KeyError when not stored."""
        if keyword in self._series:
            return [self._series[keyword]] * self.n
        out = []
        for t in self._texts:
            v = t[keyword]                                     # KeyError: not stored
            out.append(v if v else None)
        return out

    @property
    def transfer_syntax(self) -> list[str | None]:
        """Transfer Syntax UID of each file."""
        return self.text("TransferSyntaxUID")


#: SOP classes whose frames are planned from per-frame values read with pydicom.
_PER_FRAME_SOP = ("1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.2.1")


def archive_rows(archive: Any, series: str) -> tuple[list[str], ArchiveRows] | None:
    """Files and stored header rows of an archived series, when they can stand in for a parse.

    The rows are used only when every instance is a single-frame,
    uncompressed greyscale image the native readers take as stored
    (no fallback parse, conflict or offline flag, no enhanced SOP class or
    mosaic), its record holds every value the plan needs (records from
    before ``PhotometricInterpretation``/``ImageType`` were stored do not),
    and its file has the size and modification time it had when imported.
    Files are ordered as :meth:`pocketpacs.Archive.series_files` orders them.

    Parameters
    ----------
    archive : pocketpacs.Archive
    series : str
        Series key.

    Returns
    -------
    (paths, ArchiveRows) or None
        None: parse the files instead.
    """
    from ..archive import records
    from ..dicom import tags
    from ..images.pixelformat import formats_from_batch
    from ..images.seriesframes import is_mosaic

    if getattr(archive, "media", False):
        return None
    se = archive.get_series(series)
    _keys, rows, texts, locs = archive.series_table(series, text=True)
    n = int(rows.shape[0])
    if n == 0 or any(not p for p in locs):
        return None
    bad = records.OFFLINE | records.FALLBACK | records.ENCAPSULATED | records.CONFLICT
    if np.any(rows["flags"] & bad) or np.any(rows["pixel_offset"] < 0):
        return None
    if any(k not in t for t in texts for k in records.INSTANCE_TEXT):
        return None
    nf = rows["nums"][:, int(tags.NUM_START[tags.INDEX["NumberOfFrames"]])]
    if np.any(np.isfinite(nf) & (nf != 1)):
        return None
    for t in texts:
        sop = t["SOPClassUID"] or ""
        if sop.startswith(_PER_FRAME_SOP) or is_mosaic(t["ImageType"]):
            return None
    # files in series_files' order: instance number, then SOP Instance UID
    inum = rows["nums"][:, int(tags.NUM_START[tags.INDEX["InstanceNumber"]])]
    order = sorted(range(n), key=lambda i: (int(inum[i]) if np.isfinite(inum[i]) else 1 << 30,
                                            texts[i]["SOPInstanceUID"]))
    rows = rows[order]
    texts = [texts[i] for i in order]
    paths = [locs[i][0] for i in order]
    size, mtime = rows["size"].tolist(), rows["mtime_ns"].tolist()
    for i, p in enumerate(paths):
        if p.endswith(".gz"):
            return None
        try:
            st = os.stat(p)
        except OSError:
            return None
        if st.st_size != size[i] or st.st_mtime_ns != mtime[i]:
            return None                     # changed since it was imported
    batch = ArchiveRows(rows, texts, {"Modality": se.modality or None,
                                      "SeriesInstanceUID": se.uid or None,
                                      "FrameOfReferenceUID": se.frame_of_reference or None})
    fmts = formats_from_batch(batch)
    if any(f is None or f.route != "native" or f.samples != 1 or f.nframes != 1 for f in fmts):
        return None
    return paths, batch
