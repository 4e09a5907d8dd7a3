"""Deterministic malformed-input generators (reliability notes §1.4, M1-M14).

Unlike the random mutations of :mod:`fuzzing`, each generator here walks a
real file and yields every variant of one class: truncation at every
offset, length poisoning of every element, damage to every delimiter, VR
confusion of every element, deep nesting, deflate/gzip bombs, bogus pixel
geometry and polyglot preambles.  Used by tests/test_fuzz_structured.py
and benchmarks/fuzz_guided.py.

The element walker (:func:`elements`) is a plain-Python reader of the data
element structure (explicit/implicit VR little endian, explicit big
endian, nested sequences and items): it only finds where tags, VRs and
length fields are, so generators can aim at them.
"""
from __future__ import annotations

import gzip
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
            b"UT", b"UV"}
ITEM, ITEM_DELIM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
#: 32-bit length poisons: zero, odd, the two signed/unsigned extremes.
POISON32 = (0, 1, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF)
POISON16 = (0, 1, 3, 0x7FFF, 0xFFFE, 0xFFFF)
VR_SWAPS = (b"SQ", b"UN", b"OB", b"UT", b"US", b"UL", b"FD", b"ob", b"\x00\x00", b"ZZ")

#: pydicom's bundled files used as real seeds (no corpus needed).
PYDICOM_FILES = ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                 "JPEG2000.dcm", "rtplan.dcm", "nested_priv_SQ.dcm", "priv_SQ.dcm",
                 "SC_rgb_small_odd.dcm", "ExplVR_LitEndNoMeta.dcm", "MR_small_RLE.dcm")


def pydicom_file(name: str) -> bytes:
    from pydicom_data import bundled_file

    return Path(bundled_file(name)).read_bytes()


@dataclass
class Element:
    """Where one element (or item / delimiter) header sits in a file."""
    tag: int
    offset: int          #: offset of the tag
    vr_offset: int       #: offset of the explicit VR (-1: implicit or item)
    len_offset: int      #: offset of the length field
    len_size: int        #: 2 or 4
    value_offset: int
    length: int          #: as stored (0xFFFFFFFF undefined)
    depth: int           #: 0 = top-level data set
    little: bool


def _sq_by_dictionary(tag: int) -> bool:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def elements(blob: bytes) -> list[Element]:
    """Every element, item and delimiter header of ``blob`` (best effort).

    The walk stops quietly where the structure stops making sense (a
    generator then simply has fewer targets).
    """
    out: list[Element] = []
    pos = 0
    n = len(blob)
    if n >= 132 and blob[128:132] == b"DICM":
        pos = 132
    ts = None
    # file meta: explicit VR LE
    while pos + 8 <= n and struct.unpack_from("<H", blob, pos)[0] == 2:
        g, e = struct.unpack_from("<HH", blob, pos)
        vr = blob[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > n:
                return out
            ln = struct.unpack_from("<I", blob, pos + 8)[0]
            el = Element(g << 16 | e, pos, pos + 4, pos + 8, 4, pos + 12, ln, 0, True)
        else:
            ln = struct.unpack_from("<H", blob, pos + 6)[0]
            el = Element(g << 16 | e, pos, pos + 4, pos + 6, 2, pos + 8, ln, 0, True)
        out.append(el)
        if el.tag == 0x00020010:
            ts = blob[el.value_offset:el.value_offset + ln].rstrip(b"\0 ").decode("latin-1")
        pos = el.value_offset + ln
    little = ts != "1.2.840.10008.1.2.2"
    implicit = ts == "1.2.840.10008.1.2"
    if ts is None and pos + 6 <= n:
        implicit = not (0x40 < blob[pos + 4] < 0x5B and 0x40 < blob[pos + 5] < 0x5B)
        little = implicit or struct.unpack_from("<H", blob, pos)[0] < 1024
    if ts in ("1.2.840.10008.1.2.1.99",):
        return out  # deflated: nothing to walk
    _walk(blob, pos, n, little, implicit, 0, out, top=True)
    return out


def _walk(blob: bytes, pos: int, end: int, little: bool, implicit: bool, depth: int,
          out: list[Element], top: bool = False) -> int:
    """Walk a data set (or an item's content) from ``pos`` to ``end`` or its delimiter."""
    e16, e32 = ("<H", "<I") if little else (">H", ">I")
    while pos + 8 <= end and depth < 200:
        g = struct.unpack_from(e16, blob, pos)[0]
        e = struct.unpack_from(e16, blob, pos + 2)[0]
        tag = g << 16 | e
        if tag == ITEM_DELIM:
            out.append(Element(tag, pos, -1, pos + 4, 4, pos + 8,
                               struct.unpack_from(e32, blob, pos + 4)[0], depth, little))
            return pos + 8
        vr = blob[pos + 4:pos + 6]
        if implicit or g == 0xFFFE:
            ln = struct.unpack_from(e32, blob, pos + 4)[0]
            el = Element(tag, pos, -1, pos + 4, 4, pos + 8, ln, depth, little)
            is_sq = ln == 0xFFFFFFFF or _sq_by_dictionary(tag)
        elif vr in LONG_VRS:
            if pos + 12 > end:
                return end
            ln = struct.unpack_from(e32, blob, pos + 8)[0]
            el = Element(tag, pos, pos + 4, pos + 8, 4, pos + 12, ln, depth, little)
            is_sq = vr == b"SQ" or (ln == 0xFFFFFFFF)
        else:
            ln = struct.unpack_from(e16, blob, pos + 6)[0]
            el = Element(tag, pos, pos + 4, pos + 6, 2, pos + 8, ln, depth, little)
            is_sq = False
        out.append(el)
        pos = el.value_offset
        if tag == 0x7FE00010 and top:
            if ln == 0xFFFFFFFF:  # encapsulated: the items of the fragments
                _items(blob, pos, end, little, implicit, depth + 1, out, fragments=True)
            return end
        if is_sq:
            inner_impl = True if vr == b"UN" and ln == 0xFFFFFFFF else implicit
            stop = end if ln == 0xFFFFFFFF else min(end, pos + ln)
            pos = _items(blob, pos, stop, little, inner_impl, depth + 1, out)
            if ln != 0xFFFFFFFF:
                pos = el.value_offset + ln
            continue
        if ln == 0xFFFFFFFF:
            return end
        pos += ln
    return pos


def _items(blob: bytes, pos: int, end: int, little: bool, implicit: bool, depth: int,
           out: list[Element], fragments: bool = False) -> int:
    e16, e32 = ("<H", "<I") if little else (">H", ">I")
    while pos + 8 <= end:
        tag = struct.unpack_from(e16, blob, pos)[0] << 16 | struct.unpack_from(e16, blob, pos + 2)[0]
        ln = struct.unpack_from(e32, blob, pos + 4)[0]
        out.append(Element(tag, pos, -1, pos + 4, 4, pos + 8, ln, depth, little))
        if tag == SEQ_DELIM:
            return pos + 8
        if tag != ITEM:
            return end
        pos += 8
        if fragments:
            if ln == 0xFFFFFFFF:
                return end
            pos += ln
        elif ln == 0xFFFFFFFF:
            pos = _walk(blob, pos, end, little, implicit, depth + 1, out)
        else:
            _walk(blob, pos, min(end, pos + ln), little, implicit, depth + 1, out)
            pos += ln
    return pos


def top_level_boundaries(blob: bytes) -> set[int]:
    """Offsets where a top-level element starts (a prefix ending there is a
    complete, shorter data set), plus the end of the file meta."""
    return {e.offset for e in elements(blob) if e.depth == 0}


# ---- generators ------------------------------------------------------------------------------
def truncations(blob: bytes, every_until: int, stride: int = 97):
    """``blob[:k]`` for every k < ``every_until``, then every ``stride`` bytes."""
    for k in range(min(every_until, len(blob))):
        yield k, blob[:k]
    for k in range(every_until, len(blob), stride):
        yield k, blob[:k]


def truncation_offsets(blob: bytes, header_end: int, every_until: int = 32768) -> list[int]:
    """Cut points for a file: every offset of the header (up to
    ``every_until``); past that, every offset inside and just after each
    element's tag, VR and length field plus every 61st byte; then every
    97th byte of the rest."""
    end = min(len(blob), header_end + 300)
    ks = set(range(min(end, every_until)))
    if end > every_until:
        ks.update(range(every_until, end, 61))
        for el in elements(blob):
            if el.offset < end:
                ks.update(range(el.offset, min(len(blob), el.value_offset + 4)))
    ks.update(range(end, len(blob), 97))
    return sorted(ks)


def _put(b: bytearray, el: Element, value: int) -> None:
    fmt = ("<" if el.little else ">") + ("I" if el.len_size == 4 else "H")
    struct.pack_into(fmt, b, el.len_offset, value)


def length_poisons(blob: bytes):
    """Every element/item/delimiter length set to 0, odd, past the end,
    0x7FFFFFFF, 0xFFFFFFFF (and neighbours); yields (what, variant)."""
    for el in elements(blob):
        remaining = len(blob) - el.value_offset
        if el.len_size == 4:
            vals = set(POISON32) | {min(0xFFFFFFFE, remaining + 1), (el.length | 1) & 0xFFFFFFFF}
        else:
            vals = set(POISON16) | {min(0xFFFF, remaining + 1), (el.length | 1) & 0xFFFF}
        for v in sorted(vals):
            if v == el.length:
                continue
            b = bytearray(blob)
            _put(b, el, v)
            yield f"len {el.tag:08X}@{el.offset}={v:#x}", bytes(b)


def delimiter_damage(blob: bytes):
    """Every item/sequence delimiter removed, given a non-zero length,
    duplicated or moved to the end; every item tag removed or replaced."""
    for el in elements(blob):
        if el.tag not in (ITEM, ITEM_DELIM, SEQ_DELIM):
            continue
        a, z = el.offset, el.offset + 8
        name = f"{el.tag:08X}@{a}"
        yield f"drop {name}", blob[:a] + blob[z:]
        yield f"dup {name}", blob[:z] + blob[a:z] + blob[z:]
        yield f"move-end {name}", blob[:a] + blob[z:] + blob[a:z]
        yield f"move-front {name}", blob[:132] + blob[a:z] + blob[132:a] + blob[z:]
        b = bytearray(blob)
        _put(b, el, 4)
        yield f"nonzero {name}", bytes(b)
        if el.tag == ITEM:
            b = bytearray(blob)
            b[a:a + 4] = (b"\x08\x00\x18\x00" if el.little else b"\x00\x08\x00\x18")
            yield f"item->element {name}", bytes(b)
        else:
            b = bytearray(blob)
            b[a:a + 4] = (b"\xfe\xff\x00\xe0" if el.little else b"\xff\xfe\xe0\x00")
            yield f"delim->item {name}", bytes(b)


def vr_confusions(blob: bytes):
    """Every explicit VR replaced by each of ``VR_SWAPS``."""
    for el in elements(blob):
        if el.vr_offset < 0:
            continue
        for vr in VR_SWAPS:
            if blob[el.vr_offset:el.vr_offset + 2] == vr:
                continue
            b = bytearray(blob)
            b[el.vr_offset:el.vr_offset + 2] = vr
            yield f"vr {el.tag:08X}@{el.offset}={vr!r}", bytes(b)


def nested(depth: int, implicit: bool = False, defined_items: bool = False) -> bytes:
    """A file whose data set nests ``depth`` sequences (undefined length)."""
    pre = bytes(128) + b"DICM"
    ts = (b"1.2.840.10008.1.2\0" if implicit else b"1.2.840.10008.1.2.1\0")
    meta = struct.pack("<HH2sH", 2, 0x10, b"UI", len(ts)) + ts
    if implicit:
        head = struct.pack("<HHI", 8, 0x18, 6) + b"1.2.3\0"
        open_sq = struct.pack("<HHI", 0x0008, 0x1115, 0xFFFFFFFF)
    else:
        head = struct.pack("<HH2sH", 8, 0x18, b"UI", 6) + b"1.2.3\0"
        open_sq = struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return pre + meta + head + (open_sq + open_item) * depth + close * depth


def _meta(ts: bytes) -> bytes:
    ts = ts + (b"\0" if len(ts) % 2 else b"")
    sop = b"1.2.840.10008.5.1.4.1.1.7\0"
    els = (struct.pack("<HH2sH", 2, 0x02, b"UI", len(sop)) + sop
           + struct.pack("<HH2sH", 2, 0x10, b"UI", len(ts)) + ts)
    return bytes(128) + b"DICM" + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(els)) + els


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _small_dataset() -> bytes:
    return (_explicit(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")
            + _explicit(0x00080018, b"UI", b"1.2.3.4.5.6\0")
            + _explicit(0x0020000D, b"UI", b"1.2.3.4\0")
            + _explicit(0x0020000E, b"UI", b"1.2.3.4.5\0"))


def deflate_bomb(inflated: int = 4 << 30) -> bytes:
    """A deflated-transfer-syntax file whose data set inflates to ``inflated``
    bytes (an OB element of that many zeros after the identifiers).  Built
    from byte-aligned full-flush blocks, so it costs milliseconds."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = _small_dataset() + struct.pack("<HH2sHI", 0x0011, 0x1010, b"OB", 0, 0xFFFFFFF0)
    out = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
    mib = bytes(1 << 20)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    out.append(block * max(1, (inflated - len(head)) >> 20))
    out.append(c.flush())
    return _meta(b"1.2.840.10008.1.2.1.99") + b"".join(out)


def gzip_bomb(inflated: int = 4 << 30) -> bytes:
    """A .dcm.gz whose content inflates to ``inflated`` bytes: a valid header
    followed by a huge private OB value of zeros (gzip members concatenated)."""
    head = _meta(b"1.2.840.10008.1.2.1") + _small_dataset() + struct.pack(
        "<HH2sHI", 0x0011, 0x1010, b"OB", 0, 0xFFFFFFF0)
    member = gzip.compress(bytes(1 << 24), 9)
    return gzip.compress(head) + member * max(1, inflated >> 24)


def deflated_file(dataset: bytes | None = None) -> bytes:
    """A small valid deflated-transfer-syntax file."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = dataset if dataset is not None else _small_dataset()
    return _meta(b"1.2.840.10008.1.2.1.99") + c.compress(body) + c.flush()


ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + struct.pack("<HHI", 2, 0x3E, 1)
PE = b"MZ" + bytes(58) + struct.pack("<I", 64) + b"PE\0\0" + struct.pack("<HH", 0x8664, 1)
TIFF = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 256, 4, 1, 64)


def polyglots(blob: bytes):
    """``blob`` with an ELF, PE or TIFF header (and random bytes) in its
    128-byte preamble (CVE-2019-11687): must parse exactly as ``blob``."""
    if len(blob) < 132 or blob[128:132] != b"DICM":
        return
    for name, head in (("elf", ELF), ("pe", PE), ("tiff", TIFF),
                       ("ff", b"\xff" * 128), ("dicm", b"DICM" * 32)):
        pre = (head + bytes(128))[:128]
        yield name, pre + blob[128:]


def pixel_file(rows: int = 4, cols: int = 4, frames: str | None = None, bits: int = 16,
               pixel_bytes: int = 32, ts: str = "1.2.840.10008.1.2.1", samples: int = 1,
               encapsulated: bool = False) -> bytes:
    """A small image file with chosen (possibly bogus) geometry."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.%d.%d.%d" % (rows, cols, bits)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.BitsAllocated = rows, cols, bits
    ds.BitsStored = bits if 0 < bits <= 16 else 16
    ds.HighBit = ds.BitsStored - 1
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.PixelRepresentation = 0
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    if frames is not None:
        ds.NumberOfFrames = frames
    if encapsulated:
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(pixel_bytes)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = bytes(pixel_bytes)
        ds["PixelData"].VR = "OW"
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    return bio.getvalue()


def real_files(scale: str = "ci", corpus: Path | None = None) -> list[tuple[str, bytes]]:
    """Real files the per-element generators walk: pydicom's bundled files,
    plus (``scale="long"``) up to 60 corpus files' first 256 KiB."""
    out = [(n, pydicom_file(n)) for n in PYDICOM_FILES]
    if scale == "long" and corpus is not None and corpus.is_dir():
        import random

        files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in
                       (".dcm", "") and p.stat().st_size > 256 and p.name not in
                       ("LICENSE", "README", "SOURCE"))
        rng = random.Random(5)
        for p in rng.sample(files, min(60, len(files))):
            with open(p, "rb") as f:
                b = f.read(262144)
            if b[128:132] == b"DICM":
                out.append((str(p.relative_to(corpus)), b))
    return out


def header_end(blob: bytes) -> int:
    from pocketpacs.dicom.headers import parse_bytes

    hb = parse_bytes([blob], fallback=False)
    return int(hb.header_end[0]) if hb.status[0] == 0 else len(blob)


def all_inputs(scale: str = "ci", corpus: Path | None = None):
    """Every structured input of every class, deterministic: (name, bytes).

    ``ci`` walks pydicom's bundled files; ``long`` adds corpus files.
    """
    for name, b in real_files(scale, corpus):
        he = header_end(b)
        for k in truncation_offsets(b, he):
            yield f"{name}|trunc {k}", b[:k]
        for what, v in length_poisons(b):
            yield f"{name}|{what}", v
        for what, v in delimiter_damage(b):
            yield f"{name}|{what}", v
        for what, v in vr_confusions(b):
            yield f"{name}|{what}", v
        for what, v in polyglots(b):
            yield f"{name}|poly {what}", v
    for depth in (1, 63, 64, 65, 1000, 100_000):
        for implicit in (False, True):
            yield f"nested {depth} {'implicit' if implicit else 'explicit'}", nested(depth, implicit)
    yield "deflated", deflated_file()
    yield "deflate bomb 64 MiB", deflate_bomb(64 << 20)
