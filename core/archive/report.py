"""What an import reports: the files it could not index, its running
progress and its outcome.

:class:`ImportProgress` is what the progress callback of
:meth:`~pocketpacs.archive.api.Archive.import_folder` receives while an import
runs; :class:`ImportReport` is what it returns (and, as JSON, what
``pocketpacs import --json`` prints); :class:`Failure` is one file that was not
indexed (or that conflicts with an archived instance), with a public reason
code (:func:`public_reason` maps the archive's internal listing codes to them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Internal failure codes reported under another name.
_PUBLIC_REASONS = {"no_identifiers": "unsupported", "empty": "truncated"}


def public_reason(code: str) -> str:
    """The reason an import report gives for an internal failure code."""
    return _PUBLIC_REASONS.get(code, code)


@dataclass
class Failure:
    """A file that was not indexed."""
    path: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "message": self.message}


@dataclass
class ImportProgress:
    """What an import has done so far (passed to the progress callback).

    Attributes
    ----------
    phase : str
        ``"walk"``, ``"import"`` or ``"done"``.
    seen : int
        Files found by the walk so far.
    total : int or None
        Files to look at, once the walk is complete.
    parsed, unchanged, failed, indexed : int
    files_per_s : float
    eta_s : float or None
    """
    phase: str = "walk"
    seen: int = 0
    total: int | None = None
    parsed: int = 0
    unchanged: int = 0
    failed: int = 0
    indexed: int = 0
    elapsed_s: float = 0.0
    files_per_s: float = 0.0
    eta_s: float | None = None
    #: Seconds of ``elapsed_s`` spent compiling the parser (first run after
    #: installing; 0 once the kernel cache is warm): not counted in ``files_per_s``.
    compile_s: float = 0.0

    @property
    def done(self) -> int:
        """Files dealt with (parsed or skipped)."""
        return self.parsed + self.unchanged


@dataclass
class ImportReport:
    """Outcome of one import.

    The JSON form (:meth:`to_json`) is what ``pocketpacs import --json``
    prints; its shape is stable.
    """
    root: str
    indexed: int = 0
    unchanged: int = 0
    relinked: int = 0
    duplicate: int = 0
    missing: int = 0
    online_again: int = 0
    seen: int = 0
    parsed: int = 0
    fallback: int = 0
    failures: list[Failure] = field(default_factory=list)
    conflicts: list[Failure] = field(default_factory=list)
    cancelled: bool = False
    elapsed_s: float = 0.0
    dicomdir: dict[str, Any] | None = None
    #: Seconds of ``elapsed_s`` spent compiling the parser's kernels (the first
    #: run after installing, "preparing the parser"; 0 once they are cached).
    compile_s: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def files_per_s(self) -> float:
        """Files per second, not counting the time spent preparing the parser."""
        work = self.elapsed_s - self.compile_s
        return self.seen / work if work > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "cancelled": self.cancelled,
            "elapsed_s": round(self.elapsed_s, 3),
            "files_per_s": round(self.files_per_s, 1),
            "compile_s": round(self.compile_s, 3),
            "counts": {"seen": self.seen, "indexed": self.indexed, "unchanged": self.unchanged,
                       "relinked": self.relinked, "duplicate": self.duplicate, "conflict": len(self.conflicts),
                       "failed": self.failed, "missing": self.missing, "online_again": self.online_again},
            "failed": [f.to_json() for f in self.failures],
            "conflicts": [c.to_json() for c in self.conflicts],
            "dicomdir": self.dicomdir,
        }
