"""Key-value storage of the archive: an LMDB environment, or memory.

:class:`LmdbStore` follows the configuration in the project's reliability
notes: a folder another local user could change is refused
(:class:`~pocketpacs.errors.ArchiveUnsafe`), the folder is created 0700
before LMDB sees it and the files are
0600 (``mode=0o600`` alone breaks for non-root users because py-lmdb applies
it to the folder too), ``writemap=False`` (a full disk must not SIGBUS the
process), ```max_readers=512`` with ``reader_check()`` on open (stale slots of
killed processes), ``metasync=False`` (data pages are still synced at every
commit; the index can always be rebuilt from the files), map growth on ``MapFullError``, and one writer process at
a time, enforced with an ``flock`` on ``writer.lock`` that fails fast with
:class:`~pocketpacs.errors.ArchiveLocked` instead of blocking on LMDB's own
writer mutex.  Every transaction runs inside a ``with`` block; values are
copied out (``buffers=False``), never returned as memoryviews.

:class:`~pocketpacs.archive.memstore.MemoryStore` (in its own module) has
the same interface and keeps everything in dictionaries: the no-trace media
sessions use it, so nothing is written to disk.

Both hand out :class:`Txn` objects: ``get``/``put``/``delete``/``putmulti``
and ordered ``range`` scans over named databases.  Write transactions are
functions ``fn(txn)`` passed to :meth:`LmdbStore.write`, so a transaction
that hits the map limit can be re-run after the map grows.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (REBUILD_ADVICE, ArchiveDamaged, ArchiveError, ArchiveLocked, ArchiveReadOnly,
                      ArchiveUnsafe, SchemaVersionMismatch)
from ..log import logger
from ..paths import ensure_private_dir, folder_risk, write_private_file
from .datafile import OPEN_MARK, check_data_file
from .keys import SECRET_FILE
from .mapguard import MapGuard
from .mapped import over_ceiling, release_map_pages
from .migrations import MIGRATIONS
from .txn import Txn

if TYPE_CHECKING:
    from .memstore import MemoryStore

#: Version of the record layout written by this code (2: instance records
#: carry PhotometricInterpretation and ImageType after the paths; 3: paths
#: longer than ``pathkeys.PATH_KEY_MAX`` are keyed by a hash; 4: folded-text
#: indexes refolded; 5: the ``annotations`` database of measurements; 6:
#: patient, study and series records counted, ``records.COUNTED``; 7: the SOP
#: index in ``sop`` and ``sop_recent``; 8: the counts of patient, study and series
#: records in their own databases, :mod:`pocketpacs.archive.txn`; see
#: :mod:`pocketpacs.archive.migrations`).
#: Bump it with every change of a stored layout, with its step in ``MIGRATIONS``.
SCHEMA_VERSION = 8

#: Named databases of the archive.
DBS = (
    "meta",          # schema, generation, created
    "patients",      # patient key (16) -> record
    "studies",       # study key (8) -> record
    "series",        # series key (8) -> record
    "instances",     # series key + SOP key (16) -> compact instance record
    "sop",           # SOP key (8) -> series key (8): merged entries (archive.sopindex)
    "sop_recent",    # SOP key (8) -> series key (8): entries added since the last merge
    "pat_studies",   # patient key + study key -> b""
    "study_series",  # study key + series key -> b""
    "dirs",          # folder path key -> listing of its files (names, size, mtime, key, code)
    "roots",         # imported folder's path key -> record
    "conflicts",     # instance key + file's path key -> record (path keys: pathkeys.path_key)
    "idx_name", "idx_pid", "idx_birth", "idx_sdate", "idx_mod", "idx_desc", "idx_acc",
    "annotations",   # series key (8) -> measurements record (archive.annotations)
    "patients_counts", "studies_counts", "series_counts",   # record key -> n_instances, size (archive.txn)
)

#: Databases added after the first schema, with the schema that added them: a
#: read-only open of an older archive finds them missing and says the archive
#: needs an upgrade (a writable open creates them, then migrates).
ADDED_DBS = {"annotations": 5, "sop_recent": 7, "patients_counts": 8, "studies_counts": 8,
             "series_counts": 8}

LOCK_FILE = "writer.lock"
DEFAULT_MAP_SIZE = 1 << 30   # sparse on Linux/NTFS: costs nothing until used
MAX_READERS = 512


_ENVS: dict[str, list[Any]] = {}   # realpath -> [env, refcount, pid, dbs, read-only, MapGuard]
_ENVS_LOCK = threading.Lock()


def _acquire_lock(path: Path) -> int:
    # O_NOFOLLOW: a link planted at the lock file's name is never written through
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        holder = ""
        try:
            data = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            if data.isdigit():
                holder = f" (process {data})"
        except (OSError, AttributeError):
            pass
        os.close(fd)
        raise ArchiveLocked(
            f"the archive at {path.parent} is being written by another PocketPACS process{holder}; "
            "wait for it to finish or open the archive read-only") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except (OSError, AttributeError):
        pass
    return fd


def refuse_unsafe_folder(path: Path) -> None:
    """Raise :class:`ArchiveUnsafe` when another local user could change the
    archive folder (:func:`pocketpacs.paths.folder_risk`) or LMDB's files in
    it are links (LMDB would write through them)."""
    why = folder_risk(path)
    if why is None:
        for name in ("data.mdb", "lock.mdb", LOCK_FILE, SECRET_FILE):
            if (path / name).is_symlink():
                why = f"{path / name} is a symbolic link"
                break
    if why is not None:
        msg = (f"the archive folder {path} is refused: {why}; another local user could change "
               "or replace the archive. Use a folder of your own that only you may write to")
        logger.warning("%s", msg)
        raise ArchiveUnsafe(msg)


_DISK_ERRNOS = ("ENOSPC", "EFBIG", "EDQUOT", "EIO", "EROFS")


def _disk_error(e: Exception) -> str | None:
    """The strerror of a disk failure (full disk, file size limit, I/O error)
    in an LMDB error message, or None for other errors."""
    import errno

    msg = str(e)
    for name in _DISK_ERRNOS:
        code = getattr(errno, name, None)
        if code is not None and os.strerror(code) in msg:
            return os.strerror(code)
    return None


def _release_lock(fd: int) -> None:
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
        except ImportError:
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    except OSError:
        pass
    os.close(fd)


class LmdbStore:
    """The on-disk store: one LMDB environment in a private folder.

    Parameters
    ----------
    path : path-like
        Archive folder (created 0700 when writable and absent).
    readonly : bool
        Open for reading only: no writer lock, no creation, no migration.
    map_size : int, optional
        Initial map size in bytes (default 1 GiB; grows when full).
    check : bool
        Check the database file with plain reads before LMDB opens it.
    on_unclean : callable, optional
        ``on_unclean(path)`` runs, under the writer lock and before LMDB
        opens the file, when the last writer did not close cleanly; it
        returns why the file is damaged (raised as ArchiveDamaged) or None.
        Without it :attr:`unclean` is set and the caller checks later.

    Raises
    ------
    ArchiveLocked
        Another process holds the writer lock (writable opens only).
    ArchiveUnsafe
        Another local user could change the folder: not the user's own,
        writable by others (or a folder above it is), or reached through a
        link into such a folder.
    ArchiveError
        The archive does not exist (read-only open) or cannot be opened.
    SchemaVersionMismatch
        The archive was written by a newer PocketPACS.
    """

    def __init__(self, path: os.PathLike[str] | str, *, readonly: bool = False,
                 map_size: int | None = None, check: bool = True,
                 on_unclean: Callable[[Path], str | None] | None = None):
        import lmdb

        self._lmdb = lmdb
        self.path = Path(path).expanduser().absolute()
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._closed = False
        self._pid = os.getpid()
        self._wlock = threading.Lock()
        # transactions in flight, so close() from one thread never pulls the
        # environment from under a transaction running in another (an LMDB abort)
        self._active = 0
        self._idle = threading.Condition()
        self._mark: Path | None = None
        self._on_unclean = on_unclean
        #: True when the last writer did not close cleanly and no
        #: ``on_unclean`` check ran (the caller checks it later).
        self.unclean = False
        refuse_unsafe_folder(self.path)   # before the folder is made or tightened: it may hold others' files
        if readonly:
            if not (self.path / "data.mdb").exists():
                raise ArchiveError(f"no archive at {self.path}")
        else:
            try:
                ensure_private_dir(self.path)
                refuse_unsafe_folder(self.path)   # and as made (a folder swapped meanwhile)
                if not os.access(self.path, os.W_OK):
                    raise PermissionError(13, "Permission denied")
                self._lock_fd = _acquire_lock(self.path / LOCK_FILE)
            except OSError as e:
                raise ArchiveReadOnly(
                    f"the archive folder {self.path} cannot be written "
                    f"({e.strerror or type(e).__name__}); open it read-only to browse it") from None
        try:
            if check:
                self._check_file()
            self._open_env(map_size or DEFAULT_MAP_SIZE)
            self._check_schema()
            if not readonly:
                self._set_mark()
        except BaseException as e:
            self.close()
            if isinstance(e, self._lmdb.Error) or (isinstance(e, ValueError) and (self.path / "data.mdb").exists()):
                raise ArchiveDamaged(
                    f"the archive database at {self.path} is damaged ({type(e).__name__}). {REBUILD_ADVICE}") from None
            raise

    def _check_file(self) -> None:
        """Refuse a database file that would crash LMDB (truncated, no header);
        after an unclean shutdown of a writer, hand the folder to ``on_unclean``
        (which returns why the file is damaged, or None), else set :attr:`unclean`."""
        why = check_data_file(self.path / "data.mdb")
        unclean = (why is None and not self.readonly and (self.path / OPEN_MARK).exists()
                   and (self.path / "data.mdb").exists())
        if unclean and self._on_unclean is None:
            self.unclean = True   # the caller checks it (the app: in the background)
        elif unclean:
            why = self._on_unclean(self.path)
        if why is not None:
            raise ArchiveDamaged(
                f"the archive database at {self.path} is damaged: {why}. {REBUILD_ADVICE}")

    def _set_mark(self) -> None:
        p = self.path / OPEN_MARK
        try:
            # a new file renamed into place: a link planted under the name is replaced, never followed
            write_private_file(p, str(os.getpid()).encode(), sync=False)
            self._mark = p
        except OSError:
            pass

    # ---- environment ---------------------------------------------------------
    def _open_env(self, map_size: int) -> None:
        lmdb = self._lmdb
        key = os.path.realpath(self.path)
        self._key = key
        with _ENVS_LOCK:
            ent = _ENVS.get(key)
            if ent is not None and ent[2] != os.getpid():
                ent = None  # inherited across fork: unusable, open afresh
            if ent is not None and ent[4] and not self.readonly:
                raise ArchiveError(f"the archive at {self.path} is already open read-only in this process; "
                                   "close it before opening it for writing")
            if ent is None:
                # read-only opens use a read-only environment: py-lmdb then opens
                # the named databases without LMDB's writer mutex (another
                # process may be importing)
                ro_fs = self.readonly or not os.access(self.path, os.W_OK)
                try:
                    env = lmdb.open(str(self.path), subdir=True, map_size=map_size, mode=0o600,
                                    max_dbs=len(DBS) + 4, max_readers=MAX_READERS,
                                    writemap=False, meminit=True, readonly=ro_fs, metasync=False,
                                    lock=os.access(self.path, os.W_OK), max_spare_txns=2,
                                    create=not self.readonly)
                except lmdb.Error as e:
                    if (self.path / "data.mdb").exists() and not isinstance(e, (
                            lmdb.ReadonlyError, lmdb.LockError, lmdb.ReadersFullError, lmdb.TlsFullError,
                            lmdb.DiskError, lmdb.MapFullError)) and _disk_error(e) is None \
                            and os.strerror(13) not in str(e):
                        raise ArchiveDamaged(
                            f"the archive database at {self.path} is damaged ({type(e).__name__}). "
                            f"{REBUILD_ADVICE}") from None
                    raise ArchiveError(f"cannot open the archive at {self.path} ({type(e).__name__})") from None
                try:
                    env.reader_check()
                except lmdb.Error:
                    pass
                for name in ("data.mdb", "lock.mdb"):
                    p = self.path / name
                    try:
                        if p.exists() and p.stat().st_uid == os.getuid() and p.stat().st_mode & 0o077:
                            p.chmod(0o600)
                    except (OSError, AttributeError):
                        pass
                ent = _ENVS[key] = [env, 0, os.getpid(), {}, ro_fs, MapGuard()]
                try:
                    if ro_fs:
                        for name in DBS:
                            try:
                                ent[3][name] = env.open_db(name.encode(), create=False)
                            except lmdb.NotFoundError:
                                if name not in ADDED_DBS:
                                    raise   # an older schema: _check_schema says so
                    else:
                        with env.begin(write=True) as t:
                            for name in DBS:
                                ent[3][name] = env.open_db(name.encode(), txn=t, create=True)
                except lmdb.Error as e:
                    del _ENVS[key]
                    env.close()
                    if isinstance(e, lmdb.NotFoundError) or not (self.path / "data.mdb").exists():
                        raise ArchiveError(f"the archive at {self.path} is empty or incomplete") from None
                    raise ArchiveDamaged(
                        f"the archive database at {self.path} is damaged ({type(e).__name__}). "
                        f"{REBUILD_ADVICE}") from None
            ent[1] += 1
            self.env = ent[0]
            self._dbs = ent[3]
            self._guard = ent[5]   # (the map is grown only between the transactions of every thread)

    def _check_schema(self) -> None:
        with self.read() as t:
            raw = t.get("meta", b"schema")
        ver = int(raw) if raw else None
        if ver is None:
            if self.readonly:
                raise ArchiveError(f"the archive at {self.path} is empty or incomplete")
            self.write(lambda t: (t.put("meta", b"schema", str(SCHEMA_VERSION).encode()),
                                  t.put("meta", b"generation", b"0")))
            return
        if ver > SCHEMA_VERSION:
            raise SchemaVersionMismatch(
                f"the archive at {self.path} has schema {ver}; this PocketPACS reads up to {SCHEMA_VERSION}")
        if ver < SCHEMA_VERSION:
            if self.readonly:
                raise SchemaVersionMismatch(
                    f"the archive at {self.path} has schema {ver} and needs an upgrade: open it writable once")
            migrate(self, ver)

    @property
    def schema_version(self) -> int:
        with self.read() as t:
            return int(t.get("meta", b"schema") or 0)

    def _check_open(self) -> None:
        if self._closed:
            raise ArchiveError("the archive is closed")
        if os.getpid() != self._pid:
            raise ArchiveError("an archive opened before fork() cannot be used in the child; open it again")

    # ---- transactions ------------------------------------------------------
    @contextmanager
    def _in_use(self) -> Iterator[None]:
        with self._idle:
            self._check_open()
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """Short read-only transaction (a consistent snapshot)."""
        lmdb = self._lmdb
        with self._in_use(), self._guard.txn():
            try:
                txn = self.env.begin(write=False)
            except lmdb.MapResizedError:  # another process grew the map
                self._guard.resize(self.env.set_mapsize, 0)
                txn = self.env.begin(write=False)
            with txn:
                yield Txn(txn, self._dbs, False)

    def write(self, fn: Callable[[Txn], Any]) -> Any:
        """Run ``fn(txn)`` in a write transaction and commit; return its result.

        When the map is full the transaction is aborted, the map doubled
        and ``fn`` run again, so ``fn`` must only change the database (and
        not other state) until it returns.
        """
        self._check_open()
        if self.readonly:
            raise ArchiveError("the archive is open read-only")
        lmdb = self._lmdb
        with self._in_use(), self._wlock:
            for _attempt in range(32):
                try:
                    with self._guard.txn(), self.env.begin(write=True) as txn:
                        t = Txn(txn, self._dbs, True, self.path / "data.mdb")
                        out = fn(t)
                        gen = int(txn.get(b"generation", db=self._dbs["meta"]) or 0) + 1
                        txn.put(b"generation", str(gen).encode(), db=self._dbs["meta"])
                    # a long import keeps only what its last commits read in its RSS
                    # (the pages stay mapped while the process is under its ceiling)
                    if over_ceiling(self.path / "data.mdb"):
                        with self._guard.txn():   # (no other thread moves the map: the ranges hold)
                            release_map_pages(self.path / "data.mdb", t.map_ranges)
                    return out
                except lmdb.MapFullError:
                    size = self.env.info()["map_size"] * 2
                    logger.info("archive map full: growing it to %d MiB", size >> 20)
                    self._guard.resize(self.env.set_mapsize, size)
                except lmdb.MapResizedError:
                    self._guard.resize(self.env.set_mapsize, 0)
                except lmdb.Error as e:
                    why = _disk_error(e)
                    if why is None:
                        raise
                    raise ArchiveError(
                        f"the disk is full or failed while writing the archive at {self.path} ({why}); "
                        "that transaction was rolled back and everything committed before is intact: "
                        "free some space and import again") from None
            raise ArchiveError("the archive map could not be grown")

    @property
    def generation(self) -> int:
        """Counter incremented by every committed write (cache invalidation)."""
        with self.read() as t:
            return int(t.get("meta", b"generation") or 0)

    def info(self) -> dict:
        """LMDB environment info plus the size of the data file."""
        info = dict(self.env.info())
        try:
            info["file_size"] = (self.path / "data.mdb").stat().st_size
        except OSError:
            info["file_size"] = 0
        return info

    def close(self) -> None:
        """Close the environment (when the last user closes) and release the lock."""
        if self._closed:
            return
        idle = getattr(self, "_idle", None)
        if idle is not None:
            with idle:
                self._closed = True  # no new transaction from here on
                # let transactions running in other threads finish (bounded)
                idle.wait_for(lambda: self._active == 0, timeout=30)
        self._closed = True
        key = getattr(self, "_key", None)
        if key is not None:
            with _ENVS_LOCK:
                ent = _ENVS.get(key)
                if ent is not None and ent[0] is getattr(self, "env", None):
                    ent[1] -= 1
                    if ent[1] <= 0:
                        del _ENVS[key]
                        if ent[2] == os.getpid():
                            ent[0].close()
        mark = getattr(self, "_mark", None)
        if mark is not None:
            try:
                mark.unlink()
            except OSError:
                pass
            self._mark = None
        if self._lock_fd is not None:
            _release_lock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "LmdbStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def migrate(store: "LmdbStore | MemoryStore", from_version: int) -> None:
    """Run the migrations from ``from_version`` up to :data:`SCHEMA_VERSION`.

    Each step runs in its own write transaction and records the new version,
    so an interrupted upgrade resumes where it stopped.
    """
    for v in range(from_version, SCHEMA_VERSION):
        step = MIGRATIONS.get(v)
        if step is None:
            raise SchemaVersionMismatch(f"no migration from archive schema {v} to {v + 1}")

        def run(t: Txn, step=step, v=v) -> None:
            step(t)
            t.put("meta", b"schema", str(v + 1).encode())

        logger.info("migrating the archive from schema %d to %d", v, v + 1)
        store.write(run)
