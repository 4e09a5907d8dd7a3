"""``python -m pocketpacs.cli``: the command line, as ``pocketpacs``."""
from . import entry

raise SystemExit(entry())
