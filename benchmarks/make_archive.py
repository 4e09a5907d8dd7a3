"""Write a synthetic DICOM archive: a thin wrapper around ``pocketpacs.synth``.

Examples
--------
``python benchmarks/make_archive.py bench-data/bench --preset bench``
``python benchmarks/make_archive.py bench-data/scale --preset scale --workers 2``
``python benchmarks/make_archive.py /tmp/a --patients 4 --series 5 --slices 100 --size 512x512``

See ``python -m pocketpacs.synth --help`` for every option.
"""
from __future__ import annotations

import sys

from pocketpacs.synth import main

if __name__ == "__main__":
    sys.exit(main())
