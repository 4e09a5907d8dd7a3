"""pydicom as the fallback parser, with every inflation capped.

Files the native kernels cannot decide (deflated transfer syntax, gzip-
compressed ``.dcm.gz``, unknown transfer syntaxes, encodings that switch) are
read here with pydicom, ``stop_before_pixels``.  :func:`read_dataset_capped`
streams gzip and deflate inflation so that at most a capped number of bytes is
ever held (:data:`MAX_INFLATED_HEADER` for a header, :data:`MAX_INFLATED_FILE`
for a whole file): a deflate bomb raises :class:`InflateCapError` instead of
filling memory.  Every read goes through a bounded reader (:class:`_Bounded`):
a header is read from at most the first :data:`MAX_INFLATED_HEADER` bytes (read
as pydicom asks for them, never the whole file), a zero-filled region (a file
cut short and padded, a sparse file) stops the read at its first zero element
instead of making pydicom walk gigabytes of empty elements, and no read of a
data set spends more than :data:`MAX_READ_CPU_SECONDS` of CPU: a single file
cannot hold an import or a report for longer (issue 13).
:func:`parse_with_pydicom` fills one row of a
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
#: CPU seconds one pydicom read of a data set may take (a header, or a whole
#: file for decoding): a crafted file of millions of empty elements or items
#: is refused after this, whatever the machine's load (CPU time, not wall time).
MAX_READ_CPU_SECONDS = 5.0
_INFLATE_CHUNK = 1 << 16
#: Consecutive reads of nothing but zeros that mark a zero-filled region: an
#: element or item tag is never zero, so a legitimate data set has at most
#: two such reads in a row (an empty element's length, a value of zeros).
_ZERO_READS = 64


class HeaderLimitError(ValueError):
    """A header or file the fallback refuses to read further (the message says why)."""


class InflateCapError(HeaderLimitError):
    """A deflated header or file inflates past its cap (a deflate bomb)."""


class _Bounded:
    """A file object as pydicom reads it, with the fallback's limits.

    ``limit``: no byte at or past this offset is read (a header's prefix
    cap; None for a whole-file read).  A run of :data:`_ZERO_READS` reads of
    nothing but zeros (element or item headers of a zero-filled region) and more
    than :data:`MAX_READ_CPU_SECONDS` of CPU raise :class:`HeaderLimitError`.
    pydicom wraps some exceptions of ``read`` in its own (``OSError`` in a
    sequence item): the first error is kept in :attr:`error` for the caller
    to raise, and every later read raises it again.
    """

    def __init__(self, fobj, limit: int | None, what: str = "header") -> None:
        import time

        self._f = fobj
        self._limit = limit
        self._what = what
        self._zeros = 0
        self._reads = 0
        self._clock = time.thread_time
        self._t0 = self._clock()
        self.error: HeaderLimitError | None = None

    def _fail(self, msg: str):
        if self.error is None:
            self.error = HeaderLimitError(msg)
        raise self.error

    def read(self, n: int = -1) -> bytes:
        if self.error is not None:
            raise self.error
        if self._limit is not None:
            pos = self._f.tell()
            if n is None or n < 0 or pos + n > self._limit:
                if pos >= self._limit or n is None or n < 0:
                    self._fail(f"{self._what} runs past its first "
                               f"{self._limit // (1024 * 1024)} MiB")
                n = self._limit - pos
        b = self._f.read(n)
        self._reads += 1
        if b and b.count(0) == len(b):  # all zeros
            self._zeros += 1
            if self._zeros >= _ZERO_READS:
                self._fail(f"zero-filled data before byte {self._f.tell()} inside the "
                           f"{self._what} (no DICOM element there)")
        elif b:
            self._zeros = 0
        if not self._reads & 1023 and self._clock() - self._t0 > MAX_READ_CPU_SECONDS:
            self._fail(f"{self._what} takes over {MAX_READ_CPU_SECONDS:g} s of CPU to read "
                       f"(millions of elements)")
        return b

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self) -> int:
        return self._f.tell()

    def __getattr__(self, name):  # name, close, ... of the wrapped file
        return getattr(self._f, name)


def _zero_element(tag, vr, length) -> bool:
    """stop_when: an element (0000,0000) of length 0 is zero-filled data, no element."""
    return tag == 0 and not length


def _at_pixels_or_zeros(tag, vr, length) -> bool:
    return tag in (0x7FE00008, 0x7FE00009, 0x7FE00010) or (tag == 0 and not length)


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
    """dcmread of a seekable file object, inflating a deflated data set capped.

    The file is read through :class:`_Bounded`: a header within its first
    ``cap`` bytes, a zero-filled region ends the data set where it starts
    (top level) or refuses the file (inside a sequence).
    """
    import io

    # (a capped inflation is already within the cap: _check_cap says so)
    bounded = _Bounded(fobj, cap if stop_before_pixels and not capped else None,
                       "header" if stop_before_pixels else "data set")
    try:
        ds = _read_bounded(bounded, stop_before_pixels, cap, capped)
    except Exception:
        if bounded.error is not None:  # pydicom may have wrapped it in its own
            raise bounded.error from None
        raise
    # deferred values are read from the file itself, not through the wrapper
    if ds.buffer is bounded:
        plain_file = isinstance(fobj, io.BufferedReader)
        ds.buffer = None if plain_file else fobj
        ds.fileobj_type = open if plain_file else type(fobj)
    return ds


def _read_bounded(fobj, stop_before_pixels: bool, cap: int, capped: bool):
    import io
    import zlib

    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_partial, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    start = fobj.tell()
    preamble = read_preamble(fobj, True)
    meta = _read_file_meta_info(fobj)
    ts = str(meta.get("TransferSyntaxUID", "") or "").rstrip("\0 ")
    stop = _at_pixels_or_zeros if stop_before_pixels else _zero_element
    if ts != DeflatedExplicitVRLittleEndian:
        fobj.seek(start)
        ds = read_partial(fobj, stop, force=True, defer_size=4096 if stop_before_pixels else None)
        if stop_before_pixels:
            _check_cap(fobj, capped, cap, "gzip file")
        return ds
    if capped:  # deflate inside gzip: the inner stream is truncated anyway
        raise InflateCapError("gzip file inflates past the cap")
    data, capped = _inflate_capped(fobj._f, cap, -zlib.MAX_WBITS)
    if capped and not stop_before_pixels:
        raise InflateCapError(f"deflated data set inflates past {cap // (1024 * 1024)} MiB")
    bio = _Bounded(io.BytesIO(data), None, fobj._what)
    try:
        dataset = read_dataset(bio, False, True, stop_when=stop,
                               defer_size=4096 if stop_before_pixels else None)
    except Exception:
        if bio.error is not None:
            raise bio.error from None
        raise
    if stop_before_pixels:
        _check_cap(bio, capped, cap, "deflated data set")
    ds = FileDataset(bio._f, dataset, preamble, meta, False, True)
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
    except HeaderLimitError as e:
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
