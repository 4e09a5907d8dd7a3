"""What a benchmark hands back to the runner: rows of figures (or the reason there is none).

A benchmark module's ``run(ctx)`` returns a list of :class:`Row`: one
measured quantity by one method, as the median of its repeats with the spread
(min/max), its ratios against the peers or the floor, and its target -- or,
when it could not be measured (a peer not installed, data missing, no
browser), ``skipped_reason`` and no figure at all.  :class:`Context` gives
the benchmark its size (``--quick`` or full), its repeats, the data cache
(:meth:`Context.cached`) and a place for curves (memory over time) that the
plots draw.  :func:`RssSampler` and :func:`run_sampled` record memory over
time of this process or of a child.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure of a benchmark (or the stated reason it has none).

    Attributes
    ----------
    what : str
        The measured quantity and its size, e.g. ``"header parse, 500 files 128x128"``.
    method : str
        Who does it: ``"PocketPACS parse"``, ``"GDCM Scanner"``, ``"read floor (first 8 KB)"``.
    unit : str
        Unit of ``value`` (``files/s``, ``GB/s``, ``ms``, ``s``, ``MB``, ``fps``,
        ``x final array``).
    value : float or None
        Median of the repeats; None when not measured.
    low, high : float or None
        The spread of the repeats (min and max, or the range named in ``spread``).
    repeats : int
        Number of measurements behind ``value``.
    spread : str
        What ``low``/``high`` are: ``"min-max"`` (default) or e.g. ``"p25-p75"``.
    higher_is_better : bool
        Direction of ``value`` (throughput: True; latency, memory: False).
    ratios : dict
        ``{reference method: ratio}``, ``value`` against a peer or the floor,
        written so that above 1 means PocketPACS does better.
    target : str
        The target of the issue, as text (``">= 8x GDCM Scanner"``); empty when none.
    met : bool or None
        Whether the target is met; None without a target.
    skipped_reason : str or None
        Why there is no figure.  A row with a reason never has a value.
    x : float or None
        The scaling variable of the row (file count, processes), for the plots.
    x_label : str
        Name of ``x``.
    line : str
        The scaling line the row belongs to in the plots (rows of one line
        share it; default: the method).
    extra : dict
        Further figures of the row (``p95``, ``hits``, ...), shown in the table.
    headline : bool
        Goes into the README's performance table (:mod:`.readme_table`).
    """

    what: str
    method: str
    unit: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    repeats: int = 0
    spread: str = "min-max"
    higher_is_better: bool = True
    ratios: dict[str, float] = field(default_factory=dict)
    target: str = ""
    met: bool | None = None
    skipped_reason: str | None = None
    x: float | None = None
    x_label: str = ""
    line: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    headline: bool = False

    def __post_init__(self) -> None:
        if self.value is not None:  # one figure: its own spread
            self.low = self.value if self.low is None else self.low
            self.high = self.value if self.high is None else self.high
            self.repeats = max(1, self.repeats)

    @property
    def measured(self) -> bool:
        """True when the row carries a figure."""
        return self.skipped_reason is None and self.value is not None

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (no figure when skipped)."""
        d = asdict(self)
        if not self.measured:
            for k in ("value", "low", "high", "ratios", "met"):
                d.pop(k, None)
            d["repeats"] = 0
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Row:
        """Inverse of :meth:`to_json` (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def fmt(v: float | None) -> str:
    """A figure with about three significant digits."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def skipped(what: str, method: str, unit: str, reason: str, **kw: Any) -> Row:
    """A row without a figure, saying why.

    Parameters
    ----------
    what, method, unit : str
        As in :class:`Row`.
    reason : str
        Why it was not measured (``"python-gdcm not installed: pip install -e '.[bench]'"``).
    **kw
        Other :class:`Row` fields (``higher_is_better``, ``target``).
    """
    return Row(what, method, unit, skipped_reason=reason, **kw)


def from_samples(what: str, method: str, unit: str, samples: Sequence[float], *,
                 higher_is_better: bool = True, **kw: Any) -> Row:
    """A row from the repeated measurements of one figure: median and min/max.

    Parameters
    ----------
    what, method, unit : str
        As in :class:`Row`.
    samples : sequence of float
        The figure of every repeat, in ``unit``.
    higher_is_better : bool
    **kw
        Other :class:`Row` fields.
    """
    s = [float(v) for v in samples]
    if not s:
        raise ValueError(f"{what} / {method}: no samples")
    return Row(what, method, unit, value=statistics.median(s), low=min(s), high=max(s), repeats=len(s),
               higher_is_better=higher_is_better, **kw)


def rates(count: float, seconds: Sequence[float], scale: float = 1.0) -> list[float]:
    """``count / t * scale`` for every timing *t* (files/s, GB/s from seconds)."""
    return [count / t * scale for t in seconds if t > 0]


def ratio(ours: Row, ref: Row) -> float | None:
    """``ours`` against ``ref`` (above 1: ours is better), None when either is unmeasured."""
    if not (ours.measured and ref.measured) or not ref.value or not ours.value:
        return None
    return ours.value / ref.value if ours.higher_is_better else ref.value / ours.value


def add_ratio(ours: Row, ref: Row, name: str | None = None) -> None:
    """Set ``ours.ratios[name or ref.method]`` when both rows are measured."""
    r = ratio(ours, ref)
    if r is not None:
        ours.ratios[name or ref.method] = r


def timed(fn: Callable[[], Any], repeats: int, warm: int = 1) -> list[float]:
    """Seconds of each of *repeats* calls of *fn*, after *warm* untimed calls."""
    for _ in range(warm):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# ---- memory over time ------------------------------------------------------------------

def _rss_mb(pid: int | str = "self") -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class RssSampler:
    """Record the RSS of a process (this one by default) every *interval* seconds.

    ``with RssSampler() as s: work()`` then ``s.t`` (seconds from the start)
    and ``s.mb``.  Linux only (``/proc``); elsewhere the lists stay empty.
    """

    def __init__(self, pid: int | str = "self", interval: float = 0.02):
        self.pid, self.interval = pid, interval
        self.t: list[float] = []
        self.mb: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.perf_counter()
        while True:
            v = _rss_mb(self.pid)
            if v is not None:
                self.t.append(round(time.perf_counter() - t0, 4))
                self.mb.append(round(v, 2))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_sampled(cmd: list[str], timeout: float = 1800, env: dict[str, str] | None = None
                ) -> tuple[subprocess.CompletedProcess, RssSampler]:
    """Run *cmd* in a child process, recording its RSS over time.

    Returns
    -------
    (CompletedProcess, RssSampler)
        The child's outcome (stdout/stderr as text) and its memory curve.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with RssSampler(proc.pid) as s:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"{' '.join(cmd[:3])}... ran past {timeout:.0f} s") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), s


# ---- the context a benchmark runs in ---------------------------------------------------

def _code_version(sources: Sequence[Any]) -> str:
    """Package version plus a hash of the sources that decide generated data (files or functions)."""
    import inspect

    import pocketpacs

    h = hashlib.sha256(pocketpacs.__version__.encode())
    for src in sources:
        try:
            h.update(inspect.getsource(src).encode() if callable(src) else Path(src).read_bytes())
        except (OSError, TypeError):
            h.update(repr(src).encode())
    return h.hexdigest()[:16]


@dataclass
class Context:
    """What a benchmark's ``run`` gets from the runner.

    Attributes
    ----------
    quick : bool
        Reduced sizes (``--quick``): the whole suite in a few minutes on 2 cores.
    cache : Path
        Root of the generated-data cache (``~/.cache/pocketpacs/bench``).
    data : Path or None
        ``--data``: the user's own DICOM folder, for the benchmarks that take one.
    repeats : int or None
        ``--repeats``: overrides each benchmark's repeat count.
    scale : int or None
        ``--scale N``: the import benchmark's N-file run (a million instances) instead of its usual rows.
    curves : dict
        Filled by :meth:`curve` during a run; the runner stores them per benchmark.
    """

    quick: bool = False
    cache: Path = field(default_factory=lambda: default_cache())
    data: Path | None = None
    repeats: int | None = None
    scale: int | None = None
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)

    def pick(self, quick: Any, full: Any) -> Any:
        """*quick* under ``--quick``, else *full*."""
        return quick if self.quick else full

    def reps(self, quick: int, full: int) -> int:
        """The repeat count: ``--repeats`` if given, else *quick* or *full*."""
        return max(1, self.repeats) if self.repeats else self.pick(quick, full)

    def log(self, msg: str) -> None:
        """A progress line on stderr (the tables go to stdout)."""
        print(f"  {msg}", file=sys.stderr, flush=True)

    def curve(self, name: str, t: Sequence[float], values: Sequence[float], *, x_label: str = "s",
              y_label: str = "RSS (MB)") -> None:
        """Keep a curve (e.g. memory over time) for the JSON and the plots."""
        if len(t):
            self.curves[name] = {"x": list(t), "y": list(values), "x_label": x_label, "y_label": y_label}

    def _drop_stale(self, name: str, params: dict[str, Any], key: str) -> None:
        for folder in _stale(self.cache, name, params, key):
            self.log(f"removing {folder}: made by another version of the code")
            shutil.rmtree(folder, ignore_errors=True)
            folder.with_name(folder.name + ".ready").unlink(missing_ok=True)

    def cached(self, name: str, params: dict[str, Any], make: Callable[[Path], Any],
               sources: Sequence[Any] = ()) -> Path:
        """A data folder made by ``make(folder)`` once, reused while still valid.

        The folder is named by *name* and a key of *params* and the code
        version (the package version plus the sources of ``pocketpacs.synth``
        and *sources*) and the archive schema version: different sizes get
        different folders, a change of the generator makes new data, and a
        cached archive never has an older schema than the code opening it.  A folder is valid once ``make``
        returned (a marker file); an interrupted one is made again.

        Parameters
        ----------
        name : str
            Short name of the data set (``"parse"``).
        params : dict
            Every parameter of the generator (JSON-serialisable).
        make : callable
            Writes the data into the folder it is given.
        sources : sequence of Path or function
            Further files or functions whose change invalidates the data
            (the benchmark's generator function).

        Returns
        -------
        Path
        """
        from pocketpacs import synth
        from pocketpacs.archive.store import SCHEMA_VERSION
        from pocketpacs.paths import ensure_private_dir, write_private_file

        synth_files = sorted(Path(synth.__file__).parent.glob("*.py"))
        version = _code_version([*synth_files, *sources])
        key = hashlib.sha256(json.dumps({"name": name, "params": params, "code": version,
                                         "schema": SCHEMA_VERSION},
                                        sort_keys=True).encode()).hexdigest()[:16]
        folder = self.cache / f"{name}-{key}"
        marker = self.cache / f"{name}-{key}.ready"  # beside the folder: an import of it must not see it
        if marker.is_file():
            return folder
        ensure_private_dir(self.cache)
        self._drop_stale(name, params, key)
        if folder.exists():
            shutil.rmtree(folder)
        ensure_private_dir(folder)
        t = time.perf_counter()
        self.log(f"generating {name} data ({json.dumps(params)}) in {folder} ...")
        make(folder)
        write_private_file(marker, json.dumps({"params": params, "code": version}).encode(), sync=False)
        self.log(f"  generated in {time.perf_counter() - t:.1f} s")
        return folder


def _stale(cache: Path, name: str, params: dict[str, Any], key: str) -> list[Path]:
    """Folders of *name* with the same *params* made by another code version (replaced by *key*)."""
    out = []
    for marker in cache.glob(f"{name}-*.ready"):
        folder = marker.with_suffix("")
        if folder.name == f"{name}-{key}" or len(folder.name) != len(name) + 17:
            continue
        try:
            if json.loads(marker.read_text()).get("params") == params:
                out.append(folder)
        except (OSError, ValueError):
            continue
    return out


def default_cache() -> Path:
    """``$POCKETPACS_BENCH_CACHE`` or the user cache folder's ``bench`` (``~/.cache/pocketpacs/bench``)."""
    env = os.environ.get("POCKETPACS_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pocketpacs", appauthor=False)) / "bench"


def peer_missing(module: str, dist: str) -> str | None:
    """None when *module* imports, else the reason to give in a row."""
    import importlib

    try:
        importlib.import_module(module)
        return None
    except ImportError as e:
        return f"{dist} not installed ({e}): pip install -e '.[bench]'"
