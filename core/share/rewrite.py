"""Byte-level de-identification: the profile applied to a file's bytes, without pydicom.

:class:`ByteRewriter` gives the same result as :meth:`.deidentify.Deidentifier.apply`
(same actions, pseudonyms, date shifts, records; checked element by element
on the whole corpus by ``tests/test_share_deidentify.py``) for the common files:
a Part 10 file (preamble and explicit VR little endian meta) whose data set
is implicit or explicit VR little endian, native or encapsulated pixel data.
It indexes the data set's elements with a numba kernel (:mod:`.elements`:
sequences and items of defined and undefined length, nested), copies every
unchanged element's raw bytes, writes only the elements the profile acts on
with their new lengths, rebuilds the sequences it walks, and copies Pixel
Data untouched (no decode).  What to do is worked out once per file
structure (:mod:`.plans`; the same tags, VRs and nesting in a series) and
applied to each file; structures whose outcome depends on values go through
the element-by-element walk here.  Anything else (deflate, big endian, no
preamble or meta, implicit data under an explicit syntax, public UN
elements, duplicate or zero tags, a length past the end) raises
:class:`NotRewritable` with the reason: the caller then takes the pydicom
path.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from . import profile_table
from .blanking import match_rule
from .burned_in import burned_in_reason
from .deidentify import (
    _TEXT_VRS,
    _UNLISTED_VRS,
    CLASS_UID_KEYWORDS,
    DUMMIES,
    BurnedInRefused,
    Deidentifier,
    scrub_pattern,
)
from .elements import (
    END,
    ITEMS_OF,
    START,
    TAG,
    VEND,
    VR,
    VSTART,
    NotRewritable,
    dict_vr,
    index_table,
    nested,
)
from .elements import element as _element
from .elements import pad as _pad
from .elements import sequence as _sequence
from .filemeta import file_meta, out_uid, read_meta
from .plans import (
    CLEAN_ITEMS,
    CREATOR,
    DROP,
    DUMMY,
    EMPTY,
    ITEMS,
    KEEP,
    NEW_UID,
    PRIVATE,
    SCRUB,
    SHIFT_DATES,
    make_plan,
    run_plan,
)
from .pseudonyms import Pseudonyms, shift_date, shift_datetime

_IMPLICIT_TS = "1.2.840.10008.1.2"
_UNSUPPORTED_TS = {"1.2.840.10008.1.2.1.99": "deflated transfer syntax", "1.2.840.10008.1.2.2": "big endian"}
_HDR = struct.Struct("<HHI")
_SCRUB_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
                   "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "OtherPatientIDs",
                   "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "StudyID")
_BURNED_IN_TAGS = {0x00280301: "BurnedInAnnotation", 0x00080060: "Modality", 0x00080016: "SOPClassUID"}
_BLANK_TAGS = {0x00080060: "Modality", 0x00080070: "Manufacturer", 0x00081090: "ManufacturerModelName"}
_IDENTITY_TAGS = {0x00100020: "PatientID", 0x00100010: "PatientName", 0x00100030: "PatientBirthDate"}
_CHARSET, _SOP_CLASS, _SOP_INSTANCE = 0x00080005, 0x00080016, 0x00080018
_PATIENT_NAME, _PATIENT_ID = 0x00100010, 0x00100020

# per-(tag, VR) decisions of the walk
_KEEP, _DROP, _EMPTY, _DUMMY, _UID, _SHIFT, _ITEMS, _CLEAN_ITEMS, _SCRUB, _CREATOR, _PRIVATE = (
    KEEP, DROP, EMPTY, DUMMY, NEW_UID, SHIFT_DATES, ITEMS, CLEAN_ITEMS, SCRUB, CREATOR, PRIVATE)
_UNPLANNED = object()

_Elem = tuple
_TAG, _VR, _START, _VSTART, _VEND, _END, _ITEMS_OF = TAG, VR, START, VSTART, VEND, END, ITEMS_OF


def _keyword(tag: int, cache: dict[int, str] = {}) -> str:  # noqa: B006 (a module-wide cache)
    kw = cache.get(tag)
    if kw is None:
        from pydicom.datadict import keyword_for_tag

        kw = cache[tag] = keyword_for_tag(tag) or ""
    return kw


def _ascii(mv: memoryview, e: _Elem) -> str:
    try:
        return bytes(mv[e[_VSTART]:e[_VEND]]).decode("ascii")
    except UnicodeDecodeError:
        raise NotRewritable(f"non-ASCII bytes in a {e[_VR]} value") from None


class _Call:
    """The state of one file's rewrite."""
    __slots__ = ("days", "encodings", "implicit", "mv", "scrub")

    def __init__(self, mv: memoryview, implicit: bool):
        self.mv, self.implicit = mv, implicit
        self.days = 0
        self.encodings: list[str] = []
        self.scrub: Callable[[str], str] | None = None


class ByteRewriter:
    """The profile of a :class:`~.deidentify.Deidentifier` applied to a file's bytes.

    Parameters
    ----------
    deid : Deidentifier
        Its options, pseudonyms (shared: the same UIDs map alike on both paths) and
        chosen patient name and ID are used.
    plans : bool
        Work out what to do once per file structure (:mod:`.plans`); False walks every
        file's elements (the same result, slower; for tests).
    """

    def __init__(self, deid: Deidentifier, plans: bool = True):
        self.deid = deid
        self.names: Pseudonyms = deid.names
        self.options = deid.options
        self._modified = "modified-dates" in self.options
        self._safe_private = "safe-private" in self.options
        self._clean_desc = "clean-descriptors" in self.options
        self._decisions: dict[tuple[int, str], tuple[int, str]] = {}
        self._records: dict[bool, list[tuple[int, bytes]]] = {}
        self._constants: dict[tuple[int, str, bool, int], bytes] = {}  # emptied and dummy elements
        self._texts: dict[tuple[int, str, str, bool], bytes] = {}  # pseudonymous names and IDs
        self._charsets: dict[str, list[str]] = {}  # Specific Character Set -> Python codecs
        self.plans = plans
        self._plans: dict[tuple[bool, bytes], Any] = {}  # file structure -> its plan (None: the walk)
        self._wanted = frozenset([_CHARSET, _PATIENT_NAME, _PATIENT_ID, *_BURNED_IN_TAGS, *_IDENTITY_TAGS,
                                  *_BLANK_TAGS, 0x00280010, 0x00280011,  # the blanking rules' keys
                                  *map(_tag_of, _SCRUB_KEYWORDS)])
        self._codes: dict[str, str] = {}  # identity -> patient code
        self._days: dict[str, int] = {}  # identity -> date shift
        self._burned_in: dict[tuple, str | None] = {}  # the values that decide -> the reason
        self._uids: dict[tuple[int, bytes, bool], bytes] = {}  # (tag, value, implicit) -> new element

    # ---- decisions -------------------------------------------------------------------------
    def _decide(self, tag: int, vr: str) -> tuple[int, str]:
        """What the walk does to an element: (decision, action letter), as Deidentifier._walk/_act/_unlisted."""
        key = (tag, vr)
        d = self._decisions.get(key)
        if d is not None:
            return d
        group, el = tag >> 16, tag & 0xFFFF
        d = (_KEEP, "")
        why = self.deid.leaves_to_pydicom(tag)
        if why is not None:
            raise NotRewritable(why)
        if group & 1:
            d = (_CREATOR, "") if 0x10 <= el <= 0xFF else (_PRIVATE, "")
        elif group == 0x0002:
            raise NotRewritable("file meta elements inside the data set")
        elif el == 0:
            d = (_DROP, "")
        elif 0x6000 <= group <= 0x60FF and self.deid._drop_overlays:
            d = (_DROP, "")
        else:
            row = profile_table.row_for(tag)
            if row is not None:
                action = self.deid._actions.get(tag) or profile_table.resolve(row, self.options)
                if action == "X":
                    d = (_DROP, "X")
                elif vr == "UN":
                    raise NotRewritable("a public element with VR UN")
                elif " or " in vr and action != "K":
                    raise NotRewritable("an element of ambiguous VR")
                elif action == "K":
                    d = (_ITEMS, "K") if vr == "SQ" else (_KEEP, "K")
                else:
                    d = self._act(action, vr, tag)
            elif vr in _UNLISTED_VRS:
                if vr == "SQ":
                    d = (_ITEMS, "")
                elif vr == "UI":
                    d = self._uid_decision(tag)
                elif vr in ("DA", "DT"):
                    d = (_KEEP, "") if self.deid.full_dates else (_SHIFT, "") if self._modified else (_EMPTY, "")
                elif vr == "PN":
                    d = (_EMPTY, "")
                elif vr == "UN" and dict_vr(tag) != "UN":
                    raise NotRewritable("a public element with VR UN")
        self._decisions[key] = d
        return d

    def _uid_decision(self, tag: int) -> tuple[int, str]:
        kw = _keyword(tag)
        if (kw in CLASS_UID_KEYWORDS or kw.endswith("ClassUID") or kw.endswith("ClassUIDInFile")
                or self.deid.retain_uids):
            return (_KEEP, "")
        return (_UID, "")

    def _act(self, action: str, vr: str, tag: int) -> tuple[int, str]:
        if action == "Z":
            return (_EMPTY, action)
        if action == "D":
            return (_DUMMY, action) if vr == "SQ" or vr in DUMMIES else (_EMPTY, action)
        if action == "U":
            if vr == "SQ":
                return (_ITEMS, action)
            return self._uid_decision(tag) if vr == "UI" else (_KEEP, action)
        if action == "C":
            if vr in ("DA", "DT"):
                return (_SHIFT, action)
            if vr == "TM":
                return (_KEEP, action)
            if vr == "SQ":
                return (_CLEAN_ITEMS, action)
            if vr in _TEXT_VRS and self._clean_desc:
                return (_SCRUB, action)
            return (_DROP, action)
        return (_KEEP, action)

    # ---- one file --------------------------------------------------------------------------
    def rewrite(self, data: bytes, identity: str | None = None) -> tuple[bytes, list[str]]:
        """De-identify a DICOM file's bytes.

        Parameters
        ----------
        data : bytes
            A whole Part 10 file.
        identity : str, optional
            As in :meth:`.Deidentifier.apply` (default: from the patient's ID, name and birth date).

        Returns
        -------
        (bytes, list of str)
            The de-identified file and its warnings (no patient data in them).

        Raises
        ------
        NotRewritable
            The file needs the pydicom path (the message says why).
        BurnedInRefused
            The instance may carry burned-in text and ``allow_burned_in`` is False.
        """
        parts, warnings = self.rewrite_parts(data, identity)
        return b"".join(parts), warnings

    def rewrite_parts(self, data: bytes, identity: str | None = None) -> tuple[list[Any], list[str]]:
        """De-identify a DICOM file's bytes, as pieces to write in turn (:meth:`rewrite` joins them).

        Parameters
        ----------
        data : bytes
            A whole Part 10 file.
        identity : str, optional
            As in :meth:`.Deidentifier.apply` (default: from the patient's ID, name and birth date).

        Returns
        -------
        (list, list of str)
            The de-identified file as a list of bytes and memoryviews (of ``data``: pixel data
            and runs of unchanged elements are not copied) and its warnings.

        Raises
        ------
        NotRewritable
            The file needs the pydicom path (the message says why).
        BurnedInRefused
            The instance may carry burned-in text and ``allow_burned_in`` is False.
        """
        mv = memoryview(data)
        if len(data) < 132 or data[128:132] != b"DICM":
            raise NotRewritable("no DICOM preamble")
        meta, pos = read_meta(mv)
        ts = meta.get(0x00020010)
        if ts is None:
            raise NotRewritable("no transfer syntax in the file meta")
        if ts in _UNSUPPORTED_TS:
            raise NotRewritable(_UNSUPPORTED_TS[ts])
        implicit = ts == _IMPLICIT_TS
        if len(data) - pos >= 8:
            looks_explicit = bytes(mv[pos + 4:pos + 6]).isalpha() and bytes(mv[pos + 4:pos + 6]).isupper()
            if implicit and looks_explicit:
                raise NotRewritable("explicit VR data under an implicit transfer syntax")
        table, n = index_table(data, pos, implicit)
        key = (implicit, table[:n, :3].tobytes())  # the structure: tags, VRs, nesting
        plan = self._plans.get(key, _UNPLANNED)
        if plan is _UNPLANNED:
            if len(self._plans) > 256:
                self._plans.clear()
            plan = self._plans[key] = make_plan(self, table, n, implicit, self._wanted) if self.plans else None
        call = _Call(mv, implicit)
        if plan is None:
            top = nested(table, n, implicit)
            by_tag = {e[_TAG]: e for e in top if e[_TAG] < 0x00400000}
        else:
            rows = table[plan.rows, 3:].tolist()  # start, value start, value end, end of the rows it reads
            by_tag = {t: (t, vr, *rows[r]) for t, r, vr in plan.lookups}
        cs = by_tag.get(_CHARSET)
        if cs is not None:
            spec = _ascii(mv, cs)
            enc = self._charsets.get(spec)
            if enc is None:
                from pydicom.charset import convert_encodings

                enc = self._charsets[spec] = convert_encodings([v.strip() for v in spec.split("\\")])
            call.encodings = enc
        else:
            from pydicom.charset import default_encoding

            call.encodings = [default_encoding]
        warnings: list[str] = []
        if self.deid.blanking:
            hdr: dict[str, Any] = {kw: self._text(call, by_tag[t]) for t, kw in _BLANK_TAGS.items() if t in by_tag}
            for t, kw in ((0x00280010, "Rows"), (0x00280011, "Columns")):
                if t in by_tag and by_tag[t][_VEND] - by_tag[t][_VSTART] == 2:
                    hdr[kw] = int.from_bytes(mv[by_tag[t][_VSTART]:by_tag[t][_VEND]], "little")
            if match_rule(self.deid.blanking, hdr) is not None:
                raise NotRewritable("pixels to blank (a rule of the sharing settings)")
        seen = (tuple(call.encodings),) + tuple(  # the values the outcome depends on
            (t, by_tag[t][_VR], bytes(mv[by_tag[t][_VSTART]:by_tag[t][_VEND]])) for t in _BURNED_IN_TAGS if t in by_tag)
        why = self._burned_in.get(seen, _UNPLANNED)
        if why is _UNPLANNED:
            if len(self._burned_in) > 4096:
                self._burned_in.clear()
            why = self._burned_in[seen] = burned_in_reason(
                {kw: self._text(call, by_tag[t]) for t, kw in _BURNED_IN_TAGS.items() if t in by_tag})
        if why is not None:
            if not self.deid.allow_burned_in:
                raise BurnedInRefused(f"refused: {why}; pixel data is not cleaned (allow_burned_in exports it)")
            warnings.append(f"exported although {why}: check the pixels for text")
        if identity is None:
            if any("\\" in self._text(call, by_tag[t]) for t in _IDENTITY_TAGS if t in by_tag):
                raise NotRewritable("a patient ID, name or birth date with several values")
            vals = {kw: self._text(call, by_tag[t]) if t in by_tag else "" for t, kw in _IDENTITY_TAGS.items()}
            identity = Pseudonyms.identity(vals["PatientID"], vals["PatientName"], vals["PatientBirthDate"])
        days = self._days.get(identity)
        if days is None:
            if len(self._days) > 4096:
                self._days.clear()
            days = self._days[identity] = self.names.day_shift(identity)
        call.days = days
        if self._clean_desc:
            words = [w for t in map(_tag_of, _SCRUB_KEYWORDS) if t in by_tag
                     for w in self._text(call, by_tag[t]).split("\\")]
            call.scrub = scrub_pattern(words)
        code = self._codes.get(identity)
        if code is None:
            if len(self._codes) > 4096:
                self._codes.clear()
            code = self._codes[identity] = self.names.patient_code(identity)
        if plan is not None:
            return self._planned(call, plan, rows, by_tag, code, ts), warnings
        pieces = self._walk(call, top)
        name_vr = by_tag[_PATIENT_NAME][_VR] if _PATIENT_NAME in by_tag else "PN"
        id_vr = by_tag[_PATIENT_ID][_VR] if _PATIENT_ID in by_tag else "LO"
        extra = [(_PATIENT_NAME, self._text_element(call, _PATIENT_NAME, name_vr,
                                                    self.deid.patient_name or f"ANON^{code}")),
                 (_PATIENT_ID, self._text_element(call, _PATIENT_ID, id_vr, self.deid.patient_id or f"PP{code}"))]
        extra += self._record(implicit)
        replaced = {t for t, _ in extra}
        out = [p for p in pieces if p[0] not in replaced] + extra
        out.sort(key=itemgetter(0))
        sop_class = out_uid(out, _SOP_CLASS)
        sop_instance = out_uid(out, _SOP_INSTANCE)
        if sop_class is None or sop_instance is None:
            raise NotRewritable("no SOP Class or SOP Instance UID")
        pieces_out = [p[1] for p in out]
        pieces_out.insert(0, file_meta(ts, sop_class, sop_instance))
        return pieces_out, warnings

    def _planned(self, call: _Call, plan: Any, rows: list, by_tag: dict[int, _Elem], code: str, ts: str
                 ) -> list[Any]:
        """The de-identified file made by a plan (as the end of :meth:`rewrite` does by the walk)."""
        pieces = run_plan(self, call, plan.ops, rows)
        name_vr = by_tag[_PATIENT_NAME][_VR] if _PATIENT_NAME in by_tag else "PN"
        id_vr = by_tag[_PATIENT_ID][_VR] if _PATIENT_ID in by_tag else "LO"
        pieces[plan.name_at] = self._text_element(call, _PATIENT_NAME, name_vr,
                                                  self.deid.patient_name or f"ANON^{code}")
        pieces[plan.id_at] = self._text_element(call, _PATIENT_ID, id_vr, self.deid.patient_id or f"PP{code}")
        sop_class = out_uid([(_SOP_CLASS, pieces[plan.sop_class_at])], _SOP_CLASS)
        sop_instance = out_uid([(_SOP_INSTANCE, pieces[plan.sop_instance_at])], _SOP_INSTANCE)
        if sop_class is None or sop_instance is None:
            raise NotRewritable("no SOP Class or SOP Instance UID")
        pieces.insert(0, file_meta(ts, sop_class, sop_instance))
        return pieces

    def _text(self, call: _Call, e: _Elem) -> str:
        """A text value decoded as pydicom does (one string; values joined by backslashes)."""
        from pydicom.charset import decode_bytes
        from pydicom.values import TEXT_VR_DELIMS

        raw = bytes(call.mv[e[_VSTART]:e[_VEND]])
        if e[_VR] == "PN":
            raw = raw.rstrip(b"\0 ")
        if e[_VR] in ("UI", "DA", "DT", "TM", "CS", "AS", "DS", "IS", "AE"):
            return raw.decode("latin-1").rstrip("\0 ")
        if e[_VR] in ("LT", "ST", "UT"):  # one value: trailing padding only
            return decode_bytes(raw, call.encodings, TEXT_VR_DELIMS).rstrip("\0 ")
        return "\\".join(v.rstrip("\0 ") for v in decode_bytes(raw, call.encodings, TEXT_VR_DELIMS).split("\\"))

    def _text_element(self, call: _Call, tag: int, vr: str, value: str) -> bytes:
        if value.isascii():
            key = (tag, vr, value, call.implicit)
            out = self._texts.get(key)
            if out is None:
                if len(self._texts) > 4096:
                    self._texts.clear()
                out = self._texts[key] = _element(tag, vr, _pad(value.encode("ascii"), vr), call.implicit)
            return out
        from pydicom.charset import encode_string

        return _element(tag, vr, _pad(encode_string(value, call.encodings), vr), call.implicit)

    def _record(self, implicit: bool) -> list[tuple[int, bytes]]:
        """PatientIdentityRemoved, DeidentificationMethod (and its codes), LongitudinalTemporalInformationModified."""
        rec = self._records.get(implicit)
        if rec is None:
            opts = sorted(self.options)
            names = [profile_table.BASIC_PROFILE_CODE[1]] + [profile_table.OPTIONS[o][2] for o in opts]
            method = "\\".join(["PocketPACS PS3.15 E.1-1"] + [n[:64] for n in names])
            items = []
            for value, meaning in [profile_table.BASIC_PROFILE_CODE] + [profile_table.OPTIONS[o][1:] for o in opts]:
                items.append(_element(0x00080100, "SH", _pad(value.encode(), "SH"), implicit)
                             + _element(0x00080102, "SH", b"DCM ", implicit)
                             + _element(0x00080104, "LO", _pad(meaning.encode(), "LO"), implicit))
            ltim = "UNMODIFIED" if self.deid.full_dates else "MODIFIED" if self._modified else "REMOVED"
            rec = self._records[implicit] = [
                (0x00120062, _element(0x00120062, "CS", b"YES ", implicit)),
                (0x00120063, _element(0x00120063, "LO", _pad(method.encode(), "LO"), implicit)),
                (0x00120064, _sequence(0x00120064, items, implicit)),
                (0x00280303, _element(0x00280303, "CS", _pad(ltim.encode(), "CS"), implicit)),
            ]
        return rec

    def _walk(self, call: _Call, elems: list[_Elem]) -> list[tuple[int, Any]]:
        """The (tag, bytes) of a data set or item after the profile, as Deidentifier._walk."""
        mv, implicit = call.mv, call.implicit
        out: list[tuple[int, Any]] = []
        creators: dict[int, tuple[int, _Elem]] = {}  # block (group << 8 | byte) -> (index in out, element)
        kept_blocks: set[int] = set()
        decisions = self._decisions
        for e in elems:
            tag, vr = e[_TAG], e[_VR]
            d, action = decisions.get((tag, vr)) or self._decide(tag, vr)
            if d == _KEEP:
                out.append((tag, mv[e[_START]:e[_END]]))
            elif d == _DROP:
                continue
            elif d == _CREATOR:
                creators[(tag >> 16) << 8 | (tag & 0xFF)] = (len(out), e)
                out.append((tag, mv[e[_START]:e[_END]]))
            elif d == _PRIVATE:
                el = tag & 0xFFFF
                block = (tag >> 16) << 8 | (el >> 8)
                c = creators.get(block) if el >= 0x1000 else None
                if (self._safe_private and c is not None
                        and self.deid.is_safe(self._text(call, c[1]), tag >> 16, el)):
                    kept_blocks.add(block)
                    out.append((tag, mv[e[_START]:e[_END]]))
            elif d == _EMPTY or d == _DUMMY:
                out.append((tag, self._constant(tag, vr, implicit, d)))
            elif d == _UID:
                out.append((tag, self._uid(call, e)))
            elif d == _SHIFT:
                out.append((tag, self._shift(call, e)))
            elif d == _ITEMS:
                out.append((tag, _sequence(tag, [self._item(call, it, False) for it in e[_ITEMS_OF] or []], implicit)))
            elif d == _CLEAN_ITEMS:
                out.append((tag, _sequence(tag, [self._item(call, it, True) for it in e[_ITEMS_OF] or []], implicit)))
            elif d == _SCRUB:
                out.append((tag, self._scrubbed(call, e)))
        if creators:
            drop = {i for block, (i, _e) in creators.items() if block not in kept_blocks}
            if drop:
                out = [p for i, p in enumerate(out) if i not in drop]
        return out

    def _constant(self, tag: int, vr: str, implicit: bool, d: int) -> bytes:
        """An emptied (``_EMPTY``) or dummy (``_DUMMY``) element."""
        key = (tag, vr, implicit, d)
        piece = self._constants.get(key)
        if piece is None:
            piece = self._constants[key] = (
                _sequence(tag, [], implicit) if vr == "SQ" else
                _element(tag, vr, _pad(DUMMIES[vr].encode(), vr) if d == _DUMMY else b"", implicit))
        return piece

    def _item(self, call: _Call, elems: list[_Elem], scrub: bool) -> bytes:
        if any(e[_TAG] == _CHARSET for e in elems):
            raise NotRewritable("a character set inside a sequence item")
        pieces = self._walk(call, elems)
        if scrub and call.scrub is not None:
            # Deidentifier._clean: the text elements left in each item are scrubbed
            by_tag = {e[_TAG]: e for e in elems}
            for i, (tag, piece) in enumerate(pieces):
                e = by_tag[tag]
                if e[_VR] not in _TEXT_VRS:
                    continue
                if isinstance(piece, memoryview):
                    if e[_VEND] > e[_VSTART]:
                        pieces[i] = (tag, self._scrubbed(call, e))
                elif self._decide(tag, e[_VR])[0] == _DUMMY:  # a dummy value is scrubbed too
                    new = call.scrub(DUMMIES[e[_VR]])
                    if new != DUMMIES[e[_VR]]:
                        pieces[i] = (tag, self._text_element(call, tag, e[_VR], new))
        return b"".join([p for _t, p in pieces])

    def _scrubbed(self, call: _Call, e: _Elem) -> Any:
        if call.scrub is None or e[_VEND] == e[_VSTART]:
            return call.mv[e[_START]:e[_END]]
        old = self._text(call, e)
        new = call.scrub(old)
        if new == old:
            return call.mv[e[_START]:e[_END]]
        return self._text_element(call, e[_TAG], e[_VR], new)

    def _uid(self, call: _Call, e: _Elem) -> Any:
        key = (e[_TAG], bytes(call.mv[e[_VSTART]:e[_VEND]]), call.implicit)
        done = self._uids.get(key)
        if done is not None:  # the study's, series' and frame of reference's UIDs repeat
            return done
        value = _ascii(call.mv, e).rstrip("\0 ")
        if value == "":
            return call.mv[e[_START]:e[_END]]
        out = [v if v.startswith("1.2.840.10008.") else self.names.uid(v) for v in value.split("\\")]
        if len(self._uids) > 65536:
            self._uids.clear()
        done = self._uids[key] = _element(e[_TAG], "UI", _pad("\\".join(out).encode("ascii"), "UI"), call.implicit)
        return done

    def _shift(self, call: _Call, e: _Elem) -> Any:
        value = _ascii(call.mv, e).rstrip("\0 ")
        if value == "":
            return call.mv[e[_START]:e[_END]]
        fn = shift_date if e[_VR] == "DA" else shift_datetime
        new = "\\".join(fn(v, call.days) for v in value.split("\\"))
        return _element(e[_TAG], e[_VR], _pad(new.encode("ascii"), e[_VR]), call.implicit)


def _tag_of(keyword: str, cache: dict[str, int] = {}) -> int:  # noqa: B006 (a module-wide cache)
    t = cache.get(keyword)
    if t is None:
        from pydicom.datadict import tag_for_keyword

        t = cache[keyword] = int(tag_for_keyword(keyword) or 0)
    return t
