"""The ``pocketpacs`` command line.

``pocketpacs [--archive PATH] COMMAND ...`` (``--archive`` may also follow the
command); the archive is, in order, ``--archive``, ``$POCKETPACS_ARCHIVE``, or
the user's data folder.

Commands: ``import``, ``search``, ``show``, ``rm``, ``verify``, ``check``,
``rebuild``, ``stats``, ``export`` (NIfTI / PNG), ``report`` (assembly report); the
desktop app adds ``app``, ``serve`` and ``demo``.  Each is one function ``cmd_<name>(args) -> int`` registered
with :func:`command`; other modules add commands the same way.  One command
table serves every entry point (``pocketpacs``, ``python -m pocketpacs``,
``python -m pocketpacs.ui``): :func:`entry` loads the commands of the
installed plugins (entry-point group :data:`PLUGIN_GROUP`; the desktop app is
one, so the core never imports the UI) and runs :data:`DEFAULT_COMMAND` when
no command is given.

Exit codes
----------
0  success (``search``: at least one result)
1  finished, but something needs attention: files not indexed or in
   conflict (``import``), no result (``search``), offline or changed files
   (``verify``)
2  usage error, or a path that does not exist
3  the archive is locked by another process
4  any other archive error (e.g. a read-only archive folder)
5  the archive database is damaged: ``pocketpacs rebuild`` re-creates it
130  interrupted (Ctrl-C); the archive stays consistent

JSON output (``--json``; stable, for scripts)
---------------------------------------------
``import --json``: one object ``{"root", "cancelled", "elapsed_s",
"files_per_s", "counts": {"seen", "indexed", "unchanged", "relinked",
"duplicate", "conflict", "failed", "missing", "online_again"}, "failed":
[{"path", "reason", "message"}], "conflicts": [...same...], "dicomdir":
null | {"referenced", "found", "missing", "rejected"}}`` (several folders:
a list of such objects).  Reasons: ``not_dicom``, ``truncated``,
``unreadable``, ``permission_denied``, ``vanished``, ``unsupported``,
``malformed``.

``show --json`` without argument: a list with one object per instance:
``{"patient_name", "patient_id", "birth_date", "anonymous",
"study_instance_uid", "study_date", "series_instance_uid", "series_number",
"sop_instance_uid", "instance_number", "modality", "transfer_syntax",
"online", "conflict", "paths"}``.  With an argument: the tree of that
patient/study/series as nested objects.

``search --json``: ``{"counts": {"patients", "studies", "series",
"instances", "size"}, "results": [{"patient": {...}, "study": {...},
"series": [...] (with --series)}]}``.

``report --json``: the assembly report of the series: ``{"stacks": [{"shape",
"spacing", "affine_lps", "kind", ...}], "notes", "errors", ...}`` (see
:class:`pocketpacs.images.assemblyreport.AssemblyReport`).  ``export --json``:
``{"written": [paths]}``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import REBUILD_ADVICE, ArchiveDamaged, ArchiveError, ArchiveLocked, PocketPacsError
from .paths import ENV_ARCHIVE

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_ARCHIVE = 4
EXIT_DAMAGED = 5
EXIT_INTERRUPTED = 130


@dataclass
class Command:
    """A registered subcommand."""
    name: str
    help: str
    setup: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}

#: Entry-point group of the packages that add commands: each entry point is a
#: function called without arguments that registers them with :func:`command`.
PLUGIN_GROUP = "pocketpacs.commands"

#: The command :func:`entry` runs when none is given (a plugin sets it: the
#: desktop app makes it ``app``); None: print the help.
DEFAULT_COMMAND: str | None = None

_plugins_loaded = False


def load_plugins() -> None:
    """Register the commands of every installed plugin (once).

    A plugin that fails to load is reported on stderr; the other commands
    still work.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()()
        except Exception as e:  # a broken optional part must not take the archive commands down
            _err(f"the commands of {ep.value} are not available ({type(e).__name__}: {e})")


def command(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``fn(args) -> exit code`` as subcommand ``name``.

    Parameters
    ----------
    name : str
    help : str
        One line for ``pocketpacs --help``.
    setup : callable, optional
        Adds the subcommand's arguments to its parser.
    """
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, setup or (lambda p: None), fn)
        return fn
    return deco


# ---- helpers ---------------------------------------------------------------------------

def _open(args: argparse.Namespace, readonly: bool = False):
    from .archive.api import open_archive

    return open_archive(args.archive, readonly=readonly)


def _print_json(obj: Any) -> None:
    # ensure_ascii: file names that are not valid UTF-8 travel as surrogate
    # escapes, which no stdout encoding accepts; \udcXX escapes always print
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def _safe(s: str) -> str:
    """Text for a terminal: undecodable bytes of file names shown as \\xNN."""
    try:
        s.encode(sys.stdout.encoding or "utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode(sys.stdout.encoding or "utf-8", "backslashreplace")


def _err(msg: str) -> None:
    sys.stderr.write(f"pocketpacs: {msg}\n")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _ProgressBar:
    """A rich progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool, what: str):
        self.enabled = enabled and sys.stderr.isatty()
        self.what = what
        self._p = None

    def __enter__(self) -> "_ProgressBar":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(),
                               TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                               TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                               redirect_stdout=False, redirect_stderr=False)
            self._p.start()
            self._task = self._p.add_task(self.what, total=None, counts="", rate="")
        return self

    def __call__(self, prog: Any) -> None:
        if self._p is None:
            return
        total = prog.total if prog.total is not None else max(prog.seen, 1)
        self._p.update(self._task, completed=prog.done, total=total,
                       description=f"{self.what} ({'walking' if prog.total is None else 'indexing'}, "
                                   f"{prog.failed} failed)",
                       counts=f"{prog.done:,}/{total:,} files", rate=f"{prog.files_per_s:,.0f} files/s")

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()


# ---- import ---------------------------------------------------------------------------------

def _setup_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders (or files) to import")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_report(rep: Any) -> None:
    c = rep.to_json()["counts"]
    print(f"{_safe(rep.root)}: {c['seen']:,} files in {rep.elapsed_s:.1f} s ({rep.files_per_s:,.0f} files/s)")
    print(f"  indexed {c['indexed']:,}, unchanged {c['unchanged']:,}, relinked {c['relinked']:,}, "
          f"duplicate {c['duplicate']:,}, conflict {c['conflict']:,}, failed {c['failed']:,}, "
          f"missing {c['missing']:,}")
    if rep.cancelled:
        print("  interrupted: the archive is consistent; import again to finish")
    for f in rep.failures[:50]:
        print(f"  not indexed [{f.reason}]: {_safe(f.message)}")
    if len(rep.failures) > 50:
        print(f"  ... and {len(rep.failures) - 50} more (use --json for the full list)")
    for f in rep.conflicts[:20]:
        print(f"  conflict: {_safe(f.message)}")


@command("import", "import folders of DICOM files (only new or changed files are read)", _setup_import)
def cmd_import(args: argparse.Namespace) -> int:
    import threading

    for p in args.paths:
        if not os.path.exists(p):
            _err(f"{p}: no such file or folder")
            return EXIT_USAGE
    reports = []
    cancel = threading.Event()
    with _open(args) as ar:
        for p in args.paths:
            with _ProgressBar(not args.no_progress, "import") as bar:
                try:
                    rep = ar.import_folder(p, progress=bar, cancel=cancel)
                except KeyboardInterrupt:
                    raise
            reports.append(rep)
            if not args.json:
                _print_report(rep)
    if args.json:
        _print_json(reports[0].to_json() if len(reports) == 1 else [r.to_json() for r in reports])
    if any(r.cancelled for r in reports):
        return EXIT_INTERRUPTED
    return EXIT_ATTENTION if any(r.failures or r.conflicts for r in reports) else EXIT_OK


# ---- search -----------------------------------------------------------------------------------

def _setup_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="patient name words: prefixes, * and ? wildcards, Family^Given")
    p.add_argument("--patient-id", help="patient ID (exact, or with * and ? wildcards)")
    p.add_argument("--birth-date", help="YYYYMMDD, YYYYMM, YYYY or a range FROM-TO")
    p.add_argument("--study-date", help="YYYYMMDD, YYYYMM, YYYY or a range FROM-TO")
    p.add_argument("--modality", help="modality code(s), comma-separated")
    p.add_argument("--description", help="words of the study or series descriptions")
    p.add_argument("--accession", help="accession number (exact, or with wildcards)")
    p.add_argument("--series", action="store_true", help="list the matching series of each study")
    p.add_argument("--sort", choices=("-date", "date", "name", "-name"), default="-date")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")


@command("search", "search studies by patient, dates, modality, description, accession", _setup_search)
def cmd_search(args: argparse.Namespace) -> int:
    filters = {k: getattr(args, k) for k in ("name", "patient_id", "birth_date", "study_date", "modality",
                                               "description", "accession") if getattr(args, k)}
    with _open(args, readonly=True) as ar:
        try:
            res = ar.search(**filters, level="series" if args.series else "study", sort=args.sort,
                            limit=args.limit)
        except ValueError as e:
            _err(str(e))
            return EXIT_USAGE
    if args.json:
        _print_json(res.to_json())
    else:
        for h in res:
            p, s = h.patient, h.study
            print(f"{p.display_name:<30} {p.patient_id:<12} {p.birth_date:<8}  {s.date:<8} "
                  f"{'/'.join(s.modalities):<8} {s.description[:32]:<32} {s.n_series:>3} series "
                  f"{s.n_instances:>6} images {_size(s.size):>9}  {s.uid}")
            for se in h.series:
                print(f"    #{se.number if se.number is not None else '-':<4} {se.modality:<4} "
                      f"{se.description[:40]:<40} {se.n_instances:>6} images  {se.uid}")
        print(f"{res.n_patients} patients, {res.n_studies} studies, {res.n_series} series, "
              f"{res.n_instances} instances, {_size(res.size)}")
    return EXIT_OK if len(res) else EXIT_ATTENTION


# ---- show -------------------------------------------------------------------------------------

def _setup_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", nargs="?", help="patient key, study or series UID (or key); default: everything")
    p.add_argument("--json", action="store_true", help="JSON (without REF: every instance)")


def _series_json(ar: Any, se: Any) -> dict:
    return {"key": se.key, "uid": se.uid, "number": se.number, "modality": se.modality,
            "description": se.description, "n_instances": se.n_instances, "size": se.size,
            "n_offline": se.n_offline,
            "instances": [{"sop_instance_uid": i.sop_instance_uid, "instance_number": i.instance_number,
                           "transfer_syntax": i.transfer_syntax, "online": i.online, "conflict": i.conflict,
                           "paths": list(i.paths)} for i in ar.instances(se)]}


def _study_json(ar: Any, st: Any) -> dict:
    return {"key": st.key, "uid": st.uid, "date": st.date, "time": st.time, "description": st.description,
            "accession": st.accession, "modalities": list(st.modalities), "n_series": st.n_series,
            "n_instances": st.n_instances, "size": st.size, "n_offline": st.n_offline,
            "series": [_series_json(ar, se) for se in ar.series(st)]}


def _patient_json(ar: Any, pa: Any) -> dict:
    return {"key": pa.key, "name": pa.name, "patient_id": pa.patient_id, "birth_date": pa.birth_date,
            "sex": pa.sex, "anonymous": pa.anonymous, "n_studies": pa.n_studies,
            "studies": [_study_json(ar, st) for st in ar.studies(pa)]}


def _print_tree(ar: Any, patients: list, only_study: Any = None, only_series: Any = None) -> None:
    for pa in patients:
        print(f"{pa.display_name}  id={pa.patient_id or '-'}  born={pa.birth_date or '-'}  "
              f"[{pa.n_studies} studies, {pa.n_instances} images]  key={pa.key}")
        for st in ar.studies(pa):
            if only_study is not None and st.key != only_study.key:
                continue
            print(f"  {st.date or '--------'}  {st.description or '(no description)'}  "
                  f"[{'/'.join(st.modalities)}; {st.n_series} series, {st.n_instances} images, "
                  f"{_size(st.size)}]  {st.uid}")
            for se in ar.series(st):
                if only_series is not None and se.key != only_series.key:
                    continue
                off = f", {se.n_offline} offline" if se.n_offline else ""
                print(f"    #{se.number if se.number is not None else '-':<4} {se.modality:<4} "
                      f"{se.description or '(no description)'}  [{se.n_instances} images{off}]  {se.uid}")


@command("show", "show the archive's tree (or one patient/study/series)", _setup_show)
def cmd_show(args: argparse.Namespace) -> int:
    with _open(args, readonly=True) as ar:
        if args.ref is None:
            if args.json:
                _print_json(list(ar.iter_instances()))
            else:
                _print_tree(ar, ar.patients())
            return EXIT_OK
        ref = args.ref
        for kind in ("patient", "study", "series"):
            try:
                if kind == "patient":
                    obj = ar.patient(ref)
                elif kind == "study":
                    obj = ar.study(ref)
                else:
                    obj = ar.get_series(ref)
            except KeyError:
                continue
            if kind == "patient":
                if args.json:
                    _print_json(_patient_json(ar, obj))
                else:
                    _print_tree(ar, [obj])
            elif kind == "study":
                if args.json:
                    _print_json(_study_json(ar, obj))
                else:
                    _print_tree(ar, [ar.patient(obj.patient_key)], only_study=obj)
            else:
                if args.json:
                    _print_json(_series_json(ar, obj))
                else:
                    st = ar.study(obj.study_key)
                    _print_tree(ar, [ar.patient(obj.patient_key)], only_study=st, only_series=obj)
            return EXIT_OK
    _err(f"{ref}: no patient, study or series with this key or UID")
    return EXIT_USAGE


# ---- rm / verify / rebuild / stats ----------------------------------------------------------

def _setup_rm(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--patient", metavar="KEY")
    g.add_argument("--study", metavar="UID")
    g.add_argument("--series", metavar="UID")
    g.add_argument("--instance", metavar="UID")
    g.add_argument("--root", metavar="PATH", help="an imported folder")
    p.add_argument("--json", action="store_true")


@command("rm", "forget patients/studies/series/instances/folders (files are never deleted)", _setup_rm)
def cmd_rm(args: argparse.Namespace) -> int:
    sel = {k: getattr(args, k) for k in ("patient", "study", "series", "instance", "root") if getattr(args, k)}
    with _open(args) as ar:
        try:
            out = ar.remove(**sel)
        except KeyError as e:
            _err(str(e.args[0]) if e.args else "not found")
            return EXIT_USAGE
    if args.json:
        _print_json(out)
    else:
        print(f"removed {out['instances']} instances from the archive (no file was touched)")
    return EXIT_OK if out["instances"] else EXIT_ATTENTION


def _setup_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


@command("verify", "check that the files are present and the database consistent", _setup_json)
def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args) as ar:
        rep = ar.verify()
    if args.json:
        _print_json(rep.to_json())
    else:
        print(f"{rep.instances:,} instances, {rep.locations:,} files: {rep.offline:,} offline "
              f"({rep.went_offline:,} newly, {rep.came_online:,} back online), {rep.changed:,} changed "
              f"since import, {rep.repaired} counts repaired")
        for p in rep.problems:
            print(f"  {p}")
    return EXIT_OK if rep.ok else EXIT_ATTENTION


@command("check", "read the whole archive database in a separate process and check its invariants",
         _setup_json)
def cmd_check(args: argparse.Namespace) -> int:
    from .archive.integrity import deep_check
    from .paths import default_archive_dir

    path = args.archive or default_archive_dir()
    res = deep_check(path)
    if args.json:
        _print_json(res.to_json())
    else:
        print(f"archive {_safe(os.fspath(path))}: {res.status}: {res.message}")
        for p in res.problems:
            print(f"  {p}")
        if res.status == "damaged":
            print(f"  {REBUILD_ADVICE}")
    return {"ok": EXIT_OK, "inconsistent": EXIT_ATTENTION, "missing": EXIT_ARCHIVE,
            "unchecked": EXIT_ARCHIVE}.get(res.status, EXIT_DAMAGED)


@command("rebuild", "re-create the whole index from the imported folders (also a damaged archive)", _setup_json)
def cmd_rebuild(args: argparse.Namespace) -> int:
    from .archive.api import rebuild_damaged
    from .archive.integrity import deep_check
    from .paths import default_archive_dir

    path = args.archive or default_archive_dir()
    res = deep_check(path) if os.path.exists(os.path.join(path, "data.mdb")) else None
    if res is not None and res.status == "damaged":
        if not args.json:
            print(f"the archive database is damaged: {res.message}; rebuilding it from the imported folders")
        with _ProgressBar(not args.json, "rebuild") as bar:
            aside, reps = rebuild_damaged(path, progress=bar, roots=res.roots or None)
        if not args.json:
            print(f"the damaged database was moved to {_safe(aside)}")
    else:
        with _open(args) as ar:
            with _ProgressBar(not args.json, "rebuild") as bar:
                reps = ar.rebuild(progress=bar)
    if args.json:
        _print_json([r.to_json() for r in reps])
    else:
        for r in reps:
            _print_report(r)
    return EXIT_ATTENTION if any(r.failures or r.conflicts for r in reps) else EXIT_OK


@command("stats", "counts and sizes of the archive", _setup_json)
def cmd_stats(args: argparse.Namespace) -> int:
    with _open(args, readonly=True) as ar:
        st = ar.stats()
    if args.json:
        _print_json(st)
    else:
        print(f"archive {st['path']} (schema {st['schema']})")
        print(f"  {st['patients']:,} patients, {st['studies']:,} studies, {st['series']:,} series, "
              f"{st['instances']:,} instances, {_size(st['size'])} of files")
        print(f"  {st['offline']:,} offline, {st['conflicts']:,} conflicts, database {_size(st['database_bytes'])}")
        for r in st["roots"]:
            print(f"  root: {r}")
    return EXIT_OK


# ---- main -----------------------------------------------------------------------------------

# ---- volumes: export and report ---------------------------------------------------------

def _series_volumes(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Resolve TARGET (a Series Instance UID in the archive, or a file/folder path)
    into ``(label, SeriesVolumes-or-volume-list)`` pairs."""
    from .images.volume import SeriesVolumes, assemble_path

    target = args.target
    if os.path.exists(target):
        from .images.openother import _kind_of, open_other

        if os.path.isfile(target) and _kind_of(target) != "dicom":
            vols = open_other(target)
            return [(os.path.basename(target), SeriesVolumes(vols, None, []))]
        found = assemble_path(target)
        if not found:
            raise PocketPacsError(f"{target}: no DICOM series found")
        return [(sv.volumes[0].series_uid or f"series {i + 1}", sv) for i, sv in enumerate(found)]
    with _open(args, readonly=True) as arch:
        try:
            sv = arch.volume(target)
        except KeyError:
            raise FileNotFoundError(f"{target}: neither an existing path nor a series in the archive")
    return [(target, sv)]


def _setup_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="SERIES_UID|PATH",
                   help="a Series Instance UID in the archive, or a DICOM file/folder, NIfTI or image file")
    p.add_argument("out", metavar="OUT", help="OUT.nii.gz / OUT.nii (every stack; numbered when the "
                   "series splits) or OUT.png (one slice windowed to 8 bits)")
    p.add_argument("--slice", type=int, default=None, help="PNG: slice index (default: the middle one)")
    p.add_argument("--window", default=None, metavar="CENTER/WIDTH",
                   help="PNG: window, e.g. 40/400 (default: the series' first preset)")
    p.add_argument("--stack", type=int, default=0, help="PNG: which stack (default 0)")
    p.add_argument("--report", action="store_true", help="NIfTI: also write the assembly report as JSON")
    p.add_argument("--json", action="store_true", help="print the files written as JSON")


@command("export", "export a series (or a file/folder) to NIfTI, or a slice to PNG", _setup_export)
def cmd_export(args: argparse.Namespace) -> int:
    from .images.export import export_nifti, export_png

    found = _series_volumes(args)
    written: list[str] = []
    out = args.out
    if out.lower().endswith(".png"):
        label, sv = found[0]
        vols = sv.volumes
        if not 0 <= args.stack < len(vols):
            _err(f"stack {args.stack} does not exist (the series has {len(vols)})")
            return EXIT_USAGE
        kw: dict[str, Any] = {}
        if args.window:
            try:
                c, w = (float(x) for x in args.window.split("/"))
            except ValueError:
                _err("--window takes CENTER/WIDTH, e.g. 40/400")
                return EXIT_USAGE
            kw.update(center=c, width=w)
        written.append(export_png(vols[args.stack], out, args.slice, **kw))
    elif out.lower().endswith((".nii", ".nii.gz")):
        if len(found) > 1:
            stem = out[:-7] if out.endswith(".nii.gz") else out[:-4]
            ext = ".nii.gz" if out.endswith(".nii.gz") else ".nii"
            for i, (_label, sv) in enumerate(found, 1):
                written += export_nifti(sv, f"{stem}_series{i}{ext}", report=args.report)
        else:
            written += export_nifti(found[0][1], out, report=args.report)
    else:
        _err("OUT must end in .nii.gz, .nii or .png")
        return EXIT_USAGE
    if args.json:
        _print_json({"written": written})
    else:
        for w in written:
            print(w)
    return EXIT_OK


def _setup_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="SERIES_UID|PATH",
                   help="a Series Instance UID in the archive, or a DICOM file/folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


@command("report", "how a series assembles into volumes: stacks, splits, spacing, tilt", _setup_report)
def cmd_report(args: argparse.Namespace) -> int:
    found = _series_volumes(args)
    reports = []
    for label, sv in found:
        if sv.report is not None:
            d = sv.report_dict()
        else:  # Open Other files have no assembly report: describe the volumes
            d = {"stacks": [{"shape": list(v.array.shape), "spacing": list(map(float, v.spacing)),
                             "affine_lps": np.asarray(v.affine_lps).tolist(), "kind": v.kind}
                            for v in sv.volumes]}
        reports.append(d)
    if args.json:
        _print_json(reports[0] if len(reports) == 1 else reports)
        return EXIT_OK
    for (label, sv), d in zip(found, reports):
        print(f"series {label}")
        for i, v in enumerate(sv.volumes):
            sp = " x ".join(f"{x:.3g}" for x in v.spacing)
            print(f"  stack {i}: {v.kind}, shape {tuple(v.array.shape)}, spacing {sp} mm")
        for note in (d.get("notes") or []):
            print(f"  note: {note}")
        for why in (d.get("split_reasons") or d.get("splits") or []):
            print(f"  split: {why}")
    return EXIT_OK


def _add_global_options(p: Any, after_command: bool = False) -> None:
    """The options of the whole command line, accepted before and after the command.

    After the command they default to ``SUPPRESS``, so that a value given
    before the command is not overwritten by the subcommand's default.
    """
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    p.add_argument("--archive", metavar="PATH", help=f"archive folder (default: ${ENV_ARCHIVE} or the data folder)",
                   **kw)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    epilog = f"The archive is --archive, ${ENV_ARCHIVE}, or your data folder."
    if DEFAULT_COMMAND in COMMANDS:
        epilog += f" Without a command: `pocketpacs {DEFAULT_COMMAND}`."
    ap = argparse.ArgumentParser(prog="pocketpacs", description="PocketPACS: a local DICOM archive and viewer.",
                                 epilog=epilog)
    _add_global_options(ap)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for c in COMMANDS.values():
        sp = sub.add_parser(c.name, help=c.help, description=c.help)
        c.setup(sp)
        _add_global_options(sp.add_argument_group("global options"), after_command=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    from .log import protect_patient_data

    protect_patient_data()
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else EXIT_USAGE
    if not args.command:
        ap.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except ArchiveLocked as e:
        _err(str(e))
        return EXIT_LOCKED
    except ArchiveDamaged as e:
        _err(_safe(str(e)))
        return EXIT_DAMAGED
    except FileNotFoundError as e:
        _err(str(e))
        return EXIT_USAGE
    except (ArchiveError, PocketPacsError) as e:
        _err(str(e))
        return EXIT_ARCHIVE
    except KeyboardInterrupt:
        _err("interrupted; the archive is consistent")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        if type(e).__module__ != "lmdb":
            raise
        _err(f"the archive database could not be read ({type(e).__name__}): it may be damaged; "
             f"`pocketpacs check` says, {REBUILD_ADVICE}")
        return EXIT_DAMAGED


def _command_of(argv: list[str]) -> str | None | bool:
    """The command *argv* names (None: none), parsed quietly; False on ``--help`` or a
    usage error, which :func:`main` prints once."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return build_parser().parse_known_args(argv)[0].command
    except SystemExit:
        return False


def entry(argv: list[str] | None = None) -> int:
    """The console entry: ``pocketpacs``, ``python -m pocketpacs``, ``python -m pocketpacs.ui``.

    Loads the plugins' commands (:func:`load_plugins`); without a command,
    runs :data:`DEFAULT_COMMAND` (the window, where the desktop app is
    installed) with the options given, else prints the help; then
    :func:`run_guarded`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    load_plugins()
    if DEFAULT_COMMAND in COMMANDS and _command_of(argv) is None:
        argv = [DEFAULT_COMMAND, *argv]
    return run_guarded(argv)


#: Commands that read the archive database in this process and run under the
#: crash guard of :func:`run_guarded`.
GUARDED = frozenset({"import", "search", "show", "rm", "verify", "rebuild", "stats", "export", "report"})
_CRASH_SIGNALS = ("SIGABRT", "SIGBUS", "SIGSEGV", "SIGILL", "SIGFPE")


def run_guarded(argv: list[str] | None = None) -> int:
    """:func:`main` in a forked child, so that a crash says what to do.

    LMDB trusts its file: a damaged page that passed the open checks can
    still abort or crash the process reading it.  The console entry points
    run the archive commands (:data:`GUARDED`) in a forked child; when it
    dies of such a signal, this process says the database may be damaged
    and how to check and rebuild it (exit status 5).  Ctrl-C reaches the
    child from the terminal; SIGTERM and SIGHUP are passed on.  Without
    ``fork`` (Windows), or with ``POCKETPACS_NO_GUARD=1``, :func:`main` runs
    directly.
    """
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    if not hasattr(os, "fork") or os.environ.get("POCKETPACS_NO_GUARD") == "1":
        return main(argv)
    cmd = _command_of(argv)
    if cmd not in GUARDED:
        return main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: run the command, never return into the caller
        rc = EXIT_ARCHIVE
        try:
            rc = main(argv)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(rc)
    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, lambda s, _f: os.kill(pid, s))
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal tells the child
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except ChildProcessError:
                return EXIT_ARCHIVE
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if name in _CRASH_SIGNALS:
            _err(f"`{cmd}` crashed ({name}). If the archive database is damaged, LMDB can crash the "
                 f"process that reads it: `pocketpacs check` checks it safely, {REBUILD_ADVICE}")
            return EXIT_DAMAGED
        return EXIT_INTERRUPTED if sig == signal.SIGINT else 128 + sig
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    raise SystemExit(entry())
