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


class ArchiveError(PocketPacsError):
    """Something is wrong with the archive database."""


class ArchiveLocked(ArchiveError):
    """Another process holds the archive's write lock."""


class SchemaVersionMismatch(ArchiveError):
    """The archive was written by a newer, incompatible PocketPACS."""


class ArchiveReadOnly(ArchiveError):
    """The archive folder cannot be written (open it read-only)."""


class ArchiveUnsafe(ArchiveError):
    """The archive folder could be changed by another local user: it is owned
    by someone else, others may write to it (or to a folder above it), or a
    link leads into such a folder.  The message names the folder and why."""


class ArchiveDamaged(ArchiveError):
    """The archive database file is damaged; ``pocketpacs rebuild`` re-creates it
    from the imported folders (the DICOM files themselves are never touched)."""
