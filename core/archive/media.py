"""No-trace media sessions: removable media indexed into memory.

:func:`open_media` indexes a folder or a DICOMDIR's folder into an
:class:`~pocketpacs.archive.api.Archive` backed by a
:class:`~pocketpacs.archive.memstore.MemoryStore` with a per-session secret:
nothing is written anywhere, the medium is only read, and closing the
archive drops the index.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import keys
from .api import Archive
from .report import ImportProgress
from .memstore import MemoryStore


def open_media(path: os.PathLike[str] | str, progress: Callable[[ImportProgress], Any] | None = None,
               cancel: Any = None) -> Archive:
    """Index removable media (a folder or a DICOMDIR) into memory.

    Nothing is written anywhere: the index lives in memory for the session,
    patient keys use a per-session secret, and the medium is only read.
    The import report is ``archive.last_import``.

    Parameters
    ----------
    path : path-like
        The media folder, or its DICOMDIR file.

    Returns
    -------
    Archive
        An in-memory archive (``archive.media`` is True); close it to drop
        the index.
    """
    p = os.fspath(path)
    if os.path.isfile(p) and os.path.basename(p).upper() == "DICOMDIR":
        p = os.path.dirname(os.path.abspath(p))
    ar = Archive(MemoryStore(), keys.new_session_secret(), media=True)
    ar.import_folder(p, progress, cancel)
    return ar
