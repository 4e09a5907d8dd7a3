"""``python -m benchmarks`` (from a checkout) and ``python -m pocketpacs.benchmarks``: ``pocketpacs bench``."""
from __future__ import annotations

import sys

from pocketpacs.benchmarks.runner import main

if __name__ == "__main__":
    sys.exit(main())
