"""CD/USB media: the standard DICOM File-set layout with a DICOMDIR.

:func:`write_fileset` writes data sets with pydicom's ``FileSet`` (folders
``PTxxxxxx/STxxxxxx/SExxxxxx``, files ``IMxxxxxx``, a DICOMDIR at the top).
``FileSet.add`` refuses an instance that lacks a key its directory record
requires (e.g. StudyTime, SeriesNumber, or an SR's ContentSequence): such a
key is filled in a copy of the data set with a neutral value (and listed in
the notes), so that every instance is on the medium and in the DICOMDIR.
"""
from __future__ import annotations

import copy
import os
import re
import tempfile
import threading
from typing import Any

_FILESET_LOCK = threading.Lock()

#: Neutral values for directory-record keys an instance lacks, per VR.
FILL = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "IS": "1", "DS": "0", "CS": "OT",
        "LO": "UNKNOWN", "SH": "1", "PN": "", "UI": None, "ST": "UNKNOWN", "LT": "UNKNOWN", "UT": "UNKNOWN"}
_TAG = re.compile(r"\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")


def _fill_missing(ds: Any, message: str, ids: dict[tuple[str, str], str]) -> str | None:
    """Fill the element ``FileSet.add`` said is missing or empty; its keyword, or None when it cannot.

    A missing Patient ID becomes ``NOID`` and a number, one per patient of the
    medium (the same name and birth date; each study apart when there is no name,
    as the archive keeps such patients apart)."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag
    from pydicom.dataset import Dataset

    m = _TAG.search(message)
    if not m:
        return None
    tag = int(m.group(1) + m.group(2), 16)
    kw = keyword_for_tag(tag)
    vr = dictionary_VR(tag)
    if kw == "PatientID":
        name = str(ds.get("PatientName", "") or "").strip("^= ")
        who = (name, str(ds.get("PatientBirthDate", "") or "")) if name else ("", str(ds.get("StudyInstanceUID", "")))
        ds.PatientID = ids.setdefault(who, f"NOID{len(ids) + 1:04d}")
    elif vr == "SQ":
        setattr(ds, kw, [Dataset()])
    elif FILL.get(vr) not in (None, ""):
        setattr(ds, kw, FILL[vr])
    else:
        return None
    return kw


def private_tree(root: str) -> None:
    """Make every folder under ``root`` 0700 and every file 0600 (files another library wrote).

    Parameters
    ----------
    root : str
    """
    for d, _dirs, files in os.walk(root):
        os.chmod(d, 0o700)
        for f in files:
            os.chmod(os.path.join(d, f), 0o600)


def write_fileset(datasets: list[Any], root: str, fileset_id: str = "POCKETPACS"
                  ) -> tuple[list[str], list[str], list[str]]:
    """Write data sets as a DICOM File-set with a DICOMDIR under ``root``.

    Parameters
    ----------
    datasets : list of pydicom.Dataset
        Whole instances with ``file_meta``; not modified (keys are filled in copies).
    root : str
        The medium's folder (exists).
    fileset_id : str
        The File-set ID (at most 16 characters).

    Returns
    -------
    (list of str, list of str, list of str)
        The files written (DICOMDIR first), notes on keys that had to be filled, and the
        file of each data set (in the order given).
    """
    import pydicom.fileset as pf

    # pydicom stages added instances in a folder of the system's temp directory: here a
    # private folder inside the medium's own (removed before the function returns), so that
    # no copy of an instance is ever written elsewhere
    staging = tempfile.mkdtemp(prefix=".staging-", dir=root)
    with _FILESET_LOCK:
        saved = pf.TemporaryDirectory
        pf.TemporaryDirectory = lambda: tempfile.TemporaryDirectory(dir=staging)  # type: ignore[assignment,misc]
        try:
            fs = pf.FileSet()
        finally:
            pf.TemporaryDirectory = saved  # type: ignore[misc]
    try:
        return _write(fs, datasets, root, fileset_id)
    finally:
        import shutil

        del fs
        shutil.rmtree(staging, ignore_errors=True)


def _write(fs: Any, datasets: list[Any], root: str, fileset_id: str) -> tuple[list[str], list[str], list[str]]:
    fs.ID = fileset_id
    notes: list[str] = []
    filled: dict[str, int] = {}
    ids: dict[tuple[str, str], str] = {}
    for ds in datasets:
        work = ds
        for _ in range(12):
            try:
                fs.add(work)
                break
            except ValueError as e:
                if work is ds:
                    work = copy.deepcopy(ds)
                kw = _fill_missing(work, str(e), ids)
                if kw is None:
                    raise
                filled[kw] = filled.get(kw, 0) + 1
    for kw, n in sorted(filled.items()):
        notes.append(f"DICOMDIR: {kw} filled with a neutral value in {n} instance(s) that lacked it")
    fs.write(root)
    private_tree(root)
    written = [os.path.join(root, "DICOMDIR")]
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            p = os.path.join(d, f)
            if f != "DICOMDIR" and not f.startswith("."):
                written.append(p)
    where = {str(inst.SOPInstanceUID): os.path.join(root, inst.FileID) for inst in fs}
    return written, notes, [where.get(str(ds.SOPInstanceUID), "") for ds in datasets]
