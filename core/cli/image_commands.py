"""The image commands: ``export`` (a series, or a file or folder, to NIfTI, or
one slice to PNG) and ``report`` (how a series assembles into volumes); the
target is a Series Instance UID in the archive or a path.  Registered with
:func:`~pocketpacs.cli.framework.command` when this module is imported.
Slices whose pixel data could not be decoded are written as zeros: both
commands say which (a warning line; ``unreadable_frames`` in their JSON), and
export then exits 1, like other partial results.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import PocketPacsError
from .framework import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, _open, command
from .output import _err, _print_json, _say
from .share_commands import add_dicom_options, dicom_flags_without_dicom, run_dicom_export


def _series_volumes(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Resolve TARGET (a Series Instance UID in the archive, or a file/folder path)
    into ``(label, SeriesVolumes-or-volume-list)`` pairs."""
    from ..images.volume import SeriesVolumes
    from ..series import open_path, open_series

    target = args.target
    if os.path.exists(target):
        from ..images.openother import _kind_of, open_other

        if os.path.isfile(target) and _kind_of(target) != "dicom":
            vols = open_other(target)
            return [(os.path.basename(target), SeriesVolumes(vols, None, []))]
        readers = open_path(target)           # the viewer's reader: the same stacks
        if not readers:
            raise PocketPacsError(f"{target}: no DICOM series found")
        return [(r.series_uid or f"series {i + 1}", r.assemble()) for i, r in enumerate(readers)]
    with _open(args, readonly=True) as arch:
        try:
            reader = open_series(arch, target)       # the viewer's reader: the same stacks
        except KeyError:
            raise FileNotFoundError(f"{target}: neither an existing path nor a series in the archive") from None
        sv = reader.assemble()
    return [(target, sv)]


def _unreadable(found: list[tuple[str, Any]], stack: int | None = None
                ) -> tuple[list[str], list[dict[str, Any]]]:
    """Warning lines and ``unreadable_frames`` entries for the stacks holding undecodable slices.

    Parameters
    ----------
    found : list of (label, SeriesVolumes)
        What :func:`_series_volumes` gave.
    stack : int, optional
        Only this stack of the (first) series (PNG export).

    Returns
    -------
    warnings : list of str
        One line per stack: how many slices could not be decoded, and the first ones.
    frames : list of dict
        ``{"series", "stack", "slice", "volume", "reason"}`` per slice (no paths).
    """
    from ..images.unreadable import frames_list, summary

    warnings: list[str] = []
    frames: list[dict[str, Any]] = []
    for label, sv in found[:1] if stack is not None else found:
        for i, v in enumerate(sv.volumes):
            bad = getattr(v, "unreadable", None)
            if not bad or (stack is not None and i != stack):
                continue
            k = v.shape[1 if v.is_4d else 0]
            listed = frames_list(bad, k)
            n = k * (v.shape[0] if v.is_4d else 1)
            first = ", ".join(str(f["slice"] + 1) + (f" (volume {f['volume'] + 1})" if v.is_4d else "")
                              for f in listed[:10])
            warnings.append(f"series {label} stack {i}: {summary(len(bad), n)}: slice "
                            f"{first}{' ...' if len(listed) > 10 else ''} ({listed[0]['reason']})")
            frames += [{"series": label, "stack": i, **f} for f in listed]
    return warnings, frames


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
    p.add_argument("more", nargs="*", metavar="UID", help="--dicom: more UIDs; the last name is OUT_DIR")
    add_dicom_options(p)


@command("export", "export a series (or a file/folder) to NIfTI, or a slice to PNG", _setup_export)
def cmd_export(args: argparse.Namespace) -> int:
    from ..images.export import export_nifti, export_png

    if args.dicom:
        return run_dicom_export(args)
    if args.more or dicom_flags_without_dicom(args):
        _err(f"{' '.join(args.more[:1] + dicom_flags_without_dicom(args))}: only with --dicom "
             "(export UID... OUT_DIR --dicom)")
        return EXIT_USAGE
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
        warnings, frames = _unreadable(found, args.stack)
    elif out.lower().endswith((".nii", ".nii.gz")):
        if len(found) > 1:
            stem = out[:-7] if out.endswith(".nii.gz") else out[:-4]
            ext = ".nii.gz" if out.endswith(".nii.gz") else ".nii"
            for i, (_label, sv) in enumerate(found, 1):
                written += export_nifti(sv, f"{stem}_series{i}{ext}", report=args.report)
        else:
            written += export_nifti(found[0][1], out, report=args.report)
        warnings, frames = _unreadable(found)
    else:
        _err("OUT must end in .nii.gz, .nii or .png")
        return EXIT_USAGE
    if args.json:
        # {"written"} as ever; "warnings" and "unreadable_frames" only when slices could not be decoded
        _print_json({"written": written, **({"warnings": warnings, "unreadable_frames": frames} if frames else {})})
    else:
        for w in written:
            _say(w)
        for w in warnings:
            _err(f"warning: {w}")
    return EXIT_ATTENTION if frames else EXIT_OK


def _setup_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="SERIES_UID|PATH",
                   help="a Series Instance UID in the archive, or a DICOM file/folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


@command("report", "how a series assembles into volumes: stacks, splits, spacing, tilt", _setup_report)
def cmd_report(args: argparse.Namespace) -> int:
    import numpy as np
    from ..series import describe_volume

    found = _series_volumes(args)
    reports = []
    infos = []
    for _label, sv in found:
        split = list(sv.report.split_by) if sv.report is not None else []
        info = [describe_volume(i, v, split) for i, v in enumerate(sv.volumes)]
        infos.append(info)
        if sv.report is not None:
            d = sv.report_dict()
        else:  # Open Other files have no assembly report: describe the volumes
            d = {"stacks": [{"shape": list(v.array.shape), "spacing": list(map(float, v.spacing)),
                             "affine_lps": np.asarray(v.affine_lps).tolist(), "kind": v.kind,
                             "calibration": v.calibration}
                            for v in sv.volumes]}
        # what the viewer's stack picker and time slider say of each stack
        for st, inf in zip(d.get("stacks", []), info):
            st["label"] = inf.label
            st["volumes"] = inf.volumes.to_dict()
        for st in d.get("stacks", []):          # Open Other files: every slice decoded or none
            st.setdefault("unreadable_frames", [])
        reports.append(d)
    if args.json:
        _print_json(reports[0] if len(reports) == 1 else reports)
        return EXIT_OK
    for (label, sv), d, info in zip(found, reports, infos):
        _say(f"series {label}")
        for i, v in enumerate(sv.volumes):
            sp = " x ".join(f"{x:.3g}" for x in v.spacing)
            cal = v.calibration or {}
            unit = "mm" if cal.get("kind") != "none" else "px (uncalibrated)"
            _say(f"  stack {i} ({info[i].label}): {v.kind}, shape {tuple(v.array.shape)}, "
                 f"spacing {sp} {unit}")
            if cal.get("kind") not in (None, "patient"):
                _say(f"  calibration: {cal.get('note')}")
        for w in _unreadable([(label, sv)])[0]:
            _say(f"  warning: {w}")
        for note in (d.get("notes") or []):
            _say(f"  note: {note}")
        for why in (d.get("split_reasons") or d.get("splits") or []):
            _say(f"  split: {why}")
    return EXIT_OK
