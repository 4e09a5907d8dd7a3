"""Where PocketPACS keeps its files (archive, caches), per platform.

The archive location is, in order: an explicit argument, the
``POCKETPACS_ARCHIVE`` environment variable, then the user's data folder
(platformdirs).  Directories we create are owner-only (0700), and the small
files we write next to them (the archive secret, ``roots.json``) are written
atomically and owner-only (0600) by :func:`write_private_file` and read
back by :func:`read_private_file`, neither of which follows a link.
:func:`folder_risk` says why another local user could change what a folder
holds (its owner, its mode, or those of a folder above it); the archive and
the compiled-kernel cache refuse such folders.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

APP_NAME = "pocketpacs"
ENV_ARCHIVE = "POCKETPACS_ARCHIVE"


def default_archive_dir() -> Path:
    """Return the archive folder selected by the environment or the platform."""
    env = os.environ.get(ENV_ARCHIVE)
    if env:
        return Path(env).expanduser()
    import platformdirs  # (only without $POCKETPACS_ARCHIVE: start-up time)

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


def write_private_file(path: os.PathLike[str] | str, data: bytes, *, keep_existing: bool = False,
                       sync: bool = True) -> bool:
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
    sync : bool
        fsync the bytes before the rename (default); False for a marker
        whose loss in a power cut costs nothing.

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
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
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


def read_private_file(path: os.PathLike[str] | str, limit: int = 1 << 20) -> bytes:
    """The bytes of ``path`` (at most ``limit``), never read through a link.

    Raises
    ------
    OSError
        The file cannot be read, or ``path`` is a symbolic link (``ELOOP``).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        out = bytearray()
        while len(out) < limit:
            b = os.read(fd, limit - len(out))
            if not b:
                break
            out += b
        return bytes(out)
    finally:
        os.close(fd)


def _chain(path: str) -> list[str]:
    """``path`` and every folder above it, from the filesystem root down."""
    out = [path]
    while os.path.dirname(out[-1]) != out[-1]:
        out.append(os.path.dirname(out[-1]))
    return out[::-1]


def folder_risk(path: os.PathLike[str] | str,
                private_from: os.PathLike[str] | str | None = None) -> str | None:
    """Why another local user could change what the folder ``path`` holds, or None.

    Every existing folder on the way to ``path`` is checked, both along the
    path as written and along its real path (after symbolic links): the
    private part -- ``path`` itself, or every folder from ``private_from``
    down to it (the kernel cache: ``~/.cache/pocketpacs`` and below) -- must
    be real folders owned by the user that neither the group nor others may
    write to; the folders above it (``$HOME``, ``/``) must be owned by the
    user or by root and not be writable by others, unless the sticky bit
    keeps others from renaming what is not theirs (``/tmp``).  A link on the
    way must be owned by the user or root.  Whoever may write a folder on the
    way may rename the folder below it away and put their own in its place.

    On Windows (per-user profile folders, no POSIX modes) only "is a folder"
    is checked.

    Returns
    -------
    str or None
        ``"<folder> <why>"``, e.g. ``"/srv/a is owned by another user (uid
        1001)"``, or None when the chain is safe.
    """
    p = os.path.abspath(os.fspath(path))
    if not hasattr(os, "getuid"):
        return None if os.path.isdir(p) else f"{p} is not a folder"
    uid = os.getuid()
    top = os.fspath(private_from) if private_from is not None else p
    tops = {os.path.abspath(top), os.path.realpath(top)}
    for chain in dict.fromkeys((tuple(_chain(p)), tuple(_chain(os.path.realpath(p))))):
        private = False
        for c in chain:
            private = private or c in tops
            try:
                st = os.lstat(c)
            except FileNotFoundError:
                continue
            except OSError as e:
                return f"{c} cannot be checked ({e.strerror or type(e).__name__})"
            writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid not in (uid, 0):
                    return f"{c} is a link owned by another user (uid {st.st_uid})"
            elif not stat.S_ISDIR(st.st_mode):
                return f"{c} is not a folder"
            elif private and st.st_uid != uid:
                return f"{c} is owned by another user (uid {st.st_uid})"
            elif private and writable:
                return f"{c} may be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
            elif st.st_uid not in (uid, 0):
                return f"{c}, a folder above it, is owned by another user (uid {st.st_uid})"
            elif writable and not st.st_mode & stat.S_ISVTX:
                return (f"{c}, a folder above it, may be written by other users "
                        f"(mode {stat.S_IMODE(st.st_mode):o})")
    return None
