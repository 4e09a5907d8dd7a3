"""Where received instances go: the store folder the archive manages, and
the indexer that puts them into the archive while they arrive.

Every instance received (C-GET, C-MOVE, C-STORE to the listener, WADO-RS) is
kept as the bytes that arrived (a DIMSE data set gets its file meta group
from :func:`part10`, never decoded and encoded again) and written to a
temporary file in ``<archive>/store-incoming/`` (0600, created exclusively,
never through a link) and renamed into
``<archive>/store/<aa>/<study>/<series>/<sop>.dcm``, names made of SHA-256
hashes of the UIDs (no patient data in a file name), folders 0700; a reader
sees a whole file or none.  :class:`Indexer` runs the archive's own importer
(:meth:`pocketpacs.archive.api.Archive.import_folder`) over the store folder
from one thread, every half second while files arrive and once at the end:
an import of a folder imported before reads only its new files, so series
appear in the archive while a retrieve runs.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import struct
import threading
from pathlib import Path
from typing import Any

from ..log import logger
from ..paths import ensure_private_dir

STORE_DIR = "store"
INCOMING_DIR = "store-incoming"
#: Seconds between two imports of the store folder while files arrive.
INDEX_EVERY = 0.5


def _h(uid: str, n: int) -> str:
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:n]


def is_cancelled(cancel: Any) -> bool:
    """True when *cancel* (a ``threading.Event``, a callable or None) says stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def store_folder(archive: Any) -> Path:
    """The store folder of *archive* (``<archive>/store``)."""
    if archive.path is None:
        raise ValueError("an in-memory archive has no store folder")
    return Path(archive.path) / STORE_DIR


def file_name(study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """The relative path of an instance in the store (hashed UIDs only)."""
    s = _h(study_uid, 16)
    return Path(s[:2], s, _h(series_uid, 16), _h(sop_uid, 32) + ".dcm")


#: (0002,0012) and (0002,0013) of the files we write (a ``2.25`` UID: no registered root needed).
IMPLEMENTATION_UID = "2.25." + str(
    int.from_bytes(hashlib.blake2b(b"pocketpacs.net implementation", digest_size=16).digest(), "big"))
IMPLEMENTATION_VERSION = "POCKETPACS_NET1"


def _meta_element(group_elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of the file meta group (2-byte lengths except OB)."""
    tag = struct.pack("<HH", group_elem >> 16, group_elem & 0xFFFF)
    if vr == b"OB":
        return tag + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _even(text: str, pad: bytes) -> bytes:
    b = text.encode("ascii")
    return b + pad if len(b) % 2 else b


def part10(dataset: bytes | memoryview, sop_class: str, sop_uid: str, transfer_syntax: str,
           source_aet: str = "") -> bytes:
    """A Part-10 file from a data set's encoded bytes (as received over DIMSE).

    The preamble, ``DICM`` and the file meta group (PS3.10 7.1) are built
    here from the C-STORE's SOP class, SOP instance and the transfer syntax
    of its presentation context; the data set's bytes follow unchanged.

    Parameters
    ----------
    dataset : bytes
        The encoded data set (``event.encoded_dataset(include_meta=False)``).
    sop_class, sop_uid, transfer_syntax : str
    source_aet : str
        The sender's AE title ((0002,0016); left out when empty).

    Returns
    -------
    bytes
    """
    return _part10_head(sop_class, sop_uid, transfer_syntax, source_aet) + bytes(dataset)


def _part10_head(sop_class: str, sop_uid: str, transfer_syntax: str, source_aet: str = "") -> bytes:
    """The preamble, ``DICM`` and file meta group of :func:`part10`."""
    els = [_meta_element(0x00020001, b"OB", b"\x00\x01"),
           _meta_element(0x00020002, b"UI", _even(sop_class, b"\0")),
           _meta_element(0x00020003, b"UI", _even(sop_uid, b"\0")),
           _meta_element(0x00020010, b"UI", _even(transfer_syntax, b"\0")),
           _meta_element(0x00020012, b"UI", _even(IMPLEMENTATION_UID, b"\0")),
           _meta_element(0x00020013, b"SH", _even(IMPLEMENTATION_VERSION, b" "))]
    aet = source_aet.strip()
    if aet:
        els.append(_meta_element(0x00020016, b"AE", _even(aet, b" ")))
    body = b"".join(els)
    head = _meta_element(0x00020000, b"UL", struct.pack("<I", len(body)))
    return b"".join((b"\0" * 128, b"DICM", head, body))


def event_part10(event: Any) -> bytes | bytearray:
    """The Part-10 bytes of a pynetdicom ``EVT_C_STORE`` event, without decoding its data set.

    The data set's bytes are copied once, from the request's own buffer
    (``event.request.DataSet``) after the file meta group.

    Parameters
    ----------
    event : pynetdicom.events.Event
        An ``EVT_C_STORE`` event.

    Returns
    -------
    bytes or bytearray
        The file (:func:`part10`) as it is written to the store.
    """
    req = event.request
    head = _part10_head(str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID),
                        str(event.context.transfer_syntax), str(getattr(event.assoc.requestor, "ae_title", "") or ""))
    stream = getattr(req, "DataSet", None)
    if not isinstance(stream, io.BytesIO):
        return head + event.encoded_dataset(include_meta=False)
    out = bytearray(head)
    with stream.getbuffer() as view:
        out += view
    return out


def study_and_series(event: Any) -> tuple[str, str]:
    """The Study and Series Instance UIDs of a pynetdicom ``EVT_C_STORE`` event.

    The request's data set is read only up to (0020,000E), never its
    pixels (``event.dataset`` would decode the whole data set); a deflated
    data set, or one not held as a buffer, is decoded whole.

    Raises
    ------
    AttributeError
        The data set has no Study or Series Instance UID.
    Exception
        A data set pydicom cannot read (the caller refuses the instance).
    """
    from pydicom.filereader import read_dataset
    from pydicom.uid import UID

    stream = getattr(event.request, "DataSet", None)
    ts = UID(str(event.context.transfer_syntax))
    if not isinstance(stream, io.BytesIO) or ts.is_deflated:
        ds = event.dataset
    else:
        stream.seek(0)
        try:
            ds = read_dataset(stream, ts.is_implicit_VR, ts.is_little_endian,
                              stop_when=lambda tag, vr, length: tag > 0x0020000E)
        finally:
            stream.seek(0)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def _same_bytes(path: Path, data: bytes | memoryview) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == bytes(data)
    except OSError:
        return False


_CREATE = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
           | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _final_name(dest: Path, data: bytes | memoryview) -> Path | None:
    """Where a received file goes: *dest*, None when *dest* holds these bytes already, or
    a name beside it when *dest* holds other bytes (the same SOP Instance UID, other
    content: never written over; the importer flags the pair as a conflict)."""
    if not dest.exists():
        return dest
    if _same_bytes(dest, data):
        return None
    return dest.with_name(f"{dest.stem}-{hashlib.sha256(data).hexdigest()[:8]}.dcm")


class ReceivedStore:
    """Writes received instances atomically into an archive's store folder.

    Parameters
    ----------
    archive : Archive
        An archive opened for writing.
    """

    def __init__(self, archive: Any):
        self.archive = archive
        self.root = ensure_private_dir(store_folder(archive))
        self.incoming = ensure_private_dir(Path(archive.path) / INCOMING_DIR)
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()
        self.written = 0
        self.new_files = threading.Event()
        #: The store is on another file system (a disk mounted there): a rename from store-incoming/ cannot work.
        self._other_device = os.stat(self.root).st_dev != os.stat(self.incoming).st_dev

    def write(self, data: bytes | memoryview, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Write one Part-10 file's bytes; return its path in the store.

        The bytes go to a temporary file first; the rename makes the whole
        file appear at once.  A file already there with the same bytes is
        kept; with other bytes (the same UID, other content) the new one is
        stored beside it, and the import reports the conflict.  An interrupted write leaves only a temporary
        file in ``store-incoming/`` (removed by :meth:`clean_incoming`).
        When the store folder is on another file system than
        ``store-incoming/`` (a disk mounted there), the temporary file is an
        unnamed one in the destination folder (Linux ``O_TMPFILE``), linked
        into place when whole: an interrupted write leaves nothing.

        Raises
        ------
        OSError
            The file cannot be written (a full disk...): nothing appears in the store.
        """
        rel = file_name(study_uid, series_uid, sop_uid)
        dest = self.root / rel
        if dest.parent not in self._dirs:
            ensure_private_dir(dest.parent)
            with self._lock:
                self._dirs.add(dest.parent)
        if self._other_device:
            return self._write_in_place(data, dest)
        return self._write_renamed(self.incoming / f"{secrets.token_hex(8)}.tmp", data, dest)

    def _write_renamed(self, tmp: Path, data: bytes | memoryview, dest: Path) -> Path:
        """Write *data* to the new file *tmp* (0600), then rename it to its final name
        beside *dest*; *tmp* is gone afterwards, whatever happened."""
        fd = os.open(tmp, _CREATE, 0o600)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            final = _final_name(dest, data)
            if final is None:
                os.unlink(tmp)
                return dest
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._written()
        return final

    def _write_in_place(self, data: bytes | memoryview, dest: Path) -> Path:
        """:meth:`write` for a store on another file system than ``store-incoming/``."""
        try:
            fd = os.open(dest.parent, os.O_TMPFILE | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
        except (AttributeError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            fd = -1
        if fd < 0:  # no unnamed files here: a hidden temporary file beside the destination
            return self._write_renamed(dest.parent / f".{secrets.token_hex(8)}.part", data, dest)
        try:
            _write_all(fd, data)
            final = _final_name(dest, data)
            if final is None:
                return dest
            # linkat(AT_SYMLINK_FOLLOW) names the unnamed file (os.link uses it only with a folder's fd)
            dfd = os.open(final.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                os.link(f"/proc/self/fd/{fd}", final.name, dst_dir_fd=dfd, follow_symlinks=True)
            except FileExistsError:  # the same instance written meanwhile by another association
                if not _same_bytes(final, data):
                    raise
            finally:
                os.close(dfd)
        finally:
            os.close(fd)
        self._written()
        return final

    def _written(self) -> None:
        with self._lock:
            self.written += 1
        self.new_files.set()

    def clean_incoming(self) -> int:
        """Remove temporary files left by an interrupted receive; return how many."""
        n = 0
        for p in self.incoming.glob("*.tmp"):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
        return n


class Indexer:
    """Imports the store folder into the archive while files arrive (one thread).

    Use as a context manager around a receive: the thread imports the store
    folder every :data:`INDEX_EVERY` seconds when new files were written, and
    once more on exit (unless cancelled).  ``indexed`` counts the instances
    the imports added; ``failures`` holds the importer's failures (file,
    reason, message) and ``conflicts`` the files it kept apart (the SOP
    Instance UID of an archived instance with other content).

    Parameters
    ----------
    store : ReceivedStore
    progress : callable, optional
        Called as ``progress(indexed_so_far)`` after each import.
    """

    def __init__(self, store: ReceivedStore, progress: Any = None):
        self.store = store
        self.progress = progress
        self.indexed = 0
        self.failures: list[Any] = []
        self.conflicts: list[Any] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Indexer":
        self._thread = threading.Thread(target=self._loop, name="pocketpacs-indexer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._stop.set()
        self.store.new_files.set()
        if self._thread is not None:
            self._thread.join()
        if exc_type is None or exc_type is not KeyboardInterrupt:
            self.index_now()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.store.new_files.wait()
            if self._stop.is_set():
                break
            self._stop.wait(INDEX_EVERY)
            if self._stop.is_set():
                break
            self.index_now()

    def index_now(self) -> None:
        """Import the store folder now (new files only)."""
        self.store.new_files.clear()
        try:
            rep = self.store.archive.import_folder(self.store.root)
        except Exception as e:  # kept and reported by the caller
            logger.warning("indexing received files failed: %s", type(e).__name__)
            self.error = e
            return
        self.indexed += rep.indexed
        self.failures.extend(rep.failures)
        seen = {c.path for c in self.conflicts}
        self.conflicts.extend(c for c in rep.conflicts if c.path not in seen)  # a known one comes again
        if self.progress is not None:
            self.progress(self.indexed)
