"""The benchmark runner behind ``pocketpacs bench`` and ``python -m benchmarks``.

Runs the benchmarks of :data:`pocketpacs.benchmarks.REGISTRY` (all, or those
named), each in turn with a :class:`~.results.Context`, prints one table per
benchmark as it finishes, and writes the run as JSON (``--json``) with the
machine, the code and the load average before and after.  ``--compare``
shows the change against an earlier JSON, ``--plots`` draws one PNG per
benchmark.  Exit status: 0 when every benchmark run measured something, 1
when one measured nothing (every row has a reason instead of a figure, or it
failed), 2 on a usage error (an unknown name, an unreadable ``--compare``
file).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import sys
import time
import traceback
from types import ModuleType
from typing import Any

from . import REGISTRY
from .options import setup
from .results import Context, Row, fmt

SCHEMA = "pocketpacs-bench/1"
EXIT_OK, EXIT_UNMEASURED, EXIT_USAGE = 0, 1, 2


def load(module: str) -> ModuleType:
    """Import the benchmark module *module* of this package."""
    return importlib.import_module(f"{__package__}.{module}")


def benchmarks() -> dict[str, ModuleType]:
    """``{NAME: module}`` of the registry, in run order.

    A module that cannot be imported, or lacks ``run``, still gets its entry
    (named after the module): running it fails with the reason, and the
    other benchmarks run.
    """
    out: dict[str, Any] = {}
    for m in REGISTRY:
        try:
            mod = load(m)
            if not callable(getattr(mod, "run", None)):
                raise AttributeError(f"{m} has no run(ctx) function")
        except Exception as e:
            mod = _Broken(m, e)
        out[getattr(mod, "NAME", m.removeprefix("bench_"))] = mod
    return out


class _Broken:
    """Stands in for a benchmark module that cannot be loaded: running it raises why."""

    def __init__(self, module: str, error: Exception):
        self.__doc__ = f"(cannot be loaded: {type(error).__name__}: {error})"
        self.NAME = module.removeprefix("bench_")
        self._error = error

    def run(self, ctx: Context) -> list[Row]:
        raise RuntimeError(f"the module cannot be loaded: {type(self._error).__name__}: {self._error}")


def describe(mod: ModuleType) -> str:
    """First line of the module's docstring."""
    return (mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else ""


# ---- formatting ----------------------------------------------------------------------

def row_cells(r: Row) -> list[str]:
    """The table cells of a row: what, method, value, spread, ratios, target."""
    if not r.measured:
        return [r.what, r.method, "not measured", "", r.skipped_reason or "", r.target]
    value = f"{fmt(r.value)} {r.unit}"
    spread = (f"{fmt(r.low)}-{fmt(r.high)} ({r.spread}, n={r.repeats})" if r.repeats > 1
              else "1 run")
    ratios = "; ".join(f"{fmt(v)}x {k}" for k, v in r.ratios.items())
    extra = ", ".join(f"{k} {fmt(v) if isinstance(v, float) else v}" for k, v in r.extra.items())
    if extra:
        ratios = f"{ratios}; {extra}" if ratios else extra
    target = r.target + ("" if r.met is None else (" PASS" if r.met else " MISS")) if r.target else ""
    return [r.what, r.method, value, spread, ratios, target]


def table(rows: list[Row]) -> str:
    """Rows as an aligned text table."""
    head = ["what", "method", "median", "spread", "vs peer/floor (or reason)", "target"]
    cells = [head] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    widths[4] = min(widths[4], 70)
    lines = []
    for c in cells:
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def status_of(rows: list[Row]) -> str:
    """``measured`` (every row), ``partial`` (some), ``skipped`` (none)."""
    n = sum(r.measured for r in rows)
    if rows and n == len(rows):
        return "measured"
    return "partial" if n else "skipped"


# ---- one run ---------------------------------------------------------------------------

def run_one(name: str, mod: ModuleType, ctx: Context) -> dict[str, Any]:
    """Run one benchmark; its JSON entry (rows, curves, status, seconds, load)."""
    from .machine import load_average

    ctx.curves = {}
    print(f"\n== {name}: {describe(mod)}" + (" (quick)" if ctx.quick else ""), flush=True)
    load0 = load_average()
    t = time.perf_counter()
    error = None
    try:
        rows = list(mod.run(ctx))
        status = status_of(rows)
        if not rows:
            error = "the benchmark returned no rows"
            status = "failed"
    except KeyboardInterrupt:
        raise
    except Exception as e:
        rows = []
        error = f"{type(e).__name__}: {e}"
        status = "failed"
        print(f"{name} failed: {error}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    seconds = time.perf_counter() - t
    if rows:
        print(table(rows))
    if error:
        print(f"  FAILED: {error}")
    elif status == "skipped":
        print("  nothing measured (reasons above)")
    print(f"  [{status}, {seconds:.1f} s]", flush=True)
    return {"status": status, "doc": describe(mod), "seconds": round(seconds, 2), "error": error,
            "load_before": load0, "load_after": load_average(),
            "rows": [r.to_json() for r in rows], "curves": ctx.curves}


def parser() -> argparse.ArgumentParser:
    """The arguments of ``pocketpacs bench`` (also used by :mod:`pocketpacs.cli.bench_command`)."""
    ap = argparse.ArgumentParser(prog="pocketpacs bench", description=__doc__.split("\n\n")[0])
    setup(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks *args* ask for; the exit status."""
    from pocketpacs.process import prefer_passive_waits

    from .machine import code, load_average, machine

    # as ``pocketpacs`` sets it for its commands (and for this one's children): measured
    # the same whether the suite starts as ``pocketpacs bench`` or ``python -m benchmarks``
    prefer_passive_waits()

    table_ = benchmarks()
    if args.list:
        for n, mod in table_.items():
            print(f"{n:10s} {describe(mod)}")
        return EXIT_OK
    unknown = [n for n in args.names if n not in table_]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(table_)}", file=sys.stderr)
        return EXIT_USAGE
    old = None
    if args.compare:
        from .compare import load_run

        try:
            old = load_run(args.compare)
        except ValueError as e:
            print(str(e), file=sys.stderr)
            return EXIT_USAGE
    if args.repeats is not None and args.repeats < 1:
        print("--repeats must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    if args.json is not None and not args.json.absolute().parent.is_dir():
        print(f"--json {args.json}: its folder does not exist", file=sys.stderr)
        return EXIT_USAGE
    if args.data is not None and not args.data.is_dir():
        print(f"--data {args.data}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    ctx = Context(quick=args.quick, data=args.data, repeats=args.repeats)
    ctx.scale = getattr(args, "scale", None)
    if args.cache:
        ctx.cache = args.cache
    names = args.names or list(table_)
    result: dict[str, Any] = {
        "schema": SCHEMA, "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "pocketpacs bench" + (" --quick" if args.quick else "") + "".join(f" {n}" for n in args.names),
        "quick": args.quick, "requested": names, "machine": machine(), "code": code(),
        "load_before": load_average(), "benchmarks": {}}
    m = result["machine"]
    print(f"PocketPACS benchmarks{' (quick)' if args.quick else ''}: {m['cpu']}, {m['cores']} cores, "
          f"{m['memory_gb']} GB, Python {m['python']}; load average {result['load_before']}; "
          f"commit {result['code']['commit'] or 'none (version ' + result['code']['version'] + ')'}; "
          f"data cache {ctx.cache}", flush=True)
    try:
        for n in names:
            result["benchmarks"][n] = run_one(n, table_[n], ctx)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        result["interrupted"] = True
    result["load_after"] = load_average()
    result["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if args.json:
        from pocketpacs.paths import write_private_file

        write_private_file(args.json, (json.dumps(result, indent=1) + "\n").encode(), sync=False)
        print(f"\nresults written to {args.json}")
    if old is not None:
        from .compare import compare_text

        print("\n" + compare_text(old, result, args.compare))
    if args.plots:
        from .plots import write_plots

        for line in write_plots(result, args.plots):
            print(line)
    empty = [n for n, b in result["benchmarks"].items() if b["status"] in ("skipped", "failed")]
    print(f"\nload average before {result['load_before']}, after {result['load_after']} "
          f"on {m['cores']} cores")
    if result.get("interrupted"):
        return 130
    if empty:
        print(f"measured nothing: {', '.join(empty)} (reasons above)", file=sys.stderr)
        return EXIT_UNMEASURED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks [options] [NAME...]``; the exit status."""
    return run(parser().parse_args(argv))
