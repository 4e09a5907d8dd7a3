"""The archive's search filters, asked of a remote node.

``find`` takes the filters of ``pocketpacs search`` (name words with
prefixes and ``*``/``?`` wildcards, case- and accent-insensitive; patient ID
and accession exact or with wildcards; dates ``YYYYMMDD``, ``YYYYMM``,
``YYYY`` or ``FROM-TO``; modality codes; description words).  Servers match
differently (PN case, accents, wildcards, percent-encoding), so
:func:`remote_keys` asks the server for a superset that every server
understands (e.g. ``*word*`` for the first name word, a date range) and
:func:`matches` then applies the archive's own rules
(:mod:`pocketpacs.archive.query`) to each answer: a remote search gives what
the same search over the archive would give.
"""
from __future__ import annotations

import re
from typing import Any

from ..archive.query import (
    name_query,
    name_tokens,
    parse_date_range,
    query_words,
    value_matches,
    word_matches,
    words,
)

_RAW_TOKEN = re.compile(r"(?:[^\W_]|[*?])+")
FILTERS = ("name", "patient_id", "birth_date", "study_date", "modality", "description", "accession")


def check_filters(filters: dict[str, Any]) -> dict[str, str]:
    """The non-empty filters, checked.

    Raises
    ------
    ValueError
        An unknown filter or a malformed date (the message says which).
    """
    out = {}
    for k, v in filters.items():
        if k not in FILTERS:
            raise ValueError(f"unknown filter {k!r}; use {', '.join(FILTERS)}")
        if v is None or v == "":
            continue
        v = str(v)
        if k in ("birth_date", "study_date"):
            try:
                parse_date_range(v)
            except ValueError as e:
                raise ValueError(f"--{k.replace('_', '-')}: {e}") from None
        out[k] = v
    return out


def _dicom_range(spec: str) -> str:
    lo, hi = parse_date_range(spec)
    lo = "" if lo == "00000000" else lo
    hi = "" if hi == "99999999" else hi
    return lo if lo == hi else f"{lo}-{hi}"


def _superset_text(pattern: str, ascii_only: bool = False) -> str:
    """A DICOM wildcard value matching at least what the archive's rule matches."""
    lit = pattern.replace("?", "*")
    if ascii_only:
        lit = "".join(c if c.isascii() else "*" for c in lit)
    core = "*".join(p for p in lit.split("*") if p)
    return f"*{core}*" if core else "*"


def remote_keys(filters: dict[str, str], ascii_only: bool = False) -> dict[str, str]:
    """DICOM matching keys (keyword -> value) that select a superset of the matches.

    Name: the longest name word as ``*word*``, matched by the server's own
    rules (Orthanc: case-insensitive, accents kept: ``mul`` does not find
    ``Müller`` there, ``mül`` does); patient ID
    and accession: the value (wildcards kept); dates: a range; one
    modality: ModalitiesInStudy; with *ascii_only* (DICOMweb: Orthanc's plugin 1.7
    found no name from a percent-encoded UTF-8 query) each non-ASCII letter
    of the name word becomes ``*``; description: ``*word*`` on StudyDescription
    is not sent (the archive also matches series descriptions).
    """
    keys: dict[str, str] = {}
    if "name" in filters:
        ws = _RAW_TOKEN.findall(filters["name"])  # as typed (not folded): the server compares
        plain = [w.replace("*", "").replace("?", "") for w in ws]
        best = max(((len(p), w) for p, w in zip(plain, ws) if p.strip("*")), default=None)
        if best is not None:
            keys["PatientName"] = _superset_text(best[1], ascii_only)
    if "patient_id" in filters:
        keys["PatientID"] = filters["patient_id"]
    if "accession" in filters:
        keys["AccessionNumber"] = filters["accession"]
    if "birth_date" in filters:
        keys["PatientBirthDate"] = _dicom_range(filters["birth_date"])
    if "study_date" in filters:
        keys["StudyDate"] = _dicom_range(filters["study_date"])
    if "modality" in filters:
        mods = [m.strip().upper() for m in filters["modality"].split(",") if m.strip()]
        if len(mods) == 1:
            keys["ModalitiesInStudy"] = mods[0]
    return keys


def _in_range(spec: str, value: str | None) -> bool:
    lo, hi = parse_date_range(spec)
    v = (value or "").strip()
    return len(v) == 8 and v.isdigit() and lo <= v <= hi


def matches(filters: dict[str, str], study: dict[str, Any]) -> bool:
    """Does a remote study (a result dict of ``find``) pass the archive's filters?"""
    if "name" in filters:
        toks = name_tokens(study.get("patient_name") or "")
        for q, mask in name_query(filters["name"]):
            if not any(word_matches(q, w) and (mask == 0 or bits & mask) for w, bits in toks.items()):
                return False
    if "patient_id" in filters and not value_matches(filters["patient_id"], study.get("patient_id") or ""):
        return False
    if "accession" in filters and not value_matches(filters["accession"], study.get("accession") or ""):
        return False
    if "birth_date" in filters and not _in_range(filters["birth_date"], study.get("birth_date")):
        return False
    if "study_date" in filters and not _in_range(filters["study_date"], study.get("study_date")):
        return False
    if "modality" in filters:
        want = {m.strip().upper() for m in filters["modality"].split(",") if m.strip()}
        if not want & {m.upper() for m in study.get("modalities") or []}:
            return False
    if "description" in filters:
        ws = set(words(study.get("description") or ""))
        for q in query_words(filters["description"]):
            if not any(word_matches(q, w) for w in ws):
                return False
    return True


__all__ = ["FILTERS", "check_filters", "matches", "remote_keys"]
