"""Helpers shared by the rescan tests: two archives with one secret, a parse counter, dumps.

A rescan is checked by importing the same tree into two archives that
differ only in how they walk (listing every folder or trusting stamps,
small or large batches): with the same secret they key patients alike, so
their record dumps and reports must be equal.
"""
from __future__ import annotations

import os
from pathlib import Path

import pocketpacs
from pocketpacs.archive import integrity


def dump(ar) -> dict:
    """Every record of archive *ar* (stamps left out), for equality checks."""
    with ar._store.read() as t:
        return integrity.record_dump(t)


def report(rep) -> tuple:
    """An import report's counts, failures and conflicts, comparable across archives."""
    counts = tuple(getattr(rep, k) for k in ("seen", "indexed", "unchanged", "relinked", "duplicate",
                                             "missing", "online_again", "parsed", "failed"))
    return counts, sorted((f.path, f.reason) for f in rep.failures), sorted(f.path for f in rep.conflicts)


def txnid(ar) -> int:
    """The archive's last write transaction (unchanged when an import wrote nothing)."""
    return ar._store.env.info()["last_txnid"]


def count_parsed(monkeypatch) -> list[str]:
    """The list the header parser appends each parsed path to (clear it between imports)."""
    from pocketpacs.dicom import headers

    parsed: list[str] = []
    real = headers.parse_files

    def counting(paths, **kw):
        parsed.extend(os.fspath(p) for p in paths)
        return real(paths, **kw)

    monkeypatch.setattr(headers, "parse_files", counting)
    return parsed


def twin_archives(tmp_path: Path) -> tuple[Path, Path]:
    """Folders ``a`` and ``b`` under *tmp_path*: a new archive and an empty one with its secret."""
    with pocketpacs.open_archive(tmp_path / "a"):
        pass
    (tmp_path / "b").mkdir(mode=0o700)   # the same secret: the same patient keys
    (tmp_path / "b" / "secret.key").write_bytes((tmp_path / "a" / "secret.key").read_bytes())
    (tmp_path / "b" / "secret.key").chmod(0o600)
    return tmp_path / "a", tmp_path / "b"
