"""``python -m pocketpacs`` runs the command line (the same commands as ``pocketpacs``)."""
from .cli import entry

raise SystemExit(entry())
