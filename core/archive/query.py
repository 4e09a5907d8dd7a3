"""Search indexes and queries.

Index entries are keys in dedicated databases: a normalised value followed
by the fixed-width key of the record it points to (16-byte patient keys,
8-byte study keys), so a query is a handful of ordered range scans over the
index and never a scan of the records themselves.

=============  ==============================================  ===========
filter         index key                                       level
=============  ==============================================  ===========
name           PN word + NUL + patient key  (value: component  patient
               bits: 1 family, 2 given, 4 middle, 8 prefix,
               16 suffix)
patient_id     folded ID + NUL + patient key                   patient
birth_date     YYYYMMDD + patient key                          patient
study_date     YYYYMMDD + study key                            study
modality       MODALITY + NUL + study key                      study
description    word + NUL + study key (study description and   study
               every series description of the study)
accession      folded accession number + NUL + study key       study
=============  ==============================================  ===========

Matching rules (the property tests check the indexes against a brute-force
filter that applies exactly these rules):

- Text is *folded*: Unicode NFKD, combining marks dropped, letters that do
  not decompose written as base letters (Ø as o, Æ as ae, ß as ss...),
  casefolded, so ``Müller`` matches ``muller`` and ``MULLER``, and
  ``odegard`` matches ``Ødegård``.
- ``name`` and ``description`` are split into words (letters and digits).
  Every query word must match a word of the record: a plain query word
  matches words that *start with* it; a word with ``*`` (any run) or ``?``
  (one character) must match a whole word.  In ``name``, ``^`` separates
  DICOM PN components (``Family^Given``): a word given in a component only
  matches words of that component.
- ``patient_id`` and ``accession`` match the whole folded value, or a
  ``*``/``?`` pattern.
- Dates are ``YYYYMMDD``, ``YYYYMM`` or ``YYYY`` (a month or year), or a
  range ``FROM-TO`` where either end may be left out; ranges are inclusive.
- ``modality`` is one code or several separated by commas (any of them).
- Filters combine with AND.  A study matches ``modality``/``description``
  when any of its series does (or its own description, for words).

A word pattern that starts with a wildcard has no literal prefix and is
matched against every entry of that one index (the index, never the records).
"""
from __future__ import annotations

import fnmatch
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from . import records

if TYPE_CHECKING:  # (annotations only: the schema migrations use the index entries, and store them)
    from .store import Txn

PATIENT_KEY_LEN = 16
STUDY_KEY_LEN = 8
_WORD = re.compile(r"[^\W_]+")
_QWORD = re.compile(r"[^\W_*?]*[*?][^\W_]*[*?]?[^\W_*?]*|[^\W_]+")
_QTOKEN = re.compile(r"(?:[^\W_]|[*?])+")
_MAX_TOKEN = 200   # bytes of one index word (LMDB keys are at most 511 bytes)
#: Bytes of an exact-match index value (patient ID, accession): a DICOM LO of
#: 64 four-byte characters fits; a longer (non-conforming) value is cut, at 400
#: bytes rather than 200 characters (up to 800 bytes: a key LMDB refuses).
_MAX_VALUE = 400


#: Letters that Unicode does not decompose into a base letter and a mark, written
#: as the base letters a user types for them (``odegard`` finds "Ødegård").
_BASE_LETTERS = str.maketrans({
    "Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ð": "D", "ð": "d",
    "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th", "Ł": "L", "ł": "l", "Ħ": "H", "ħ": "h",
    "Ŧ": "T", "ŧ": "t", "ı": "i", "ĸ": "k", "Ŋ": "NG", "ŋ": "ng", "ß": "ss", "ẞ": "SS",
})


def fold(s: str | None) -> str:
    """Case- and accent-insensitive form of a text value.

    Unicode NFKD with the combining marks dropped, the letters that do not
    decompose (Ø, Æ, Œ, Ð, Þ, Ł, ß...) written as their base letters, then
    casefolded: ``fold("Ødegård") == fold("ODEGARD") == "odegard"``.
    """
    if not s:
        return ""
    if s.isascii():  # (NFKD, the marks and the base letters change nothing in ASCII)
        return s.lower()
    d = unicodedata.normalize("NFKD", s)
    return "".join(c for c in d if not unicodedata.combining(c)).translate(_BASE_LETTERS).casefold()


def words(s: str | None) -> list[str]:
    """Folded words (runs of letters and digits) of a text value."""
    return [w for w in _WORD.findall(fold(s)) if len(w.encode()) <= _MAX_TOKEN]


def name_tokens(pn: str | None) -> dict[str, int]:
    """Words of a DICOM PN value with their component bits.

    All component groups (alphabetic, ideographic, phonetic, separated by
    ``=``) are indexed; bit ``1 << i`` marks component ``i`` (family, given,
    middle, prefix, suffix).
    """
    out: dict[str, int] = {}
    if not pn:
        return out
    for group in pn.split("="):
        for ci, comp in enumerate(group.split("^")[:5]):
            for w in words(comp):
                out[w] = out.get(w, 0) | (1 << ci)
    return out


def _fold_value(s: str | None) -> str:
    """Folded value of an exact-match index (patient ID, accession), cut to
    :data:`_MAX_VALUE` bytes at a character boundary (values longer than
    that compare on their first 400 bytes)."""
    v = fold(s).strip(" \0").replace("\0", "")
    b = v.encode("utf-8", "surrogatepass")
    if len(b) <= _MAX_VALUE:
        return v
    cut = _MAX_VALUE
    while b[cut] & 0xC0 == 0x80:   # a continuation byte: the character began before the cut
        cut -= 1
    return b[:cut].decode("utf-8", "surrogatepass")


def _valid_date(s: str | None) -> str | None:
    if s and len(s) == 8 and s.isdigit():
        return s
    return None


# ---- index entries -------------------------------------------------------------------

Entry = tuple[str, bytes, bytes]


def patient_entries(pkey: bytes, rec: dict) -> set[Entry]:
    """Index entries of a patient record."""
    out: set[Entry] = set()
    for w, bits in name_tokens(rec.get("name")).items():
        out.add(("idx_name", w.encode() + b"\0" + pkey, bytes([bits])))
    pid = _fold_value(rec.get("patient_id"))
    if pid:
        out.add(("idx_pid", pid.encode("utf-8", "surrogatepass") + b"\0" + pkey, b""))
    bd = _valid_date(rec.get("birth_date"))
    if bd:
        out.add(("idx_birth", bd.encode() + pkey, b""))
    return out


def study_words(rec: dict) -> set[str]:
    """Description words of a study: its own and its series'."""
    return set(words(rec.get("description"))) | set(rec.get("series_words") or ())


def study_entries(skey: bytes, rec: dict) -> set[Entry]:
    """Index entries of a study record."""
    out: set[Entry] = set()
    d = _valid_date(rec.get("date"))
    if d:
        out.add(("idx_sdate", d.encode() + skey, b""))
    for m in rec.get("modalities") or ():
        m = (m or "").strip().upper()
        if m:
            out.add(("idx_mod", m.encode("utf-8", "surrogatepass")[:64] + b"\0" + skey, b""))
    for w in study_words(rec):
        out.add(("idx_desc", w.encode() + b"\0" + skey, b""))
    acc = _fold_value(rec.get("accession"))
    if acc:
        out.add(("idx_acc", acc.encode("utf-8", "surrogatepass") + b"\0" + skey, b""))
    return out


def reindex(txn: Txn, old: set[Entry], new: set[Entry]) -> None:
    """Apply the difference between two entry sets."""
    if old == new:
        return
    new_keys = {(db, k) for db, k, _ in new}
    for db, k, _v in old - new:
        if (db, k) not in new_keys:
            txn.delete(db, k)
    for db, k, v in new - old:
        txn.put(db, k, v)


# ---- query parsing -----------------------------------------------------------------------

_DATE = re.compile(r"(\d{4})(?:(\d{2})(\d{2})?|-(\d{2})(?:-(\d{2}))?)?")


def parse_date_range(spec: str) -> tuple[str, str]:
    """A date or a range of dates -> inclusive ``(lo, hi)`` as ``YYYYMMDD``.

    A date is ``YYYYMMDD``, ``YYYYMM`` or ``YYYY`` (DICOM's form) or
    ``YYYY-MM-DD`` / ``YYYY-MM`` (how the app shows dates); a range is
    ``FROM-TO`` with either end left open (``2020-``, ``-20200301``,
    ``2019-01-01-2020-06-30``; ``-`` alone: any date), or ``FROM..TO`` /
    ``FROM to TO``.  A spec a
    dashed date and a range could both read (``2020-12``) is the date.

    Raises
    ------
    ValueError
        For anything else (an incomplete date such as ``202`` included).
    """
    s = spec.strip()
    one = _date_bounds(s)
    if one is not None:
        return one
    cuts = [m.span() for m in re.finditer(r"\s*(?:\.\.|\bto\b|–|—)\s*", s, re.IGNORECASE)]
    if not cuts:
        cuts = [(m.start(), m.end()) for m in re.finditer(r"\s*-\s*", s)]
    ranges = []
    for a, b in cuts:
        lo = _date_bounds(s[:a].strip()) if s[:a].strip() else ("00000000", "00000000")
        hi = _date_bounds(s[b:].strip()) if s[b:].strip() else ("99999999", "99999999")
        if lo is not None and hi is not None:
            ranges.append((lo[0], hi[1]))
    if len(ranges) != 1:
        raise ValueError(f"not a date or a range of dates (YYYYMMDD, YYYYMM, YYYY, YYYY-MM-DD, "
                         f"FROM-TO): {spec!r}")
    lo, hi = ranges[0]
    if lo > hi:
        raise ValueError(f"empty date range {spec!r}")
    return lo, hi


def _date_bounds(s: str) -> tuple[str, str] | None:
    """First and last day a date of the forms above covers, or None."""
    m = _DATE.fullmatch(s)
    if m is None:
        return None
    y, mm, dd = m.group(1), m.group(2) or m.group(4), m.group(3) or m.group(5)
    if mm is not None and not 1 <= int(mm) <= 12:
        return None
    if dd is not None and not 1 <= int(dd) <= 31:
        return None
    if dd is not None:
        return y + mm + dd, y + mm + dd
    if mm is not None:
        return y + mm + "01", y + mm + "31"
    return y + "0101", y + "1231"


def query_words(q: str) -> list[str]:
    """Folded query words, keeping ``*`` and ``?``."""
    return [w for w in _QTOKEN.findall(fold(q)) if w.strip("*?") or w]


def name_query(q: str) -> list[tuple[str, int]]:
    """(word, component mask) pairs of a name query (mask 0 = any component)."""
    out = []
    if "^" in q:
        for ci, comp in enumerate(q.split("^")[:5]):
            out.extend((w, 1 << ci) for w in query_words(comp))
    else:
        out.extend((w, 0) for w in query_words(q))
    return out


def has_wildcard(w: str) -> bool:
    return "*" in w or "?" in w


def word_matches(pattern: str, word: str) -> bool:
    """The word rule: prefix for plain words, whole-word glob with wildcards."""
    if has_wildcard(pattern):
        return fnmatch.fnmatchcase(word, pattern)
    return word.startswith(pattern)


def value_matches(pattern: str, value: str) -> bool:
    """The whole-value rule of patient ID and accession (folded)."""
    p = _fold_value(pattern)
    v = _fold_value(value)
    if has_wildcard(p):
        return fnmatch.fnmatchcase(v, p)
    return v == p


def _literal_prefix(pattern: str) -> str:
    m = re.search(r"[*?]", pattern)
    return pattern if m is None else pattern[:m.start()]


def _scan_words(txn: Txn, db: str, pattern: str, keylen: int, mask: int = 0) -> set[bytes]:
    """Record keys whose indexed word matches ``pattern`` (word rule)."""
    out: set[bytes] = set()
    wild = has_wildcard(pattern)
    prefix = (_literal_prefix(pattern) if wild else pattern).encode()
    for k, v in txn.range(db, prefix):
        if mask and not (v and v[0] & mask):
            continue
        if wild:
            w = k[:-(keylen + 1)].decode("utf-8", "replace")
            if not fnmatch.fnmatchcase(w, pattern):
                continue
        out.add(k[-keylen:])
    return out


def _scan_value(txn: Txn, db: str, pattern: str, keylen: int) -> set[bytes]:
    """Record keys whose folded value matches ``pattern`` (value rule)."""
    p = _fold_value(pattern)
    if not has_wildcard(p):
        return {k[-keylen:] for k, _ in txn.range(db, p.encode("utf-8", "surrogatepass") + b"\0")}
    out: set[bytes] = set()
    for k, _ in txn.range(db, _literal_prefix(p).encode("utf-8", "surrogatepass")):
        v = k[:-(keylen + 1)].decode("utf-8", "replace")
        if fnmatch.fnmatchcase(v, p):
            out.add(k[-keylen:])
    return out


def _scan_dates(txn: Txn, db: str, spec: str, keylen: int) -> set[bytes]:
    lo, hi = parse_date_range(spec)
    return {k[-keylen:] for k, _ in txn.range(db, start=lo.encode(), stop=hi.encode() + b"\xff" * (keylen + 1))}


# ---- results --------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    """One search result: a study with its patient (and matching series)."""
    patient: records.Patient
    study: records.Study
    series: tuple[records.Series, ...] = ()


@dataclass
class SearchResults:
    """Search results with totals.

    Attributes
    ----------
    hits : list of Hit
        One per matching study, sorted as asked.
    patients : list of Patient
        Distinct patients of the hits, in hit order.
    n_patients, n_studies, n_series, n_instances, size : int
        Totals over the matching studies (series level: matching series).
    """
    hits: list[Hit] = field(default_factory=list)
    level: str = "study"

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self):
        return iter(self.hits)

    @property
    def patients(self) -> list[records.Patient]:
        seen: dict[str, records.Patient] = {}
        for h in self.hits:
            seen.setdefault(h.patient.key, h.patient)
        return list(seen.values())

    @property
    def n_patients(self) -> int:
        return len({h.patient.key for h in self.hits})

    @property
    def n_studies(self) -> int:
        return len(self.hits)

    @property
    def n_series(self) -> int:
        if self.level == "series":
            return sum(len(h.series) for h in self.hits)
        return sum(h.study.n_series for h in self.hits)

    @property
    def n_instances(self) -> int:
        if self.level == "series":
            return sum(s.n_instances for h in self.hits for s in h.series)
        return sum(h.study.n_instances for h in self.hits)

    @property
    def size(self) -> int:
        if self.level == "series":
            return sum(s.size for h in self.hits for s in h.series)
        return sum(h.study.size for h in self.hits)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape printed by ``pocketpacs search --json``."""
        return {
            "counts": {"patients": self.n_patients, "studies": self.n_studies, "series": self.n_series,
                       "instances": self.n_instances, "size": self.size},
            "results": [hit_json(h) for h in self.hits],
        }


def hit_json(h: Hit) -> dict[str, Any]:
    p, s = h.patient, h.study
    out = {
        "patient": {"key": p.key, "name": p.name, "patient_id": p.patient_id, "birth_date": p.birth_date,
                    "sex": p.sex, "anonymous": p.anonymous},
        "study": {"key": s.key, "uid": s.uid, "date": s.date, "time": s.time, "description": s.description,
                  "accession": s.accession, "modalities": list(s.modalities),
                  "n_series": s.n_series, "n_instances": s.n_instances, "size": s.size,
                  "n_offline": s.n_offline},
    }
    if h.series:
        out["series"] = [{"key": x.key, "uid": x.uid, "number": x.number, "modality": x.modality,
                          "description": x.description, "n_instances": x.n_instances, "size": x.size,
                          "n_offline": x.n_offline} for x in h.series]
    return out


FILTERS = ("name", "patient_id", "birth_date", "study_date", "modality", "description", "accession")
SORTS = ("date", "-date", "name", "-name")


def _modalities(modality: str | Iterable[str]) -> set[str]:
    items = modality.split(",") if isinstance(modality, str) else list(modality)
    return {m.strip().upper() for m in items if m and m.strip()}


def search(txn: Txn, *, name: str | None = None, patient_id: str | None = None,
           birth_date: str | None = None, study_date: str | None = None,
           modality: str | Iterable[str] | None = None, description: str | None = None,
           accession: str | None = None, level: str = "study", sort: str = "-date",
           limit: int | None = None, cache: dict | None = None) -> SearchResults:
    """Run a query inside a read transaction.

    Parameters
    ----------
    txn : Txn
    name, patient_id, birth_date, study_date, modality, description, accession
        Filters (see the module docstring); None or "" = no filter.
    level : {"study", "series"}
        ``series`` also lists each hit's matching series.
    sort : {"-date", "date", "name", "-name"}
        Study date (newest first with ``-``) or patient name.
    limit : int, optional
        Keep the first ``limit`` hits after sorting.
    cache : dict, optional
        Decoded records by key, valid for one archive generation (the
        caller empties it when the archive changes).

    Returns
    -------
    SearchResults

    Raises
    ------
    ValueError
        For a malformed date or an unknown level/sort.
    """
    if level not in ("study", "series"):
        raise ValueError(f"unknown level {level!r}")
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    cands: list[set[bytes]] = []
    pcands: list[set[bytes]] = []
    if name:
        nq = name_query(name)
        for w, mask in nq:
            pcands.append(_scan_words(txn, "idx_name", w, PATIENT_KEY_LEN, mask))
        if not nq:
            pcands.append(set())
    if patient_id:
        pcands.append(_scan_value(txn, "idx_pid", patient_id, PATIENT_KEY_LEN))
    if birth_date:
        pcands.append(_scan_dates(txn, "idx_birth", birth_date, PATIENT_KEY_LEN))
    if study_date:
        cands.append(_scan_dates(txn, "idx_sdate", study_date, STUDY_KEY_LEN))
    mods = _modalities(modality) if modality else set()
    if mods:
        found: set[bytes] = set()
        for m in mods:
            found |= {k[-STUDY_KEY_LEN:] for k, _ in txn.range("idx_mod", m.encode() + b"\0")}
        cands.append(found)
    dwords = query_words(description) if description else []
    if description and not dwords:
        cands.append(set())
    for w in dwords:
        cands.append(_scan_words(txn, "idx_desc", w, STUDY_KEY_LEN))
    if accession:
        cands.append(_scan_value(txn, "idx_acc", accession, STUDY_KEY_LEN))

    if pcands:
        pcands.sort(key=len)
        pkeys = set.intersection(*pcands)
        sk: set[bytes] = set()
        for pk in pkeys:
            sk.update(k[PATIENT_KEY_LEN:] for k, _ in txn.range("pat_studies", pk))
        cands.append(sk)
    if cands:
        cands.sort(key=len)
        skeys: Iterable[bytes] = set.intersection(*cands)
        study_items = []
        for k in skeys:
            raw = b"" if cache is not None and k in cache else txn.get("studies", k)
            if raw is not None:
                study_items.append((k, raw))
    else:
        study_items = list(txn.range("studies"))

    if cache is None:
        cache = {}
    hits: list[Hit] = []
    # study-level hits are kept with the records: a search matching thousands of
    # studies then allocates next to nothing (no Hit, no sort key), so it neither
    # builds them again nor sets off the cyclic GC's full collections
    kept: dict[bytes, Hit] = cache.get(_HITS)
    if kept is None:
        kept = cache[_HITS] = {}
    for sk, raw in study_items:
        if level == "study":
            h = kept.get(sk)
            if h is not None:
                hits.append(h)
                continue
        st = cache.get(sk)
        if st is None:
            st = cache[sk] = records.study_from(sk, records.loads(raw))
        pk = bytes.fromhex(st.patient_key)
        p = cache.get(pk)
        if p is None:
            praw = txn.get("patients", pk)
            p = cache[pk] = records.patient_from(pk, records.loads(praw)) if praw else records.Patient(key=pk.hex())
        ser: tuple[records.Series, ...] = ()
        if level == "series":
            lst = []
            study_desc_words = set(words(st.description))
            for k, _ in txn.range("study_series", sk):
                sr = txn.get("series", k[STUDY_KEY_LEN:])
                if sr is None:
                    continue
                s = records.series_from(k[STUDY_KEY_LEN:], records.loads(sr))
                if mods and s.modality.strip().upper() not in mods:
                    continue
                if dwords:
                    ws = study_desc_words | set(words(s.description))
                    if not all(any(word_matches(q, w) for w in ws) for q in dwords):
                        continue
                lst.append(s)
            lst.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid))
            if not lst:
                continue
            ser = tuple(lst)
        h = Hit(p, st, ser)
        if level == "study":
            kept[sk] = h
        hits.append(h)
    folded = cache.get(_FOLDED_NAMES)
    if folded is None:
        folded = cache[_FOLDED_NAMES] = {}
    sort_keys = cache.get(_SORT_KEYS)
    if sort_keys is None:
        sort_keys = cache[_SORT_KEYS] = {"date": {}, "name": {}}
    sort_hits(hits, sort, folded, sort_keys)
    if limit is not None:
        hits = hits[:limit]
    return SearchResults(hits, level)


#: keys of a search's record cache besides the records: the folded patient names
#: (patient key -> fold(name)), the study-level hits (study key -> Hit) and the sort
#: keys ("date"/"name" -> study key -> tuple)
_FOLDED_NAMES = "folded names"
_HITS = "hits"
_SORT_KEYS = "sort keys"


def sort_hits(hits: list[Hit], sort: str, folded: dict[str, str] | None = None,
              sort_keys: dict[str, dict[str, tuple]] | None = None) -> None:
    """Sort in place: by study date/time (then name) or by patient name (then date).

    *folded* keeps the folded patient names between calls (patient key ->
    ``fold(name)``) and *sort_keys* the sort key of each study (``"date"`` or
    ``"name"`` -> study key -> key); both are valid as long as the records are.
    """
    if folded is None:
        folded = {}
    by_date = sort in ("date", "-date")
    if sort_keys is None:
        sort_keys = {"date": {}, "name": {}}
    known = sort_keys["date" if by_date else "name"]

    def key(h: Hit) -> tuple:
        k = known.get(h.study.key)
        if k is None:
            name = folded.get(h.patient.key)
            if name is None:
                name = folded[h.patient.key] = fold(h.patient.name)
            st = h.study
            k = known[st.key] = ((st.date, st.time, name, st.uid) if by_date
                                 else (name, h.patient.key, st.date, st.uid))
        return k

    hits.sort(key=key, reverse=sort in ("-date", "-name"))
