"""The only place that imports numba.

Importing PocketPACS changes nothing of the process: no environment
variable is set and other numba users keep their own caching.  Compiled
kernels of *this package's* modules are cached in the user's cache folder
(``~/.cache/pocketpacs/numba`` on Linux) by a cache locator that answers
only for files of ``pocketpacs.native``; a ``NUMBA_CACHE_DIR`` set by the
user still wins (numba's own locator comes first).  The folder is created
0700 from its first missing parent, and the whole chain is checked
(:func:`pocketpacs.paths.folder_risk`, the rules the archive folder follows
too; the one import of the core by ``native/``, which kernels never make):
every folder from
``~/.cache/pocketpacs`` down must be the user's own and writable by nobody
else, and the folders above it (``~/.cache``, ``$HOME``, ...) the user's or
root's and not writable by others.  Otherwise kernels are cached in a private
temporary folder instead (and a warning says so): numba unpickles its index
files, so a folder another user can write to, or rename away, would run
their code.  Numba's own fallbacks for a cache folder that cannot be written
(``__pycache__`` beside the sources, ``~/.cache/numba``) are never used for
our kernels: they go to a private temporary folder, or are not cached.

Programs that own their process (the ``pocketpacs`` command, the app, the
benchmarks) call :func:`pocketpacs.process.prefer_passive_waits` at start.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings

import numba
from numba.core import caching as _caching
from numba.core import event as _event

from pocketpacs.paths import ensure_private_dir, folder_risk


njit = numba.njit
prange = numba.prange

_HERE = os.path.dirname(os.path.abspath(__file__))
_cache_dir: str | None = None
_cache_checked = False


def _default_cache_dir() -> tuple[str, str]:
    """The default cache folder and the top of its private part (ours alone)."""
    import platformdirs

    top = platformdirs.user_cache_dir("pocketpacs", appauthor=False)
    return os.path.join(top, "numba"), top


def _private_temp(why: str) -> str | None:
    """A fresh private temporary folder (0700) for this run's kernels, with a
    warning saying *why*; None when not even that can be made."""
    try:
        path = tempfile.mkdtemp(prefix="pocketpacs-numba-")
    except OSError as exc:
        warnings.warn(f"{why}; no private folder can be made either ({exc.strerror or type(exc).__name__}): "
                      "kernels are compiled at every start, not cached", RuntimeWarning, stacklevel=3)
        return None
    warnings.warn(f"{why}; kernels are cached in a private temporary folder for this run",
                  RuntimeWarning, stacklevel=3)
    return path


def cache_dir() -> str | None:
    """The folder this process caches compiled kernels in (made on first call).

    Returns
    -------
    str or None
        ``NUMBA_CACHE_DIR`` when the user set it; otherwise the user's cache
        folder, or a private temporary folder when that one is unsafe or
        cannot be made; None when no private folder can be made at all (our
        kernels are then not cached).
    """
    global _cache_dir, _cache_checked
    if not _cache_checked:
        if numba.config.CACHE_DIR:
            _cache_dir = numba.config.CACHE_DIR
        else:
            path, top = _default_cache_dir()
            try:
                # checked before the folder is made (which would tighten a
                # folder of ours that others could write: too late, it may
                # hold their files) and after (a folder swapped meanwhile)
                risk = folder_risk(path, private_from=top)
                if risk is None:
                    ensure_private_dir(path)
                    risk = folder_risk(path, private_from=top)
                why = None if risk is None else f"the compiled-kernel cache folder is unsafe: {risk}"
            except OSError as exc:
                why = f"the compiled-kernel cache folder {path} cannot be made ({exc.strerror or type(exc).__name__})"
            _cache_dir = path if why is None else _private_temp(why)
        _cache_checked = True
    return _cache_dir


_Base = getattr(_caching, "UserProvidedCacheLocator", None) or _caching._UserProvidedCacheLocator


class PocketPacsCacheLocator(_Base):
    """numba cache locator for the kernels of ``pocketpacs.native`` only."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(cache_dir() or "", self.get_suitable_cache_subpath(py_file))

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
        if cache_dir() is None:
            raise PermissionError(f"no private folder for the compiled kernels ({self._cache_path})")
        ensure_private_dir(self._cache_path)
        tempfile.TemporaryFile(dir=self._cache_path).close()

    @classmethod
    def from_function(cls, py_func, py_file):
        global _cache_dir
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None
        # never None for our kernels: numba would fall back to __pycache__
        # beside the sources or ~/.cache/numba, folders others may share
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
            return self
        except OSError as exc:
            if cache_dir() is not None:
                _cache_dir = _private_temp(f"the compiled-kernel cache folder {self._cache_path} cannot be "
                                           f"written ({exc.strerror or type(exc).__name__})")
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            self.usable = False   # kernel() turns caching off for this one
        return self

    #: False when no private folder could be made: the kernel is not cached
    usable = True


def _install_locator() -> None:
    impl = getattr(_caching, "CacheImpl", None) or _caching._CacheImpl
    locators = impl._locator_classes
    if PocketPacsCacheLocator not in locators:
        # after numba's NUMBA_CACHE_DIR locator, before the in-tree and user-wide ones
        locators.insert(1, PocketPacsCacheLocator)


_install_locator()


class _CompileClock(_event.Listener):
    """Wall seconds spent compiling this package's kernels (not loading them from the cache).

    numba announces a compile (a cache miss) with a ``numba:compile`` event;
    a kernel's compile includes that of the kernels it calls, so only the
    outermost compile of each thread is timed.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._local = threading.local()

    def _ours(self, ev) -> bool:
        disp = (ev.data or {}).get("dispatcher")
        code = getattr(getattr(disp, "py_func", None), "__code__", None)
        return code is not None and os.path.dirname(os.path.abspath(code.co_filename)) == _HERE

    def on_start(self, ev) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0 and self._ours(ev):
            self._local.t0 = time.perf_counter()
            self._local.depth = 1
        elif depth:
            self._local.depth = depth + 1

    def on_end(self, ev) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 1:
            self.seconds += time.perf_counter() - self._local.t0
        if depth:
            self._local.depth = depth - 1


_clock = _CompileClock()
_event.register("numba:compile", _clock)


def compile_seconds() -> float:
    """Wall seconds this process has spent compiling PocketPACS' kernels.

    Loading a kernel from the cache does not count: on a machine whose
    kernel cache is warm this stays 0.  Callers take differences (the time
    an import spent preparing the parser on its first run).

    Returns
    -------
    float
        Seconds since this module was imported.
    """
    return _clock.seconds


def _uncached_if_no_folder(disp):
    """Turn caching off for a kernel whose locator found no private folder
    (numba's own fallback folders are never used for our kernels)."""
    impl = getattr(getattr(disp, "_cache", None), "_impl", None)
    locator = getattr(impl, "_locator", None)
    if isinstance(locator, PocketPacsCacheLocator) and not locator.usable:
        disp._cache = _caching.NullCache()
    return disp


def is_ready(disp) -> bool:
    """Whether kernel *disp* runs without compiling: compiled in this process,
    or held by the cache for the current sources (numba's index, read, not loaded).

    Parameters
    ----------
    disp : Dispatcher
        A kernel of this package.

    Returns
    -------
    bool
        False when its first call would compile it (an empty or stale cache).
    """
    if disp.overloads:
        return True
    cache_file = getattr(getattr(disp, "_cache", None), "_cache_file", None)
    if cache_file is None:
        return False
    try:
        return bool(cache_file._load_index())
    except Exception:  # an unreadable index: numba would compile
        return False


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
        return _uncached_if_no_folder(numba.njit(**kwargs)(args[0]))
    deco = numba.njit(*args, **kwargs)
    return lambda fn: _uncached_if_no_folder(deco(fn))
