"""The README's two set-up commands work on a stock Debian/Ubuntu machine, and CI runs them."""
from __future__ import annotations

import re
from pathlib import Path

from pocketpacs.ui.launch import QT_SYSTEM_PACKAGES

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _ci_script() -> str:
    return (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_commands_install_into_a_venv():
    """A stock Debian Python refuses `pip install` outside a venv (PEP 668)."""
    app, tests = _readme_commands()
    for cmd in (app, tests):
        assert cmd.startswith("python3 -m venv .venv && .venv/bin/pip install -e "), cmd
        assert "python3 -m pip" not in cmd
    assert app.endswith(".venv/bin/pocketpacs demo")
    assert tests.endswith(".venv/bin/python -m pytest") and '".[test]"' in tests
    assert ".venv/" in (REPO / ".gitignore").read_text().splitlines()


def test_ci_runs_the_readme_test_command():
    lines = [ln.strip() for ln in _ci_script().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[-1] == _readme_commands()[1]


def test_readme_and_ci_name_the_same_debian_packages():
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split("## Two commands", 1)[1]
                      .split("```", 1)[0].split())
    ci = _ci_script()
    apt = set(ci.split("apt-get install -y", 1)[1].split("\nfi", 1)[0].replace("\\", " ").split())
    packages = {"python3-venv", "xvfb", "xauth", "chromium", "fonts-dejavu-core", "strace", *QT_SYSTEM_PACKAGES}
    assert packages - apt == set()
    words = set(re.findall(r"[\w.+-]+", readme))
    assert packages - words == set()
