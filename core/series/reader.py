"""The series reader: how the viewer, export, report and thumbnails read a DICOM series.

:func:`open_series` plans a series once, from the archive's stored header rows
where they can stand in for a parse (:func:`archive_rows`), else from its parsed
files, into its stacks: largest first, in the order and with the geometry of
:func:`pocketpacs.images.volume.assemble_series` (what export writes).  Each stack
is described by a :class:`StackInfo` (shape, kind, a label such as "axial, 40
slices", and its 4th axis: time, echo or plain volumes, with their count and
values where the headers give them).  A stack is read whole with
:meth:`SeriesReader.read_stack` (export's assembly: tilt and spacing corrections,
mosaics, colour) or, when it needs no whole-volume correction, slice by slice
through :meth:`SeriesReader.slices` (a :class:`StackSlices`), so a viewer can
draw its first slice before the rest is read.  Slices whose frames could not
be decoded (left as zeros) are recorded on either path, with the decoder's
reason (:attr:`StackSlices.unreadable`, :meth:`SeriesReader.unreadable`; the
stack report's ``unreadable_frames``).  Window presets come from
:mod:`pocketpacs.images.windows`, calibration from :mod:`pocketpacs.images.calibration`.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import numpy as np

from ..errors import ArchiveError
from ..images.unreadable import frames_list, rows_of_errors
from .rows import ArchiveRows, archive_rows
from .stacks import (StackInfo, _fourth_axis, _is_progressive, _planned_shape, describe_volume,
                     mosaic_volume_files, stack_label)

#: Serialises the core's native readers across threads (a viewer's volume jobs,
#: thumbnails, warm-up): numba's default threading layer does not support
#: parallel kernels launched from several threads at once.
NATIVE_LOCK = threading.RLock()
#: Slices of the first volume the auto window of a progressive stack counts
#: when it is the default window (:meth:`StackSlices.presets`).
PRESET_SLICES = 9


class SeriesOfflineError(ArchiveError, FileNotFoundError):
    """None of an archived series' files can be read (a folder or medium not present)."""


class StackSlices:
    """Slices of one planned stack, read on demand (the viewer's progressive path).

    Slices are numbered volume after volume: slice ``z`` of volume ``t`` is
    index ``t * slices + z`` (a 3D stack has one volume).  When the rescale is
    the same for every frame, slices hold the *stored* values and
    :attr:`slope`/:attr:`intercept` give the real ones; otherwise they are
    rescaled per frame and the rescale is the identity.

    Parameters
    ----------
    paths : list of str
        The series' files.
    fr : pocketpacs.images.seriesframes._Frames
        Its frames.
    plan : pocketpacs.images.stackplan.StackPlan
        The stack (progressive: see :attr:`StackInfo.progressive`).
    rescale : bool
        Always rescale while reading (the values and dtype of
        :meth:`SeriesReader.read_stack`), even when the rescale is uniform.
    unreadable : dict, optional
        Where to record the slices that could not be read (shared by the
        readers of one stack: :meth:`SeriesReader.unreadable`).
    """

    def __init__(self, paths: list[str], fr: Any, plan: Any, rescale: bool = False,
                 unreadable: dict[int, str] | None = None):
        from ..images.calibration import of_frame
        from ..images.stackread import choose_dtype
        from ..images.windows import MODALITY_WINDOWS, voted_header_windows

        self.paths = paths
        self._fr = fr
        t, k = (int(v) for v in plan.frames.shape)
        rows_idx = plan.frames.reshape(-1)
        files = fr.ft.file[rows_idx]
        self._refs = np.stack([files, fr.ft.frame[rows_idx]], axis=1)
        sl, ic = fr.slope[rows_idx], fr.intercept[rows_idx]
        fmts = [fr.formats[int(f)] for f in np.unique(files)]
        if not rescale and bool(np.all(sl == sl[0]) and np.all(ic == ic[0])):
            dtype, _ = choose_dtype(fmts, sl, ic, False)
            self._sl = self._ic = None
            self.slope, self.intercept = float(sl[0]), float(ic[0])
        else:
            dtype, applied = choose_dtype(fmts, sl, ic, True)
            self._sl, self._ic = (sl, ic) if applied else (None, None)
            self.slope, self.intercept = 1.0, 0.0
        #: dtype of the slices read
        self.dtype = np.dtype(dtype)
        #: ``(volumes * slices, rows, cols)``
        self.shape = (t * k, int(plan.rows), int(plan.cols))
        #: ``(slices, rows, cols)`` of one volume
        self.volume_shape = (k, int(plan.rows), int(plan.cols))
        self.n_volumes = t
        fi0 = int(fr.ft.file[int(plan.frames[0, 0])])
        self.modality = fr.modality[fi0] or "OT"
        fmt0 = fr.formats[fi0]
        self.invert = bool(fmt0 is not None and fmt0.photometric == "MONOCHROME1")
        self.affine_lps = np.asarray(plan.affine_lps, dtype=np.float64)
        self.spacing = tuple(float(v) for v in plan.spacing)
        self.kind = plan.kind
        self.calibration = of_frame(fr.calibration, fr.ft, int(plan.frames[0, 0]))
        #: whether values are modality-rescaled (e.g. HU) and the modality's windows apply
        self.rescaled = bool(self.modality in MODALITY_WINDOWS and (
            self.slope != 1.0 or self.intercept != 0.0 or self._sl is not None))
        #: the header windows most frames carry, most common first (real units)
        self.header_windows = voted_header_windows(fr.wc[rows_idx], fr.ww[rows_idx])
        #: the file of each slice, in slice order
        self.slice_files = [paths[int(f)] for f in files]
        #: slices read so far whose frame could not be decoded (left as zeros): index
        #: (volume after volume) -> the decoder's reason, without the file's path
        self.unreadable: dict[int, str] = {} if unreadable is None else unreadable
        self._report = plan.report
        self._lock = threading.Lock()

    def read(self, z0: int, z1: int, out: np.ndarray | None = None,
             reference: bool = False) -> np.ndarray:
        """Read slices ``[z0, z1)``.

        Parameters
        ----------
        z0, z1 : int
            Slice range (volume after volume).
        out : ndarray, optional
            ``(z1 - z0, rows, cols)`` destination of :attr:`dtype`.
        reference : bool
            Convert with the NumPy references instead of the compiled kernels
            (nothing to wait for while numba loads).

        Returns
        -------
        ndarray
            *out*, or a new array.
        """
        from ..images.frames import read_frames

        if not 0 <= z0 <= z1 <= self.shape[0]:
            raise IndexError(f"slices {z0}:{z1} outside 0:{self.shape[0]}")
        if out is None:
            out = np.empty((z1 - z0,) + self.shape[1:], dtype=self.dtype)
        sl = None if self._sl is None else self._sl[z0:z1]
        ic = None if self._ic is None else self._ic[z0:z1]
        if reference:
            errors = read_frames(self.paths, self._fr.formats, self._refs[z0:z1], out, sl, ic,
                                 reference_kernels=True)
        else:
            with NATIVE_LOCK:
                errors = read_frames(self.paths, self._fr.formats, self._refs[z0:z1], out, sl, ic)
        if errors:
            self._record(z0, rows_of_errors(self.paths, self._refs[z0:z1], errors))
        return out

    def _record(self, z0: int, rows: dict[int, str]) -> None:
        """Note slices ``z0 + row`` as unreadable (and in the stack's report)."""
        with self._lock:
            for r, why in rows.items():
                self.unreadable[z0 + r] = why
            if self._report is not None:
                self._report.unreadable_frames = frames_list(self.unreadable, self.volume_shape[0])

    def unreadable_frames(self) -> list[dict[str, Any]]:
        """The slices found unreadable so far, as the reports list them.

        Returns
        -------
        list of dict
            ``{"slice", "volume", "reason"}`` each, in slice order (no paths).
        """
        with self._lock:
            return frames_list(dict(self.unreadable), self.volume_shape[0])

    def presets(self, sample: np.ndarray) -> list[Any]:
        """Window presets: the voted header windows, the modality's, a histogram of *sample*.

        When that histogram window is the default (no header window, no
        modality default) it also counts up to :data:`PRESET_SLICES` slices
        spread over the first volume: a series whose middle slice is empty (a
        sparse whole-body NM) does not open with the window of that slice.

        Parameters
        ----------
        sample : ndarray
            Slices read so far (stored values when :attr:`slope` is not the identity).

        Returns
        -------
        list of pocketpacs.images.windows.WindowPreset
        """
        from ..images.windows import window_presets

        sample = np.asarray(sample)
        k = self.volume_shape[0]
        if not self.header_windows and not self.rescaled and k > 1:
            more = np.unique(np.linspace(0, k - 1, min(k, PRESET_SLICES)).round().astype(int))
            sample = np.concatenate([sample.reshape((-1,) + self.shape[1:])]
                                    + [self.read(int(z), int(z) + 1, reference=True) for z in more])
        real = sample.astype(np.float64) * self.slope + self.intercept
        return window_presets(real, self.modality, self.header_windows, self.rescaled)


class SeriesReader:
    """One DICOM series: its stacks, each read whole or slice by slice.

    Parameters
    ----------
    paths : sequence of path-like
        The series' files.
    batch : HeaderBatch or ArchiveRows, optional
        Their headers (parsed here when None).
    tilt, spacing : str
        Passed to :func:`pocketpacs.images.stacksplit.plan_series`.
    notes : sequence of str
        Notes for the assembly report (e.g. why a file is read on its own).

    Raises
    ------
    pocketpacs.images.volume.NotAnImageError
        When the files are objects without image pixels (SR, RT, waveforms...).
    pocketpacs.images.volume.VolumeError
        When no file holds an image.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], batch: Any = None, *,
                 tilt: str = "resample", spacing: str = "resample", notes: Sequence[str] = ()):
        from ..dicom.headers import parse_files
        from ..images.seriesframes import frames_from_batch
        from ..images.stacksplit import plan_series
        from ..images.volume import assemble_series, check_has_images

        self.paths = [os.fspath(p) for p in paths]
        #: whether the series was planned from the archive's stored rows
        self.from_rows = isinstance(batch, ArchiveRows)
        if batch is None:
            with NATIVE_LOCK:
                batch = parse_files(self.paths)
        self.batch = batch
        self._opts = {"tilt": tilt, "spacing": spacing}
        self._notes = list(notes)
        fr = frames_from_batch(self.paths, batch)
        plans, report = plan_series(fr.ft, tilt=tilt, spacing=spacing, paths=self.paths)
        check_has_images(fr, len(self.paths), bool(plans or fr.mosaics))
        self._fr = fr
        self._plans = plans
        self._built: dict[int, Any] = {}
        self._assembled = None
        self._unreadable: dict[int, dict[int, str]] = {}   # stack -> slice -> reason
        #: the assembly report (stacks, why split, spacing, tilt)
        self.report = report
        #: Series Instance UID of the series (None when its files have none)
        self.series_uid = next((u for u in fr.series_uid if u), None)
        if fr.mosaics:
            # mosaics are tiled apart as export does, every stack at once
            with NATIVE_LOCK:
                sv = assemble_series(self.paths, batch=batch, **self._opts)
            self._assembled = sv
            self.report = sv.report
            self.report.notes.extend(self._notes)
            self.stacks = [self._info_of_volume(i, v) for i, v in enumerate(sv.volumes)]
            return
        report.excluded.extend(fr.excluded)
        report.notes.extend(self._notes)
        for i, p in enumerate(plans):
            p.report.index = i
            t = int(p.frames.shape[0])
            shape = list(_planned_shape(p)) + ([p.samples] if p.samples > 1 else [])
            p.report.shape = ([t] if t > 1 else []) + shape
        #: the stacks, largest first
        self.stacks = [self._info_of_plan(i, p) for i, p in enumerate(plans)]

    def _info_of_plan(self, i: int, plan: Any) -> StackInfo:
        vols = _fourth_axis(self._fr, plan)
        shape = _planned_shape(plan)
        label = stack_label(plan.kind, shape, plan.affine_lps, vols, plan.report.key,
                            self.report.split_by + plan.report.split_by, plan.samples)
        # palette colour goes to the page as RGB: assembled whole, not read slice by slice
        files = np.unique(np.asarray(self._fr.ft.file)[plan.frames.reshape(-1)])
        palette = any(self._fr.formats[int(f)] is not None
                      and self._fr.formats[int(f)].photometric == "PALETTE COLOR" for f in files)
        return StackInfo(i, plan.kind, shape, vols, int(plan.samples), label,
                         _is_progressive(plan) and not palette)

    def _info_of_volume(self, i: int, vol: Any) -> StackInfo:
        return describe_volume(i, vol, self.report.split_by,
                               mosaic_volume_files(self._fr, self.paths, vol))

    def check_stack(self, index: int) -> int:
        """The stack index, checked.

        Parameters
        ----------
        index : int

        Returns
        -------
        int

        Raises
        ------
        IndexError
            When the series has no such stack.
        """
        if not 0 <= index < len(self.stacks):
            raise IndexError(f"stack {index} does not exist (the series has {len(self.stacks)})")
        return int(index)

    def read_stack(self, index: int = 0) -> Any:
        """Assemble one stack whole, exactly as export does.

        Parameters
        ----------
        index : int
            Stack index (0: the largest).

        Returns
        -------
        pocketpacs.images.volume.Volume
            Equal to ``assemble_series(paths).volumes[index]``.

        Raises
        ------
        IndexError
            When the series has no such stack.
        """
        from ..images.volume import _build

        index = self.check_stack(index)
        if self._assembled is not None:
            return self._assembled.volumes[index]
        vol = self._built.get(index)
        if vol is None:
            with NATIVE_LOCK:
                vol = _build(self._plans[index], self._fr, self.paths, True, None)
            vol.stack_index = index
            if vol.report is not None:
                vol.report.index = index
            self._built = {index: vol}         # one stack kept: a viewer shows one at a time
        return vol

    def slices(self, index: int = 0) -> StackSlices | None:
        """The slice-by-slice reader of a stack, or None when it must be read whole.

        Parameters
        ----------
        index : int
            Stack index.

        Returns
        -------
        StackSlices or None
            None for mosaics, colour, gantry tilt and irregular spacing
            (corrections of the whole volume: use :meth:`read_stack`).
        """
        index = self.check_stack(index)
        if not self.stacks[index].progressive:
            return None
        return StackSlices(self.paths, self._fr, self._plans[index],
                           unreadable=self._unreadable.setdefault(index, {}))

    def unreadable(self, index: int = 0) -> dict[int, str]:
        """The slices of a stack known so far to hold no image: their frame could not be decoded.

        A stack read whole (:meth:`read_stack`) knows every one once read; one
        read slice by slice (:meth:`slices`, :meth:`read_slices`) those read so far.

        Parameters
        ----------
        index : int
            Stack index.

        Returns
        -------
        dict
            Slice (volume after volume: ``t * slices + z``) -> the decoder's
            reason, without the file's path; those slices hold zeros.
        """
        index = self.check_stack(index)
        out = dict(self._unreadable.get(index, {}))
        vol = (self._assembled.volumes[index] if self._assembled is not None
               else self._built.get(index))
        if vol is not None:
            out.update(vol.unreadable)
        return dict(sorted(out.items()))

    def unreadable_frames(self, index: int = 0) -> list[dict[str, Any]]:
        """:meth:`unreadable` as the reports list it: ``[{"slice", "volume", "reason"}]``.

        Parameters
        ----------
        index : int
            Stack index.

        Returns
        -------
        list of dict
            ``slice`` within its volume, ``volume`` 0 for a 3D stack; no paths.
        """
        return frames_list(self.unreadable(index), self.stacks[self.check_stack(index)].shape[0])

    def read_slices(self, index: int = 0, z0: int = 0, z1: int | None = None, t: int = 0) -> np.ndarray:
        """Slices ``[z0, z1)`` of volume *t* of a stack, with :meth:`read_stack`'s values.

        Only those slices are read when the stack reads slice by slice; else
        the stack is assembled (once) and sliced.

        Parameters
        ----------
        index : int
            Stack index.
        z0, z1 : int
            Slice range (``z1`` None: to the last slice).
        t : int
            Volume (4D stacks; 0 otherwise).

        Returns
        -------
        ndarray
            ``(z1 - z0, rows, cols)`` (colour: samples last), rescaled values.
            Read slice by slice, the dtype may be wider than the whole stack's
            (which is narrowed once every value is known); the values are the same.

        Raises
        ------
        IndexError
            When the stack, volume or slices do not exist.
        """
        info = self.stacks[self.check_stack(index)]
        k = info.shape[0]
        z1 = k if z1 is None else int(z1)
        if not (0 <= z0 <= z1 <= k and 0 <= t < info.volumes.count):
            raise IndexError(f"slices {z0}:{z1} of volume {t} outside stack {index} "
                             f"({info.volumes.count} x {k} slices)")
        if info.progressive and self._assembled is None:
            ss = StackSlices(self.paths, self._fr, self._plans[index], rescale=True,
                             unreadable=self._unreadable.setdefault(index, {}))
            return ss.read(t * k + z0, t * k + z1)
        arr = np.asarray(self.read_stack(index).array)
        return arr[t, z0:z1] if info.volumes.count > 1 else arr[z0:z1]

    def slice_files(self, index: int = 0) -> list[str]:
        """The file of each source slice of a stack (mosaics: one file per volume).

        Parameters
        ----------
        index : int
            Stack index.

        Returns
        -------
        list of str
        """
        from ..images.mosaic import mosaic_groups

        index = self.check_stack(index)
        fr = self._fr
        if self._assembled is not None:
            vol = self._assembled.volumes[index]
            rep = vol.report
            if rep is not None and rep.key.get("mosaic"):
                size = rep.key.get("mosaic_size")
                for g in mosaic_groups(fr):
                    if [fr.formats[g[0]].rows, fr.formats[g[0]].cols] == size:
                        return [self.paths[i] for i in g]
                return []
            # the plan of a stack beside mosaics: same key and frame count
            plan = next((p for p in self._plans if rep is not None and p.report.key == rep.key
                         and p.report.n_frames == rep.n_frames), None)
            if plan is None:
                return []
        else:
            plan = self._plans[index]
        files = np.asarray(fr.ft.file)[plan.frames[0].reshape(-1)]
        return [self.paths[int(f)] for f in files]

    def assemble(self) -> Any:
        """Every stack assembled: export's :class:`~pocketpacs.images.volume.SeriesVolumes`.

        Returns
        -------
        pocketpacs.images.volume.SeriesVolumes
        """
        from ..images.volume import assemble_series

        if self._assembled is None:
            with NATIVE_LOCK:
                self._assembled = assemble_series(self.paths, batch=self.batch, **self._opts)
            self._assembled.report.notes.extend(self._notes)
        return self._assembled

    def close(self) -> None:
        """Drop the volumes read so far."""
        self._built = {}


def open_series(source: Any, series_key: str | None = None, *, check: bool = True,
                **kwargs: Any) -> SeriesReader:
    """Open one series for reading: from an archive (its stored rows where they are exact) or files.

    Parameters
    ----------
    source : pocketpacs.Archive, path-like or sequence of path-like
        An archive (then *series_key* names the series), the files of one
        series (a list), or a file or folder (its one image series, or the one
        *series_key* names; :func:`open_path` gives every one).
    series_key : str, optional
        Series key or Series Instance UID in the archive; Series Instance UID in a folder.
    check : bool
        Archive: passed to :meth:`~pocketpacs.Archive.series_files` (mark missing files offline).
    **kwargs
        ``tilt``, ``spacing`` (see :class:`SeriesReader`).

    Returns
    -------
    SeriesReader

    Raises
    ------
    KeyError
        When the archive has no such series.
    FileNotFoundError
        When the series has no file that can be read (an archived one:
        :class:`SeriesOfflineError`, also an ``ArchiveError``).
    ValueError
        When *series_key* is missing for an archive, or a folder holds another
        number of image series than one (or none by that UID).
    """
    if hasattr(source, "series_files"):
        if series_key is None:
            raise ValueError("open_series: name the series to open in the archive (series_key)")
        key = source.get_series(series_key).key       # KeyError: no such series
        got = archive_rows(source, key)
        if got is not None:
            return SeriesReader(got[0], got[1], **kwargs)
        paths = [os.fspath(p) for p in source.series_files(key, check=check)]
        if not paths:
            raise SeriesOfflineError("the files of this series are offline (folder or medium not present)")
        return SeriesReader(paths, **kwargs)
    if isinstance(source, (str, os.PathLike)):
        readers = open_path(source, **kwargs)
        if series_key is not None:
            readers = [r for r in readers if r.series_uid == series_key]
        if len(readers) != 1:
            what = f"series {series_key}" if series_key is not None else "one series"
            raise ValueError(f"{os.fspath(source)}: holds {len(readers)} image series, not {what} "
                             f"(open_path gives every one)")
        return readers[0]
    paths = [os.fspath(x) for x in source]
    if not paths:
        raise FileNotFoundError("no file to read")
    return SeriesReader(paths, **kwargs)


def open_path(path: str | os.PathLike[str], **kwargs: Any) -> list[SeriesReader]:
    """Every image series of a DICOM file or folder (no archive), each ready to read.

    Parameters
    ----------
    path : path-like
        A DICOM file or a folder (several series allowed).
    **kwargs
        ``tilt``, ``spacing`` (see :class:`SeriesReader`).

    Returns
    -------
    list of SeriesReader
        One per Series Instance UID, in the order first seen (the series of
        :func:`pocketpacs.images.volume.assemble_path`); a file without a usable
        Series Instance UID is a series of its own, its report saying so.
        Groups without an image (reports, RT objects) are left out.

    Raises
    ------
    FileNotFoundError
        When *path* does not exist.
    """
    from ..images.volume import VolumeError, series_groups

    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: no such file or folder")
    out = []
    for files, note in series_groups(p):
        try:
            out.append(SeriesReader(files, notes=[note] if note else (), **kwargs))
        except VolumeError:
            continue
    return out
