"""Error codes of :func:`pocketpacs.ui.protocol.envelope_for_exception` (issue 11).

Each exception class PocketPACS raises on purpose maps to its code by
``isinstance`` against the real class (subclasses included), and the page
never sees the exception's own text (paths, header values).
"""
from __future__ import annotations

import lmdb
import pytest

from pocketpacs.archive import records
from pocketpacs.errors import (
    ArchiveDamaged,
    ArchiveError,
    ArchiveLocked,
    ArchiveReadOnly,
    SchemaVersionMismatch,
)
from pocketpacs.dicom.codestreams import CodestreamError
from pocketpacs.images.affine import GeometryError, normal_from_orientation
from pocketpacs.images.export import ExportError
from pocketpacs.images.frames import PixelError
from pocketpacs.images.openother import OpenOtherError
from pocketpacs.images.volume import VolumeError
from pocketpacs.ui import protocol

SECRET = "/media/cdrom/DOE^JOHN/IM0001"


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as exc:
        return exc
    raise AssertionError(f"{fn.__name__} raised nothing")


def _code_and_message(exc: BaseException) -> tuple[str, str]:
    env = protocol.envelope_for_exception(exc)
    assert env["ok"] is False and env["protocol_version"] == protocol.PROTOCOL_VERSION
    return env["error"]["code"], env["error"]["message"]


def test_geometry_error_raised_by_core_is_not_a_volume():
    exc = _raised(normal_from_orientation, [1, 0, 0, 1, 0, 0])     # parallel cosines
    assert type(exc) is GeometryError
    code, message = _code_and_message(exc)
    assert code == protocol.NOT_A_VOLUME and "volume" in message


def test_undecodable_record_raised_by_core_is_a_damaged_archive():
    exc = _raised(records.loads, b"\xff not json")
    assert isinstance(exc, ArchiveDamaged) and type(exc) is not ArchiveDamaged   # DamagedRecord
    code, message = _code_and_message(exc)
    assert code == protocol.UNAVAILABLE and "pocketpacs rebuild" in message


@pytest.mark.parametrize("exc, code, words", [
    (GeometryError(SECRET), protocol.NOT_A_VOLUME, "do not form a volume"),
    (VolumeError(SECRET), protocol.NOT_A_VOLUME, "do not form a volume"),
    (PixelError(SECRET), protocol.UNREADABLE, "could not be read or decoded"),
    (CodestreamError(SECRET), protocol.UNREADABLE, "could not be read or decoded"),
    (OpenOtherError(SECRET), protocol.UNREADABLE, "could not be opened as an image"),
    (ExportError(SECRET), protocol.UNAVAILABLE, "could not be exported"),
    (FileNotFoundError(2, "No such file", SECRET), protocol.NOT_FOUND, "does not exist"),
    (NotADirectoryError(20, "Not a directory", SECRET), protocol.NOT_FOUND, "does not exist"),
    (PermissionError(13, "Permission denied", SECRET), protocol.UNREADABLE, "Permission denied"),
    (ArchiveLocked(SECRET), protocol.UNAVAILABLE, "Another program is writing"),
    (ArchiveDamaged(SECRET), protocol.UNAVAILABLE, "may be damaged"),
    (lmdb.CorruptedError(SECRET), protocol.UNAVAILABLE, "may be damaged"),
    (SchemaVersionMismatch(SECRET), protocol.UNAVAILABLE, "could not be used"),
    (ArchiveReadOnly(SECRET), protocol.UNAVAILABLE, "could not be used"),
    (ArchiveError(SECRET), protocol.UNAVAILABLE, "could not be used"),
    (ValueError(SECRET), protocol.INTERNAL, "Something went wrong"),
    (protocol.BridgeError(protocol.READ_ONLY, "This archive is read-only."), protocol.READ_ONLY,
     "This archive is read-only."),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None)
def test_each_exception_class_maps_to_its_code(exc, code, words):
    got_code, message = _code_and_message(exc)
    assert got_code == code and words in message
    assert SECRET not in message and "DOE" not in message


def test_subclasses_of_a_mapped_class_map_like_it():
    class Locked2(ArchiveLocked):
        pass

    class Geometry2(GeometryError):
        pass

    assert _code_and_message(Locked2("x"))[1] == _code_and_message(ArchiveLocked("x"))[1]
    assert _code_and_message(Geometry2("x"))[0] == protocol.NOT_A_VOLUME
