"""Options of the generator: defaults, named presets, validation and the file count.

:func:`_options` fills in the defaults and checks every option;
:func:`count_files` says how many files :func:`~pocketpacs.synth.generate`
writes for a set of options, without planning anything.  :data:`PRESETS`
are the named option sets of the command line (``demo`` is the app's demo
archive).
"""
from __future__ import annotations

from typing import Any

from .plan import JUNK_KINDS

#: Named option sets for the command line (explicit options override them).
PRESETS: dict[str, dict[str, Any]] = {
    # a small CT + MR archive for the app's demo: 2 patients, 361 files
    "demo": dict(patients=2, studies=1, series=3, slices=60, rows=128, cols=128,
                 compressed_fraction=0.5, implicit_fraction=0.17, enhanced=1, junk=0),
    # 5,000 files of 512x512
    "bench": dict(patients=10, studies=1, series=5, slices=100, rows=512, cols=512,
                  compressed_fraction=0.2, implicit_fraction=0.2, enhanced=0, junk=0),
    # 100,000 files of 64x64
    "scale": dict(patients=200, studies=2, series=5, slices=50, rows=64, cols=64,
                  compressed_fraction=0.2, implicit_fraction=0.2, enhanced=0, junk=0),
}

_DEFAULTS: dict[str, Any] = dict(
    patients=2, studies=1, series=2, slices=20, rows=64, cols=64, seed=0,
    compressed_fraction=0.25, implicit_fraction=0.25, enhanced=1, junk=5, nested=True)


def _options(**kw: Any) -> dict[str, Any]:
    opts = dict(_DEFAULTS)
    opts.update(kw)
    for k in ("patients", "studies", "series", "slices", "rows", "cols", "seed", "enhanced", "junk"):
        opts[k] = int(opts[k])
    for k in ("compressed_fraction", "implicit_fraction"):
        opts[k] = float(opts[k])
        if not 0.0 <= opts[k] <= 1.0:
            raise ValueError(f"{k} must lie in [0, 1]")
    opts["nested"] = bool(opts["nested"])
    if min(opts["patients"], opts["studies"], opts["slices"]) < 1 or opts["series"] < 0:
        raise ValueError("patients, studies and slices must be >= 1, series >= 0")
    if not (1 <= opts["rows"] <= 4096 and 1 <= opts["cols"] <= 4096):
        raise ValueError("rows and cols must lie in 1..4096")
    if opts["enhanced"] < 0 or opts["junk"] < 0 or opts["seed"] < 0:
        raise ValueError("enhanced, junk and seed must be >= 0")
    if opts["junk"] and opts["series"] == 0 and any(
            JUNK_KINDS[j % len(JUNK_KINDS)].startswith("truncated") for j in range(opts["junk"])):
        raise ValueError("truncated-DICOM junk needs series >= 1")
    return opts


def count_files(**options: Any) -> int:
    """Number of files :func:`generate` writes for *options* (manifest not counted).

    Parameters
    ----------
    **options
        The keyword options of :func:`generate` (defaults for those left out).

    Returns
    -------
    int
    """
    o = _options(**options)
    return o["patients"] * o["studies"] * o["series"] * o["slices"] + o["enhanced"] + o["junk"]
