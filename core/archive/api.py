"""The archive's Python API.

>>> import pocketpacs
>>> with pocketpacs.open_archive() as ar:                 # doctest: +SKIP
...     report = ar.import_folder("/data/dicom", progress=print)
...     for hit in ar.search(name="smith", modality="CT", study_date="2020-"):
...         print(hit.patient.name, hit.study.date, hit.study.n_instances)
...     files = ar.series_files(ar.series(hit.study)[0])

:func:`open_archive` opens (or creates) the LMDB archive in the user's data
folder, a folder given as argument, or ``$POCKETPACS_ARCHIVE``; after an
unclean shutdown of the last writer it first reads the whole database in a
child process (the policy the storage layer leaves to its opener).
:func:`rebuild_damaged` re-creates a damaged archive from its imported
folders.  :func:`pocketpacs.archive.media.open_media` indexes removable media
into memory for the session and writes nothing anywhere.

The archive is a cache of the files it indexes: the files stay where they
are and are never modified or deleted by PocketPACS; ``remove`` forgets
archive entries only, and ``rebuild`` re-creates the whole index from the
remembered import folders.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import keys
from . import pathkeys
from ..errors import REBUILD_ADVICE, ArchiveDamaged, ArchiveError
from .annotations import ArchiveMeasurements
from .browse import ArchiveBrowse
from .report import ImportProgress, ImportReport
from .integrity import deep_check, load_roots, move_damaged_aside, save_roots
from ..log import logger
from .maintenance import ArchiveMaintenance
from ..paths import default_archive_dir
from .memstore import MemoryStore
from .store import LmdbStore, refuse_unsafe_folder


class Archive(ArchiveBrowse, ArchiveMaintenance, ArchiveMeasurements):
    """A DICOM archive: patients, studies, series and instances of files.

    Use :func:`open_archive` or :func:`~pocketpacs.archive.media.open_media`
    rather than the constructor.  An archive is a context manager;
    :meth:`close` releases the database and the writer lock.  The browse and
    search methods come from :class:`~pocketpacs.archive.browse.ArchiveBrowse`,
    verify/check/remove/rebuild from
    :class:`~pocketpacs.archive.maintenance.ArchiveMaintenance`; import, roots
    and the archive's life cycle are here.
    """

    def __init__(self, store: LmdbStore | MemoryStore, secret: bytes, *, media: bool = False):
        self._store = store
        self._secret = secret
        self.media = media
        self.last_import: ImportReport | None = None
        self._cache: dict = {}          # decoded Study/Patient records for search
        self._cache_gen: bytes | None = None

    # ---- basics -----------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The archive folder (None for an in-memory media archive)."""
        return self._store.path

    @property
    def readonly(self) -> bool:
        return self._store.readonly

    @property
    def unclean(self) -> bool:
        """The last writer did not close cleanly and the check was left to the
        caller (``open_archive(check_unclean=False)``)."""
        return bool(getattr(self._store, "unclean", False))

    @property
    def generation(self) -> int:
        """Changes with every committed write (for caches)."""
        return self._store.generation

    def close(self) -> None:
        """Close the archive (releases the writer lock; clears a media archive)."""
        self._store.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"<pocketpacs.Archive {where}{' read-only' if self.readonly else ''}>"

    def _exclude(self) -> frozenset[str]:
        return frozenset({os.path.realpath(self.path)}) if self.path is not None else frozenset()

    # ---- import ------------------------------------------------------------------------
    def import_folder(self, path: os.PathLike[str] | str,
                      progress: Callable[[ImportProgress], Any] | None = None,
                      cancel: Any = None) -> ImportReport:
        """Import a folder (or one file) into the archive.

        Parameters
        ----------
        path : path-like
            Folder to walk (or a single file).
        progress : callable, optional
            Called with an :class:`~pocketpacs.archive.report.ImportProgress` about
            five times a second and once at the end.
        cancel : threading.Event or callable, optional
            Checked between chunks; when set the import stops and the
            archive stays consistent (``report.cancelled`` is True).

        Returns
        -------
        ImportReport

        Raises
        ------
        FileNotFoundError
            ``path`` does not exist.
        ArchiveError
            The archive is read-only.
        """
        if self.readonly:
            raise ArchiveError("the archive is open read-only")
        from .ingest import Importer  # (the parser and NumPy: only for an import)

        self._remember_root(path)
        gen = self._store.generation
        try:
            rep = Importer(self._store, self._secret, self._exclude()).run(path, progress, cancel)
        finally:
            if self._store.generation != gen:   # (an import that wrote nothing changed no root)
                self._sync_roots()
        self.last_import = rep
        return rep

    def _remember_root(self, path: os.PathLike[str] | str) -> None:
        """List a new import folder in ``roots.json`` before any of its files
        is committed: a rebuild after a failure (a full disk) must know every
        folder whose instances are in the database."""
        if self.path is None or not os.path.exists(path):  # (the import says it does not exist)
            return
        root = os.path.abspath(os.fspath(path))
        listed = load_roots(self.path)
        if root in listed:
            return
        roots = sorted(set(self.roots()) | set(listed) | {root},
                       key=lambda r: r.encode("utf-8", "surrogateescape"))
        try:
            save_roots(self.path, roots)
        except OSError as e:
            raise ArchiveError(
                f"the list of imported folders in {self.path} cannot be written "
                f"({e.strerror or type(e).__name__}); nothing was imported: free some space "
                "and import again") from None

    def _sync_roots(self, drop: bool = False) -> None:
        """Keep ``roots.json`` (the imported folders, for a rebuild when the
        database cannot be read) listing the roots in the database: adds the
        missing ones, and with *drop* (after a root was removed) leaves out
        those the database no longer has.  Without it a root is never taken
        out: a damaged database that opens may read back no roots at all, and
        the list is what a rebuild imports again."""
        if self.path is None or self.readonly:
            return
        try:
            roots = self.roots()
            listed = load_roots(self.path)
            if not drop:
                roots = sorted(set(roots) | set(listed), key=lambda r: r.encode("utf-8", "surrogateescape"))
            if listed != roots:
                save_roots(self.path, roots)
        except (OSError, ArchiveError):
            pass

    def roots(self) -> list[str]:
        """Every folder imported so far."""
        with self._store.read() as t:
            return pathkeys.roots(t)

def _check_after_unclean_shutdown(path: Path) -> str | None:
    """The last writer did not close cleanly: read the whole database in a
    child process before opening it.  Returns why it is damaged, or None."""
    logger.info("the archive was not closed cleanly last time: checking it in a child process")
    res = deep_check(path)
    if res.status == "damaged":
        return res.message
    if res.status == "inconsistent":
        logger.warning("archive check after an unclean shutdown: %d invariant violation(s)",
                       len(res.problems))
    return None


def open_archive(path: os.PathLike[str] | str | None = None, *, readonly: bool = False,
                 map_size: int | None = None, check_unclean: bool = True) -> Archive:
    """Open (or create) an archive.

    Parameters
    ----------
    path : path-like, optional
        Archive folder; default ``$POCKETPACS_ARCHIVE`` or the user's data
        folder.
    readonly : bool
        Open without the writer lock (browse and search while another
        process imports).
    map_size : int, optional
        Initial LMDB map size (grows by itself).
    check_unclean : bool
        After an unclean shutdown of the last writer, read the whole
        database in a child process before opening it (default).  When
        False the open goes on and ``archive.unclean`` says so, for a caller
        that checks it later (the app: in the background, so a killed
        app starts as fast as a closed one).

    Returns
    -------
    Archive

    Raises
    ------
    ArchiveLocked
        Another process is writing to the archive (writable opens only).
    ArchiveUnsafe
        Another local user could change the archive folder (not the user's
        own, writable by others or under a folder others may write, or
        reached through a link into such a folder).
    ArchiveError
        No archive at ``path`` (read-only opens), or it cannot be opened.
    """
    p = Path(path).expanduser() if path is not None else default_archive_dir()
    store = LmdbStore(p, readonly=readonly, map_size=map_size,
                      on_unclean=_check_after_unclean_shutdown if check_unclean else None)
    try:
        if readonly:
            try:
                secret = keys.read_secret(store.path)
            except OSError:
                secret = b""
        else:
            secret = keys.load_or_create_secret(store.path)
    except BaseException:
        store.close()
        raise
    ar = Archive(store, secret)
    try:
        ar._sync_roots()
    except BaseException as e:
        store.close()  # never leave the writer lock held by an archive nobody can close
        import lmdb

        if isinstance(e, (lmdb.Error, ValueError)):
            raise ArchiveDamaged(
                f"the archive database at {store.path} is damaged (a record cannot be read: "
                f"{type(e).__name__}). {REBUILD_ADVICE}") from None
        raise
    return ar


def rebuild_damaged(path: os.PathLike[str] | str, progress: Callable[[Any], Any] | None = None,
                    cancel: Any = None, roots: list[str] | None = None) -> tuple[str, list[Any]]:
    """Move a damaged database aside and re-create the archive from its folders.

    ``data.mdb`` and ``lock.mdb`` go to ``damaged-<time>/`` inside the
    archive folder (kept, for inspection; delete it when done:
    :func:`pocketpacs.archive.integrity.move_damaged_aside`); the secret
    stays, so patient keys are unchanged.  The folders come from ``roots``,
    else from ``roots.json``.

    Returns
    -------
    (str, list of ImportReport)
        The folder holding the damaged files, and one report per folder
        that still exists.

    Raises
    ------
    ArchiveLocked
        Another process is writing to the archive.
    ArchiveUnsafe
        Another local user could change the archive folder.
    """
    d = Path(path).expanduser().absolute()
    refuse_unsafe_folder(d)   # before anything in it is moved
    roots = list(roots) if roots else load_roots(d)
    aside = move_damaged_aside(d)
    reports = []
    with open_archive(d) as ar:
        for r in roots:
            if os.path.exists(r):
                reports.append(ar.import_folder(r, progress, cancel))
        if not ar.roots():
            save_roots(d, roots)  # no folder exists now: remember them for a later rebuild
    return os.fspath(aside), reports
