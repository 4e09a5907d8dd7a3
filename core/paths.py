"""Where PocketPACS keeps its files (archive, caches), per platform.

The archive location is, in order: an explicit argument, the
``POCKETPACS_ARCHIVE`` environment variable, then the user's data folder
(platformdirs).  Directories we create are owner-only (0700).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "pocketpacs"
ENV_ARCHIVE = "POCKETPACS_ARCHIVE"


def default_archive_dir() -> Path:
    """Return the archive folder selected by the environment or the platform."""
    env = os.environ.get(ENV_ARCHIVE)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "archive"


def cache_dir() -> Path:
    """Return the user's cache folder for PocketPACS (not created)."""
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def ensure_private_dir(path: os.PathLike[str] | str) -> Path:
    """Create *path* (and its missing parents) with mode 0700 and return it.

    Parents created here are 0700 too (``Path.mkdir(parents=True)`` would make
    them with the umask's mode, e.g. a world-readable ``~/.local/share/pocketpacs``
    listing what PocketPACS keeps); parents that already exist are left alone.
    An existing *path* owned by us is tightened to 0700.
    """
    p = Path(path)
    missing = []
    cur = p.absolute()
    while not cur.exists() and cur.parent != cur:
        missing.append(cur)
        cur = cur.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process
            pass
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if p.stat().st_uid == os.getuid() and (p.stat().st_mode & 0o077):
            p.chmod(0o700)
    except (AttributeError, OSError):  # Windows has no getuid; permissions differ
        pass
    return p
