"""Benchmark: series assembly, JPEG 2000 decode scaling, window/level.

Run: ``python benchmarks/bench_volume.py [--slices 1000] [--size 512] [--j2k 32] [--runs 5]
[--dir DIR] [--j2k-only]``.  Writes a synthetic uncompressed CT series (int16 stored, 12 bits,
intercept -1024) and a JPEG 2000 lossless series once under DIR (default
``bench-data/volume``), then times, warm cache, medians of ``--runs``:

* floor: ``os.preadv`` of the same pixel bytes (offsets from the header
  parser) into one preallocated array;
* PocketPACS ``assemble_series`` (headers + geometry + read + rescale: two
  threads reading chunks of frames with ``os.preadv`` and converting each
  chunk with a serial numba kernel), runs interleaved with the floor's;
* SimpleITK ``ImageSeriesReader`` (when installed);
* a pydicom loop + ``numpy.stack`` (+ rescale);
* JPEG 2000 series decode with a 1-process vs a 2-process ``DecoderPool`` (both
  warm, same files, runs interleaved in alternating order, medians).  The
  slices are a 512x512 CT phantom (body, fat, lungs, spine) with 10 HU
  Gaussian noise, lossless: about 170 kB per file and 25 ms per slice on one
  core, like real CT (a noise-free slice decodes in 8 ms).  Also printed: the
  parent's CPU share of the pool's wall time, the cores the workers actually
  got, and the load average (``--j2k-only`` runs just this part);
* window/level of one 512x512 slice: numba single-thread kernel vs NumPy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


#: Noise of the JPEG 2000 phantom inside the body (HU, Gaussian; 0.3x that in air).
#: Real CT has about 10-20 HU; with 10 HU a 512x512 slice compresses losslessly
#: about 3:1 and decodes in about 25 ms, like the real CT lossless slices of
#: the issue (26 ms).  A noise-free ramp decodes in about 8 ms and would weigh
#: the pool's per-task overhead far more than real series do.
J2K_NOISE_HU = 10.0


def ct_phantom(size: int, i: int, noise: float) -> np.ndarray:
    """A 12-bit stored CT slice (HU + 1024): body, fat rim, lungs, spine, noise."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c = size / 2
    z = 1.0 + 0.1 * np.sin(i / 20.0)  # anatomy changes a little along the series
    r2 = ((xx - c) / (size * 0.42)) ** 2 + ((yy - c) / (size * 0.32 * z)) ** 2
    img = np.full((size, size), -1000.0)
    body = r2 < 1
    img[body] = 40.0
    img[body & (r2 > 0.85)] = -100.0
    for cx in (0.65, 1.35):
        img[((xx - c * cx) / (size * 0.12)) ** 2 + ((yy - c) / (size * 0.18 * z)) ** 2 < 1] = -850.0
    img[(xx - c) ** 2 + (yy - c * 1.35) ** 2 < (size * 0.04) ** 2] = 700.0
    img += rng.normal(0.0, noise, img.shape) * np.where(body, 1.0, 0.3)
    return np.clip(np.round(img) + 1024, 0, 4095).astype(np.int16)


def write_series(folder: str, n: int, size: int, j2k: bool = False) -> list[str]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"im{i:05d}.dcm") for i in range(n)]
    if all(os.path.exists(p) for p in paths):
        return paths
    suid = generate_uid(prefix="1.2.826.0.1.3680043.10.1.", entropy_srcs=[folder])
    yy, xx = np.mgrid[0:size, 0:size]
    for i, p in enumerate(paths):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.10.2.",
                                         entropy_srcs=[folder, str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SeriesInstanceUID = suid
        ds.Modality = "CT"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-200.0, -200.0, round(i * 0.7, 4)]  # valid DS (<= 16 chars)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.78, 0.78]
        ds.SliceThickness = 0.7
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        if j2k:
            img = ct_phantom(size, i, J2K_NOISE_HU)
        else:
            img = (((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2) * 1000
                   + (xx + yy + i) % 200).astype(np.int16)
        ds.PixelData = img.tobytes()
        if j2k:
            ds.compress(JPEG2000Lossless, img)
        ds.save_as(p, enforce_file_format=True)
    return paths


def timeit(fn, runs: int) -> float:
    return statistics.median(timeit_runs(fn, runs))


def timeit_runs(fn, runs: int) -> list[float]:
    """Seconds of each of *runs* calls of *fn*, after one warm call (page cache, JIT, worker start)."""
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


def bench_j2k(a: argparse.Namespace) -> tuple[list, list[str], float, float, dict[int, list[float]]]:
    """JPEG 2000 series: 1-process vs 2-process pool, same files, both warm, interleaved.

    Returns rows, explanation lines, the two medians and every run's seconds per pool size.  The order of the two
    pools alternates from run to run; the load average is sampled before and
    after, and the pool's own statistics say where the time went: the parent's
    CPU share, and the CPU the workers actually got (on a shared machine a
    second worker can only scale when a second core is free).
    """
    from pocketpacs.images.decoders import DecoderPool
    from pocketpacs.images.decodeworker import _decode_task
    from pocketpacs.images.volume import assemble_series

    j_paths = write_series(os.path.join(a.dir, f"j2k3_{a.size}x{a.size}x{a.j2k}"), a.j2k,
                           a.size, j2k=True)
    jbytes = sum(os.path.getsize(p) for p in j_paths) / len(j_paths)
    # per-slice decode in this process (what a worker does per task)
    for p in j_paths[:2]:
        _decode_task(p, None)
    n1 = min(len(j_paths), 16)
    t = time.perf_counter()
    for p in j_paths[:n1]:
        _decode_task(p, None)
    per_slice = (time.perf_counter() - t) / n1
    load0 = os.getloadavg()
    pools = {1: DecoderPool(1), 2: DecoderPool(2)}
    jt: dict[int, list[float]] = {1: [], 2: []}
    st: dict[int, list[dict]] = {1: [], 2: []}
    for p in pools.values():  # the workers start on the first use
        for _ in range(2):
            assemble_series(j_paths, pool=p)  # warm: workers started, decoders imported
    for r in range(max(3, a.runs)):
        for k in ((1, 2) if r % 2 == 0 else (2, 1)):
            t = time.perf_counter()
            assemble_series(j_paths, pool=pools[k])
            jt[k].append(time.perf_counter() - t)
            st[k].append(dict(getattr(pools[k], "stats", {})))  # absent in older pools
    load1 = os.getloadavg()
    for p in pools.values():
        p.close()
    t_j1, t_j2 = statistics.median(jt[1]), statistics.median(jt[2])
    jb = a.j2k * a.size * a.size * 2
    rows = [("JPEG 2000 series, 1 process", t_j1, jb / t_j1 / 1e9),
            ("JPEG 2000 series, 2 processes", t_j2, jb / t_j2 / 1e9)]

    def med(k: int, key: str) -> float:
        return statistics.median(s[key] for s in st[k])

    lines = [f"JPEG 2000 phantom: {a.j2k} slices {a.size}x{a.size}, CT phantom with "
             f"{J2K_NOISE_HU:g} HU noise, {jbytes / 1e3:.0f} kB per file "
             f"({a.size * a.size * 2 / jbytes:.1f}:1), {per_slice * 1e3:.1f} ms per slice decoded "
             "in this process"]
    for k in (1, 2):
        if not all("wall" in s for s in st[k]):
            lines.append(f"  {k} process(es): runs {' '.join(f'{x:.3f}' for x in jt[k])} s")
            continue
        wall = med(k, "wall")
        lines.append(
            f"  {k} process(es): runs {' '.join(f'{x:.3f}' for x in jt[k])} s; pool wall "
            f"{wall:.3f} s, parent CPU {med(k, 'parent_cpu') / wall * 100:.1f}% of it, workers "
            f"got {med(k, 'worker_cpu') / wall:.2f} cores (busy {med(k, 'worker_busy') / wall:.2f}), "
            f"{med(k, 'messages'):.0f} messages")
    lines.append(f"  load average before {load0[0]:.2f} after {load1[0]:.2f} on "
                 f"{os.cpu_count()} cores (other work takes cores the 2nd process needs)")
    return rows, lines, t_j1, t_j2, jt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--j2k", type=int, default=32, help="slices of the JPEG 2000 series")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=os.path.join("bench-data", "volume"))
    ap.add_argument("--j2k-only", action="store_true",
                    help="only the JPEG 2000 1 vs 2 process part")
    a = ap.parse_args(argv)
    if a.j2k_only:
        rows, lines, t_j1, t_j2, _ = bench_j2k(a)
        for name, t, gbs in rows:
            print(f"{name:45s} {t:10.4f} {gbs:8.2f}")
        print(f"JPEG 2000 2 vs 1 process: {t_j1 / t_j2:.2f}x (medians of {max(3, a.runs)})")
        print("\n".join(lines))
        return 0

    from pocketpacs.dicom.headers import parse_files
    from pocketpacs.native.reference import window_u8
    from pocketpacs.native.window import window_slice
    from pocketpacs.images.decoders import DecoderPool
    from pocketpacs.images.volume import assemble_series

    raw_dir = os.path.join(a.dir, f"raw2_{a.size}x{a.size}x{a.slices}")
    paths = write_series(raw_dir, a.slices, a.size)
    nbytes = a.slices * a.size * a.size * 2
    rows: list[tuple[str, float, float]] = []

    b = parse_files(paths)
    offs = b.pixel_offset.copy()
    floor_arr = np.empty((a.slices, a.size, a.size), np.int16)

    def floor() -> None:
        flat = floor_arr.reshape(a.slices, -1).view(np.uint8)
        for i, p in enumerate(paths):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.preadv(fd, [memoryview(flat[i])], int(offs[i]))
            finally:
                os.close(fd)

    pool = DecoderPool(2)
    # floor and PocketPACS interleaved (the machine's load hits both alike)
    floor()
    assemble_series(paths, pool=pool)
    tf: list[float] = []
    to: list[float] = []
    for _ in range(a.runs):
        t = time.perf_counter()
        floor()
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        assemble_series(paths, pool=pool)
        to.append(time.perf_counter() - t)
    t_floor, t_ours = statistics.median(tf), statistics.median(to)
    rows.append(("floor: preadv into preallocated array", t_floor, nbytes / t_floor / 1e9))
    rows.append(("PocketPACS assemble_series", t_ours, nbytes / t_ours / 1e9))
    t_sitk = None
    try:
        import SimpleITK as sitk

        def sitk_read() -> None:
            r = sitk.ImageSeriesReader()
            r.SetFileNames(paths)
            sitk.GetArrayFromImage(r.Execute())

        t_sitk = timeit(sitk_read, max(1, min(a.runs, 3)))
        rows.append(("SimpleITK ImageSeriesReader", t_sitk, nbytes / t_sitk / 1e9))
    except ImportError:
        pass

    def pyd() -> None:
        import pydicom

        dss = [pydicom.dcmread(p) for p in paths]
        dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        arr = np.stack([d.pixel_array for d in dss])
        (arr * float(dss[0].RescaleSlope) + float(dss[0].RescaleIntercept)).astype(np.int16)

    t_pyd = timeit(pyd, max(1, min(a.runs, 3)))
    rows.append(("pydicom loop + numpy.stack", t_pyd, nbytes / t_pyd / 1e9))

    pool.close()
    jrows, jlines, t_j1, t_j2, _ = bench_j2k(a)
    rows.extend(jrows)

    sl = floor_arr[a.slices // 2].copy()
    out = np.empty(sl.shape, np.uint8)
    t_wn = timeit(lambda: window_slice(sl, 40.0, 400.0, False, out), 200)
    t_wr = timeit(lambda: window_u8(sl, 40.0, 400.0), 50)
    rows.append((f"window {a.size}x{a.size}: numba single-thread", t_wn, sl.nbytes / t_wn / 1e9))
    rows.append((f"window {a.size}x{a.size}: numpy reference", t_wr, sl.nbytes / t_wr / 1e9))

    print(f"series {a.size}x{a.size}x{a.slices} int16 ({nbytes / 1e6:.0f} MB), warm cache, "
          f"medians of {a.runs} runs, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"{'what':45s} {'median s':>10s} {'GB/s':>8s}")
    for name, t, gbs in rows:
        print(f"{name:45s} {t:10.4f} {gbs:8.2f}")
    print("ratios:")
    print(f"  PocketPACS / floor throughput:      {t_floor / t_ours:6.2f}x"
          f"   (best runs: {min(tf) / min(to):.2f}x; the floor is one thread, PocketPACS two,"
          " so a busy machine hits it harder)")
    if t_sitk:
        print(f"  PocketPACS vs SimpleITK (speedup):  {t_sitk / t_ours:6.2f}x")
    print(f"  PocketPACS vs pydicom loop:         {t_pyd / t_ours:6.2f}x")
    print(f"  JPEG 2000 2 vs 1 process:           {t_j1 / t_j2:6.2f}x")
    for line in jlines:
        print("  " + line)
    print(f"  window numba vs numpy:              {t_wr / t_wn:6.2f}x")
    return 0


# ---- the suite's interface (pocketpacs bench volume) ------------------------------------------

NAME = "volume"

#: One load of the series in FOLDER in a fresh process (its RSS is sampled from outside).
LOAD_CHILD = r"""
import glob, sys, time
from pocketpacs.images.volume import assemble_series
time.sleep(0.2)
sv = assemble_series(sorted(glob.glob(sys.argv[1] + "/*.dcm")))
time.sleep(0.2)
print(sv.volumes[0].array.nbytes)
"""


def cached_series(ctx, slices: int, size: int, j2k: bool = False) -> list[str]:
    """The files of a series written by :func:`write_series`, from the benchmark data cache.

    Uncompressed: ``<cache>/volume-raw-KEY/im*.dcm``; JPEG 2000:
    ``<cache>/volume-j2k-KEY/j2k3_SxSxN/im*.dcm`` (the folder :func:`bench_j2k` expects).
    Shared by ``volume`` and ``memory`` (same parameters, same folder).
    """
    if j2k:
        sub = f"j2k3_{size}x{size}x{slices}"
        d = ctx.cached("volume-j2k", {"slices": slices, "size": size, "noise": J2K_NOISE_HU},
                       lambda d: write_series(os.path.join(d, sub), slices, size, j2k=True),
                       sources=[write_series, ct_phantom])
        return write_series(os.path.join(d, sub), slices, size, j2k=True)  # all there: nothing written
    d = ctx.cached("volume-raw", {"slices": slices, "size": size}, lambda d: write_series(str(d), slices, size),
                   sources=[write_series, ct_phantom])
    return write_series(str(d), slices, size)


def run(ctx) -> list:
    """Series assembly vs the read floor, SimpleITK and pydicom; JPEG 2000 on 1 vs 2 processes; window/level.

    Data: an uncompressed series (64 x 256² with ``--quick``, 1000 x 512²
    otherwise) and a JPEG 2000 lossless series (16 x 256², 32 x 512²), from
    the cache.  Also records the RSS of this process over one load.
    """
    from pathlib import Path

    from pocketpacs.benchmarks.results import add_ratio, from_samples, peer_missing, rates, run_sampled, skipped
    from pocketpacs.dicom.headers import parse_files
    from pocketpacs.images.decoders import DecoderPool
    from pocketpacs.images.volume import assemble_series
    from pocketpacs.native.reference import window_u8
    from pocketpacs.native.window import window_slice

    slices, size, nj = ctx.pick((64, 256, 16), (1000, 512, 32))
    runs = ctx.reps(3, 5)
    paths = cached_series(ctx, slices, size)
    jdir = cached_series(ctx, nj, size, j2k=True)[0].rsplit(os.sep, 2)[0]
    nbytes = slices * size * size * 2
    what = f"assemble {size}x{size}x{slices} int16 ({nbytes / 1e6:.0f} MB), warm cache"
    b = parse_files(paths)
    offs = b.pixel_offset.copy()
    floor_arr = np.empty((slices, size, size), np.int16)

    def floor() -> None:
        flat = floor_arr.reshape(slices, -1).view(np.uint8)
        for i, p in enumerate(paths):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.preadv(fd, [memoryview(flat[i])], int(offs[i]))
            finally:
                os.close(fd)

    out = []
    pool = DecoderPool(2)
    try:
        floor()
        assemble_series(paths, pool=pool)
        tf: list[float] = []
        to: list[float] = []
        for _ in range(runs):  # interleaved, as in main()
            t = time.perf_counter()
            floor()
            tf.append(time.perf_counter() - t)
            t = time.perf_counter()
            assemble_series(paths, pool=pool)
            to.append(time.perf_counter() - t)
    finally:
        pool.close()
    # memory over time of one load in a fresh process (imports, then the series read)
    res, mem = run_sampled([sys.executable, "-c", LOAD_CHILD, str(Path(paths[0]).parent)], timeout=900)
    if res.returncode == 0:
        ctx.curve(f"assemble_series {size}x{size}x{slices} in a fresh process ({nbytes / 1e6:.0f} MB array)",
                  mem.t, mem.mb)
    else:
        ctx.log(f"memory over time not recorded: the child failed: {res.stderr.strip().splitlines()[-1:]}")
    fl = from_samples(what, "floor: preadv into a preallocated array", "GB/s", rates(nbytes, tf, 1e-9))
    ours = from_samples(what, "PocketPACS assemble_series", "GB/s", rates(nbytes, to, 1e-9), headline=True)
    add_ratio(ours, fl, "read floor")
    reason = peer_missing("SimpleITK", "SimpleITK")
    if reason is None:
        import SimpleITK as sitk

        def sitk_read() -> None:
            r = sitk.ImageSeriesReader()
            r.SetFileNames(paths)
            sitk.GetArrayFromImage(r.Execute())

        sitk_row = from_samples(what, "SimpleITK ImageSeriesReader", "GB/s",
                                rates(nbytes, timeit_runs(sitk_read, max(1, min(runs, 3))), 1e-9))
    else:
        sitk_row = skipped(what, "SimpleITK ImageSeriesReader", "GB/s", reason)
    add_ratio(ours, sitk_row, "SimpleITK")

    def pyd() -> None:
        import pydicom

        dss = [pydicom.dcmread(p) for p in paths]
        dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        arr = np.stack([d.pixel_array for d in dss])
        (arr * float(dss[0].RescaleSlope) + float(dss[0].RescaleIntercept)).astype(np.int16)

    pyd_row = from_samples(what, "pydicom loop + numpy.stack", "GB/s",
                           rates(nbytes, timeit_runs(pyd, ctx.pick(2, max(1, min(runs, 3)))), 1e-9))
    add_ratio(ours, pyd_row, "pydicom loop")
    out += [fl, ours, sitk_row, pyd_row]

    import argparse

    _, jlines, _, _, jt = bench_j2k(argparse.Namespace(dir=str(jdir), size=size, j2k=nj, runs=runs))
    jb = nj * size * size * 2
    jwhat = f"JPEG 2000 lossless series {nj} x {size}x{size}"
    line = "JPEG 2000 series decode"
    j1 = from_samples(jwhat, "PocketPACS, decoder pool of 1 process", "MB/s", rates(jb, jt[1], 1e-6),
                      x=1, x_label="decoder processes", line=line)
    j2 = from_samples(jwhat, "PocketPACS, decoder pool of 2 processes", "MB/s", rates(jb, jt[2], 1e-6),
                      x=2, x_label="decoder processes", headline=True, line=line)
    for line in jlines:
        ctx.log(line.strip())
    add_ratio(j2, j1, "1 process")
    out += [j1, j2]

    sl = floor_arr[slices // 2].copy()
    buf = np.empty(sl.shape, np.uint8)
    wwhat = f"window/level of one {size}x{size} slice"
    wn = from_samples(wwhat, "numba single-thread kernel", "GB/s",
                      rates(sl.nbytes, timeit_runs(lambda: window_slice(sl, 40.0, 400.0, False, buf), 200), 1e-9))
    wr = from_samples(wwhat, "NumPy reference", "GB/s",
                      rates(sl.nbytes, timeit_runs(lambda: window_u8(sl, 40.0, 400.0), 50), 1e-9))
    add_ratio(wn, wr)
    out += [wn, wr]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
