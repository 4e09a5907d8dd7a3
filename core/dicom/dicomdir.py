"""DICOMDIR as an import hint.

A DICOMDIR at the root of a medium lists the files of the file-set.  The
import parses the files it references first (so their series appear
first) and then walks the whole folder anyway, which finds whatever the
DICOMDIR misses or gets wrong.

References are checked before they are used (the reliability notes, M13):
a ``ReferencedFileID`` that is absolute, has a drive letter or a ``..``
component, has more than 8 components, or resolves (through symbolic
links) outside the media root is rejected and reported; the walk never
leaves the root either.  ISO 9660 ``;1`` suffixes and case differences are
tolerated.  Records are read with pydicom's ``FileSet``, or, when it
refuses the DICOMDIR, from the raw directory record sequence (only each
record's ``ReferencedFileID`` is used), so a damaged DICOMDIR still serves
as a hint.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..log import logger
from ..errors import Problem

MAX_COMPONENTS = 8


@dataclass
class DicomdirInfo:
    """What a DICOMDIR references (checked paths) and what it got wrong."""
    path: str
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    referenced: int = 0
    missing: int = 0
    rejected: int = 0
    reader: str = ""

    def summary(self) -> dict[str, Any]:
        """The ``dicomdir`` object of the import report."""
        return {"referenced": self.referenced, "found": len(self.files), "missing": self.missing,
                "rejected": self.rejected}


def find_dicomdir(root: str) -> str | None:
    """Path of the DICOMDIR file directly under ``root`` (any case), or None."""
    try:
        with os.scandir(root) as it:
            for e in it:
                if e.name.upper() == "DICOMDIR" and e.is_file():
                    return e.path
    except OSError:
        return None
    return None


_FILESET_LOCK = threading.Lock()


class _NoStagingDir:
    """Stands in for the ``TemporaryDirectory`` pydicom's ``FileSet`` creates.

    ``FileSet`` makes (and on ``load`` remakes) a staging folder in the user's
    temp directory for instances it might *write*; reading a DICOMDIR stages
    nothing, and a no-trace media session must not create folders on disk.
    """

    name = os.path.join(os.sep, "nonexistent", "pocketpacs-no-staging")

    def cleanup(self) -> None:
        """Nothing was created."""


def _read_only_fileset(ds: Any) -> Any:
    """``FileSet(ds)`` without its staging folder (see :class:`_NoStagingDir`)."""
    import pydicom.fileset as pf

    with _FILESET_LOCK:
        saved = pf.TemporaryDirectory
        pf.TemporaryDirectory = _NoStagingDir  # type: ignore[assignment,misc]
        try:
            return pf.FileSet(ds)
        finally:
            pf.TemporaryDirectory = saved  # type: ignore[misc]


def offset_problem(ds: Any) -> str | None:
    """Check the record offsets of a DICOMDIR data set before following them.

    Every chain of ``OffsetOfTheNextDirectoryRecord`` and
    ``OffsetOfReferencedLowerLevelDirectoryEntity`` from the root is walked
    once, with a visited set: a record reached twice (a loop, M13) or an
    offset that is no record's is reported.  pydicom's ``FileSet`` follows
    these offsets without such a check and loops forever on a cycle.
    Linear in the number of records.
    """
    records: dict[int, Any] = {}
    for rec in ds.DirectoryRecordSequence:
        off = getattr(rec, "seq_item_tell", None)
        if off is None:
            return "directory records without file offsets"
        records[int(off)] = rec
    if not records:
        return None
    visited: set[int] = set()
    todo = [int(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity", 0) or 0)]
    while todo:
        off = todo.pop()
        while off:
            if off in visited:
                return "directory record offsets form a loop"
            rec = records.get(off)
            if rec is None:
                return "a directory record offset points to no record"
            visited.add(off)
            lower = int(rec.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0)
            if lower:
                todo.append(lower)
            off = int(rec.get("OffsetOfTheNextDirectoryRecord", 0) or 0)
    return None


def _file_ids(path: str) -> tuple[list[list[str]], str, str | None]:
    """The ReferencedFileID of every record of a DICOMDIR, how they were
    read, and what is wrong with its record offsets (None: nothing).

    pydicom's ``FileSet`` first, when the record offsets are sound; when they
    are not, or it refuses the DICOMDIR (odd records), the directory record
    sequence is read directly, in order.
    """
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        if "DirectoryRecordSequence" not in ds:
            raise ValueError("not a DICOMDIR (no directory records)")
        problem = offset_problem(ds)
        if problem is None:
            try:
                fs = _read_only_fileset(ds)
                return [inst.FileID.split("/") for inst in fs], "fileset", None
            except Exception:  # pydicom raises many types on odd DICOMDIRs
                pass
        out: list[list[str]] = []
        for rec in ds.DirectoryRecordSequence:
            fid = rec.get("ReferencedFileID")
            if fid is None:
                continue
            comps = [str(fid)] if isinstance(fid, str) else [str(c) for c in fid]
            out.append(comps)
        return out, "records", problem


def _resolve_ci(root: str, comps: list[str]) -> str | None:
    """Join ``comps`` under ``root``, tolerating case and ``;1`` suffixes."""
    cur = root
    for c in comps:
        cand = os.path.join(cur, c)
        if os.path.exists(cand):
            cur = cand
            continue
        want = c.split(";")[0].upper()
        try:
            names = os.listdir(cur)
        except OSError:
            return None
        match = [n for n in names if n.split(";")[0].upper() == want]
        if not match:
            return None
        cur = os.path.join(cur, sorted(match)[0])
    return cur


def _bad_component(c: str) -> bool:
    return (not c or c in (".", "..") or "/" in c or "\\" in c or "\0" in c
            or (len(c) >= 2 and c[1] == ":"))


def read_dicomdir(root: str) -> DicomdirInfo | None:
    """Read and check the DICOMDIR of ``root``; None when there is none.

    A DICOMDIR that cannot be read is reported as one problem (the walk
    imports the folder anyway).
    """
    path = find_dicomdir(root)
    if path is None:
        return None
    info = DicomdirInfo(path)
    try:
        ids, info.reader, offset_note = _file_ids(path)
    except Exception as e:  # pydicom raises many types on bad input
        info.problems.append(Problem(path, "malformed",
                                     f"{path}: DICOMDIR could not be read ({type(e).__name__}); "
                                     "the folder is scanned instead"))
        return info
    if offset_note is not None:
        info.problems.append(Problem(path, "malformed",
                                     f"{path}: {offset_note}; its records are read in order"))
    real_root = os.path.realpath(root)
    seen: set[str] = set()
    for comps in ids:
        info.referenced += 1
        shown = "/".join(comps)
        if (len(comps) > MAX_COMPONENTS or any(_bad_component(c) for c in comps)
                or os.path.isabs(comps[0] if comps else "")):
            info.rejected += 1
            info.problems.append(Problem(
                f"{root}{os.sep}{shown}", "unsupported",
                f"{path}: reference {shown!r} is not a valid path inside the media root; ignored"))
            continue
        p = _resolve_ci(root, comps)
        if p is None:
            info.missing += 1
            continue
        real = os.path.realpath(p)
        if not (real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)):
            info.rejected += 1
            info.problems.append(Problem(p, "unsupported",
                                         f"{path}: reference {shown!r} leads outside the media root; ignored"))
            continue
        if not os.path.isfile(p) or p in seen:
            continue
        seen.add(p)
        info.files.append(p)
    if info.missing:
        logger.info("DICOMDIR references %d files that are missing", info.missing)
    return info
