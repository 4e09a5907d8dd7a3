"""Fuzz the compressed-pixel path: damaged JPEG 2000, JPEG-LS and RLE frames.

One 512x512 CT phantom slice (``pocketpacs.synth``) is compressed with
pydicom's encoders (JPEG 2000 lossless, JPEG-LS lossless, RLE).  Each input
is that frame with bytes changed (mostly in the first 400 bytes, where the
headers are), 16-bit fields poisoned, or the frame cut short; it is decoded
by the decoder workers' own function (``pocketpacs.images.decodeworker._decode_ds``: the
declared-size check, then pydicom's plugins) in a forked child with a
``--timeout`` alarm, so a crash (signal) or hang is counted, not fatal.

Prints per syntax: inputs, decoded, refused or failed with an error,
crashes, hangs, the slowest input and the children's peak RSS.  Crashes and
hangs are saved under ``--out`` for replay.

Usage::

    python benchmarks/fuzz_codecs.py [--count 4000] [--seed 1] [--timeout 10]
"""
from __future__ import annotations

import argparse
import os
import warnings
import random
import resource
import signal
import sys
import time
from pathlib import Path

SYNTAXES = {"JPEG 2000 lossless": "1.2.840.10008.1.2.4.90",
            "JPEG-LS lossless": "1.2.840.10008.1.2.4.80",
            "RLE lossless": "1.2.840.10008.1.2.5"}


def template(ts: str):
    """A dataset holding one compressed phantom slice of transfer syntax *ts*."""
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from pocketpacs import synth

    c = (np.arange(512) - 255.5) * 0.5                 # mm, one axial slice at z = 0
    xx, yy = np.meshgrid(c, c)
    pts = np.stack([xx, yy, np.zeros_like(xx)], -1).reshape(-1, 3)
    rng = np.random.default_rng(0)
    hu = synth.phantom_hu(pts).reshape(512, 512) + rng.normal(0, 10, (512, 512))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = 512, 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.asarray(hu, dtype=np.int16).tobytes()
    ds.compress(pydicom.uid.UID(ts))
    return ds


def mutate(frame: bytes, rng: random.Random) -> bytes:
    b = bytearray(frame)
    r = rng.random()
    if r < 0.5:
        for _ in range(rng.randint(1, 8)):
            p = rng.randrange(min(len(b), 400)) if rng.random() < 0.7 else rng.randrange(len(b))
            b[p] = rng.randrange(256)
    elif r < 0.8:
        p = rng.randrange(min(len(b), 300))
        b[p:p + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\x80\x00", b"\x00\x01"])
    else:
        b = b[:rng.randrange(len(b))]
    return bytes(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=4000, help="inputs per syntax")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    ap.add_argument("--out", type=Path, default=Path("bench-data/fuzz-codecs"))
    a = ap.parse_args(argv)
    from pydicom.encaps import encapsulate, generate_frames

    from pocketpacs.images.decodeworker import _decode_ds

    warnings.simplefilter("ignore")
    total_bad = 0
    print(f"{'syntax':<20} {'inputs':>7} {'decoded':>8} {'errors':>7} {'crashes':>8} "
          f"{'hangs':>6} {'slowest':>9} {'child RSS':>10}")
    for name, ts in SYNTAXES.items():
        ds = template(ts)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        rng = random.Random(f"{a.seed}-{ts}")
        counts = {"ok": 0, "error": 0, "crash": 0, "hang": 0}
        slowest = 0.0
        for i in range(a.count):
            data = mutate(frame, rng)
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:  # child: decode and report by exit status
                signal.alarm(max(1, int(a.timeout)))
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)   # decoders' own warnings
                try:
                    ds.PixelData = encapsulate([data])
                    _decode_ds(ds, None, "")
                    os._exit(0)
                except BaseException:  # as the workers: a Rust panic in a plugin is an error
                    os._exit(3)
            _, status = os.waitpid(pid, 0)
            slowest = max(slowest, time.perf_counter() - t0)
            if os.WIFSIGNALED(status):
                kind = "hang" if os.WTERMSIG(status) == signal.SIGALRM else "crash"
                counts[kind] += 1
                a.out.mkdir(parents=True, exist_ok=True)
                (a.out / f"{kind}-{ts}-{a.seed}-{i}.bin").write_bytes(data)
            else:
                counts["ok" if os.WEXITSTATUS(status) == 0 else "error"] += 1
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        total_bad += counts["crash"] + counts["hang"]
        print(f"{name:<20} {a.count:>7} {counts['ok']:>8} {counts['error']:>7} {counts['crash']:>8} "
              f"{counts['hang']:>6} {slowest * 1e3:>7.0f} ms {rss:>7.0f} MB", flush=True)
    print(f"crashes + hangs: {total_bad}")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
