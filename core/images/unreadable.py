"""Which slices of a stack could not be read: frame errors mapped to slice indices.

:func:`~pocketpacs.images.frames.read_frames` reports each frame it could not
decode as a :class:`~pocketpacs.images.decoders.FrameError` (file, frame in
the file, the decoder's message) and leaves its rows zero.  This module turns
those into what a viewer, a report or an export says about a stack: the index
of each slice that holds no image (:func:`rows_of_errors`, mapped through a
z resampling by :func:`resampled_rows`), the reason without the file's path
(:func:`reason_of`), and the JSON-safe list ``[{"slice", "volume", "reason"}]``
(:func:`frames_list`).  Slices are numbered volume after volume: slice ``z``
of volume ``t`` of a stack of ``k`` slices is ``t * k + z``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np


def reason_of(err: Any) -> str:
    """The reason a frame could not be read, without its file's path.

    Parameters
    ----------
    err : pocketpacs.images.decoders.FrameError
        The decoder's report (``path``, ``frame``, ``reason``).

    Returns
    -------
    str
        The decoder's message with the file's path and name taken out (they
        can hold patient names) and a trailing colon dropped (pydicom ends
        "exceptions were raised by all available plugins:" with one).
    """
    msg = str(getattr(err, "reason", "") or "")
    path = str(getattr(err, "path", "") or "")
    for p in (path, os.path.basename(path)):
        if p:
            msg = msg.replace(p, "<file>")
    msg = " ".join(msg.split()).rstrip(":; ")
    return msg or "the frame could not be decoded"


def rows_of_errors(paths: Sequence[str], refs: np.ndarray, errors: Sequence[Any]) -> dict[int, str]:
    """The rows of a frame reference table that a list of frame errors hit.

    Parameters
    ----------
    paths : sequence of str
        The files ``refs`` indexes.
    refs : ndarray of int, (m, 2)
        ``(file index, frame index)`` of each row (as passed to ``read_frames``).
    errors : sequence of FrameError
        What ``read_frames`` returned for those rows; a frame of ``-1`` is the
        whole file.

    Returns
    -------
    dict
        Row index -> reason (:func:`reason_of`), for every row an error names.
    """
    out: dict[int, str] = {}
    if not errors:
        return out
    refs = np.asarray(refs, dtype=np.int64).reshape(-1, 2)
    index = {os.fspath(p): i for i, p in enumerate(paths)}
    for e in errors:
        fi = index.get(os.fspath(e.path))
        if fi is None:
            continue
        hit = refs[:, 0] == fi
        if int(e.frame) >= 0:
            hit &= refs[:, 1] == int(e.frame)
        for r in np.flatnonzero(hit).tolist():
            out.setdefault(int(r), reason_of(e))
    return out


def resampled_rows(rows: Mapping[int, str], k: int, j: np.ndarray, w: np.ndarray) -> dict[int, str]:
    """Unreadable source slices mapped through a linear z resampling.

    An output slice is unreadable when either source slice it blends with a
    non-zero weight is (:func:`pocketpacs.images.resample.z_weights`).

    Parameters
    ----------
    rows : mapping
        Source slice (volume after volume, ``k`` per volume) -> reason.
    k : int
        Source slices per volume.
    j, w : ndarray
        The resampling's source pairs and weights of slice ``j + 1``, one per output slice.

    Returns
    -------
    dict
        Output slice (volume after volume, ``len(j)`` per volume) -> reason.
    """
    m = int(np.asarray(j).shape[0])
    out: dict[int, str] = {}
    for r, why in rows.items():
        t, s = divmod(int(r), int(k))
        hit = ((j == s) & (w < 1.0)) | ((j + 1 == s) & (w > 0.0))
        for z in np.flatnonzero(hit).tolist():
            out.setdefault(t * m + int(z), why)
    return dict(sorted(out.items()))


def frames_list(rows: Mapping[int, str], k: int) -> list[dict[str, Any]]:
    """The JSON-safe list of unreadable slices: ``[{"slice", "volume", "reason"}]``.

    Parameters
    ----------
    rows : mapping
        Slice (volume after volume) -> reason.
    k : int
        Slices per volume.

    Returns
    -------
    list of dict
        In slice order; ``slice`` within its volume, ``volume`` 0 for a 3D stack.
    """
    k = max(1, int(k))
    return [{"slice": int(i) % k, "volume": int(i) // k, "reason": str(why)}
            for i, why in sorted(rows.items())]


def summary(n_bad: int, n_slices: int) -> str:
    """The one line every output says about a stack with unreadable slices.

    Parameters
    ----------
    n_bad, n_slices : int
        Unreadable slices and all slices of the stack (every volume).

    Returns
    -------
    str
        e.g. ``"2 of 6 slices could not be decoded (left as zeros)"``.
    """
    return f"{n_bad} of {n_slices} slice{'s' if n_slices != 1 else ''} could not be decoded (left as zeros)"
