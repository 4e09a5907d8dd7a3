"""What a de-identified export would change, shown on one sample instance.

:func:`preview_deidentification` de-identifies the first instance of the
patients, studies or series to export in memory (the export's own path: the
byte-level rewriter, or pydicom for the files it hands over), and
:func:`describe_changes` lists every element removed, emptied, replaced,
shifted, cleaned or added, nested sequences included.  Original values never
appear in the list, only their length ("PatientName: replaced (12 chars →
pseudonym)"); the values shown are those PocketPACS writes that carry no patient
data (dummy values, the records of the de-identification).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .blanking import match_rule
from .burned_in import burned_in_reason
from .deidentify import DUMMIES, Deidentifier
from .pseudonyms import deid_key
from .rewrite import ByteRewriter, NotRewritable

#: Longest list of changes returned (the rest is counted).
MAX_CHANGES = 500
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_PSEUDONYMS = {"PatientName", "PatientID"}
_RECORDS = {"PatientIdentityRemoved", "DeidentificationMethod", "LongitudinalTemporalInformationModified",
            "CodeValue", "CodingSchemeDesignator", "CodeMeaning"}


def _items(n: int) -> str:
    return f"{n} item" + ("" if n == 1 else "s")


def _size(elem: Any) -> str:
    if elem.VR == "SQ":
        return _items(len(elem.value or []))
    if elem.VR in _BINARY_VRS:
        return f"{len(elem.value or b'')} bytes"
    return f"{len(_text(elem))} chars"


def _text(elem: Any) -> str:
    v = elem.value
    if v is None:
        return ""
    if elem.VM > 1 and not isinstance(v, (str, bytes)):
        return "\\".join(str(x) for x in v)
    return str(v)


def _name(elem: Any) -> str:
    tag = elem.tag
    return elem.keyword or ("private " if tag.is_private else "") + f"({tag.group:04X},{tag.element:04X})"


def describe_changes(before: Any, after: Any, where: str = "") -> list[dict[str, str]]:
    """The elements of ``before`` that ``after`` removes, changes or adds, patient values masked.

    Parameters
    ----------
    before, after : pydicom.Dataset
        An instance and its de-identified copy (file meta not compared).
    where : str
        Prefix of the element paths (for nested items).

    Returns
    -------
    list of dict
        ``{"element", "tag", "action", "text"}`` in tag order; ``action`` is one of
        removed, emptied, replaced, pseudonym, uid, shifted, cleaned, added; ``text``
        a line such as ``"PatientName: replaced (12 chars → pseudonym)"``.
    """
    changes: list[dict[str, str]] = []
    tags = sorted(set(before.keys()) | set(after.keys()))
    for t in tags:
        b = before[t] if t in before else None
        a = after[t] if t in after else None
        elem = b if b is not None else a
        path = where + _name(elem)
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"

        def add(action: str, text: str, path: str = path, tag: str = tag) -> None:
            changes.append({"element": path, "tag": tag, "action": action, "text": f"{path}: {text}"})
        if a is None:
            add("removed", f"removed ({_size(b)})")
            continue
        if b is None:
            kw = a.keyword or ""
            if kw in _PSEUDONYMS:
                add("pseudonym", "added (pseudonym)")
            elif a.VR == "SQ":
                add("added", f"added ({_items(len(a.value))})")
                for i, item in enumerate(a.value):
                    changes.extend(describe_changes(type(item)(), item, f"{path}[{i}]."))
            elif kw in _RECORDS:
                add("added", f"added ({_text(a)})")
            else:
                add("added", f"added ({_size(a)})")
            continue
        if b.VR == "SQ" or a.VR == "SQ":
            bv, av = list(b.value or []), list(a.value or [])
            if len(bv) != len(av):
                add("emptied" if not av else "replaced", f"{_items(len(bv))} → {_items(len(av))}")
            else:
                for i, (x, y) in enumerate(zip(bv, av)):
                    changes.extend(describe_changes(x, y, f"{path}[{i}]."))
            continue
        if b.value == a.value:
            continue
        old, new, kw = _size(b), _text(a), b.keyword or ""
        if b.VR in _BINARY_VRS:
            add("cleaned", f"changed ({old} → {_size(a)}; pixels blanked by a rule)" if kw == "PixelData"
                else f"changed ({old} → {_size(a)})")
        elif kw in _PSEUDONYMS:
            add("pseudonym", f"replaced ({old} → pseudonym)")
        elif b.VR == "UI":
            add("uid", f"replaced ({old} → pseudonym UID)")
        elif new == "":
            add("emptied", f"emptied ({old} → empty)")
        elif b.VR in ("DA", "DT"):
            add("shifted", f"shifted ({old} → shifted date)")
        elif new in DUMMIES.values():
            add("replaced", f"replaced ({old} → dummy {new})")
        elif "*" in new:
            add("cleaned", f"cleaned ({old} → identifying words starred)")
        else:
            add("replaced", f"replaced ({old} → {len(new)} chars)")
    return changes


def preview_deidentification(archive: Any, uids: Iterable[str], options: Iterable[str] = (),
                             allow_burned_in: bool = False, patient_name: str | None = None,
                             patient_id: str | None = None, profile: Any = None) -> dict[str, Any]:
    """De-identify the first instance of an export in memory and list what changes.

    Parameters
    ----------
    archive : pocketpacs.Archive
    uids : iterable of str
        As :func:`~.export.export_dicom` takes them.
    options : iterable of str
        Profile options (:data:`~.profile_table.OPTIONS`).
    allow_burned_in : bool
        As in the export: without it, an instance that may carry burned-in text is
        reported as refused (its changes are still listed).
    patient_name, patient_id : str, optional
        Pseudonymous name and ID.
    profile : str or SharingProfile, optional
        A named profile of the archive's sharing settings (as :func:`~.export.export_dicom` takes it).

    Returns
    -------
    dict
        ``changes`` (:func:`describe_changes`, at most :data:`MAX_CHANGES`), ``more`` (changes
        left out), ``warnings`` (no patient data), ``refused`` (why the sample would not be
        exported, or None), ``instances`` (how many the export would take).

    Raises
    ------
    ExportError
        Nothing to export, a UID not in the archive, or no file present.
    ProfileSettingsError
        A bad settings file or an unknown profile name.
    """
    import io

    import pydicom

    from .export import ExportError, _read, resolve_series

    series = resolve_series(archive, uids)
    files = [(se, p) for se in series for p in archive.series_files(se)]
    if not files:
        raise ExportError("no file of the given patients, studies or series is present (offline?)")
    try:
        key = deid_key(archive._secret)
    except ValueError as e:
        raise ExportError(str(e)) from None
    se, path = files[0]
    if isinstance(profile, str):
        from .settings import get_profile

        profile = get_profile(archive, profile)
    if profile is not None:
        options = list(dict.fromkeys([*profile.options, *options]))
        allow_burned_in = allow_burned_in or profile.allow_burned_in
    deid = Deidentifier(key, options, True, patient_name, patient_id,
                        private=profile.private if profile is not None else (),
                        blanking=profile.blanking if profile is not None else ())
    identity = "archive-patient:" + se.patient_key
    with open(path, "rb") as f:
        data = f.read()
    before = _read(data)
    why = burned_in_reason(before)
    if deid.blanking and match_rule(deid.blanking, before) is not None:
        why = None  # a rule blanks its text
    refused = None if why is None or allow_burned_in else (
        f"refused: {why}; pixel data is not cleaned (allow burned-in text to export it)")
    if deid.clean_visual_features:  # judged on the whole series, as the export does
        from .visual_features import refusal, series_reason

        face = series_reason(archive, se)
        refused = refusal(face) if face is not None else refused
        deid.series_screened = True  # (the changes are still listed)
    try:
        out, warnings = ByteRewriter(deid).rewrite(data, identity)
        after = pydicom.dcmread(io.BytesIO(out))
    except NotRewritable:
        after = _read(data)
        warnings = deid.apply(after, identity)
    changes = describe_changes(before, after)
    return {"changes": changes[:MAX_CHANGES], "more": max(0, len(changes) - MAX_CHANGES),
            "warnings": warnings if refused is None else [], "refused": refused, "instances": len(files)}
