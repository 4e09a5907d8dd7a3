"""Write the README's performance table from one ``pocketpacs bench --json`` run.

Prints markdown between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``:
a line naming the machine, the commit and the load, then one table row per
headline figure (rows a benchmark marks ``headline``; the figures with a
ratio or a target when it marks none), with the command that measured it;
a figure that was not measured shows its reason.  With ``--plots DIR`` the
plots of that run are linked under the table.  ``--write README.md``
replaces the part between the markers in that file instead of printing.

Usage::

    python benchmarks/readme_table.py RUN.json [--plots docs/bench] [--write README.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _fmt(v: float) -> str:
    from pocketpacs.benchmarks.results import fmt

    return fmt(v)


def markdown(run: dict[str, Any], plots: str | None = None) -> str:
    """The table (markers included) for the run *run* (a ``--json`` file's content)."""
    from pocketpacs.benchmarks.results import Row

    m, c = run.get("machine", {}), run.get("code", {})
    quick = " --quick" if run.get("quick") else ""
    commit = (c.get("commit") or "")[:10] or f"version {c.get('version')}"
    lines = [BEGIN,
             f"Measured by `pocketpacs bench{quick} --json` on {m.get('cpu')}, {m.get('cores')} cores, "
             f"{m.get('memory_gb')} GB, {m.get('os')}, Python {m.get('python')}, at commit {commit} "
             f"({run.get('started')}); load average before {run.get('load_before')}, after "
             f"{run.get('load_after')}.  Medians; ranges are min-max of the repeats.",
             "",
             "| benchmark | what | method | figure (range) | vs peer / floor | target | command |",
             "|---|---|---|---|---|---|---|"]
    for name, b in run.get("benchmarks", {}).items():
        rows = [Row.from_json(d) for d in b.get("rows", [])]
        pick = [r for r in rows if r.headline] or [r for r in rows if r.ratios or r.target or not r.measured]
        cmd = f"`pocketpacs bench{quick} {name}`"
        if b.get("status") == "failed":
            lines.append(f"| {name} | | | failed: {b.get('error')} | | | {cmd} |")
        for r in pick:
            if r.measured:
                rng = f" ({_fmt(r.low)}-{_fmt(r.high)})" if r.repeats > 1 else " (1 run)"
                fig = f"{_fmt(r.value)} {r.unit}{rng}"
                ratios = "; ".join(f"{_fmt(v)}x {k}" for k, v in r.ratios.items())
                target = r.target + ("" if r.met is None else (" (met)" if r.met else " (missed)")) if r.target else ""
            else:
                fig, ratios, target = f"not measured: {r.skipped_reason}", "", r.target
            cells = [name, r.what, r.method, fig, ratios, target, cmd]
            lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    if plots:
        lines.append("")
        for name, b in run.get("benchmarks", {}).items():
            if b.get("status") in ("measured", "partial"):
                lines.append(f"![{name}]({plots.rstrip('/')}/{name}.png)")
    lines.append(END)
    return "\n".join(lines)


def replace_between_markers(text: str, table: str, where: str = "README") -> str:
    """*text* with the part between the markers replaced by *table* (markers must be there once)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{where}: needs exactly one {BEGIN} ... {END} pair")
    a, b = text.index(BEGIN), text.index(END) + len(END)
    return text[:a] + table + text[b:]


def main(argv: list[str] | None = None) -> int:
    """Print (or ``--write``) the table; the exit status (2: a file that cannot be used)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a `pocketpacs bench --json` file")
    ap.add_argument("--plots", help="folder (relative to the README) holding the run's PNGs, to link")
    ap.add_argument("--write", type=Path, metavar="README", help="replace the table between the markers in this file")
    a = ap.parse_args(argv)
    from pocketpacs.benchmarks.compare import load_run

    try:
        run = load_run(a.run)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    table = markdown(run, a.plots)
    if a.write is None:
        print(table)
        return 0
    try:
        new = replace_between_markers(a.write.read_text(encoding="utf-8"), table, str(a.write))
    except (OSError, ValueError) as e:
        print(f"{a.write}: {e}", file=sys.stderr)
        return 2
    a.write.write_text(new, encoding="utf-8")
    print(f"{a.write}: table replaced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
