"""``pocketpacs bench``: run the benchmark suite (``pocketpacs.benchmarks``) from the installed package.

The options are those of :mod:`pocketpacs.benchmarks.runner`; the runner and
the benchmarks are imported only when the command runs, so ``pocketpacs
--help`` and the other commands do not load them.  The benchmarks stand
above the core (they drive it, the UI server and peers like GDCM); this is
the one place the core reaches them (tests/test_architecture.py names it).
"""
from __future__ import annotations

import argparse

from .framework import command


def _setup(p: argparse.ArgumentParser) -> None:
    from ..benchmarks.options import setup  # argparse only: the suite loads when the command runs

    setup(p)


@command("bench", "run the benchmarks (pocketpacs bench --quick: the whole suite in a few minutes)", _setup)
def cmd_bench(args: argparse.Namespace) -> int:
    from ..benchmarks.runner import run

    return run(args)
