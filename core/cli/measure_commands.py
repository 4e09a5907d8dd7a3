"""The ``measurements`` command: the measurements kept with a series.

``pocketpacs measurements SERIES_UID`` lists the distances, angles and ROIs
drawn on a series in the viewer and kept in the archive
(:mod:`pocketpacs.archive.annotations`), one line each; ``--json`` prints
``{"series_uid", "measurements": [...]}`` (points in patient coordinates,
mm, or px for an uncalibrated image) and ``--csv`` one row per measurement
(columns :data:`~pocketpacs.archive.annotations.CSV_COLUMNS`).  The series
is given by its Series Instance UID or its archive key.
"""
from __future__ import annotations

import argparse
import sys

from .framework import EXIT_OK, EXIT_USAGE, _open, command
from .output import _err, _say


def _setup_measurements(p: argparse.ArgumentParser) -> None:
    p.add_argument("series", metavar="SERIES_UID", help="Series Instance UID (or archive key) of the series")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV, one row per measurement")


def _line(i: int, row: dict) -> str:
    where = f"slice {row['slice'] + 1}" if row["slice"] is not None else (row["view"] or "")
    if row["type"] in ("rect", "ellipse"):
        f = lambda k, d=1: "-" if row[k] is None else f"{row[k]:.{d}f}"  # noqa: E731
        return (f"{i}  {row['type']:<8} mean {f('mean')}  SD {f('sd')}  min {f('min', 0)}  max {f('max', 0)}  "
                f"area {f('area')} {row['area_unit'].replace('2', '²')}  {where}")
    unit = "°" if row["value_unit"] == "deg" else f" {row['value_unit']}"
    return f"{i}  {row['type']:<8} {row['value']:.1f}{unit}  {where}"


@command("measurements", "the measurements kept with a series (text, --json or --csv)", _setup_measurements)
def cmd_measurements(args: argparse.Namespace) -> int:
    from ..archive import annotations

    with _open(args, readonly=True) as ar:
        try:
            se = ar.get_series(args.series)
            items = ar.measurements(se)
        except KeyError:
            _err(f"{args.series}: no series with this Series Instance UID or key in the archive")
            return EXIT_USAGE
    if args.json:
        sys.stdout.write(annotations.to_json(se.uid, items))
    elif args.csv:
        sys.stdout.write(annotations.to_csv(items))
    elif not items:
        _say("no measurements kept with this series")
    else:
        for i, row in enumerate(annotations.to_rows(items), 1):
            _say(_line(i, row))
    sys.stdout.flush()
    return EXIT_OK
