"""Which counting functions the window presets use, and their background compile.

The histogram window (:mod:`.windows`) counts every value of a volume with
the parallel kernels of :mod:`pocketpacs.native.histogram` once they can run
without compiling, else with their NumPy references (same answers, slower
on a large volume).  A kernel that is neither compiled in this process nor
in the kernel cache (the first series opened after installing) would make
the user wait a few seconds for numba in the middle of opening a series:
:func:`counter` then answers with the references and starts, once per
process, ``python -m pocketpacs.images.windowkernels`` in a detached,
low-priority process that compiles the kernels into the cache for the
volume types the readers make (nothing is read; nothing written but the
cache).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from types import ModuleType

import numpy as np

#: Volumes of at least this many values load numba for the kernels even when
#: nothing else has loaded it yet (smaller ones use the NumPy references).
KERNEL_VALUES = 1 << 23
#: The element types a reader's volume comes in (the cache is filled for these).
WARM_TYPES = (np.int16, np.uint16, np.uint8, np.int32, np.float32, np.float64)
_KERNELS = ("_range_parts", "_int_count_parts", "_float_count_parts")
_started = threading.Event()


def ready() -> bool:
    """Whether the histogram kernels run without compiling (in this process or from the cache).

    Returns
    -------
    bool
    """
    from ..native import histogram
    from ..native._jit import is_ready

    return all(is_ready(getattr(histogram, k)) for k in _KERNELS)


def counter(flat: np.ndarray) -> ModuleType:
    """The module whose ``value_range``/``int_counts``/``float_counts`` should count ``flat``.

    Parameters
    ----------
    flat : ndarray
        The values to count.

    Returns
    -------
    module
        :mod:`pocketpacs.native.histogram` once numba is loaded (or for a
        volume of :data:`KERNEL_VALUES` values or more) and the kernels need
        no compile; else :mod:`pocketpacs.native.reference` (a series' first
        slice and window come before numba has loaded, and never wait for a
        compile, which is then started in the background).
    """
    from ..native import reference

    if flat.size < KERNEL_VALUES and "pocketpacs.native._jit" not in sys.modules:
        return reference
    if os.environ.get("NUMBA_DISABLE_JIT") or ready():
        from ..native import histogram

        return histogram
    warm_in_background()
    return reference


def warm_in_background() -> None:
    """Start the kernels' compile in a detached, low-priority process (once per process)."""
    if _started.is_set():
        return
    _started.set()
    try:
        subprocess.Popen([sys.executable, "-m", "pocketpacs.images.windowkernels"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         close_fds=True)
    except OSError:
        pass  # no background compile in this process: the references go on counting


def warm() -> None:
    """Compile the histogram kernels for :data:`WARM_TYPES` (a few values each, made up here)."""
    from ..native import histogram

    for dt in WARM_TYPES:
        a = np.arange(64).astype(dt)
        histogram.value_range(a, (0.0,))
        if np.dtype(dt).kind in "iu":
            histogram.int_counts(a, 0, 64)
        else:
            histogram.float_counts(a, np.linspace(0.0, 64.0, 9), (0.0,))


def main() -> int:
    """``python -m pocketpacs.images.windowkernels``: compile at low priority; 0."""
    try:
        os.nice(10)
    except OSError:
        pass
    warm()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
