"""The ``pocketpacs`` logger.  Library code logs through it and never logs
header values (patient names, IDs, dates): only counts, reasons and paths the
user supplied."""
from __future__ import annotations

import logging

logger = logging.getLogger("pocketpacs")
logger.addHandler(logging.NullHandler())


def protect_patient_data() -> None:
    """Process-wide settings of the command line and the app: no values in dependency logs.

    pydicom validates values while it reads (its default ``reading_validation_mode``
    is WARN) and reports a bad one *with the value* through ``warnings`` (printed on
    stderr) and its ``pydicom`` logger -- e.g. ``Invalid value for VR UI: '...'`` --
    so a malformed header leaked UIDs, names or numbers into the terminal and any
    log.  Other pydicom warnings quote header values too (``Unknown encoding
    '<the Specific Character Set>'``), and a quoted value can hold terminal escape
    sequences.  PocketPACS reads files it does not own and reports problems itself,
    so the command line and the app turn that validation off, ignore every warning
    pydicom issues, and stop its logger (no handler of the app's or a root logging
    configuration ever sees a pydicom record).  Library users keep their own
    pydicom settings (this is called only by the entry points).
    """
    import warnings

    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    pd_logger = logging.getLogger("pydicom")
    pd_logger.propagate = False
    pd_logger.disabled = True
    try:
        from pydicom import config
    except Exception:  # pragma: no cover - pydicom is a dependency
        return
    config.settings.reading_validation_mode = config.IGNORE
