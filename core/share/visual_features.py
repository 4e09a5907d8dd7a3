"""Clean Recognizable Visual Features (PS3.15 Annex E, DCM 113102): which series may show a face.

The option says that recognizable visual features (a face that a volume
rendering or a photograph shows) have been removed.  PocketPACS does not
deface: blanking the voxels in front of the skull of a 3D head volume well
enough to defeat face recognition, without cutting into the brain or the
orbits, is a segmentation job this package does not do.  So the honest
implementation is a check: with the option, an export **refuses** every
series that may show a face, with a message naming the series and why, and
records 113102 on the instances it does export (which, as far as their
headers tell, show no face).  A series is refused when

* it is a CT or MR series of the head or neck (or of the whole body) with at
  least :data:`MIN_SLICES` images or frames, or holds a mosaic (a Siemens
  ``MOSAIC`` or UIH ``VFRAME`` image is a volume in itself): enough for a
  surface rendering of the face.  The region comes from BodyPartExamined and
  the words of the study and series descriptions and the protocol name
  (:data:`HEAD_WORDS`); a CT or MR volume whose region none of these names
  (no head word, no :data:`BODY_WORDS`) is refused too, because nothing says
  it does not show the head;
* or its images are of a kind that may show a face whatever the region:
  photographs (VL Photographic, external camera ``XC``), secondary captures
  and screenshots (a captured 3D rendering), surface scans and meshes
  (:data:`FACE_SOP_CLASSES`, :data:`FACE_MODALITIES`), even with
  ``allow_burned_in`` (which is about text, not faces).

Head CT/MR series of fewer images (localizers, single slices), projection
radiographs, ultrasound, nuclear medicine and PET are exported: a slice or a
projection does not render a face.  :func:`series_reason` judges an archived
series (what ``export_dicom`` and the preview use, for both header
rewriters, before any file is read); :func:`dataset_reason` judges one data
set by its own frames (what :class:`~.deidentify.Deidentifier` checks when used
on its own; the byte-level rewriter, an internal part of the export, relies on
the export's series check).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: Fewest images (or frames) of a head CT/MR series that are refused: a stack this deep,
#: even of 5 mm slices, covers the face and renders its surface.
MIN_SLICES = 10
#: Modalities whose volumes render the skin surface (the face) of the head.
VOLUME_MODALITIES = frozenset({"CT", "MR"})
#: Modalities whose images may show a face whatever the body part (external camera photographs).
FACE_MODALITIES = frozenset({"XC"})
#: SOP Classes of images that may show a face (each UID and the classes below it, ``UID.n``):
#: photographs, secondary captures (screenshots of 3D renderings), surface meshes and scans.
FACE_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.7",        # Secondary Capture and its multi-frame classes (7.1-7.4)
    "1.2.840.10008.5.1.4.1.1.77.1.4",   # VL Photographic Image (and 77.1.4.1 Video Photographic)
    "1.2.840.10008.5.1.4.1.1.104.3",    # Encapsulated STL (a surface mesh)
    "1.2.840.10008.5.1.4.1.1.104.4",    # Encapsulated OBJ
    "1.2.840.10008.5.1.4.1.1.104.5",    # Encapsulated MTL
    "1.2.840.10008.5.1.4.1.1.66.5",     # Surface Segmentation
    "1.2.840.10008.5.1.4.1.1.68.1",     # Surface Scan Mesh
    "1.2.840.10008.5.1.4.1.1.68.2",     # Surface Scan Point Cloud
)
#: Words (upper case) that name the head or neck in BodyPartExamined, descriptions or protocol
#: names: a word matches when it starts with one of these (English, German, French, Spanish
#: terms and brain-only sequence names).
HEAD_WORDS = ("HEAD", "BRAIN", "SKULL", "CRAN", "CEREB", "NECK", "ORBIT", "PARANASAL", "NASAL", "MANDIB",
              "MAXILL", "DENTAL", "PETROUS", "TEMPORALBONE", "PAROTID", "PHARYNX", "NASOPHARYNX",
              "OROPHARYNX", "LARYNX", "THYROID", "CSPINE", "WHOLEBODY", "NEURO", "KOPF", "SCHAEDEL",
              "SCHADEL", "GEHIRN", "CERVEAU", "CABEZA", "MPRAGE", "MP2RAGE", "FMRI", "PITUITARY",
              "HYPOPHYS", "SELLA", "HIPPOCAMP")
#: Head words matched whole (a few digits after them allowed), too short or too common to match
#: as the start of a word.
HEAD_TOKENS = frozenset({"FACE", "FACES", "FACIAL", "EAR", "EARS", "IAC", "TMJ", "JAW", "NOSE", "TEETH",
                         "SINUS", "SINUSES", "WB", "TETE", "HIRN"})
#: Words that name a region below the neck (a CT/MR volume whose body part, or, when none is
#: recorded, whose descriptions name one and no head word passes).
BODY_WORDS = ("CHEST", "THORAX", "THORAC", "LUNG", "HEART", "CARDIAC", "CORONAR", "CALCIUM", "AORTA",
              "ABDOM", "PELVI", "LIVER", "KIDNEY", "RENAL", "PANCREA", "PROSTAT", "BLADDER", "UTERUS",
              "BREAST", "MAMM", "KNEE", "SHOULDER", "ELBOW", "WRIST", "ANKLE", "FEMUR", "TIBIA",
              "HUMERUS", "LSPINE", "TSPINE", "LUMBAR", "SACRUM", "EXTREMIT", "COLON", "ENTERO", "BAUCH",
              "BECKEN", "KNIE")
#: Body words matched whole.
BODY_TOKENS = frozenset({"ABD", "CAP", "HIP", "HIPS", "HAND", "HANDS", "FOOT", "FEET", "LEG", "LEGS", "ARM",
                         "ARMS"})

_WORD = re.compile(r"[A-Z0-9]+")


def _words(texts: Iterable[str]) -> list[str]:
    """The words of ``texts`` in upper case (hyphenated words also joined: C-SPINE -> CSPINE)."""
    out: list[str] = []
    for t in texts:
        t = str(t or "").upper()
        out += _WORD.findall(t)
        out += [w for w in _WORD.findall(t.replace("-", "")) if w not in out]
    return out


def _first(words: list[str], stems: tuple[str, ...], tokens: frozenset[str]) -> str | None:
    """The first of ``stems``/``tokens`` that one of ``words`` names, or None (our word, never theirs)."""
    for w in words:
        base = w.rstrip("0123456789")
        if base in tokens:
            return base
        for s in stems:
            if w.startswith(s):
                return s
    return None


def face_reason(modality: str, body_part: str, texts: Iterable[str], sop_classes: Iterable[str],
                image_types: Iterable[str], frames: int) -> str | None:
    """Why images with these facts may show a recognizable face, or None.

    Parameters
    ----------
    modality : str
        Modality (0008,0060).
    body_part : str
        BodyPartExamined (0018,0015), may be empty.
    texts : iterable of str
        Study and series descriptions and the protocol name (searched for region words).
    sop_classes : iterable of str
        SOP Class UIDs of the images.
    image_types : iterable of str
        ImageType values (backslash-joined) of the images.
    frames : int
        Images (or frames) the series holds.

    Returns
    -------
    str or None
        A reason that names the modality, the count and the region word of this module's
        vocabulary that matched (never a header text of the patient).
    """
    modality = str(modality or "").strip().upper()
    for uid in sorted(str(u or "").strip() for u in sop_classes):
        if any(uid == c or uid.startswith(c + ".") for c in FACE_SOP_CLASSES):
            from pydicom.uid import UID

            name = UID(uid).name if UID(uid).is_valid else "this SOP class"
            return f"{name} images may show a face (a photograph, a screenshot or a surface)"
    if modality in FACE_MODALITIES:
        return f"modality {modality} (photographs) may show a face"
    if modality not in VOLUME_MODALITIES:
        return None
    mosaic = any(t in ("MOSAIC", "VFRAME") for it in image_types for t in str(it or "").upper().split("\\"))
    if not mosaic and frames < MIN_SLICES:
        return None
    art = "an" if modality[:1] in "AEFHILMNORSX" else "a"  # (letters read with a vowel sound)
    what = (f"{art} {modality} series of mosaics (each a volume)" if mosaic
            else f"{art} {modality} series of {frames} images")
    part, text = _words([body_part]), _words(texts)
    head = _first(part, HEAD_WORDS, HEAD_TOKENS)
    if head is not None:
        return f"{what} of the head or neck (BodyPartExamined: {head}) can be rendered into a face"
    head = _first(text, HEAD_WORDS, HEAD_TOKENS)
    if head is not None:
        return f"{what} whose descriptions name the head or neck ({head}) can be rendered into a face"
    if part:
        if _first(part, BODY_WORDS, BODY_TOKENS) is not None:
            return None
        return (f"{what} of a region this check does not know to be below the neck (BodyPartExamined): "
                f"it may show the head, which can be rendered into a face")
    if _first(text, BODY_WORDS, BODY_TOKENS) is not None:
        return None
    return (f"{what} with no body part recorded (BodyPartExamined empty, no region named in the "
            f"descriptions): it may show the head, which can be rendered into a face")


def refusal(reason: str) -> str:
    """The refusal text of the option for a reason of :func:`face_reason`.

    Parameters
    ----------
    reason : str

    Returns
    -------
    str
    """
    return (f"refused (clean-visual-features): {reason}; PocketPACS does not deface images, "
            f"so it exports them only without this option")


def _frames(n: Any) -> int:
    try:
        return max(1, int(float(n)))
    except (TypeError, ValueError):
        return 1


def series_reason(archive: Any, series: Any) -> str | None:
    """:func:`face_reason` of an archived series (its records: no file is read).

    Parameters
    ----------
    archive : pocketpacs.Archive
    series : pocketpacs.archive.records.Series

    Returns
    -------
    str or None
    """
    try:
        study_desc = archive.study(series.study_key).description
    except KeyError:
        study_desc = ""
    insts = archive.instances(series)
    return face_reason(series.modality, series.body_part, [series.description, series.protocol, study_desc],
                       {i.sop_class_uid for i in insts}, {i.text.get("ImageType", "") for i in insts},
                       sum(_frames(i.values.get("NumberOfFrames")) for i in insts))


def dataset_reason(ds: Any) -> str | None:
    """:func:`face_reason` of one data set, by its own frames.

    Parameters
    ----------
    ds : pydicom.Dataset

    Returns
    -------
    str or None
    """
    def text(kw: str) -> str:
        v = ds.get(kw, "")
        if v is None:
            return ""
        if not isinstance(v, (str, bytes)) and hasattr(v, "__iter__"):  # a MultiValue (ImageType)
            return "\\".join(str(x) for x in v)
        return str(v)

    return face_reason(text("Modality"), text("BodyPartExamined"),
                       [text("StudyDescription"), text("SeriesDescription"), text("ProtocolName")],
                       [text("SOPClassUID")], [text("ImageType")], _frames(ds.get("NumberOfFrames", 1) or 1))


def screen_jobs(archive: Any, jobs: list[tuple[Any, str]], numbers: dict[str, int]
                ) -> tuple[list[tuple[Any, str]], list[str], int]:
    """Drop the (series, file) jobs of every series that may show a face.

    Parameters
    ----------
    archive : pocketpacs.Archive
    jobs : list of (Series, str)
        An export's files, series by series.
    numbers : dict
        Series key -> its number in the export's messages (filled in job order, as the export numbers them).

    Returns
    -------
    jobs : list of (Series, str)
        The files of the series that pass.
    warnings : list of str
        One per refused series: ``series N: refused (clean-visual-features): ...``.
    refused : int
        Files not exported.
    """
    reasons: dict[str, str | None] = {}
    for se, _p in jobs:
        if se.key not in reasons:
            numbers.setdefault(se.key, len(numbers) + 1)
            reasons[se.key] = series_reason(archive, se)
    kept = [(se, p) for se, p in jobs if reasons[se.key] is None]
    warnings = [f"series {numbers[k]}: {refusal(r)} ({sum(1 for se, _p in jobs if se.key == k)} file(s))"
                for k, r in reasons.items() if r is not None]
    return kept, warnings, len(jobs) - len(kept)
