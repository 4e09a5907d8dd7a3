"""Binary keys of the archive.

Layout
------
- UIDs (study, series, SOP instance) are keyed by their XXH64 (seed 0, the
  same hash the header parser computes per file, trailing NUL/space
  stripped) as 8 big-endian bytes, so the keys of a batch come straight from
  ``HeaderBatch.uid_hash`` without touching the UID strings.
- Instances are keyed ``series_key + sop_key`` (16 bytes): the instances of
  a series are one contiguous key range.
- Patients are keyed by a keyed hash: HMAC-SHA256 of the patient's identity
  (ID, name, birth date) under a random secret stored beside the archive
  (``secret.key``, mode 0600), truncated to 16 bytes.  The archive never
  stores an unsalted hash of a patient identifier, so its keys cannot be
  matched against a list of known IDs without the secret.
- Patients with neither a name nor an ID (anonymised data) are never merged:
  their key is derived from the study UID, so each such study is its own
  anonymous patient.

Index keys append the fixed-width record key to a normalised value, so a
prefix range of the index lists matching records without reading them.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from ..paths import read_private_file, write_private_file

if TYPE_CHECKING:
    import numpy as np

UID_KEY_LEN = 8
PATIENT_KEY_LEN = 16
INSTANCE_KEY_LEN = 16
SECRET_FILE = "secret.key"
SECRET_LEN = 32


def uid_hash(uid: str) -> int:
    """XXH64 (seed 0) of a UID string with trailing NUL/space removed.

    Parameters
    ----------
    uid : str
        A UID as decoded from the file.

    Returns
    -------
    int
        The same value the header parser reports in ``uid_hash``.
    """
    from ..native.hashing import hash_bytes  # numba: imported on first use

    return hash_bytes(uid.rstrip("\0 ").encode("latin-1", "replace"))


def uid_key(uid_or_hash: str | int) -> bytes:
    """8-byte big-endian key of a UID (given as a string or its hash)."""
    h = uid_hash(uid_or_hash) if isinstance(uid_or_hash, str) else int(uid_or_hash)
    return h.to_bytes(8, "big")


def hashes_to_keys(hashes: np.ndarray) -> list[bytes]:
    """Convert an array of uint64 hashes to a list of 8-byte big-endian keys."""
    import numpy as np

    raw = np.ascontiguousarray(hashes, dtype=">u8").tobytes()
    return [raw[i:i + 8] for i in range(0, len(raw), 8)]


def instance_keys(series_hashes: np.ndarray, sop_hashes: np.ndarray) -> list[bytes]:
    """16-byte instance keys (series key + SOP key) for arrays of hashes."""
    import numpy as np

    pair = np.empty((len(series_hashes), 2), dtype=">u8")
    pair[:, 0] = series_hashes
    pair[:, 1] = sop_hashes
    raw = pair.tobytes()
    return [raw[i:i + 16] for i in range(0, len(raw), 16)]


def instance_key(series_uid: str | int, sop_uid: str | int) -> bytes:
    """16-byte key of one instance."""
    return uid_key(series_uid) + uid_key(sop_uid)


def load_or_create_secret(folder: os.PathLike[str] | str) -> bytes:
    """Return the archive's HMAC secret, creating it (mode 0600) if absent.

    Parameters
    ----------
    folder : path-like
        The archive folder (already created 0700).

    Returns
    -------
    bytes
        32 random bytes.

    Raises
    ------
    OSError
        When the file cannot be created or read.
    """
    path = Path(folder) / SECRET_FILE
    try:
        data = read_secret(folder)
        if len(data) == SECRET_LEN:
            return data
    except FileNotFoundError:
        pass
    # first writer wins; a racing creator reads the winner's key
    write_private_file(path, secrets.token_bytes(SECRET_LEN), keep_existing=True)
    data = read_secret(folder)
    if len(data) != SECRET_LEN:
        raise OSError(f"{path}: archive secret has the wrong length")
    return data


def read_secret(folder: os.PathLike[str] | str) -> bytes:
    """The bytes of the archive's secret file, never read through a link.

    Raises
    ------
    OSError
        The file is absent, unreadable, or a symbolic link.
    """
    return read_private_file(Path(folder) / SECRET_FILE, SECRET_LEN + 1)


def new_session_secret() -> bytes:
    """A random secret that lives only in memory (no-trace media sessions)."""
    return secrets.token_bytes(SECRET_LEN)


def _norm_identity(s: str | None) -> str:
    return unicodedata.normalize("NFC", (s or "").strip(" \0"))


def patient_key(secret: bytes, patient_id: str | None, patient_name: str | None,
                birth_date: str | None, study_uid: str | None = None) -> bytes:
    """16-byte keyed hash identifying a patient.

    Parameters
    ----------
    secret : bytes
        The archive secret (:func:`load_or_create_secret`).
    patient_id, patient_name, birth_date : str or None
        Patient attributes as decoded from the header.
    study_uid : str, optional
        Used only for anonymous patients (no ID and no name): each such
        study becomes its own patient.

    Returns
    -------
    bytes
    """
    pid = _norm_identity(patient_id)
    name = _norm_identity(patient_name)
    if not pid and not name.strip("^= "):
        msg = "anon\0" + (study_uid or "").rstrip("\0 ")
    else:
        msg = "p\0" + pid + "\0" + name + "\0" + _norm_identity(birth_date)
    return hmac.new(secret, msg.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()[:PATIENT_KEY_LEN]


def is_anonymous(patient_id: str | None, patient_name: str | None) -> bool:
    """True when a patient has neither an ID nor a name."""
    return not _norm_identity(patient_id) and not _norm_identity(patient_name).strip("^= ")


def unhex(s: str, length: int | None = None) -> bytes | None:
    """Parse a hex record id; None when ``s`` is not one."""
    try:
        b = bytes.fromhex(s)
    except (ValueError, TypeError):
        return None
    if length is not None and len(b) != length:
        return None
    return b
