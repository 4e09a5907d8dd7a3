"""The archive commands: ``import``, ``search``, ``show``, ``rm``, ``verify``,
``check``, ``rebuild`` and ``stats``, each a ``cmd_<name>(args) -> int``
registered with :func:`~pocketpacs.cli.framework.command` when this module is
imported, with the text and ``--json`` output described in :mod:`pocketpacs.cli`.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import REBUILD_ADVICE
from .framework import EXIT_ARCHIVE, EXIT_ATTENTION, EXIT_DAMAGED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, _open, command
from .output import _err, _print_json, _ProgressBar, _safe, _say, _size


# ---- import ---------------------------------------------------------------------------------

def _setup_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders (or files) to import")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_report(rep: Any) -> None:
    c = rep.to_json()["counts"]
    _say(f"{_safe(rep.root)}: {c['seen']:,} files in {rep.elapsed_s:.1f} s ({rep.files_per_s:,.0f} files/s)")
    if rep.compile_s >= 0.05:  # the first run after installing: not counted in files/s
        _say(f"  preparing the parser (first run, {rep.compile_s:.1f} s)")
    _say(f"  indexed {c['indexed']:,}, unchanged {c['unchanged']:,}, relinked {c['relinked']:,}, "
          f"duplicate {c['duplicate']:,}, conflict {c['conflict']:,}, failed {c['failed']:,}, "
          f"missing {c['missing']:,}")
    if rep.cancelled:
        _say("  interrupted: the archive is consistent; import again to finish")
    for f in rep.failures[:50]:
        _say(f"  not indexed [{f.reason}]: {_safe(f.message)}")
    if len(rep.failures) > 50:
        _say(f"  ... and {len(rep.failures) - 50} more (use --json for the full list)")
    for f in rep.conflicts[:20]:
        _say(f"  conflict: {_safe(f.message)}")


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
    p.add_argument("--birth-date", help="YYYYMMDD, YYYYMM, YYYY, YYYY-MM-DD or a range FROM-TO")
    p.add_argument("--study-date", help="YYYYMMDD, YYYYMM, YYYY, YYYY-MM-DD or a range FROM-TO")
    p.add_argument("--modality", help="modality code(s), comma-separated")
    p.add_argument("--description", help="words of the study or series descriptions")
    p.add_argument("--accession", help="accession number (exact, or with wildcards)")
    p.add_argument("--series", action="store_true", help="list the matching series of each study")
    p.add_argument("--sort", choices=("-date", "date", "name", "-name"), default="-date")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N studies (or series)")
    p.add_argument("--json", action="store_true")


def _positive_int(text: str) -> int:
    """``--limit``: a whole number of at least 1 (argparse turns the error into a usage error)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


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
            _say(f"{p.display_name:<30} {p.patient_id:<12} {p.birth_date:<8}  {s.date:<8} "
                  f"{'/'.join(s.modalities):<8} {s.description[:32]:<32} {s.n_series:>3} series "
                  f"{s.n_instances:>6} images {_size(s.size):>9}  {s.uid}")
            for se in h.series:
                _say(f"    #{se.number if se.number is not None else '-':<4} {se.modality:<4} "
                      f"{se.description[:40]:<40} {se.n_instances:>6} images  {se.uid}")
        _say(f"{res.n_patients} patients, {res.n_studies} studies, {res.n_series} series, "
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
        _say(f"{pa.display_name}  id={pa.patient_id or '-'}  born={pa.birth_date or '-'}  "
              f"[{pa.n_studies} studies, {pa.n_instances} images]  key={pa.key}")
        for st in ar.studies(pa):
            if only_study is not None and st.key != only_study.key:
                continue
            _say(f"  {st.date or '--------'}  {st.description or '(no description)'}  "
                  f"[{'/'.join(st.modalities)}; {st.n_series} series, {st.n_instances} images, "
                  f"{_size(st.size)}]  {st.uid}")
            for se in ar.series(st):
                if only_series is not None and se.key != only_series.key:
                    continue
                off = f", {se.n_offline} offline" if se.n_offline else ""
                _say(f"    #{se.number if se.number is not None else '-':<4} {se.modality:<4} "
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
        _say(f"removed {out['instances']} instances from the archive (no file was touched)")
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
        _say(f"{rep.instances:,} instances, {rep.locations:,} files: {rep.offline:,} offline "
              f"({rep.went_offline:,} newly, {rep.came_online:,} back online), {rep.changed:,} changed "
              f"since import, {rep.repaired} counts repaired")
        for p in rep.problems:
            _say(f"  {p}")
    return EXIT_OK if rep.ok else EXIT_ATTENTION


@command("check", "read the whole archive database in a separate process and check its invariants",
         _setup_json)
def cmd_check(args: argparse.Namespace) -> int:
    from ..archive.integrity import deep_check
    from ..paths import default_archive_dir

    path = args.archive or default_archive_dir()
    res = deep_check(path)
    if args.json:
        _print_json(res.to_json())
    else:
        _say(f"archive {_safe(os.fspath(path))}: {res.status}: {res.message}")
        for p in res.problems:
            _say(f"  {p}")
        if res.status == "damaged":
            _say(f"  {REBUILD_ADVICE}")
    return {"ok": EXIT_OK, "inconsistent": EXIT_ATTENTION, "missing": EXIT_ARCHIVE,
            "unchecked": EXIT_ARCHIVE}.get(res.status, EXIT_DAMAGED)


@command("rebuild", "re-create the whole index from the imported folders (also a damaged archive)", _setup_json)
def cmd_rebuild(args: argparse.Namespace) -> int:
    from ..archive.api import rebuild_damaged
    from ..archive.integrity import deep_check
    from ..paths import default_archive_dir

    path = args.archive or default_archive_dir()
    res = deep_check(path) if os.path.exists(os.path.join(path, "data.mdb")) else None
    if res is not None and res.status == "damaged":
        if not args.json:
            _say(f"the archive database is damaged: {res.message}; rebuilding it from the imported folders")
        with _ProgressBar(not args.json, "rebuild") as bar:
            aside, reps = rebuild_damaged(path, progress=bar, roots=res.roots or None)
        if not args.json:
            _say(f"the damaged database was moved to {_safe(aside)}")
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
        _say(f"archive {st['path']} (schema {st['schema']})")
        _say(f"  {st['patients']:,} patients, {st['studies']:,} studies, {st['series']:,} series, "
              f"{st['instances']:,} instances, {_size(st['size'])} of files")
        _say(f"  {st['offline']:,} offline, {st['conflicts']:,} conflicts, database {_size(st['database_bytes'])}")
        for r in st["roots"]:
            _say(f"  root: {r}")
    return EXIT_OK
