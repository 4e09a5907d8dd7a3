"""pydicom as the fallback parser, with every inflation capped.

Files the native kernels cannot decide (deflated transfer syntax, gzip-
compressed ``.dcm.gz``, unknown transfer syntaxes, encodings that switch) are
read here with pydicom, ``stop_before_pixels``.  :func:`read_dataset_capped`
streams gzip and deflate inflation so that at most a capped number of bytes is
ever held (:data:`MAX_INFLATED_HEADER` for a header, :data:`MAX_INFLATED_FILE`
for a whole file): a deflate bomb raises :class:`InflateCapError` instead of
filling memory.  :func:`parse_with_pydicom` fills one row of a
:class:`~pocketpacs.dicom.batch.HeaderBatch` from such a read.
"""
from __future__ import annotations

from typing import Any

from . import tags
from .batch import FALLBACK, UID_COL, HeaderBatch
from .text import BINARY_VRS, normalise

#: Bytes of a fallback file hashed for its fingerprint.
DEFAULT_HEAD = 8192

#: Cap on the inflated bytes read for a header (deflated transfer syntax or
#: a .dcm.gz file): a deflate bomb stops here instead of filling memory
#: (reliability notes, M8).
MAX_INFLATED_HEADER = 16 * 1024 * 1024
#: Cap on the inflated size of a whole file (pixel decoding of a deflated
#: or gzip-compressed file).
MAX_INFLATED_FILE = 1024 * 1024 * 1024
_INFLATE_CHUNK = 1 << 16


class InflateCapError(ValueError):
    """A deflated header or file inflates past its cap (a deflate bomb)."""


def _inflate_capped(fobj, cap: int, wbits: int) -> tuple[bytes, bool]:
    """Inflate ``fobj`` from its position, at most ``cap`` bytes.

    Returns (data, capped): ``capped`` when the stream holds more than
    ``cap`` bytes (only ``cap`` are returned).  Memory stays within the cap
    plus one input chunk, whatever the compression ratio.
    """
    import zlib

    d = zlib.decompressobj(wbits)
    out = bytearray()
    while True:
        inp = d.unconsumed_tail
        if not inp:
            if d.eof:
                break
            inp = fobj.read(_INFLATE_CHUNK)
            if not inp:
                out += d.flush()  # what zlib still holds: at most a window
                if len(out) > cap:
                    return bytes(out[:cap]), True
                break
        out += d.decompress(inp, cap + 1 - len(out))
        if len(out) > cap:
            return bytes(out[:cap]), True
        if d.eof:
            if wbits > 16 and d.unused_data:
                # concatenated gzip members: inflate the next one
                rest = d.unused_data
                d = zlib.decompressobj(wbits)
                out += d.decompress(rest, cap + 1 - len(out))
                if len(out) > cap:
                    return bytes(out[:cap]), True
                continue
            break
    return bytes(out), False


def _check_cap(bio, capped: bool, cap: int, what: str) -> None:
    """After a stop-before-pixels read of a capped prefix: fail when the
    header did not end inside the prefix."""
    if capped and bio.tell() >= cap - 16:
        raise InflateCapError(f"{what} inflates past {cap // (1024 * 1024)} MiB before the pixel data")


def read_dataset_capped(src, *, stop_before_pixels: bool = True, cap: int | None = None):
    """pydicom read of a file (path or bytes) with every inflation capped.

    Handles gzip-wrapped files and the deflated transfer syntax by
    streaming the inflation (pydicom would inflate the whole data set at
    once, unbounded): at most ``cap`` inflated bytes are held
    (``MAX_INFLATED_HEADER`` with ``stop_before_pixels``, else
    ``MAX_INFLATED_FILE``).  A header that does not end within the cap, or a
    whole file over it, raises :class:`InflateCapError`.
    """
    import io
    import zlib

    if cap is None:
        cap = MAX_INFLATED_HEADER if stop_before_pixels else MAX_INFLATED_FILE
    fobj = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else open(src, "rb")
    with fobj:
        magic = fobj.read(2)
        fobj.seek(0)
        if magic == b"\x1f\x8b":
            data, capped = _inflate_capped(fobj, cap, 16 + zlib.MAX_WBITS)
            if capped and not stop_before_pixels:
                raise InflateCapError(f"gzip file inflates past {cap // (1024 * 1024)} MiB")
            return _read_plain(io.BytesIO(data), stop_before_pixels, cap, capped)
        return _read_plain(fobj, stop_before_pixels, cap, False)


def _read_plain(fobj, stop_before_pixels: bool, cap: int, capped: bool):
    """dcmread of a seekable file object, inflating a deflated data set capped."""
    import io
    import zlib

    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    start = fobj.tell()
    preamble = read_preamble(fobj, True)
    meta = _read_file_meta_info(fobj)
    ts = str(meta.get("TransferSyntaxUID", "") or "").rstrip("\0 ")
    if ts != DeflatedExplicitVRLittleEndian:
        fobj.seek(start)
        ds = pydicom.dcmread(fobj, stop_before_pixels=stop_before_pixels, force=True,
                             defer_size=4096 if stop_before_pixels else None)
        if stop_before_pixels:
            _check_cap(fobj, capped, cap, "gzip file")
        return ds
    if capped:  # deflate inside gzip: the inner stream is truncated anyway
        raise InflateCapError("gzip file inflates past the cap")
    data, capped = _inflate_capped(fobj, cap, -zlib.MAX_WBITS)
    if capped and not stop_before_pixels:
        raise InflateCapError(f"deflated data set inflates past {cap // (1024 * 1024)} MiB")
    bio = io.BytesIO(data)
    stop = (lambda tag, vr, length: tag in (0x7FE00008, 0x7FE00009, 0x7FE00010)) \
        if stop_before_pixels else None
    dataset = read_dataset(bio, False, True, stop_when=stop,
                           defer_size=4096 if stop_before_pixels else None)
    if stop_before_pixels:
        _check_cap(bio, capped, cap, "deflated data set")
    ds = FileDataset(bio, dataset, preamble, meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _dcmread_fallback(src):
    """pydicom read of one file or blob's header (gzip and deflate inflated, capped)."""
    return read_dataset_capped(src, stop_before_pixels=True)


def parse_with_pydicom(batch: HeaderBatch, i: int, why: str) -> None:
    """Parse one file with pydicom (the fallback engine)."""
    import warnings


    from pydicom.uid import UncompressedTransferSyntaxes

    from pocketpacs.native.hashing import hash_bytes

    path = batch.paths[i]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _dcmread_fallback(batch._blobs[i] if batch._blobs is not None else path)
            values: dict[str, Any] = {}
            meta = getattr(ds, "file_meta", None)
            for spec in tags.TAGS:
                src = meta if spec.level == "meta" else ds
                if src is None or spec.tag not in src:
                    continue
                elem = src[spec.tag]
                v = elem.value
                if v is None and elem.VR not in BINARY_VRS:
                    v = ""
                values[spec.keyword] = normalise(v)
    except RecursionError:
        batch.fail(i, "malformed", "sequences nested too deeply")
        return
    except MemoryError:
        batch.fail(i, "malformed", "declared lengths exceed memory")
        return
    except InflateCapError as e:
        batch.fail(i, "malformed", f"{why}; {e}")
        return
    except Exception as e:  # pydicom raises many types on bad input
        batch.fail(i, "malformed", f"{why}; pydicom could not parse it either ({type(e).__name__})")
        return
    if not any(k in values for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID")):
        batch.fail(i, "not_dicom", f"{why}; no DICOM identifiers found")
        return
    batch.status[i] = FALLBACK
    batch._py[i] = values
    for kw, j in UID_COL.items():
        v = values.get(kw)
        if isinstance(v, str) and v:
            batch._uid_hash[i, j] = hash_bytes(v.rstrip("\0 ").encode("latin-1", "replace"))
    ts = values.get("TransferSyntaxUID")
    batch.encapsulated[i] = bool(ts) and ts not in UncompressedTransferSyntaxes
    # fingerprint: the first bytes of the file (deterministic for equal content)
    try:
        if batch._blobs is not None:
            head = batch._blobs[i][:DEFAULT_HEAD]
        else:
            with open(path, "rb") as f:
                head = f.read(DEFAULT_HEAD)
        batch.fingerprint[i] = hash_bytes(head)
    except OSError:
        pass
