"""The only place that imports numba.

Importing PocketPACS changes nothing of the process: no environment
variable is set and other numba users keep their own caching.  Compiled
kernels of *this package's* modules are cached in the user's cache folder
(``~/.cache/pocketpacs/numba`` on Linux) by a cache locator that answers
only for files of ``pocketpacs.native``; a ``NUMBA_CACHE_DIR`` set by the
user still wins (numba's own locator comes first).  The folder is created
0700 from its first missing parent; when it exists but is not the user's own
or others may write to it, kernels are cached in a private temporary folder
instead (and a warning says so): numba unpickles its index files, so a
folder another user can write to would run their code.

Programs that own their process (the ``pocketpacs`` command, the app, the
benchmarks) call :func:`pocketpacs.process.prefer_passive_waits` at start.
"""
from __future__ import annotations

import os
import stat
import tempfile
import warnings

import numba
from numba.core import caching as _caching

njit = numba.njit
prange = numba.prange

_HERE = os.path.dirname(os.path.abspath(__file__))
_cache_dir: str | None = None


def _default_cache_dir() -> str:
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("pocketpacs", appauthor=False), "numba")


def _make_private(path: str) -> None:
    """Create *path* and its missing parents with mode 0700 (never the umask's)."""
    missing = []
    cur = os.path.abspath(path)
    while not os.path.exists(cur) and os.path.dirname(cur) != cur:
        missing.append(cur)
        cur = os.path.dirname(cur)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:  # made meanwhile by another process
            pass


def _is_private(path: str) -> bool:
    """The folder is a real folder of ours that nobody else may write to."""
    if not hasattr(os, "getuid"):  # Windows: per-user profile folders
        return os.path.isdir(path)
    st = os.lstat(path)
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def cache_dir() -> str:
    """The folder this process caches compiled kernels in (made on first call).

    Returns
    -------
    str
        ``NUMBA_CACHE_DIR`` when the user set it; otherwise the user's cache
        folder, or a private temporary folder when that one is unsafe or
        cannot be made.
    """
    global _cache_dir
    if _cache_dir is None:
        if numba.config.CACHE_DIR:
            _cache_dir = numba.config.CACHE_DIR
        else:
            path = _default_cache_dir()
            why = None
            try:
                _make_private(path)
                if not _is_private(path):
                    why = "is not the user's own or others may write to it"
            except OSError as exc:
                why = f"cannot be made ({exc.strerror or type(exc).__name__})"
            if why:
                warnings.warn(f"the compiled-kernel cache folder {path} {why}; kernels are cached "
                              "in a private temporary folder for this run", RuntimeWarning, stacklevel=2)
                path = tempfile.mkdtemp(prefix="pocketpacs-numba-")
            _cache_dir = path
    return _cache_dir


_Base = getattr(_caching, "UserProvidedCacheLocator", None) or _caching._UserProvidedCacheLocator


class PocketPacsCacheLocator(_Base):
    """numba cache locator for the kernels of ``pocketpacs.native`` only."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(cache_dir(), self.get_suitable_cache_subpath(py_file))

    def get_source_stamp(self):
        # numba compares the stamp of the kernel's own file only, but kernels
        # inline helpers from the other modules of this folder: any change
        # to any of them must invalidate every cached kernel
        stamps = []
        for name in sorted(os.listdir(_HERE)):
            if name.endswith(".py"):
                st = os.stat(os.path.join(_HERE, name))
                stamps.append((name, st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def ensure_cache_path(self):
        _make_private(self._cache_path)
        tempfile.TemporaryFile(dir=self._cache_path).close()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None
        return super(_Base, cls).from_function(py_func, py_file)


def _install_locator() -> None:
    impl = getattr(_caching, "CacheImpl", None) or _caching._CacheImpl
    locators = impl._locator_classes
    if PocketPacsCacheLocator not in locators:
        # after numba's NUMBA_CACHE_DIR locator, before the in-tree and user-wide ones
        locators.insert(1, PocketPacsCacheLocator)


_install_locator()


def kernel(*args, **kwargs):
    """``numba.njit`` with PocketPACS' defaults: ``cache=True, nogil=True``.

    Parameters
    ----------
    *args, **kwargs
        As for ``numba.njit``; the function itself when used bare.

    Returns
    -------
    Dispatcher or callable
        The compiled-on-first-call dispatcher, or a decorator.
    """
    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    if args and callable(args[0]):
        return numba.njit(**kwargs)(args[0])
    return numba.njit(*args, **kwargs)
