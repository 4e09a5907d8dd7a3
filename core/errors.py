"""Exception hierarchy of PocketPACS.

Messages never contain patient data: they name the file (a path the user
gave us) and the reason, never header values.
"""
from __future__ import annotations

from dataclasses import dataclass

#: What to do about a damaged (or inconsistent) archive database: the one
#: wording of the rebuild advice, used by every message that gives it (the
#: library's errors, the CLI and the app).
REBUILD_ADVICE = ("`pocketpacs rebuild` re-creates the archive from the imported folders "
                  "(a damaged database file is kept aside; your DICOM files are not touched)")


@dataclass
class Problem:
    """A path that is not indexed, with a reason code and a message."""
    path: str
    reason: str
    message: str


class PocketPacsError(Exception):
    """Base class of every error PocketPACS raises on purpose."""


class ParseError(PocketPacsError):
    """A file's DICOM header could not be parsed.

    Attributes
    ----------
    reason : str
        Short machine-readable reason code (e.g. ``"truncated"``).
    offset : int
        Byte offset in the file where parsing stopped (-1 when unknown).
    """

    def __init__(self, reason: str, offset: int = -1, path: str | None = None, detail: str = ""):
        self.reason = reason
        self.offset = offset
        self.path = path
        self.detail = detail
        where = f"{path}: " if path else ""
        at = f" at byte {offset}" if offset >= 0 else ""
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{where}{reason}{at}{extra}")


class NotDicomError(ParseError):
    """The file is not DICOM at all."""


class ArchiveError(PocketPacsError):
    """Something is wrong with the archive database."""


class ArchiveLocked(ArchiveError):
    """Another process holds the archive's write lock."""


class SchemaVersionMismatch(ArchiveError):
    """The archive was written by a newer, incompatible PocketPACS."""


class ArchiveReadOnly(ArchiveError):
    """The archive folder cannot be written (open it read-only)."""


class ArchiveDamaged(ArchiveError):
    """The archive database file is damaged; ``pocketpacs rebuild`` re-creates it
    from the imported folders (the DICOM files themselves are never touched)."""
