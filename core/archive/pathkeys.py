"""Keys of file-system paths in the archive's databases.

Three databases are keyed by a path: ``dirs`` (folder -> its listing),
``roots`` (imported folder -> record) and ``conflicts`` (instance key + file
path -> record).  LMDB keys are at most 511 bytes, while a path the system
opens can be 4,096 bytes long or more.  A path of up to
:data:`PATH_KEY_MAX` bytes (UTF-8 with ``surrogateescape``, as everywhere in
the archive) is its own key, as in schema 2; a longer one is keyed by its
first :data:`STEM` bytes, a NUL (which no path contains, so the two kinds
never collide) and the first 16 bytes of the SHA-256 of the whole path, and
the whole path is stored in the value (after a folder listing's arrays; as
``path_hex`` in a root or conflict record).  Both kinds keep the leading
bytes of the path, so the folders under a root are still one key range
(:func:`folders_under`).

Every lookup by path builds its key with :func:`path_key`, and every path is
read back from an entry with :func:`path_of` (or :func:`listing_folder`,
:func:`root_path`, :func:`conflict_path`).  An LMDB key-size error is a bug
of ours, not a damaged database: :class:`KeySizeError` says so, with the
length of the path (see :func:`key_size_error`).
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

from ..errors import REBUILD_ADVICE, PocketPacsError
from . import records

#: LMDB's longest key (py-lmdb's ``Environment.max_key_size()`` with the default build).
LMDB_MAX_KEY = 511
#: Longest path (bytes) that is its own key; the conflicts' keys add the
#: 16-byte instance key in front, which leaves room below :data:`LMDB_MAX_KEY`.
PATH_KEY_MAX = 400
#: Leading bytes of a longer path kept in its key.
STEM = PATH_KEY_MAX - 17
_HASHED = b"\0"


class KeySizeError(PocketPacsError):
    """A database key or value had a size LMDB refuses: an internal error of
    PocketPACS (the archive is not damaged by it)."""


def path_bytes(path: str) -> bytes:
    """The bytes of a path as the archive stores them."""
    return path.encode("utf-8", "surrogateescape")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def path_key(path: str) -> bytes:
    """Key of ``path`` in ``dirs`` and ``roots`` (and, after the instance
    key, in ``conflicts``): at most :data:`PATH_KEY_MAX` bytes."""
    b = path_bytes(path)
    if len(b) <= PATH_KEY_MAX:
        return b
    return b[:STEM] + _HASHED + hashlib.sha256(b).digest()[:16]


def is_hashed(key: bytes) -> bool:
    """True when a path key is the hashed form (the path is in the value)."""
    return _HASHED in key


def path_of(key: bytes, stored: bytes | None) -> str:
    """The path of an entry: its key, or (hashed key) the path ``stored`` in its value.

    Raises
    ------
    records.DamagedRecord
        A hashed key without a stored path, or with a path of another key.
    """
    if not is_hashed(key):
        return _text(key)
    if stored is None or path_key(_text(stored)) != key:
        raise records.DamagedRecord("a path of the archive database does not match its key: "
                                    f"the database is damaged; {REBUILD_ADVICE}")
    return _text(stored)


# ---- dirs ----------------------------------------------------------------------------------

def listing_folder(key: bytes, raw: bytes) -> str:
    """The folder of a ``dirs`` entry."""
    return path_of(key, records.DirListing.folder_of(raw) if is_hashed(key) else None)


def encode_listing(folder: str, lst: records.DirListing) -> tuple[bytes, bytes]:
    """``(key, value)`` of a folder's listing in ``dirs``."""
    key = path_key(folder)
    return key, lst.encode(path_bytes(folder) if is_hashed(key) else None)


def get_listing(txn: Any, folder: str) -> bytes | None:
    """The stored listing of ``folder`` (encoded), or None."""
    return txn.get("dirs", path_key(folder))


def put_listing(txn: Any, folder: str, lst: records.DirListing, stamp: bytes | None = None) -> None:
    """Store the listing of ``folder``, with the folder's ``stamp`` section
    when given (:mod:`~pocketpacs.archive.dirstamps`; not after a long
    folder's stored path); an empty listing deletes the entry."""
    key, value = encode_listing(folder, lst)
    if stamp is not None and not is_hashed(key):
        value = records.listing_with_section(value, stamp)
    if len(lst):
        txn.put("dirs", key, value)
    else:
        txn.delete("dirs", key)


def folders_under(txn: Any, root: str, skip: set[bytes] | frozenset[bytes] = frozenset()
                  ) -> list[tuple[str, bytes]]:
    """``(folder, key)`` of every stored listing of ``root`` and the folders
    below it, but those whose key is in ``skip`` (not decoded: a rescan's
    walk has seen them)."""
    prefix = root.rstrip(os.sep) + os.sep
    pb = path_bytes(prefix)
    out = []
    # the keys that start with the prefix (or, for a long one, with its stem)
    for k, v in txn.range("dirs", pb[:STEM]):
        if k in skip:
            continue
        if len(pb) <= STEM and not is_hashed(k):
            out.append((_text(k), k))
            continue
        d = listing_folder(k, v)
        if d.startswith(prefix):
            out.append((d, k))
    rk = path_key(root)
    if rk not in skip and txn.get("dirs", rk) is not None:
        out.append((root, rk))
    return out


def listings_under(txn: Any, root: str) -> dict[bytes, bytes]:
    """``{key: stored listing}`` of ``root`` and of every folder below it
    (the entries :func:`folders_under` names), read in one pass over the key
    range: a rescan looks its folders up here instead of one database read
    per folder, and the folders it did not walk are the gone ones."""
    prefix = root.rstrip(os.sep) + os.sep
    pb = path_bytes(prefix)
    lo = pb[:STEM]
    hi = _after(lo)
    out = dict(txn.range("dirs", lo) if hi is None else txn.range_items("dirs", lo, hi))
    if len(pb) > STEM or max(map(len, out), default=0) > STEM:
        # a long prefix or long folders: keys share the stem but maybe not the folder
        out = {k: v for k, v in out.items() if listing_folder(k, v).startswith(prefix)}
    rk = path_key(root)
    raw = txn.get("dirs", rk)
    if raw is not None:
        out[rk] = raw
    return out


def _after(prefix: bytes) -> bytes | None:
    """The least key above every key that starts with ``prefix`` (None: there is none)."""
    p = prefix.rstrip(b"\xff")
    return p[:-1] + bytes([p[-1] + 1]) if p else None


# ---- roots ---------------------------------------------------------------------------------

def root_record(root: str, rec: dict) -> tuple[bytes, bytes]:
    """``(key, value)`` of an imported folder's record in ``roots``."""
    key = path_key(root)
    if is_hashed(key):
        rec = {**rec, "path_hex": path_bytes(root).hex()}
    return key, records.dumps(rec)


def _stored_hex(rec: Any) -> bytes | None:
    h = rec.get("path_hex") if isinstance(rec, dict) else None
    try:
        return bytes.fromhex(h) if isinstance(h, str) else None
    except ValueError:
        return None


def root_path(key: bytes, raw: bytes) -> str:
    """The folder of a ``roots`` entry."""
    return path_of(key, _stored_hex(records.loads(raw)) if is_hashed(key) else None)


def roots(txn: Any) -> list[str]:
    """Every imported folder, in key order."""
    return [root_path(k, v) for k, v in txn.range("roots")]


# ---- conflicts -----------------------------------------------------------------------------

def conflict_record(ikey: bytes, path: str, rec: dict) -> tuple[bytes, bytes]:
    """``(key, value)`` of a file kept apart as a conflict of instance ``ikey``."""
    pk = path_key(path)
    if is_hashed(pk):
        rec = {**rec, "path_hex": path_bytes(path).hex()}
    return ikey + pk, records.dumps(rec)


def conflict_path(key: bytes, rec: dict) -> str:
    """The file of a ``conflicts`` entry (``rec``: its decoded record)."""
    pk = key[16:]
    return path_of(pk, _stored_hex(rec) if is_hashed(pk) else None)


# ---- errors --------------------------------------------------------------------------------

def is_key_size_error(exc: BaseException) -> bool:
    """True for LMDB's refusal of a key or value size (``BadValsizeError``)."""
    import lmdb

    return isinstance(exc, lmdb.BadValsizeError)


def key_size_error(exc: BaseException, paths: list[str]) -> KeySizeError:
    """The error to raise instead of LMDB's ``BadValsizeError`` while writing
    the entries of ``paths``: an internal error naming the longest path's length."""
    longest = max((len(path_bytes(p)) for p in paths), default=0)
    return KeySizeError(
        f"internal error of PocketPACS: LMDB refused a key or value size ({type(exc).__name__}) "
        f"while indexing {len(paths):,} path(s) (longest path: {longest:,} bytes); the archive is "
        "not damaged and nothing of this step was written; please report this")
