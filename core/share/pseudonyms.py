"""Keyed pseudonyms for de-identification: UIDs, patient name and ID, date shifts.

Everything is derived with HMAC-SHA256 from a de-identification key, itself
derived from the archive's secret (``secret.key``, see
:mod:`pocketpacs.archive.keys`) under its own label, so the same input gives
the same pseudonym within one archive, another archive gives other ones,
and nobody without the secret can recompute or reverse them.  UIDs become
``2.25.<decimal of 128 bits>`` (PS3.5 B.2, UUID-derived UIDs).
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import unicodedata

#: Label under which the de-identification key is derived from the archive secret.
KEY_LABEL = b"pocketpacs de-identification v1"
#: Largest date shift, in days (dates move back by 1..MAX_SHIFT_DAYS days).
MAX_SHIFT_DAYS = 3650


def deid_key(archive_secret: bytes) -> bytes:
    """The de-identification key of an archive.

    Parameters
    ----------
    archive_secret : bytes
        The archive's secret (``Archive._secret``); must not be empty.

    Returns
    -------
    bytes
        32 bytes, distinct from any key the archive uses for its records.

    Raises
    ------
    ValueError
        The secret is empty (an archive opened read-only whose secret could not be read).
    """
    if not archive_secret:
        raise ValueError("the archive's secret could not be read: no key for pseudonyms")
    return hmac.new(archive_secret, KEY_LABEL, hashlib.sha256).digest()


class Pseudonyms:
    """Pseudonyms under one de-identification key.

    Parameters
    ----------
    key : bytes
        From :func:`deid_key`.
    """

    def __init__(self, key: bytes):
        self._key = key
        self._uids: dict[str, str] = {}

    def _mac(self, kind: str, value: str) -> bytes:
        msg = kind.encode() + b"\0" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def uid(self, uid: str) -> str:
        """The pseudonym of a UID: ``2.25.`` and 128 bits of HMAC as a decimal.

        Parameters
        ----------
        uid : str

        Returns
        -------
        str
            At most 44 characters; the same for the same input.
        """
        u = uid.strip("\0 ")
        out = self._uids.get(u)
        if out is None:
            out = self._uids[u] = "2.25." + str(int.from_bytes(self._mac("uid", u)[:16], "big"))
        return out

    @staticmethod
    def identity(patient_id: str, patient_name: str, birth_date: str) -> str:
        """The string a patient's pseudonyms and date shift are derived from."""
        def norm(s: str) -> str:
            return unicodedata.normalize("NFC", (s or "").strip(" \0"))
        return "\0".join((norm(patient_id), norm(patient_name), norm(birth_date)))

    def patient_code(self, identity: str) -> str:
        """A 10-character code for a patient (base32 of the HMAC), used in the pseudonymous name and ID."""
        return base64.b32encode(self._mac("patient", identity)[:10]).decode()[:10]

    def day_shift(self, identity: str) -> int:
        """Days to add to this patient's dates: -MAX_SHIFT_DAYS..-1, the same for every study of the patient."""
        n = int.from_bytes(self._mac("dates", identity)[:8], "big")
        return -(1 + n % MAX_SHIFT_DAYS)


def shift_date(value: str, days: int) -> str:
    """A DA value (``YYYYMMDD``) moved by ``days``; ``""`` when it is not a full valid date.

    Parameters
    ----------
    value : str
    days : int

    Returns
    -------
    str
    """
    v = value.strip()
    if len(v) != 8 or not v.isdigit():
        return ""
    try:
        d = _dt.date(int(v[:4]), int(v[4:6]), int(v[6:]))
    except ValueError:
        return ""
    try:
        return (d + _dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return ""


def shift_datetime(value: str, days: int) -> str:
    """A DT value with its date part moved by ``days`` (time, fraction and offset kept); ``""`` when unusable."""
    v = value.strip()
    if len(v) < 8:
        return ""
    day = shift_date(v[:8], days)
    return day + v[8:] if day else ""
