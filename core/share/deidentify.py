"""De-identify one DICOM data set following PS3.15 Annex E (Table E.1-1).

:class:`Deidentifier` applies the Basic Application Level Confidentiality
Profile and the chosen options (:data:`~.profile_table.OPTIONS`) to a
pydicom data set in place: every attribute the table lists gets its action,
every UID that is not a well-known (DICOM-defined) one or a class UID is
replaced by its keyed pseudonym (nested sequences included, so references
between the exported instances stay consistent), dates not listed are
emptied (or shifted with the Modified Dates option), person names not listed
are emptied, private elements are removed except the allowlist of the Retain
Safe Private option, and the de-identification is recorded
(PatientIdentityRemoved, DeidentificationMethod and its CID 7050 codes).
Pixel data is untouched unless a blanking rule of the settings file covers
the image (:mod:`.blanking`: rectangles set to zero, recorded as the Clean
Pixel Data Option); other images that may carry burned-in text are refused
(:mod:`.burned_in`) unless allowed.  The Clean Structured Content and Clean
Graphics options keep the content, graphic annotation, overlay and curve
elements they name, with every text inside them cleaned of the instance's
identifying words; Retain UIDs keeps every UID (the output can then be
linked back to its source).  Retain Longitudinal Temporal Information with
Full Dates keeps every date and time as it is (LongitudinalTemporalInformationModified
``UNMODIFIED``; it excludes the Modified Dates option).  Clean Recognizable
Visual Features refuses a data set that may show a face
(:mod:`.visual_features`: PocketPACS does not deface, so the option is a check
that the exported images show none); a data set alone is judged by its own
frames, an export by whole series.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import PocketPacsError
from . import profile_table
from .blanking import BlankRule, blank_rectangles, match_rule
from .burned_in import burned_in_reason
from .private_allowlist import is_safe
from .pseudonyms import Pseudonyms, shift_date, shift_datetime
from .visual_features import dataset_reason, refusal

#: UID attributes that name a class, a syntax or a coding scheme, not an instance: never replaced.
CLASS_UID_KEYWORDS = frozenset({
    "TransferSyntaxUID", "ReferencedTransferSyntaxUIDInFile", "ImplementationClassUID", "CodingSchemeUID",
    "ContextUID", "MappingResourceUID", "PrivateInformationCreatorUID", "SOPClassesInStudy",
})

#: PocketPACS's Implementation Class UID in the file meta of de-identified files (a UUID-derived UID).
IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "pocketpacs:implementation").int)

#: Dummy values of the ``D`` action, per VR.
DUMMIES = {"PN": "ANONYMOUS", "LO": "ANONYMOUS", "SH": "ANONYMOUS", "LT": "ANONYMOUS", "ST": "ANONYMOUS",
           "UT": "ANONYMOUS", "UC": "ANONYMOUS", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
           "CS": "ANONYMOUS", "AS": "000Y", "IS": "0", "DS": "0"}
_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN", "CS"})
#: VRs of attributes the table does not list that still need a look (UN: decoded to know)
_UNLISTED_VRS = frozenset({"SQ", "UI", "DA", "DT", "PN", "UN"})
#: Options whose cleaning only the pydicom path does (the byte-level rewriter hands their files over).
DEEP_CLEAN_OPTIONS = {"clean-structured-content": "struct", "clean-graphics": "graph"}
#: Coded values inside cleaned content: never rewritten (they name concepts, not people).
_CODE_KEYWORDS = frozenset({"CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "LongCodeValue",
                            "URNCodeValue"})


def _raw_vr(ds: Any, tag: int) -> str:
    """The VR of an element without decoding its value (the dictionary's when the file is implicit VR)."""
    vr = getattr(ds.get_item(tag), "VR", None)
    if vr:
        return str(vr)
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


class BurnedInRefused(PocketPacsError):
    """An instance may carry burned-in text and ``allow_burned_in`` was not given."""


class VisualFeaturesRefused(BurnedInRefused):
    """The Clean Recognizable Visual Features option is chosen and the instance may show a face
    (a :class:`BurnedInRefused`, so whoever handles refused instances handles it)."""


class Deidentifier:
    """Applies the Basic Profile and options to data sets, with keyed pseudonyms.

    Parameters
    ----------
    key : bytes
        The de-identification key (:func:`~.pseudonyms.deid_key` of the archive secret).
    options : iterable of str
        Names from :data:`~.profile_table.OPTIONS`.
    allow_burned_in : bool
        Export images that may carry burned-in text (each is reported in the warnings).
    patient_name, patient_id : str, optional
        Pseudonymous name and ID chosen by the user (default: derived from the key).
    private : iterable of (str, int, int)
        Additions to the Retain Safe Private allowlist: (private creator, group, element byte).
    blanking : iterable of BlankRule
        Rules whose rectangles are blanked on the images they cover (:mod:`.blanking`); a
        covered image is exported even when it may carry burned-in text.
    """

    def __init__(self, key: bytes, options: Iterable[str] = (), allow_burned_in: bool = False,
                 patient_name: str | None = None, patient_id: str | None = None,
                 private: Iterable[tuple[str, int, int]] = (), blanking: Iterable[BlankRule] = ()):
        opts = profile_table.check_options(options)
        self.options = opts
        self.allow_burned_in = allow_burned_in
        self.names = Pseudonyms(key)
        self.patient_name = patient_name
        self.patient_id = patient_id
        self._actions = {tag: profile_table.resolve(row, opts) for tag, row in profile_table.TABLE.items()}
        overlay = profile_table.row_for(0x60003000)
        self._drop_overlays = overlay is not None and profile_table.resolve(overlay, opts) == "X"
        self.retain_uids = "retain-uids" in opts
        self.full_dates = "full-dates" in opts
        self.clean_visual_features = "clean-visual-features" in opts
        #: Set by an export that has judged whole series already (:func:`.visual_features.screen_jobs`):
        #: the data sets it hands over are not judged again one by one.
        self.series_screened = False
        self.private = frozenset((str(c).strip().upper(), int(g), int(e) & 0xFF) for c, g, e in private)
        self.blanking = tuple(blanking)
        self._deep_cols = frozenset(col for o, col in DEEP_CLEAN_OPTIONS.items() if o in opts)
        self._pixels_cleaned = False

    def is_safe(self, creator: str, group: int, element: int) -> bool:
        """Whether a private element is on the allowlist (the built-in one or the profile's additions).

        Parameters
        ----------
        creator : str
            The Private Creator value of the element's block.
        group, element : int

        Returns
        -------
        bool
        """
        return is_safe(creator, group, element) or (creator.strip().upper(), group, element & 0xFF) in self.private

    def _deep(self, tag: int) -> bool:
        """Whether the chosen Clean Structured Content / Clean Graphics option cleans this element."""
        if not self._deep_cols:
            return False
        row = profile_table.row_for(tag)
        if row is not None:
            return (any(row.options.get(c) == "C" for c in self._deep_cols)
                    and profile_table.resolve(row, self.options) == "C")
        group = tag >> 16
        return ("graph" in self._deep_cols and not group & 1
                and (0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF))

    def leaves_to_pydicom(self, tag: int) -> str | None:
        """Why the byte-level rewriter must hand a file with this element to the pydicom path, or None.

        Parameters
        ----------
        tag : int

        Returns
        -------
        str or None
        """
        if self._deep(tag):
            return "an element that Clean Structured Content or Clean Graphics cleans"
        return None

    # ---- one data set ----------------------------------------------------------------------
    def apply(self, ds: Any, identity: str | None = None) -> list[str]:
        """De-identify ``ds`` in place.

        Parameters
        ----------
        ds : pydicom.Dataset
            A whole instance (with ``file_meta``).
        identity : str, optional
            The string the patient's pseudonyms and date shift derive from (the
            archive's patient key); default: the data set's patient ID, name and birth date.

        Returns
        -------
        list of str
            Warnings (no patient data in them).

        Raises
        ------
        BurnedInRefused
            The instance may carry burned-in text and ``allow_burned_in`` is False.
        VisualFeaturesRefused
            With the clean-visual-features option, the instance may show a face.
        """
        warnings: list[str] = []
        if self.clean_visual_features and not self.series_screened:
            face = dataset_reason(ds)
            if face is not None:
                raise VisualFeaturesRefused(refusal(face))
        why = burned_in_reason(ds)
        rule = match_rule(self.blanking, ds) if self.blanking else None
        self._pixels_cleaned = False
        if rule is not None:
            from .blanking import BlankingError

            try:
                warnings += blank_rectangles(ds, rule)
            except BlankingError as e:
                raise BurnedInRefused(f"refused: {e}") from None
            self._pixels_cleaned = True
        elif why is not None:
            if not self.allow_burned_in:
                raise BurnedInRefused(f"refused: {why}; pixel data is not cleaned (allow_burned_in exports it)")
            warnings.append(f"exported although {why}: check the pixels for text")
        if identity is None:
            identity = Pseudonyms.identity(str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""),
                                           str(ds.get("PatientBirthDate", "") or ""))
        self._days = self.names.day_shift(identity)
        self._scrub = _scrubber(ds) if "clean-descriptors" in self.options or self._deep_cols else None
        self._deep_notes: set[str] = set()
        self._walk(ds)
        warnings += sorted(self._deep_notes)
        code = self.names.patient_code(identity)
        ds.PatientName = self.patient_name or f"ANON^{code}"
        ds.PatientID = self.patient_id or f"PP{code}"
        self._record(ds)
        _new_file_meta(ds)
        return warnings

    def _record(self, ds: Any) -> None:
        from pydicom.dataset import Dataset

        ds.PatientIdentityRemoved = "YES"
        codes = [profile_table.BASIC_PROFILE_CODE] + [profile_table.OPTIONS[o][1:] for o in sorted(self.options)]
        if self._pixels_cleaned:
            codes.append(profile_table.CLEAN_PIXEL_CODE)
        ds.DeidentificationMethod = ["PocketPACS PS3.15 E.1-1"] + [m[:64] for _v, m in codes]
        items = []
        for value, meaning in codes:
            it = Dataset()
            it.CodeValue = value
            it.CodingSchemeDesignator = "DCM"
            it.CodeMeaning = meaning
            items.append(it)
        ds.DeidentificationMethodCodeSequence = items
        ds.LongitudinalTemporalInformationModified = (
            "UNMODIFIED" if self.full_dates else "MODIFIED" if "modified-dates" in self.options else "REMOVED")

    def _walk(self, ds: Any) -> None:
        safe_private = "safe-private" in self.options
        kept_blocks: set[tuple[int, int]] = set()
        # by tag: an element is decoded only when its action needs its value (pydicom writes
        # the others back from their raw bytes)
        for t in list(ds.keys()):
            tag = int(t)
            group, el = tag >> 16, tag & 0xFFFF
            if group & 1:  # private
                if 0x0010 <= el <= 0x00FF:
                    continue  # creators: decided below, once their blocks are known
                creator = ds.get(((group << 16) | (el >> 8)))
                if (safe_private and creator is not None and el >= 0x1000
                        and self.is_safe(str(creator.value or ""), group, el)):
                    kept_blocks.add((group, el >> 8))
                    continue
                del ds[tag]
                continue
            if group == 0x0002:
                continue
            if el == 0x0000:  # a group length (retired) would be wrong once elements change
                del ds[tag]
                continue
            if 0x6000 <= group <= 0x60FF and self._drop_overlays:
                del ds[tag]  # the overlay planes go with their data (Overlay Data is X)
                continue
            if self._deep_cols and self._deep(tag):
                self._clean_deep(ds, ds[tag])
                continue
            row = profile_table.row_for(tag)
            if row is not None:
                action = self._actions.get(tag) or profile_table.resolve(row, self.options)
                if action == "X":
                    del ds[tag]
                elif action != "K" or _raw_vr(ds, tag) in ("SQ", "UN"):
                    self._act(ds, ds[tag], action)
            elif _raw_vr(ds, tag) in _UNLISTED_VRS:
                self._unlisted(ds, ds[tag])
        for t in list(ds.keys()):
            tag = int(t)
            group, el = tag >> 16, tag & 0xFFFF
            if group & 1 and 0x0010 <= el <= 0x00FF and (group, el) not in kept_blocks:
                del ds[tag]

    def _act(self, ds: Any, elem: Any, action: str) -> None:
        vr = elem.VR
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = [] if vr == "SQ" else None
        elif action == "D":
            elem.value = [] if vr == "SQ" else (DUMMIES.get(vr) if vr in DUMMIES else None)
        elif action == "U":
            if vr == "SQ":
                for item in elem.value:
                    self._walk(item)
            else:
                self._uid(elem)
        elif action == "C":
            self._clean(ds, elem)
        elif vr == "SQ":  # K: kept, its items still walked
            for item in elem.value:
                self._walk(item)

    def _unlisted(self, ds: Any, elem: Any) -> None:
        """Attributes the table does not list: UIDs replaced, dates and person names made safe, sequences walked."""
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value:
                self._walk(item)
        elif vr == "UI":
            self._uid(elem)
        elif vr in ("DA", "DT"):
            if self.full_dates:
                pass  # Retain Longitudinal Temporal Information with Full Dates
            elif "modified-dates" in self.options:
                self._shift(elem)
            else:
                elem.value = None
        elif vr == "PN":
            elem.value = None

    def _clean_deep(self, ds: Any, elem: Any) -> None:
        """Clean Structured Content / Clean Graphics: the element stays, the profile applies
        inside it, and every text in it is cleaned of the instance's identifying words."""
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value:
                self._walk(item)
                self._scrub_tree(item)
        elif vr in _TEXT_VRS and vr != "CS":
            if self._scrub is not None and elem.value not in (None, ""):
                elem.value = self._scrub(elem)
        elif vr in ("DA", "DT", "UI", "PN"):
            self._unlisted(ds, elem)
        elif vr in ("OB", "OW", "UN"):
            group = elem.tag >> 16
            what = "overlay" if 0x6000 <= group <= 0x60FF else "curve" if 0x5000 <= group <= 0x50FF else "graphic"
            self._deep_notes.add(f"{what} data kept (clean-graphics): bitmaps are not read for text, check them")

    def _scrub_tree(self, ds: Any) -> None:
        if self._scrub is None:
            return
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value:
                    self._scrub_tree(item)
            elif (elem.VR in _TEXT_VRS and elem.VR != "CS" and elem.value not in (None, "")
                  and elem.keyword not in _CODE_KEYWORDS):
                elem.value = self._scrub(elem)

    def _uid(self, elem: Any) -> None:
        if elem.VR != "UI" or elem.value in (None, "") or self.retain_uids:
            return
        kw = elem.keyword or ""
        if kw in CLASS_UID_KEYWORDS or kw.endswith("ClassUID") or kw.endswith("ClassUIDInFile"):
            return
        vals = elem.value if elem.VM > 1 else [elem.value]
        out = [v if str(v).startswith("1.2.840.10008.") else self.names.uid(str(v)) for v in vals]
        elem.value = out if elem.VM > 1 else out[0]

    def _shift(self, elem: Any) -> None:
        if elem.value in (None, ""):
            return
        fn = shift_date if elem.VR == "DA" else shift_datetime
        vals = elem.value if elem.VM > 1 else [elem.value]
        out = [fn(str(v), self._days) for v in vals]
        elem.value = out if elem.VM > 1 else out[0]

    def _clean(self, ds: Any, elem: Any) -> None:
        vr = elem.VR
        if vr in ("DA", "DT"):
            self._shift(elem)
        elif vr == "TM":
            pass  # whole days are shifted: times of day stay true
        elif vr == "SQ":
            for item in elem.value:
                self._walk(item)
                if self._scrub is not None:
                    for sub in item:
                        if sub.VR in _TEXT_VRS and sub.value not in (None, ""):
                            sub.value = self._scrub(sub)
        elif vr in _TEXT_VRS and self._scrub is not None:
            if elem.value not in (None, ""):
                elem.value = self._scrub(elem)
        else:
            del ds[elem.tag]


def _new_file_meta(ds: Any) -> None:
    """File meta of the de-identified instance: its SOP class and (new) instance UID and the
    transfer syntax only; the source's application entity titles and private information
    (which name the station or the sender) are not carried over."""
    from pydicom.dataset import FileMetaDataset

    old = getattr(ds, "file_meta", None)
    fm = FileMetaDataset()
    if old is not None and "TransferSyntaxUID" in old:
        fm.TransferSyntaxUID = old.TransferSyntaxUID
    if "SOPClassUID" in ds:
        fm.MediaStorageSOPClassUID = ds.SOPClassUID
    elif old is not None and "MediaStorageSOPClassUID" in old:
        fm.MediaStorageSOPClassUID = old.MediaStorageSOPClassUID
    if "SOPInstanceUID" in ds:
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    fm.ImplementationVersionName = "POCKETPACS"
    ds.file_meta = fm
    ds.preamble = b"\0" * 128  # the source's preamble (any 128 bytes) is not carried over


def scrub_pattern(values: Iterable[str]) -> Callable[[str], str] | None:
    """A function that stars out the identifying words found in ``values`` (words of 3
    characters or more, split at ``^ = , `` and spaces) from a text, or None when there are none.

    Parameters
    ----------
    values : iterable of str
        One value each (multi-valued attributes given value by value).

    Returns
    -------
    callable or None
    """
    words: set[str] = set()
    for x in values:
        for w in re.split(r"[\^=\s,]+", str(x)):
            if len(w) >= 3:
                words.add(w)
    if not words:
        return None
    pat = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    return lambda text: pat.sub(lambda m: "*" * len(m.group(0)), text)


def _scrubber(ds: Any):
    """A function that removes the instance's identifying words (names, IDs,
    birth date, accession number, institution) from a text value."""
    values: list[str] = []
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
               "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "OtherPatientIDs",
               "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "StudyID"):
        v = ds[kw] if kw in ds else None
        if v is None or v.value in (None, ""):
            continue
        values += [str(x) for x in (v.value if v.VM > 1 else [v.value])]
    fn = scrub_pattern(values)
    if fn is None:
        return lambda e: e.value

    def scrub(elem: Any) -> Any:
        vals = elem.value if elem.VM > 1 else [elem.value]
        out = [fn(str(v)) for v in vals]
        return out if elem.VM > 1 else out[0]
    return scrub
