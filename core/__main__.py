"""``python -m pocketpacs`` runs the command line."""
from .cli import run_guarded

raise SystemExit(run_guarded())
