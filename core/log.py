"""The ``pocketpacs`` logger.  Library code logs through it and never logs
header values (patient names, IDs, dates): only counts, reasons and paths the
user supplied."""
from __future__ import annotations

import logging

logger = logging.getLogger("pocketpacs")
logger.addHandler(logging.NullHandler())
