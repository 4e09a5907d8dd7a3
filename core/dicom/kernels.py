"""Which header kernels run: compiled, or interpreted on the first run.

The parser's numba kernels take several seconds to compile, once, the first
time PocketPACS parses anything after installing (or after an upgrade);
after that they load from the kernel cache in a fraction of a second.  A
small first import should not wait for that compile: while the compiled
kernels are not in the cache, an import (:func:`first_run_interpreted`)
parses batches of up to :data:`INTERPRET_MAX` files
with the *same* kernel functions run as plain Python (a few
milliseconds a file: the reference mode the tests compare the compiled
kernels with), and a background process compiles the kernels into the cache
for the next run (:func:`warm_in_background`; it parses a synthetic header
in memory: no file is named, read or written but the kernel cache).  Larger
batches compile in this process, as before, and the import reports that
time apart.  ``POCKETPACS_FIRST_RUN=compile`` turns the
interpreted path off.

The same interpreted kernels parse a small batch (:data:`SMALL_MAX` files,
:data:`SMALL_BYTES` of headers) of an import in a process that has not
loaded numba, compiled kernels cached or not: an import of a few new files
is done before numba would have loaded (issue 16).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

#: Files per batch parsed by the interpreted kernels while the compiled ones are
#: not cached (interpreted: ~4 ms a file; the compile: 6-12 s on 2 cores).
INTERPRET_MAX = 1000

#: Batches of at most this many files run the kernels interpreted in a process
#: that has not loaded numba yet, compiled kernels cached or not: importing
#: numba and loading a first kernel from the cache cost ~0.5 s on the 2-core
#: development machine (``import numba`` ~0.3 s, numba's target set-up at the
#: first cache load ~0.2 s; each kernel after it 4-13 ms), the interpreted
#: kernels ~4 ms a file, so an import of a few new files (the usual
#: re-import) is done before numba would have loaded (issue 16).
SMALL_MAX = 48
#: ... and hold at most this many header bytes: the interpreted kernels walk
#: about 2 MB of header a second (a multi-frame file's header can hold tens
#: of MB, parsed by the compiled kernels in a fraction of a second).
SMALL_BYTES = 512 * 1024

#: Environment variable: ``compile`` never runs the kernels interpreted.
ENV_FIRST_RUN = "POCKETPACS_FIRST_RUN"

_SHADOW = "pocketpacs.native._interpreted"
_interpret_ok: contextvars.ContextVar[bool] = contextvars.ContextVar("pocketpacs_interpret_ok", default=False)
_warm_started: set[str] = set()


def _plain(*args: Any, **kwargs: Any) -> Any:
    """The ``kernel`` decorator of the interpreted modules: the function itself."""
    if args and callable(args[0]) and len(args) == 1 and not kwargs:
        return args[0]
    return lambda fn: fn


def interpreted(name: str) -> types.ModuleType:
    """Kernel module ``pocketpacs.native.<name>`` with its kernels as plain Python.

    The module's source is loaded again under another name whose ``_jit``
    decorates nothing (``prange`` is ``range``), so neither it nor the
    modules it imports load numba or compile anything.

    Parameters
    ----------
    name : str
        A module of ``pocketpacs.native`` (``dicomparse``, ``dicomvalues`` ...).

    Returns
    -------
    module
    """
    pkg = sys.modules.get(_SHADOW)
    if pkg is None:
        import pocketpacs.native as native

        stub = types.ModuleType(_SHADOW + "._jit")
        stub.kernel = stub.njit = _plain  # type: ignore[attr-defined]
        stub.prange = range  # type: ignore[attr-defined]
        pkg = types.ModuleType(_SHADOW)
        pkg.__path__ = list(native.__path__)  # type: ignore[attr-defined]
        pkg.__package__ = _SHADOW
        sys.modules[_SHADOW + "._jit"] = stub
        sys.modules[_SHADOW] = pkg
    return importlib.import_module(f"{_SHADOW}.{name}")


@contextlib.contextmanager
def first_run_interpreted() -> Iterator[None]:
    """Within this block (this thread), :func:`choose` may pick the interpreted
    kernels: an import uses it; other parsing (a CD/USB session, the viewer)
    compiles in the foreground and starts no background process.

    Yields
    ------
    None
    """
    token = _interpret_ok.set(True)
    try:
        yield
    finally:
        _interpret_ok.reset(token)


def _compiled_ready(disp: Any) -> bool:
    from pocketpacs.native._jit import is_ready

    return is_ready(disp)


def _small(n: int, nbytes: int = 0) -> bool:
    """Whether a batch of *n* files (*nbytes* of headers) runs interpreted because
    numba is not loaded (:data:`SMALL_MAX`, :data:`SMALL_BYTES`)."""
    return (_interpret_ok.get() and n <= SMALL_MAX and nbytes <= SMALL_BYTES and "numba" not in sys.modules
            and os.environ.get(ENV_FIRST_RUN) != "compile" and not os.environ.get("NUMBA_DISABLE_JIT"))


def parser_module(n: int) -> types.ModuleType:
    """The ``dicomparse`` module whose constants a batch of *n* files reads:
    the interpreted one when :func:`choose` runs that batch interpreted
    because numba is not loaded (so that nothing imports numba), else the
    compiled one.  Nothing is started.

    Parameters
    ----------
    n : int
        Files in the batch.

    Returns
    -------
    module
    """
    return interpreted("dicomparse") if _small(n) else importlib.import_module("pocketpacs.native.dicomparse")


def choose(module: str, kernel: str, n: int, nbytes: int = 0) -> Any:
    """The module whose *kernel* should process a batch of *n* files.

    Parameters
    ----------
    module : str
        ``dicomparse`` or ``dicomvalues``.
    kernel : str
        The kernel the caller will call (``parse_serial``, ``parse_batch``,
        ``gather_values``).
    n : int
        Files in the batch.
    nbytes : int
        Bytes of header the kernel will walk (0: unknown, small).

    Returns
    -------
    module
        ``pocketpacs.native.<module>`` (compiled kernels), or its interpreted
        twin (:func:`interpreted`): for a batch of at most :data:`SMALL_MAX`
        files (and :data:`SMALL_BYTES`) while numba is not loaded, and for one of at most
        :data:`INTERPRET_MAX` when the compiled kernel is not cached yet (a
        background compile is then started).
    """
    if _small(n, nbytes):
        return interpreted(module)  # (sooner done than numba loaded; nothing compiled)
    compiled = importlib.import_module(f"pocketpacs.native.{module}")
    if (not _interpret_ok.get() or n > INTERPRET_MAX or os.environ.get(ENV_FIRST_RUN) == "compile"
            or os.environ.get("NUMBA_DISABLE_JIT")):
        return compiled
    if _compiled_ready(getattr(compiled, kernel)):
        return compiled
    warm_in_background(kernel)
    return interpreted(module)


def warm_in_background(kernel: str) -> None:
    """Compile *kernel* (and the parser's other kernels) into the cache in a
    detached, low-priority child process; once per process and kernel.

    The child (:mod:`pocketpacs.dicom.warmup`) parses a small synthetic
    header held in memory: no file is named or read.  Any failure of it
    costs only the next run's compile.
    """
    if kernel in _warm_started or (kernel in ("gather_values", "copy_values") and _warm_started):
        return  # (a parse warm-up compiles gather_values and copy_values too)
    _warm_started.add(kernel)
    _spawn(kernel)


def _spawn(kernel: str) -> None:
    try:
        subprocess.Popen([sys.executable, "-m", "pocketpacs.dicom.warmup", kernel],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        pass
