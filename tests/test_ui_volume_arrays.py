"""The server's whole-volume arrays are reused, never while in use (issue 16).

A volume job dropped from the registry gives its array to the next job of the
same size (``ui/volumearrays.py``): no new 20+ MB array to fault in per open.
These tests check what must never happen with that: a new job showing another
series' values, a stream or slice of the dropped job being sent from an array
now refilled, an array handed out by ``array()`` or belonging to a source
being reused.
"""
from __future__ import annotations

import numpy as np
import pytest

from pocketpacs.ui import protocol, volumearrays
from pocketpacs.ui.jobregistry import JobRegistry
from pocketpacs.ui.volumes import ArraySource, VolumeJob

SHAPE = (40, 512, 512)           # 20 MB of int16: above volumearrays.MAPPED_BYTES


def series(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).integers(-32768, 32768, size=SHAPE, dtype=np.int64).astype(np.int16)
    v[:, 0, 0] = seed
    return v


class SliceByslice(ArraySource):
    """Read slice by slice (no whole array): the job fills an array of its own."""

    def whole(self):
        return None


def header() -> protocol.VolumeHeader:
    return protocol.VolumeHeader(shape=SHAPE, dtype="int16", affine_lps=np.eye(4).tolist(),
                                 spacing=[1.0, 1.0, 1.0], slope=1.0, intercept=0.0, units="", windows=[],
                                 kind="volume", modality="CT", invert=False, labels={}, value_range=[-1.0, 1.0])


def streamed(job: VolumeJob) -> np.ndarray:
    return np.frombuffer(b"".join(bytes(c) for c in job.iter_data()), np.int16).reshape(SHAPE)


@pytest.fixture
def registry():
    volumearrays._pool.clear()
    old = VolumeJob.BULK_WAIT_S
    VolumeJob.BULK_WAIT_S = 0.0
    reg = JobRegistry(keep=1)
    yield reg
    reg.clear(wait=10)
    VolumeJob.BULK_WAIT_S = old
    volumearrays._pool.clear()


def submit(reg: JobRegistry, vol: np.ndarray, source=SliceByslice) -> VolumeJob:
    job = reg.submit(VolumeJob(lambda: source(header(), vol)))
    assert job.join(30)
    return job


def test_a_dropped_jobs_array_goes_to_the_next_job_of_its_size_with_the_new_values(registry):
    a, b = series(1), series(2)
    ja = submit(registry, a)
    assert np.array_equal(streamed(ja), a)
    kept = ja._array
    jb = submit(registry, b)                          # keep=1: a is dropped, its array reused
    assert jb._array is not None and np.shares_memory(jb._array, kept)
    assert np.array_equal(streamed(jb), b)            # every slice b's, none of a's
    assert ja.slice_frame(3) is None and ja.status()["error"]["code"] == protocol.SUPERSEDED
    assert list(ja.iter_data()) == []


def test_an_array_being_sent_is_not_reused(registry):
    a, b = series(3), series(4)
    ja = submit(registry, a)
    chunks = ja.iter_data(chunk_slices=8)
    first = bytes(next(chunks))                       # a stream of a is being sent
    jb = submit(registry, b)
    assert not np.shares_memory(jb._array, ja._array)
    rest = b"".join(bytes(c) for c in chunks)         # and goes on with a's values
    assert np.array_equal(np.frombuffer(first + rest, np.int16).reshape(SHAPE), a)
    assert np.array_equal(streamed(jb), b)
    assert volumearrays.pooled() == 0


def test_an_array_handed_out_or_a_sources_own_is_not_reused(registry):
    a, b, c = series(5), series(6), series(7)
    ja = submit(registry, a)
    held = ja.array()                                 # a caller keeps it
    jb = submit(registry, b)
    assert not np.shares_memory(jb._array, held) and np.array_equal(held, a)
    jc = submit(registry, c, source=ArraySource)      # the source's own whole array
    assert jc._array is c or np.shares_memory(jc._array, c)
    submit(registry, series(8))                       # c's job dropped: c is not the pool's
    assert np.array_equal(c, series(7))
    assert volumearrays.pooled() <= 1 and all(not np.shares_memory(p, c) for p in volumearrays._pool)


def test_a_job_replaced_in_its_viewport_gives_its_array_at_once_and_keeps_its_status():
    """With the default registry (finished jobs kept for their status and series), a
    job that a newer one of its slot replaces gives its array to that job at once: the
    second open of a size faults nothing in.  It still answers volume_status (done,
    superseded), not its voxels; a job of another slot keeps its array and values."""
    volumearrays._pool.clear()
    reg = JobRegistry()
    old = VolumeJob.BULK_WAIT_S
    VolumeJob.BULK_WAIT_S = 0.0
    try:
        a, b, c = series(5), series(6), series(7)
        other = reg.submit(VolumeJob(lambda: SliceByslice(header(), c), slot="pane1"))
        assert other.join(30)
        ja = submit(reg, a)
        kept = ja._array
        jb = submit(reg, b)
        assert np.shares_memory(jb._array, kept)
        assert np.array_equal(streamed(jb), b)
        assert reg.get(ja.id) is ja
        st = ja.status()
        assert st["done"] and st["error"]["code"] == protocol.SUPERSEDED
        assert ja.slice_frame(3) is None
        assert np.array_equal(streamed(other), c)
    finally:
        reg.clear(wait=10)
        VolumeJob.BULK_WAIT_S = old
        volumearrays._pool.clear()
