"""The plan of a synthetic archive: every entity and every value, decided before any pixel work.

:func:`_make_plan` turns the options into patients (fake names, UTF-8 and
Latin-1), studies, single-frame and enhanced series (orientation, codec,
pixel format, positions, UIDs...) and junk files, and gives every file its
shuffled, non-informative name; everything comes from a seeded random
generator and hashes of the options, so the same options give the same plan.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dicom_values import (
    _COMPRESSED_CODECS,
    _ENHANCED_CODECS,
    _J2K_MIN_SIZE,
    CT_IMAGE_STORAGE,
    ENHANCED_CT_IMAGE_STORAGE,
    ENHANCED_MR_IMAGE_STORAGE,
    MR_IMAGE_STORAGE,
    TRANSFER_SYNTAXES,
    _fmt,
    _uid,
)

#: Junk kinds, written in this order (cycling) for ``junk=n``.
JUNK_KINDS: tuple[str, ...] = (
    "text", "jpeg", "empty", "truncated_dicom", "dicm_garbage", "png", "truncated_pixels")
_JUNK_DESCRIPTIONS = {
    "text": "plain UTF-8 text file",
    "jpeg": "JPEG image file (lossless JPEG, SOI..EOI), not DICOM",
    "empty": "empty file (0 bytes)",
    "truncated_dicom": "valid DICOM file cut inside the data set header (inside an element)",
    "dicm_garbage": "128-byte preamble + 'DICM' followed by random bytes",
    "png": "8-bit greyscale PNG image file, not DICOM",
    "truncated_pixels": "valid DICOM header, file cut in the middle of the Pixel Data value",
}

# In-plane field of view (mm) and coverage along the slice normal (mm).
_FOV_MM = 360.0
_COVERAGE_MM = {"axial": 240.0, "coronal": 240.0, "sagittal": 320.0, "oblique": 240.0}

# (PatientName, SpecificCharacterSet, PatientSex): the first patients of every
# archive, so that even tiny archives mix UTF-8 and Latin-1 encodings.
_FIXED_PATIENTS: tuple[tuple[str, str, str], ...] = (
    ("Müller^Jürgen", "ISO_IR 192", "M"),
    ("Gómez^María", "ISO_IR 100", "F"),
    ("Żółć^Łukasz", "ISO_IR 192", "M"),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "ISO_IR 192", "M"),
    ("Παπαδοπούλου^Ελένη", "ISO_IR 192", "F"),
    ("Ødegård^Åse", "ISO_IR 100", "F"),
    ("Smith^John^A", "ISO_IR 100", "M"),
    ("Dubois^Amélie", "ISO_IR 192", "F"),
)
_FAMILY = ("Schneider", "Fischer", "Weiß", "Bäcker", "Lefèvre", "García", "Núñez", "Jensen",
           "Andersson", "Kowalski", "O'Connor", "Rossi", "Nowak", "Dvořák", "Šimić",
           "Иванова", "Öztürk", "Nguyen", "Brown", "Håkansson", "Papadakis", "Søndergaard")
_GIVEN_M = ("Jürgen", "José", "Lars", "Michał", "Jiří", "Ömer", "Thomas", "Luca", "Björn", "Seán")
_GIVEN_F = ("Anna", "Zoë", "Inès", "Agnieszka", "Ivana", "Ирина", "Mette", "Chloé", "Ayşe", "Sofia")
_INSTITUTIONS = ("Klinikum Süd", "Hôpital Saint-Éloi", "General Hospital", "Universitätsspital Nord",
                 "Clínica del Río", "Synthetic Medical Center")
_PHYSICIANS = ("Weiß^Anna^^Dr.", "O'Brien^Seán", "Dupont^Hélène", "Lindqvist^Per", "Kim^Min",
               "García^Lucía", "Novák^Petr")
_CT_DEVICES = (("PocketScan Medical", "PS-CT 64"), ("Nordlicht Medizintechnik", "Aurora CT 128"),
               ("Synthetic Imaging Co.", "SynCT Flash"))
_MR_DEVICES = (("PocketScan Medical", "PS-MR 1.5T"), ("Nordlicht Medizintechnik", "Polaris 3T"),
               ("Synthetic Imaging Co.", "SynMR Vida"))
_CT_STUDIES = ("CT Thorax/Abdomen mit KM", "CT Thorax ± Kontrast", "CT Chest", "CT Abdomen nativ")
_MR_STUDIES = ("MRT Abdomen", "MR Thorax", "MRT Oberbauch mit KM", "MR Body")
_BODY_PARTS = {"CT": ("CHEST", "ABDOMEN", "CHEST"), "MR": ("ABDOMEN", "CHEST")}
_ORIENT_ABBR = {"axial": "AX", "coronal": "COR", "sagittal": "SAG", "oblique": "OBL"}
_ORIENT_CODE = {"axial": "AXIAL", "coronal": "CORONAL", "sagittal": "SAGITTAL", "oblique": "OBLIQUE"}

# Pixel formats: (name, BitsStored, PixelRepresentation, RescaleSlope, RescaleIntercept).
_CT_FORMATS = (("ct12u", 12, 0, "1", "-1024"), ("ct16u", 16, 0, "1", "-1024"),
               ("ct16s", 16, 1, "1", "-1024"))
_MR_FORMATS = (("mr12s", 12, 1, "1", "0"), ("mr16s", 16, 1, "1", "0"),
               ("mr16u_scaled", 16, 0, "0.5", "-1000"))


@dataclass
class _Patient:
    index: int
    patient_id: str
    name: str
    charset: str
    sex: str
    birth_date: str
    studies: list[_Study] = field(default_factory=list)


@dataclass
class _Study:
    index: int
    patient: _Patient
    uid: str
    modality: str
    date: str
    time_s: float
    accession: str
    study_id: str
    description: str
    institution: str
    referring: str
    body_part: str
    series: list[_Series] = field(default_factory=list)


@dataclass
class _Series:
    index: int
    kind: str  # "single-frame" or "enhanced"
    study: _Study
    uid: str
    frame_of_reference: str
    number: int
    modality: str
    sop_class: str
    codec: str
    orientation: str
    iop: list[str]
    spacing: list[str]
    thickness: str
    step: str
    rows: int
    cols: int
    pixel_format: str
    bits_stored: int
    pixel_representation: int
    slope: str
    intercept: str
    window_center: list[str]
    window_width: list[str]
    description: str
    protocol: str
    manufacturer: str
    model: str
    station: str
    performing: str
    time_s: float
    private_block: bool
    procedure_undefined_length: bool
    ascending: bool
    positions: list[list[str]]  # per instance (single-frame) or frame (enhanced)
    slice_locations: list[str]
    sop_uids: list[str]
    paths: list[str] = field(default_factory=list)

    @property
    def ts(self) -> str:
        return TRANSFER_SYNTAXES[self.codec]

    @property
    def implicit(self) -> bool:
        return self.codec == "implicit"

    @property
    def charset(self) -> str:
        return self.study.patient.charset


@dataclass
class _Junk:
    index: int
    kind: str
    path: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    options: dict[str, Any]
    ns: bytes
    patients: list[_Patient]
    studies: list[_Study]
    series: list[_Series]
    junk: list[_Junk]


def _latin1(s: str) -> bool:
    try:
        s.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _oblique_iop() -> list[str]:
    a, b = math.radians(17.0), math.radians(9.0)
    # R = Rx(a) @ Rz(b); rows = R[:, 0], columns = R[:, 1]
    row = (math.cos(b), math.cos(a) * math.sin(b), math.sin(a) * math.sin(b))
    col = (-math.sin(b), math.cos(a) * math.cos(b), math.sin(a) * math.cos(b))
    return [_fmt(v, 6) for v in row + col]


_IOP = {
    "axial": ["1", "0", "0", "0", "1", "0"],
    "coronal": ["1", "0", "0", "0", "0", "-1"],
    "sagittal": ["0", "1", "0", "0", "0", "-1"],
    "oblique": _oblique_iop(),
}


def _assign_counts(n: int, fraction: float) -> int:
    return max(0, min(n, int(round(fraction * n))))


def _make_plan(opts: dict[str, Any]) -> _Plan:
    seed = int(opts["seed"])
    key = json.dumps({k: opts[k] for k in sorted(opts) if k != "nested"}, sort_keys=True)
    ns = hashlib.blake2b(key.encode(), digest_size=16).digest()
    rng = np.random.default_rng([0x5EED, seed])
    P, S, R, N = opts["patients"], opts["studies"], opts["series"], opts["slices"]
    rows, cols = opts["rows"], opts["cols"]

    # ---- patients
    patients: list[_Patient] = []
    id_numbers = rng.choice(9_000_000, size=P, replace=False) + 1_000_000
    for p in range(P):
        if p < len(_FIXED_PATIENTS):
            name, charset, sex = _FIXED_PATIENTS[p]
        else:
            sex = "F" if rng.random() < 0.5 else "M"
            family = _FAMILY[int(rng.integers(len(_FAMILY)))]
            given = (_GIVEN_F if sex == "F" else _GIVEN_M)[int(rng.integers(10))]
            name = f"{family}^{given}"
            if rng.random() < 0.05:
                sex = "O"
            charset = "ISO_IR 192" if not _latin1(name) or rng.random() < 0.3 else "ISO_IR 100"
        birth = _dt.date(1930, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 75 * 365)))
        patients.append(_Patient(p, f"SYN{int(id_numbers[p])}", name, charset, sex,
                                 birth.strftime("%Y%m%d")))

    # ---- studies
    studies: list[_Study] = []
    acc_numbers = rng.choice(90_000_000, size=P * S, replace=False) + 10_000_000
    for pat in patients:
        for s in range(S):
            g = len(studies)
            modality = "CT" if (pat.index + s) % 2 == 0 else "MR"
            date = _dt.date(2012, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 12 * 365)))
            st = _Study(
                index=g, patient=pat, uid=_uid(ns, "study", g), modality=modality,
                date=date.strftime("%Y%m%d"), time_s=float(rng.integers(7 * 3600, 19 * 3600)),
                accession=f"ACC{int(acc_numbers[g])}", study_id=str(int(rng.integers(1, 99999))),
                description=(_CT_STUDIES if modality == "CT" else _MR_STUDIES)[
                    int(rng.integers(4))],
                institution=_INSTITUTIONS[int(rng.integers(len(_INSTITUTIONS)))],
                referring=_PHYSICIANS[int(rng.integers(len(_PHYSICIANS)))],
                body_part=_BODY_PARTS[modality][int(rng.integers(len(_BODY_PARTS[modality])))],
            )
            pat.studies.append(st)
            studies.append(st)

    # ---- per-series assignments of the single-frame series
    n = len(studies) * R
    orient = ["axial"] * n
    extra = []
    if n >= 2:
        extra.append("oblique")
    if n >= 4:
        k = max(1, int(round(0.12 * n)))
        extra += ["coronal"] * k + ["sagittal"] * k
    orient[:len(extra)] = extra
    orient = [orient[i] for i in rng.permutation(n)]
    order = rng.permutation(n)
    n_comp = _assign_counts(n, opts["compressed_fraction"])
    rot = int(rng.integers(3))
    # OpenJPEG needs at least 32 pixels per side (6 resolution levels)
    codecs = _COMPRESSED_CODECS if min(rows, cols) >= _J2K_MIN_SIZE else ("jpeg-lossless", "rle")
    codec = ["explicit"] * n
    for j, i in enumerate(order[:n_comp]):
        codec[i] = codecs[(j + rot) % len(codecs)]
    uncompressed = [int(i) for i in order[n_comp:]]
    for i in uncompressed[:_assign_counts(n, opts["implicit_fraction"])]:
        codec[i] = "implicit"

    series: list[_Series] = []
    for st in studies:
        for r in range(R):
            g = len(series)
            series.append(_plan_series(rng, ns, g, "single-frame", st, r + 1, orient[g], codec[g],
                                       N, rows, cols))
    for k in range(opts["enhanced"]):
        st = studies[k % len(studies)]
        g = len(series)
        enh_orient = ("axial", "coronal", "sagittal")[k % 3]
        enh_codec = _ENHANCED_CODECS[k % len(_ENHANCED_CODECS)]
        if enh_codec == "j2k" and min(rows, cols) < _J2K_MIN_SIZE:
            enh_codec = "rle"
        series.append(_plan_series(rng, ns, g, "enhanced", st, 900 + k + 1, enh_orient,
                                   enh_codec, N, rows, cols))
    for s in series:
        s.study.series.append(s)

    junk = [_Junk(j, JUNK_KINDS[j % len(JUNK_KINDS)]) for j in range(opts["junk"])]

    # ---- file names: shuffled, non-informative, unique
    n_files = sum(len(s.sop_uids) if s.kind == "single-frame" else 1 for s in series) + len(junk)
    numbers = rng.permutation(n_files)
    used: set[str] = set()
    names = []
    for g in range(n_files):
        salt = 0
        while True:
            h = hashlib.blake2b(ns + f"file|{g}|{salt}".encode(), digest_size=12).digest()
            style = h[0] % 3
            if style == 0:
                base = f"IM_{int(numbers[g]) + salt * n_files:06d}"
            elif style == 1:
                base = h[3:11].hex() + ".dcm"
            else:
                base = h[3:11].hex()
            # 64 x 16 folders: few enough that creating them is cheap
            rel = f"{h[1] & 0x3F:02x}/{h[2] & 0x0F:02x}/{base}" if opts["nested"] else base
            if rel.lower() not in used and rel != "manifest.json":
                used.add(rel.lower())
                names.append(rel)
                break
            salt += 1
    it = iter(names)
    for s in series:
        s.paths = [next(it) for _ in (s.sop_uids if s.kind == "single-frame" else [0])]
    for j in junk:
        j.path = next(it)
    return _Plan(opts, ns, patients, studies, series, junk)


def _plan_series(rng: np.random.Generator, ns: bytes, g: int, kind: str, st: _Study, number: int,
                 orientation: str, codec: str, n: int, rows: int, cols: int) -> _Series:
    modality = st.modality
    formats = _CT_FORMATS if modality == "CT" else _MR_FORMATS
    if codec == "jpeg-lossless":  # JPEG lossless carries unsigned samples only
        formats = tuple(f for f in formats if f[2] == 0)
    fmt = formats[int(rng.integers(len(formats)))]
    devices = _CT_DEVICES if modality == "CT" else _MR_DEVICES
    manufacturer, model = devices[int(rng.integers(len(devices)))]
    iop = list(_IOP[orientation])
    iop_f = np.array([float(v) for v in iop])
    row_dir, col_dir = iop_f[:3], iop_f[3:]
    normal = np.cross(row_dir, col_dir)
    spacing = _fmt(_FOV_MM / max(rows, cols), 6)
    sp = float(spacing)
    step = _fmt(_COVERAGE_MM[orientation] / n, 4)
    if float(step) <= 0:
        step = "0.0001"
    stp = float(step)
    thickness = step if modality == "CT" else _fmt(stp * 0.9, 4)
    center = np.array([round(float(v), 1) for v in rng.uniform(-12.0, 12.0, 3)])
    ascending = bool(rng.random() < 0.5)
    positions, locations = [], []
    for i in range(n):
        k = i if ascending else n - 1 - i
        p = (center + (k - (n - 1) / 2.0) * stp * normal
             - ((cols - 1) / 2.0) * sp * row_dir - ((rows - 1) / 2.0) * sp * col_dir)
        ipp = [_fmt(v, 4) for v in p]
        positions.append(ipp)
        # Slice Location: the position along the slice normal
        locations.append(_fmt(sum(float(a) * float(b) for a, b in zip(ipp, normal)), 4))
    abbr = _ORIENT_ABBR[orientation]
    if modality == "CT":
        wc, ww = (["40", "-600"], ["400", "1500"]) if rng.random() < 0.3 else (["40"], ["400"])
        kernel_name = ("B30f", "STANDARD", "LUNG")[int(rng.integers(3))]
        mpr = "" if orientation == "axial" else " MPR"
        description = f"{abbr} {float(thickness):.1f} {kernel_name}{mpr}"
        protocol = f"{st.body_part.title()} Routine"
    else:
        wc, ww = ["100"], ["1500"]
        weight = ("T1", "T2", "PD")[int(rng.integers(3))]
        description = f"{weight} {abbr}"
        protocol = f"{weight}_{abbr}_{st.body_part.lower()}"
    if kind == "enhanced":
        description += " MF"
    if st.patient.charset == "ISO_IR 192" and rng.random() < 0.5:
        description += " – nativ"  # EN DASH: not in Latin-1
    if kind == "enhanced":
        sop_class = ENHANCED_CT_IMAGE_STORAGE if modality == "CT" else ENHANCED_MR_IMAGE_STORAGE
        sop_uids = [_uid(ns, "instance", g, 0)]
    else:
        sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
        sop_uids = [_uid(ns, "instance", g, i) for i in range(n)]
    return _Series(
        index=g, kind=kind, study=st, uid=_uid(ns, "series", g),
        frame_of_reference=_uid(ns, "frame-of-reference", g), number=number, modality=modality,
        sop_class=sop_class, codec=codec, orientation=orientation, iop=iop,
        spacing=[spacing, spacing], thickness=thickness, step=step, rows=rows, cols=cols,
        pixel_format=fmt[0], bits_stored=fmt[1], pixel_representation=fmt[2], slope=fmt[3],
        intercept=fmt[4], window_center=wc, window_width=ww, description=description,
        protocol=protocol, manufacturer=manufacturer, model=model,
        station=f"{modality}{int(rng.integers(1, 20)):02d}SYN",
        performing=_PHYSICIANS[int(rng.integers(len(_PHYSICIANS)))],
        time_s=st.time_s + 90.0 * number + float(rng.integers(0, 60)),
        private_block=bool(rng.random() < 0.5),
        procedure_undefined_length=bool(g % 2 == 0), ascending=ascending,
        positions=positions, slice_locations=locations, sop_uids=sop_uids,
    )
