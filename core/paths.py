"""Where PocketPACS keeps its files (archive, caches), per platform.

The archive location is, in order: an explicit argument, the
``POCKETPACS_ARCHIVE`` environment variable, then the user's data folder
(platformdirs).  Directories we create are owner-only (0700), and the small
files we write next to them (the archive secret, ``roots.json``) are written
atomically and owner-only (0600) by :func:`write_private_file`.
"""
from __future__ import annotations

import os
import secrets
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


def write_private_file(path: os.PathLike[str] | str, data: bytes, *, keep_existing: bool = False) -> bool:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600).

    The bytes go to a temporary file in the same folder, created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (a file or link planted
    under that name is never followed nor reused), are fsync'ed, and the
    temporary file then replaces ``path`` (``os.replace``): a reader sees the
    old content or the new one, never a part.  The temporary file never
    outlives the call.

    Parameters
    ----------
    path : path-like
    data : bytes
    keep_existing : bool
        Leave an existing ``path`` as it is (the first of racing writers
        wins: the temporary file is hard-linked into place, or moved where
        the filesystem has no hard links and ``path`` is still absent).

    Returns
    -------
    bool
        True when ``path`` now holds ``data``; False when ``keep_existing``
        left another content in place.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_existing:
            try:
                os.link(tmp, p)
                return True
            except FileExistsError:
                return False
            except OSError:  # filesystems without hard links
                if p.exists():
                    return False
        os.replace(tmp, p)
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
