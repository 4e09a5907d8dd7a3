"""The linter passes on the whole tree: unused imports and names, undefined
names, pycodestyle errors, bugbear's likely bugs, and `noqa` comments that
suppress nothing (configuration in pyproject.toml, [tool.ruff])."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from conftest import require_system

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    require_system(importlib.util.find_spec("ruff") is not None, "ruff (pip install -e '.[test]')")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                        str(REPO)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
