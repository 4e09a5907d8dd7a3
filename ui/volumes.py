"""Volume jobs: assemble off the UI thread, stream slices as they arrive.

A :class:`VolumeJob` owns one volume being prepared for the page.  A worker
thread fills its array slice by slice through a :class:`SliceSource`; HTTP
handlers wait on a condition variable for what they need:

* ``/header`` waits for the header only;
* ``/slice/<z>`` moves ``z`` to the front of the read order and waits for it,
  so the first slice can be drawn before the series is complete;
* ``/data`` streams all slices in order, each as soon as it is ready.

A 4D volume (the header's ``volumes.count`` > 1) holds its volumes one after
the other; ``?t=`` picks the volume of a slice or a stream, and the bulk read
goes to the volume asked for last.

A newer request supersedes a stale one: :class:`JobRegistry` cancels every
older job of the same *slot* (one viewport) when a new one starts.

Slices whose pixel data could not be decoded (sent as zeros) are known to the
job as its source finds them (:meth:`VolumeJob.unreadable_frames`): its
``status()``, its report and each such slice's frame say so.
"""
from __future__ import annotations

import logging
import secrets
import threading
from typing import Callable, Iterator, Protocol

import numpy as np

from . import protocol
from .volumearrays import new_array

log = logging.getLogger("pocketpacs.ui.volumes")


class SliceSource(Protocol):
    """Something that yields a header, then slices in any order."""

    def header(self) -> protocol.VolumeHeader: ...

    def read(self, z: int) -> np.ndarray: ...

    def close(self) -> None: ...


class ArraySource:
    """A :class:`SliceSource` over an array already in memory.

    Parameters
    ----------
    header : VolumeHeader
        Header of the volume (dtype must match *array* after wire conversion).
    array : numpy.ndarray
        ``(slices, rows, columns)`` array in a wire dtype.
    """

    def __init__(self, header: protocol.VolumeHeader, array: np.ndarray):
        self._header = header
        self._array = array

    def header(self) -> protocol.VolumeHeader:
        """Return the header.

        Returns
        -------
        VolumeHeader
        """
        return self._header

    def read(self, z: int) -> np.ndarray:
        """Return slice *z*.

        Parameters
        ----------
        z : int
            Slice index.

        Returns
        -------
        numpy.ndarray
        """
        return self._array[z]

    def whole(self) -> np.ndarray:
        """Return the whole array (lets the job skip per-slice copies).

        Returns
        -------
        numpy.ndarray
        """
        return self._array

    def close(self) -> None:
        """Drop the reference to the array."""
        self._array = None  # type: ignore[assignment]


class VolumeJob:
    """One volume on its way to the page.

    Parameters
    ----------
    make_source : callable
        Called on the worker thread; returns a :class:`SliceSource`.  Slow
        work (reading headers, sorting slices) belongs here.
    slot : str
        The viewport this volume is for (supersession key).
    """

    #: Seconds the bulk read waits after the header, unless a reader asks for
    #: more first (the whole-volume stream, a slice not read yet, the array).
    #: The page asks for the stream once the first slice is drawn: until then
    #: the machine's cores go to that slice (2 cores: reading the series
    #: beside it delayed the first frame by tens of ms, measured).
    BULK_WAIT_S = 1.0

    def __init__(self, make_source: Callable[[], SliceSource], slot: str = "main"):
        self.id = secrets.token_hex(16)
        self.slot = slot
        self._make_source = make_source
        self._cond = threading.Condition()
        self._cancel = threading.Event()
        self._go = threading.Event()
        self._header: dict | None = None
        self._array: np.ndarray | None = None
        self._ready: np.ndarray | None = None
        self._wanted: list[int] = []
        self._nz = 0                    # slices of one volume
        self._nvol = 1                  # volumes (4D)
        self._focus = 0                 # the volume the bulk read goes to first
        self._failed: dict | None = None
        self._done = False
        self._report: dict | None = None
        self._slice_file: Callable[[int], str | None] | None = None
        self._unreadable_fn: Callable[[], list[dict]] | None = None
        self._unreadable_seen: list[dict] = []
        self._readers = 0               # slices / stream chunks being sent from the array
        self._handed_out = False        # array() gave it away (it is never recycled)
        self._own_array = False         # made here (not a source's whole array)
        self._thread = threading.Thread(target=self._run, name="pocketpacs-volume", daemon=True)

    # ------------------------------------------------------------- worker
    def start(self) -> "VolumeJob":
        """Start the worker thread.

        Returns
        -------
        VolumeJob
            ``self``.
        """
        self._thread.start()
        return self

    def _run(self) -> None:
        source = None
        try:
            source = self._make_source()
            if self._cancel.is_set():
                raise _Cancelled()
            hdr = source.header()
            self._nz = int(hdr.shape[0])
            self._nvol = max(1, int(hdr.volumes.get("count", 1)))
            nz = self._nz * self._nvol       # every slice of every volume
            # a slice's shape: (rows, cols), colour (rows, cols, 3)
            sshape = tuple(hdr.shape[1:3]) + ((int(hdr.samples),) if int(hdr.samples) > 1 else ())
            self.report = getattr(source, "report", None)
            self._slice_file = getattr(source, "slice_file", None)
            self._unreadable_fn = getattr(source, "unreadable_frames", None)
            whole_fn = getattr(source, "whole", None)
            whole = whole_fn() if whole_fn is not None else None
            with self._cond:
                self._header = hdr.to_json()
                if whole is not None:
                    self._array = np.ascontiguousarray(whole).reshape((nz,) + sshape)
                    self._ready = np.ones(nz, dtype=bool)
                else:
                    self._array = new_array((nz,) + sshape, hdr.dtype)
                    self._own_array = True      # ours alone: recyclable (release_array)
                    self._ready = np.zeros(nz, dtype=bool)
                    # slices the source read for its header are ready now (the
                    # first slice shown does not wait for the first chunk)
                    cached = getattr(source, "cached_slices", None)
                    for z, arr in (cached() if cached is not None else {}).items():
                        self._array[z] = arr
                        self._ready[z] = True
                self._cond.notify_all()
            if whole is None:
                self._go.wait(self.BULK_WAIT_S)
                chunk = 4
                while True:
                    if self._cancel.is_set():
                        raise _Cancelled()
                    z0, z1 = self._next_run(chunk)
                    if z0 is None:
                        break
                    self._read(source, z0, z1)
                    with self._cond:
                        self._ready[z0:z1] = True
                        self._cond.notify_all()
                    chunk = min(64, chunk * 2)
            with self._cond:
                self._done = True
                self._cond.notify_all()
        except _Cancelled:
            self._fail(protocol.fail(protocol.SUPERSEDED, "A newer request replaced this one."))
        except Exception as exc:  # reported to the page as an envelope
            env = protocol.envelope_for_exception(exc)
            if env["error"]["code"] == protocol.INTERNAL:  # a problem of ours: where it happened
                log.warning("volume job failed: %s", type(exc).__name__, exc_info=exc)
            else:  # an answer about the data ("not an image", unreadable...), already on screen
                log.info("volume job refused: %s", env["error"]["code"])
            self._fail(env)
        finally:
            if source is not None:
                fn = self._unreadable_fn
                try:
                    # what the source found, kept without the source (its reader and arrays)
                    self._unreadable_seen = fn() if fn is not None else []
                    self._unreadable_fn = None
                    source.close()
                except Exception:
                    pass

    def _next_run(self, chunk: int) -> tuple[int | None, int]:
        """Next slices to read: a wanted slice alone, else the first run of missing ones
        (in the volume asked for last first, then from the start)."""
        with self._cond:
            while self._wanted:
                z = self._wanted.pop(0)
                if not self._ready[z]:
                    return z, z + 1
            f0 = self._focus * self._nz
            missing = np.flatnonzero(~self._ready[f0:f0 + self._nz]) + f0
            if missing.size == 0:
                missing = np.flatnonzero(~self._ready)
            if missing.size == 0:
                return None, 0
            z0 = int(missing[0])
            z1 = z0 + 1
            nz = self._ready.size
            while z1 < nz and z1 - z0 < chunk and not self._ready[z1]:
                z1 += 1
            return z0, z1

    def _read(self, source: SliceSource, z0: int, z1: int) -> None:
        read_into = getattr(source, "read_into", None)
        if read_into is not None:
            read_into(z0, z1, self._array[z0:z1])
        else:
            for z in range(z0, z1):
                self._array[z] = source.read(z)

    def _fail(self, envelope: dict) -> None:
        with self._cond:
            self._failed = envelope
            self._done = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread to end.

        Parameters
        ----------
        timeout : float, optional
            Seconds.

        Returns
        -------
        bool
            True when the worker has ended (or never started).
        """
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------- readers
    def prefetch(self) -> None:
        """Start reading the whole volume now (rather than after ``BULK_WAIT_S``)."""
        self._go.set()

    def cancel(self) -> None:
        """Stop the worker and wake every waiter (they get an error)."""
        self._cancel.set()
        self._go.set()
        with self._cond:
            if not self._done:
                self._failed = protocol.fail(protocol.SUPERSEDED, "A newer request replaced this one.")
                self._done = True
            self._cond.notify_all()

    def slice_file(self, z: int) -> str | None:
        """The DICOM file of slice *z* (Python side only), or None.

        Parameters
        ----------
        z : int
            Slice index.

        Returns
        -------
        str or None
            None for volumes that do not come from DICOM files.
        """
        fn = self._slice_file
        return fn(z) if fn is not None else None

    @property
    def report(self) -> dict | None:
        """The source's assembly report (no paths), with ``unreadable_frames``: the
        slices found so far whose pixel data could not be decoded; None when it has none."""
        if self._report is None:
            return None
        return {**self._report, "unreadable_frames": self.unreadable_frames()}

    @report.setter
    def report(self, value: dict | None) -> None:
        self._report = value

    def unreadable_frames(self) -> list[dict]:
        """The slices found so far whose pixel data could not be decoded (sent as zeros).

        Returns
        -------
        list of dict
            ``{"slice", "volume", "reason"}`` each, in slice order, no paths:
            the header's list, and those the source found since.
        """
        fn = self._unreadable_fn
        with self._cond:
            hdr = self._header
        known = list(hdr.get("unreadable", [])) if hdr is not None else []
        known += fn() if fn is not None else self._unreadable_seen
        seen = {}
        for f in protocol.unreadable_json(known):
            seen.setdefault((f["volume"], f["slice"]), f)
        return list(seen.values())

    def slice_unreadable(self, z: int, t: int = 0) -> str | None:
        """Why slice *z* of volume *t* holds no image, or None when it was read (or is not yet).

        Parameters
        ----------
        z, t : int
            Slice and volume.

        Returns
        -------
        str or None
            The decoder's reason (no path).
        """
        for f in self.unreadable_frames():
            if f["slice"] == z and f["volume"] == t:
                return f["reason"]
        return None

    @property
    def failed(self) -> dict | None:
        """The error envelope when the job failed or was cancelled, else None."""
        return self._failed

    def error_message(self) -> str:
        """Return the failure message (safe to show).

        Returns
        -------
        str
        """
        f = self._failed
        return f["error"]["message"] if f else "Not ready."

    def wait_header(self, timeout: float = 120.0) -> dict | None:
        """Block until the header is known.

        Parameters
        ----------
        timeout : float
            Seconds to wait at most.

        Returns
        -------
        dict or None
            The JSON header, or None when the job failed.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._header is not None or self._failed is not None,
                                timeout)
            return None if self._failed is not None else self._header

    def status(self) -> dict:
        """Return a JSON-ready progress summary.

        Returns
        -------
        dict
            ``{"id", "slices_ready", "slices", "volumes", "done", "error",
            "unreadable"}``; ``unreadable``: every slice found so far whose
            pixel data could not be decoded (:meth:`unreadable_frames`).
        """
        bad = self.unreadable_frames()
        with self._cond:
            n = int(self._ready.sum()) if self._ready is not None else 0
            total = int(self._ready.size) if self._ready is not None else 0
            return {"id": self.id, "slices_ready": n, "slices": total, "volumes": self._nvol,
                    "done": self._done,
                    "error": self._failed["error"] if self._failed else None,
                    "unreadable": bad}

    def _wait_slice(self, z: int, t: int = 0, timeout: float = 120.0) -> int | None:
        with self._cond:
            if self._header is None:
                self._cond.wait_for(lambda: self._header is not None or self._failed is not None,
                                    timeout)
            if self._failed is not None or self._header is None:
                return None
            if not (0 <= z < self._nz and 0 <= t < self._nvol):
                return None
            self._focus = t
            z = t * self._nz + z
            if not self._ready[z]:
                self._wanted.insert(0, z)
                self._go.set()
                self._cond.wait_for(lambda: bool(self._ready[z]) or self._failed is not None,
                                    timeout)
            return z if bool(self._ready[z]) and self._failed is None else None

    def slice_frame(self, z: int, t: int = 0) -> bytes | None:
        """Return slice *z* (of volume *t*) as a binary frame, reading it first if needed.

        Parameters
        ----------
        z : int
            Slice index.
        t : int
            Volume index (4D; 0 otherwise).

        Returns
        -------
        bytes or None
            The frame (header with ``"slice": z`` and ``"t": t``, and
            ``"unreadable"``: every slice found unreadable so far), or None
            when out of range or the job failed.
        """
        i = self._wait_slice(z, t)
        with self._cond:
            arr = self._array
            if i is None or arr is None:
                return None
            self._readers += 1          # release_array leaves the array alone meanwhile
        try:
            hdr = dict(self._header)
            hdr["slice"] = z
            hdr["t"] = t
            hdr["unreadable"] = self.unreadable_frames()
            return protocol.encode_frame(hdr, arr[i])
        finally:
            self._done_reading()

    def data_prefix(self) -> bytes | None:
        """Return the frame prefix of the whole-volume stream.

        Returns
        -------
        bytes or None
            Length word and header, or None when the job failed.
        """
        self._go.set()
        hdr = self.wait_header()
        return None if hdr is None else protocol.frame_prefix(hdr)

    def data_nbytes(self) -> int:
        """Return the number of voxel bytes of one volume (the whole of a 3D one).

        Returns
        -------
        int
        """
        arr = self._array
        return 0 if arr is None else int(arr.nbytes) // self._nvol

    def has_volume(self, t: int) -> bool:
        """Whether volume *t* exists (waits for the header).

        Parameters
        ----------
        t : int
            Volume index.

        Returns
        -------
        bool
        """
        return self.wait_header() is not None and 0 <= t < self._nvol

    def iter_data(self, chunk_slices: int = 8, t: int = 0) -> Iterator[memoryview]:
        """Yield the voxels of volume *t* in slice order, each run as soon as it is ready.

        Parameters
        ----------
        chunk_slices : int
            Most slices per yielded chunk.
        t : int
            Volume index (4D; 0 otherwise).

        Yields
        ------
        memoryview
            Contiguous voxel bytes; the iteration stops early on failure.
        """
        if not 0 <= t < self._nvol:
            return
        self._focus = t
        self._go.set()
        z = t * self._nz
        nz = z + self._nz
        while z < nz:
            with self._cond:
                self._cond.wait_for(lambda z=z: bool(self._ready[z]) or self._failed is not None, 120.0)
                arr = self._array
                if self._failed is not None or not self._ready[z] or arr is None:
                    return
                end = z + 1
                while end < nz and end - z < chunk_slices and self._ready[end]:
                    end += 1
                self._readers += 1      # until the chunk is sent: release_array leaves it alone
            try:
                yield memoryview(arr[z:end]).cast("B")
            finally:
                self._done_reading()
            z = end

    def array(self) -> np.ndarray | None:
        """Return the array once every slice is ready (for tests and tools).

        Returns
        -------
        numpy.ndarray or None
            ``(slices, rows, cols)``; 4D: ``(volumes, slices, rows, cols)``.
        """
        self._go.set()
        with self._cond:
            self._cond.wait_for(lambda: self._done, 120.0)
            if self._failed or self._array is None:
                return None
            self._handed_out = True     # the caller keeps it: never recycled
            if self._nvol > 1:
                return self._array.reshape((self._nvol, self._nz) + self._array.shape[1:])
            return self._array

    def _done_reading(self) -> None:
        with self._cond:
            self._readers -= 1

    def release_array(self) -> np.ndarray | None:
        """Give up the array of a job the registry dropped, for the next job to reuse
        (:func:`.volumearrays.recycle`): only when the job's thread has ended, no
        slice or stream chunk of it is being sent, the job made it (not a source's
        whole array) and :meth:`array` never handed it out; the job then answers
        as superseded.

        Returns
        -------
        numpy.ndarray or None
            The array, or None when it is still in use (or there is none).
        """
        if self._thread.is_alive():
            return None
        with self._cond:
            arr = self._array
            if arr is None or self._readers or self._handed_out or not self._own_array:
                return None
            self._array = None
            if self._failed is None:
                self._failed = protocol.fail(protocol.SUPERSEDED, "A newer request replaced this one.")
            self._done = True
            self._cond.notify_all()
            return arr


class _Cancelled(Exception):
    pass


# the registry moved to its own module; imported from here by the session
from .jobregistry import JobRegistry  # noqa: E402

__all__ = ["ArraySource", "JobRegistry", "SliceSource", "VolumeJob"]
