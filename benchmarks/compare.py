"""``pocketpacs bench --compare OLD.json``: the change of every figure against an earlier run.

Rows are matched by benchmark, quantity and method (sizes are part of the
quantity, so a ``--quick`` run only matches a ``--quick`` run).  A change is
flagged when the two runs' spreads (min-max of their repeats) do not
overlap: a move beyond the run-to-run variation each run measured.  A figure
from one run has no spread, so its change is shown but never flagged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .results import Row, fmt


def load_run(path: Path) -> dict[str, Any]:
    """Read a ``--json`` file of an earlier run.

    Raises
    ------
    ValueError
        The file cannot be read or is not a benchmark run (the message names the file and why).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("pocketpacs-bench/"):
        raise ValueError(f"{path}: not a `pocketpacs bench --json` file (no pocketpacs-bench schema)")
    return data


def _rows(run: dict[str, Any]) -> dict[tuple[str, str, str], Row]:
    out = {}
    for name, b in run.get("benchmarks", {}).items():
        for d in b.get("rows", []):
            r = Row.from_json(d)
            out[(name, r.what, r.method)] = r
    return out


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per row of *new*: old and new value, change, and whether it is beyond the spread.

    Returns
    -------
    list of dict
        ``{"benchmark", "what", "method", "unit", "old", "new", "change" (fraction or None),
        "beyond_spread" (bool), "better" (bool or None), "note"}``.
    """
    before = _rows(old)
    out = []
    for key, r in _rows(new).items():
        o = before.get(key)
        e: dict[str, Any] = {"benchmark": key[0], "what": key[1], "method": key[2], "unit": r.unit,
                             "old": o.value if o and o.measured else None,
                             "new": r.value if r.measured else None, "change": None,
                             "beyond_spread": False, "better": None, "note": ""}
        if o is None:
            e["note"] = "not in the earlier run"
        elif not (o.measured and r.measured):
            e["note"] = "not measured " + ("now" if not r.measured else "then")
        else:
            if o.value:
                e["change"] = r.value / o.value - 1.0
            e["better"] = (r.value > o.value) == r.higher_is_better if r.value != o.value else None
            if min(o.repeats, r.repeats) < 2:
                e["note"] = "one run: no spread to judge by"
            else:
                e["beyond_spread"] = bool(r.low > o.high or r.high < o.low)
        out.append(e)
    return out


def compare_text(old: dict[str, Any], new: dict[str, Any], old_name: object = "earlier run") -> str:
    """:func:`compare` as a table; flagged rows are marked ``<<`` (worse) or ``>>`` (better)."""
    entries = compare(old, new)
    oc, nc = old.get("code", {}), new.get("code", {})
    lines = [f"change against {old_name} (commit {str(oc.get('commit'))[:10]}, {old.get('started')}, load average "
             f"{old.get('load_before')} -> {old.get('load_after')}; now {str(nc.get('commit'))[:10]}, load average "
             f"{new.get('load_before')} -> {new.get('load_after')}); flagged: outside the spread of both runs"]
    if old.get("machine", {}).get("cpu") != new.get("machine", {}).get("cpu"):
        lines.append(f"  other machine: {old.get('machine', {}).get('cpu')} then, "
                     f"{new.get('machine', {}).get('cpu')} now")
    flagged = 0
    for e in entries:
        if e["change"] is None:
            ch = e["note"]
        else:
            ch = f"{e['change'] * 100:+.1f}%"
            if e["note"]:
                ch += f" ({e['note']})"
        mark = ""
        if e["beyond_spread"]:
            flagged += 1
            mark = ">> better" if e["better"] else "<< worse"
        lines.append(f"  {e['benchmark']:8s} {e['what'][:44]:44s} {e['method'][:34]:34s} "
                     f"{fmt(e['old']):>9s} -> {fmt(e['new']):>9s} {e['unit']:14s} {ch:28s} {mark}".rstrip())
    lines.append(f"  {flagged} of {len(entries)} rows moved beyond the measured spread")
    return "\n".join(lines)
