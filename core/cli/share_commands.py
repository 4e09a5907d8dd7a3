"""DICOM mode of the ``export`` command: ``pocketpacs export UID... OUT_DIR --dicom``
with ``--deidentify``, ``--keep OPTION``, ``--profile NAME`` (the archive's
``share-profiles.json``), ``--dicomdir``, ``--zip`` and ``--allow-burned-in``
(:func:`pocketpacs.share.export_dicom`).  The options are added to the
``export`` parser of :mod:`.image_commands`, which hands DICOM mode over to
:func:`run_dicom_export`; NIfTI/PNG export is unchanged.
"""
from __future__ import annotations

import argparse

from .framework import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, _open
from .output import _err, _print_json, _say

#: Flags that only DICOM mode takes.
DICOM_ONLY = ("deidentify", "keep", "dicomdir", "zip", "allow_burned_in", "patient_name", "patient_id", "viewer",
              "profile")


def add_dicom_options(p: argparse.ArgumentParser) -> None:
    """Add the DICOM-mode options to the ``export`` parser.

    Parameters
    ----------
    p : argparse.ArgumentParser
    """
    from ..share.profile_table import OPTIONS

    g = p.add_argument_group("DICOM export (--dicom: export UID... OUT_DIR --dicom)")
    g.add_argument("--dicom", action="store_true",
                   help="write DICOM files of the patients (keys), studies or series (UIDs) into OUT_DIR")
    g.add_argument("--deidentify", action="store_true",
                   help="de-identify (DICOM PS3.15 Annex E Basic Profile; pseudonyms keyed by the archive)")
    g.add_argument("--keep", action="extend", nargs="+", default=[], choices=list(OPTIONS), metavar="OPTION",
                   help=f"profile options with --deidentify: {', '.join(OPTIONS)} (full-dates keeps every "
                        "date and time as it is, modified-dates shifts them: choose one; clean-visual-features "
                        "refuses the series that may show a face: CT/MR volumes of the head or of an unnamed "
                        "region, photographs, screenshots, surface scans; PocketPACS does not deface)")
    g.add_argument("--profile", default=None, metavar="NAME",
                   help="a named de-identification profile of the archive's share-profiles.json (options, "
                        "private allowlist additions, rectangles of burned-in text to blank); implies --deidentify")
    g.add_argument("--dicomdir", action="store_true", help="CD/USB layout with a DICOMDIR")
    g.add_argument("--zip", action="store_true", help="pack the export into OUT_DIR/export.zip")
    g.add_argument("--viewer", action="store_true",
                   help="with --dicomdir: add a portable viewer (VIEWER/index.html opens the series in a "
                        "browser from the medium, no server)")
    g.add_argument("--allow-burned-in", action="store_true",
                   help="export images that may carry burned-in text (US, secondary captures, ...); "
                        "listed in the warnings")
    g.add_argument("--patient-name", default=None, help="pseudonymous Patient's Name (default: from the key)")
    g.add_argument("--patient-id", default=None, help="pseudonymous Patient ID (default: from the key)")


def dicom_flags_without_dicom(args: argparse.Namespace) -> list[str]:
    """The DICOM-only flags given without ``--dicom`` (a usage error)."""
    return [f"--{k.replace('_', '-')}" for k in DICOM_ONLY if getattr(args, k, None) not in (None, False, [])]


def run_dicom_export(args: argparse.Namespace) -> int:
    """Run ``export ... --dicom``; return the exit code (1 when instances were refused)."""
    from ..share import export_dicom

    names = [args.target, args.out, *(args.more or [])]
    uids, out_dir = names[:-1], names[-1]
    if args.profile:
        args.deidentify = True
    if args.keep and not args.deidentify:
        _err("--keep applies to a de-identified export (add --deidentify)")
        return EXIT_USAGE
    if (args.patient_name or args.patient_id) and not args.deidentify:
        _err("--patient-name/--patient-id apply to a de-identified export (add --deidentify)")
        return EXIT_USAGE
    if args.viewer and not args.dicomdir:
        _err("--viewer goes on a CD/USB medium (add --dicomdir)")
        return EXIT_USAGE
    from ..share import ProfileSettingsError
    from ..share.profile_table import OptionsError, check_options

    try:
        check_options(args.keep)
    except OptionsError as e:
        _err(f"--keep: {e}")
        return EXIT_USAGE
    with _open(args, readonly=True) as arch:
        try:
            res = export_dicom(arch, uids, out_dir, deidentify=args.deidentify, options=args.keep,
                               dicomdir=args.dicomdir, zip=args.zip, allow_burned_in=args.allow_burned_in,
                               patient_name=args.patient_name, patient_id=args.patient_id, viewer=args.viewer,
                               profile=args.profile)
        except ProfileSettingsError as e:  # names the file and the key
            _err(str(e))
            return EXIT_USAGE
        except OptionsError as e:  # the profile's options and --keep exclude each other
            _err(f"--profile {args.profile} with --keep: {e}")
            return EXIT_USAGE
    if args.json:
        _print_json(res.to_json())
    else:
        _say(f"{res.instances} instance(s) of {res.series} series in {res.studies} study(ies) written to "
             f"{res.out_dir}")
        for w in res.warnings:
            _err(f"warning: {w}")
        for n in res.notes:
            _err(f"note: {n}")
    return EXIT_ATTENTION if res.refused else EXIT_OK
