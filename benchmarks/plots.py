"""``pocketpacs bench --plots DIR``: one PNG per benchmark, drawn with matplotlib.

Each picture has up to three panels: the figures by method (the unit most
rows share, with the min-max spread as error bars), the scaling rows
(throughput against file count or processes, where the benchmark measured
at least two points) and the curves it recorded (memory over time of the import and of the
volume load).  Without matplotlib (``pip install -e '.[bench]'``) nothing
is drawn and the runner says so.
"""
from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .results import Row


#: Characters per line of a bar's label (a longer method or "what" is wrapped,
#: so that the labels do not push the bars out of the picture).
LABEL_WIDTH = 64


def _label(*parts: str) -> str:
    """The bar label of *parts* (method, then what), each wrapped at :data:`LABEL_WIDTH`."""
    return "\n".join("\n".join(textwrap.wrap(p, LABEL_WIDTH)) or p for p in parts)


def write_plots(run: dict[str, Any], folder: Path) -> list[str]:
    """Draw one PNG per benchmark of *run* into *folder*; lines saying what was written or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return [f"no plots: matplotlib is not installed ({e}): pip install -e '.[bench]'"]
    from pocketpacs.paths import ensure_private_dir

    ensure_private_dir(folder)
    out = []
    for name, b in run.get("benchmarks", {}).items():
        rows = [Row.from_json(d) for d in b.get("rows", [])]
        rows = [r for r in rows if r.measured]
        curves = b.get("curves") or {}
        if not rows and not curves:
            out.append(f"no plot for {name}: nothing measured")
            continue
        unit = Counter(r.unit for r in rows).most_common(1)[0][0] if rows else None
        bars = [r for r in rows if r.unit == unit]
        scaling: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for r in rows:
            if r.x is not None:
                scaling[(r.line or r.method, r.unit)].append(r)
        scaling = {k: v for k, v in scaling.items() if len({r.x for r in v}) > 1}  # a line needs two points
        panels = (["bars"] if bars else []) + (["scaling"] if scaling else []) + (["curves"] if curves else [])
        labels = [_label(r.method, r.what) if len({x.what for x in bars}) > 1 else _label(r.method) for r in bars]
        lines = sum(label.count("\n") + 1.6 for label in labels)   # a bar's lines, and the gap to the next
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), max(4.8, 1.4 + 0.14 * lines)),
                                 squeeze=False)
        for ax, kind in zip(axes[0], panels):
            if kind == "bars":
                vals = [r.value for r in bars]
                err = [[r.value - (r.low if r.low is not None else r.value) for r in bars],
                       [(r.high if r.high is not None else r.value) - r.value for r in bars]]
                ax.barh(range(len(bars)), vals, xerr=err, color="#4a7ab5", capsize=3)
                ax.set_yticks(range(len(bars)), labels, fontsize=7)
                ax.invert_yaxis()
                positive = [v for v in vals if v > 0]
                if positive and max(positive) / min(positive) > 50:
                    ax.set_xscale("log")
                better = "higher" if bars[0].higher_is_better else "lower"
                ax.set_xlabel(f"{unit} ({better} is better; bars: min-max)")
                ax.set_title(f"{name}: by method")
            elif kind == "scaling":
                for (method, u), rs in scaling.items():
                    rs = sorted(rs, key=lambda r: r.x)
                    ax.errorbar([r.x for r in rs], [r.value for r in rs],
                                yerr=[[r.value - r.low for r in rs], [r.high - r.value for r in rs]],
                                marker="o", capsize=3, label=f"{method} ({u})")
                ax.set_xlabel(next(iter(scaling.values()))[0].x_label or "x")
                ax.legend(fontsize=7)
                ax.set_title(f"{name}: scaling")
            else:
                for cname, c in curves.items():
                    ax.plot(c["x"], c["y"], label=cname)
                first = next(iter(curves.values()))
                ax.set_xlabel(first.get("x_label", "s"))
                ax.set_ylabel(first.get("y_label", ""))
                ax.legend(fontsize=7)
                ax.set_title(f"{name}: memory over time")
        m = run.get("machine", {})
        fig.suptitle(f"pocketpacs bench {name}{' --quick' if run.get('quick') else ''} - {m.get('cpu', '')}, "
                     f"{m.get('cores')} cores, commit {str(run.get('code', {}).get('commit'))[:10]}", fontsize=8)
        fig.tight_layout()
        path = Path(folder) / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        path.chmod(0o600)
        out.append(f"plot written: {path}")
    return out
