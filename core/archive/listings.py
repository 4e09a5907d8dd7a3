"""Folder listings of the archive (the ``dirs`` database): each file's name,
size, mtime, instance key and status, so that a rescan compares a whole
folder with one read (:class:`DirListing`, :func:`listing_unchanged`), and
the stamp section some listings carry after their arrays
(:mod:`pocketpacs.archive.dirstamps`).  Re-exported by
:mod:`pocketpacs.archive.records`.  No I/O here.
"""
from __future__ import annotations

import struct
import sys
from array import array
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# ---- folder listings ---------------------------------------------------------------------

#: Status codes of a file in a folder listing (0 = indexed).
CODES: tuple[str, ...] = ("indexed", "not_dicom", "empty", "truncated", "unreadable",
                          "permission_denied", "vanished", "unsupported", "malformed", "conflict",
                          "no_identifiers")
CODE = {name: i for i, name in enumerate(CODES)}
#: Failures worth retrying even when the file looks unchanged.
TRANSIENT = frozenset({CODE["unreadable"], CODE["permission_denied"], CODE["vanished"]})


_LITTLE = sys.byteorder == "little" and array("q").itemsize == 8


def _le(a: np.ndarray, dt: str) -> bytes:
    """Bytes of an array in a little-endian dtype (no copy when it already is)."""
    import numpy as np

    want = np.dtype(dt)
    if a.dtype == want or (a.dtype.kind == "b" and want.itemsize == 1):
        return np.ascontiguousarray(a).tobytes()
    return a.astype(want).tobytes()


class DirListing:
    """The files of one folder as last seen by an import.

    Attributes
    ----------
    names : list of str
    size, mtime_ns : ndarray of int64
    keys : ndarray of uint8, shape (n, 16)
        Instance key of each file (zeros when not indexed).
    code : ndarray of int8
        :data:`CODES` index.
    missing : ndarray of bool
        The file was absent at the last check.
    """

    __slots__ = ("names", "size", "mtime_ns", "keys", "code", "missing", "_index")

    def __init__(self, names: list[str], size: np.ndarray, mtime_ns: np.ndarray, keys: np.ndarray,
                 code: np.ndarray, missing: np.ndarray):
        self.names = names
        self.size = size
        self.mtime_ns = mtime_ns
        self.keys = keys
        self.code = code
        self.missing = missing
        self._index: dict[str, int] | None = None

    @classmethod
    def empty(cls) -> "DirListing":
        import numpy as np

        return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 16), np.uint8),
                   np.zeros(0, np.int8), np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def index(self) -> dict[str, int]:
        """name -> row."""
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        return self._index

    def key(self, i: int) -> bytes:
        return self.keys[i].tobytes()

    def encode(self, folder: bytes | None = None) -> bytes:
        """Binary form: magic, count, names (NUL-joined), then the arrays;
        then, when given, ``P`` and the folder's full path (the listings of
        folders too long to be their own key: :mod:`~pocketpacs.archive.pathkeys`)."""
        n = len(self.names)
        names = "\0".join(self.names).encode("utf-8", "surrogateescape")
        return b"".join([
            b"DL1", n.to_bytes(4, "little"), len(names).to_bytes(4, "little"), names,
            _le(self.size, "<i8"), _le(self.mtime_ns, "<i8"), _le(self.keys, "u1"),
            _le(self.code, "i1"), _le(self.missing, "u1"),
        ] + ([] if folder is None else [b"P", folder]))

    @staticmethod
    def folder_of(raw: bytes) -> bytes | None:
        """The folder path stored after an encoded listing's arrays (None: none stored)."""
        if raw[:3] != b"DL1":
            raise ValueError("not a folder listing")
        n = int.from_bytes(raw[3:7], "little")
        end = 11 + int.from_bytes(raw[7:11], "little") + 34 * n
        if raw[end:end + 1] == SECTION:   # (a folder whose path is its key: none stored)
            return None
        if len(raw) > end and raw[end:end + 1] == b"P":
            return raw[end + 1:]
        if len(raw) < end:
            raise ValueError("a folder listing is truncated")
        return None

    @classmethod
    def decode(cls, raw: bytes) -> "DirListing":
        import numpy as np

        if raw[:3] != b"DL1":
            raise ValueError("not a folder listing")
        n = int.from_bytes(raw[3:7], "little")
        ln = int.from_bytes(raw[7:11], "little")
        p = 11
        names = raw[p:p + ln].decode("utf-8", "surrogateescape").split("\0") if n else []
        p += ln
        size = np.frombuffer(raw, "<i8", n, p).astype(np.int64)
        p += 8 * n
        mtime = np.frombuffer(raw, "<i8", n, p).astype(np.int64)
        p += 8 * n
        keys = np.frombuffer(raw, np.uint8, 16 * n, p).reshape(n, 16).copy()
        p += 16 * n
        code = np.frombuffer(raw, np.int8, n, p).copy()
        p += n
        missing = np.frombuffer(raw, np.uint8, n, p).astype(bool)
        return cls(names, size, mtime, keys, code, missing)

    @staticmethod
    def unchanged(raw: bytes, names: list[str], sizes: list[int], mtimes: list[int]) -> bool:
        """True when an encoded listing has exactly these files, sizes and
        mtimes, all indexed and present (the rescan fast path: no decoding)."""
        n = len(names)
        if raw[:3] != b"DL1" or int.from_bytes(raw[3:7], "little") != n:
            return False
        ln = int.from_bytes(raw[7:11], "little")
        p = 11
        if raw[p:p + ln] != "\0".join(names).encode("utf-8", "surrogateescape"):
            return False
        p += ln
        if _LITTLE:
            if raw[p:p + 16 * n] != array("q", sizes).tobytes() + array("q", mtimes).tobytes():
                return False
        elif (list(struct.unpack_from(f"<{n}q", raw, p)) != sizes
              or list(struct.unpack_from(f"<{n}q", raw, p + 8 * n)) != mtimes):
            return False
        p += 32 * n
        tail = raw[p:p + 2 * n]
        return len(tail) == 2 * n and tail.count(0) == 2 * n

    def select(self, rows: np.ndarray) -> "DirListing":
        """A listing with only ``rows`` (bool mask or indices)."""
        import numpy as np

        idx = np.nonzero(rows)[0] if rows.dtype == bool else rows
        return DirListing([self.names[i] for i in idx.tolist()], self.size[idx], self.mtime_ns[idx],
                          self.keys[idx], self.code[idx], self.missing[idx])


# ---- a folder compared with its listing as the walk found it (the rescan) ----------------

_DL1 = b"DL1"


def listing_unchanged(raw: bytes, n: int, names: bytes, sizes: bytes, mtimes: bytes) -> bool:
    """Whether an encoded listing has exactly these files, all indexed and
    present (the rescan's compare: a few byte comparisons, nothing decoded).

    Parameters
    ----------
    raw : bytes
        The folder's stored listing (:meth:`DirListing.encode`).
    n : int
        Files in the folder now.
    names : bytes
        Their names in directory order, joined with NUL (UTF-8, ``surrogateescape``).
    sizes, mtimes : bytes
        Their sizes and modification times (ns), little-endian int64 each.

    Returns
    -------
    bool
        What :meth:`DirListing.unchanged` says of the same files.
    """
    ln = len(names)
    e = 11 + ln
    return (raw[e + 32 * n:e + 34 * n].count(0) == 2 * n and len(raw) >= e + 34 * n
            and raw[:11] == _DL1 + n.to_bytes(4, "little") + ln.to_bytes(4, "little")
            and raw[11:e] == names and raw[e:e + 8 * n] == sizes and raw[e + 8 * n:e + 16 * n] == mtimes)


# ---- the folder's stamp after its listing (the rescan: archive.dirstamps) ------------------

#: Marks the section after a listing's arrays that holds its folder's stamp
#: and subfolders (:func:`~pocketpacs.archive.dirstamps.section`); only in
#: listings of folders whose path is their key (no path stored after the
#: arrays), and ignored by readers that do not look for it.
SECTION = b"S"


def listing_end(raw: bytes) -> int:
    """Where an encoded listing's arrays end (its section or stored path, if any, follows)."""
    return 11 + int.from_bytes(raw[7:11], "little") + 34 * int.from_bytes(raw[3:7], "little")


def listing_section(raw: bytes) -> bytes | None:
    """The stamp section stored after a listing (None: none)."""
    e = listing_end(raw)
    return raw[e + 1:] if raw[:3] == _DL1 and raw[e:e + 1] == SECTION else None


def listing_without_section(raw: bytes) -> bytes:
    """An encoded listing without its stamp section (as it was before one was added)."""
    if raw[:3] != _DL1:
        return raw
    e = listing_end(raw)
    return raw[:e] if raw[e:e + 1] == SECTION else raw


def listing_with_section(raw: bytes, section: bytes) -> bytes:
    """An encoded listing (of a folder whose path is its key) with ``section`` after its arrays.

    Raises
    ------
    ValueError
        ``raw`` is not a whole listing, or holds a folder path after its arrays.
    """
    e = listing_end(raw)
    if raw[:3] != _DL1 or len(raw) < e or raw[e:e + 1] not in (b"", SECTION):
        raise ValueError("not a folder listing that can take a stamp")
    return raw[:e] + SECTION + section
