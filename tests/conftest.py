"""Shared fixtures: where the real-data corpus is, and CI strictness."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_system(ok: bool, what: str) -> None:
    """Skip when a system part is missing -- but fail under CI=true."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing (CI=true: a missing system part is a failure)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared real-data corpus; tests using it skip when it is absent."""
    if not (CORPUS / "HEADERS.jsonl").exists():
        pytest.skip("../shared/corpus is not present")
    return CORPUS
