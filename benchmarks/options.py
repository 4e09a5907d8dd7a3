"""The command-line options of ``pocketpacs bench`` (and ``python -m benchmarks``), in one place.

Kept apart from the runner so that ``pocketpacs --help``, which builds every
command's parser, imports nothing of the suite but this.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def setup(ap: argparse.ArgumentParser) -> None:
    """Add the options of ``pocketpacs bench`` to *ap*."""
    ap.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all; see --list)")
    ap.add_argument("--quick", action="store_true", help="reduced sizes: the whole suite in a few minutes")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the results (with machine and commit) here")
    ap.add_argument("--compare", type=Path, metavar="FILE", help="show the change against an earlier --json file")
    ap.add_argument("--plots", type=Path, metavar="DIR", help="write one PNG per benchmark (needs matplotlib)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--repeats", type=int, metavar="N", help="repeats per figure (default: each benchmark's)")
    ap.add_argument("--data", type=Path, metavar="DIR",
                    help="your own DICOM folder for parse/import/memory instead of generated data")
    ap.add_argument("--cache", type=Path, metavar="DIR",
                    help="generated-data cache (default $POCKETPACS_BENCH_CACHE or ~/.cache/pocketpacs/bench)")
    ap.add_argument("--scale", type=int, metavar="N",
                    help="import: N small files (e.g. 1000000) against 100,000 of them, with search, size, check, verify")
