"""Command line of the generator: ``python -m pocketpacs.synth OUT [--preset NAME] [options]``.

:func:`main` takes a preset (if given) and the explicit options over it,
writes the archive with progress on stderr and prints how many files and
MiB it wrote, and how fast.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .options import PRESETS, count_files
from .writer import generate


def _size(text: str) -> tuple[int, int]:
    try:
        r, _, c = text.lower().partition("x")
        return int(r), int(c or r)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size (ROWSxCOLS): {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pocketpacs.synth",
        description="Write a deterministic synthetic DICOM archive (fake patients) and manifest.json.",
        epilog="Presets: " + "; ".join(
            f"{k}: {count_files(**v)} files of {v['rows']}x{v['cols']}" for k, v in PRESETS.items())
        + ".  Explicit options override the preset.")
    p.add_argument("out", help="output folder")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named option set")
    p.add_argument("--patients", type=int)
    p.add_argument("--studies", type=int, help="studies per patient")
    p.add_argument("--series", type=int, help="single-frame series per study")
    p.add_argument("--slices", type=int, help="slices per series (frames per enhanced series)")
    p.add_argument("--size", type=_size, metavar="ROWSxCOLS", help="image size, e.g. 512x512")
    p.add_argument("--rows", type=int)
    p.add_argument("--cols", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--compressed-fraction", type=float, help="share of compressed series (0..1)")
    p.add_argument("--implicit-fraction", type=float, help="share of implicit VR series (0..1)")
    p.add_argument("--enhanced", type=int, help="number of enhanced multi-frame series")
    p.add_argument("--junk", type=int, help="number of junk files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--flat", dest="nested", action="store_false", default=None,
                   help="all files directly in OUT")
    g.add_argument("--nested", dest="nested", action="store_true", default=None,
                   help="files in two levels of folders (default)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad options.
    """
    parser = _parser()
    a = parser.parse_args(argv)
    opts: dict[str, Any] = dict(PRESETS[a.preset]) if a.preset else {}
    if a.size:
        opts["rows"], opts["cols"] = a.size
    for k in ("patients", "studies", "series", "slices", "rows", "cols", "seed",
              "compressed_fraction", "implicit_fraction", "enhanced", "junk", "nested"):
        v = getattr(a, k)
        if v is not None:
            opts[k] = v
    try:
        total = count_files(**opts)
    except ValueError as e:
        parser.error(str(e))
    last = [0.0]
    t0 = time.perf_counter()

    def progress(done: int, n: int) -> None:
        now = time.perf_counter()
        if not a.quiet and (now - last[0] >= 1.0 or done == n):
            last[0] = now
            rate = done / max(now - t0, 1e-9)
            print(f"\r  {done}/{n} files ({rate:.0f} files/s)", end="", file=sys.stderr, flush=True)

    if not a.quiet:
        print(f"writing {total} files to {a.out} ...", file=sys.stderr)
    manifest = generate(a.out, workers=max(1, a.workers), progress=progress, **opts)
    dt = time.perf_counter() - t0
    if not a.quiet:
        print(file=sys.stderr)
    nbytes = 0
    for s in manifest["series"]:
        for rel in s["files"]:
            nbytes += os.path.getsize(os.path.join(a.out, rel))
    n = manifest["counts"]["files"]
    print(f"wrote {n} files ({manifest['counts']['series']} series, {nbytes / 2**20:.1f} MiB of DICOM) "
          f"to {a.out} in {dt:.2f} s: {n / dt:.0f} files/s, {nbytes / 2**20 / dt:.1f} MiB/s")
    return 0
