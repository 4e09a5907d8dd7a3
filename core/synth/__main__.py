"""``python -m pocketpacs.synth``: the generator's command line (:func:`pocketpacs.synth.cli.main`)."""
from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
