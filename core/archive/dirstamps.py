"""Folder stamps: whether a folder's entries can have changed since an import listed it.

Adding, removing or renaming an entry of a folder sets the folder's
modification and change times (``st_mtime_ns``, ``st_ctime_ns``) to the
current time, on the file systems that keep POSIX directory times
(:data:`TRUSTED_TYPES`: not FAT, exFAT, NTFS, network or FUSE file systems,
where a folder's time may stay put while its entries change).  So a folder
whose device, inode and both times are those recorded when it was listed
still has the entries it had then, and a rescan need not list it again: it
``stat``-s the files its stored listing names (a file rewritten in place
keeps its folder's times) and takes its subfolders from the stamp.

A stamp is only recorded for a folder whose times were at least
:data:`SETTLED_NS` old when the walk began: a change within the same tick
of the file system's clock as the folder's last change could leave its
times as they were (the "racy" case), and the margin puts that tick in the
past.  Devices are looked up in ``/proc/self/mountinfo`` (Linux) at the
start of every walk (a USB stick of another file system may have taken the
device of an earlier one); elsewhere no folder is trusted, and every folder
is listed as before.  (An overlay mount is trusted: a change goes to its
upper layer, whose folders' times change; the kernel does not support
changes to its lower layers while it is mounted.)
"""
from __future__ import annotations

import os
import struct
import sys
import time
from operator import attrgetter

#: File system types (``/proc/self/mountinfo``) whose folders' times change
#: with every change of their entries.
TRUSTED_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "overlay"})
#: A folder is stamped only when its times were at least this old (ns) when
#: the walk began: many ticks of the kernel's coarse clock (1-10 ms), which
#: these file systems' times come from.
SETTLED_NS = 200_000_000
#: Device, inode, modification and change time of a folder (little-endian int64 each).
STAMP = struct.Struct("<4q")

_MOUNTINFO = "/proc/self/mountinfo"
stamp_fields = attrgetter("st_dev", "st_ino", "st_mtime_ns", "st_ctime_ns")
#: ``(mountinfo read, its trusted devices, TRUSTED_TYPES then)`` of the last :func:`trusted_devices`
_last: tuple[bytes | None, frozenset[int], frozenset[str] | None] = (None, frozenset(), None)


def trusted_devices() -> frozenset[int]:
    """The devices (``st_dev``) mounted with a file system of :data:`TRUSTED_TYPES`.

    Returns
    -------
    frozenset of int
        Empty when they cannot be told (not Linux, no ``/proc``).
    """
    if not sys.platform.startswith("linux"):
        return frozenset()
    global _last
    try:
        with open(_MOUNTINFO, "rb") as f:
            raw = f.read()
    except OSError:
        return frozenset()
    if raw == _last[0] and TRUSTED_TYPES is _last[2]:   # (the mounts as the last walk found them)
        return _last[1]
    lines = raw.decode("utf-8", "replace").splitlines()
    devs = set()
    for line in lines:
        # "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if not sep or len(fields) < 3 or not tail:
            continue
        major, _, minor = fields[2].partition(":")
        if tail.split()[0] in TRUSTED_TYPES and major.isdigit() and minor.isdigit():
            devs.add(os.makedev(int(major), int(minor)))
    _last = (raw, frozenset(devs), TRUSTED_TYPES)
    return _last[1]


def settled_before() -> int:
    """The latest folder time that a walk starting now may stamp.

    Returns
    -------
    int
        Nanoseconds since the epoch: now less :data:`SETTLED_NS`.
    """
    return time.time_ns() - SETTLED_NS


def stamp_of(st: os.stat_result) -> bytes:
    """The stamp of a folder.

    Parameters
    ----------
    st : os.stat_result
        The folder's ``stat``.

    Returns
    -------
    bytes
        Its device, inode, modification and change times (:data:`STAMP`, 32 bytes).
    """
    return STAMP.pack(*stamp_fields(st))


def section(st: os.stat_result, subfolders: list[str]) -> bytes:
    """What a folder's stored listing keeps after its stamp: the stamp and
    its subfolders' names in directory order (NUL-joined, UTF-8 with
    ``surrogateescape``).

    Parameters
    ----------
    st : os.stat_result
        The folder's ``stat``, taken before it was listed.
    subfolders : list of str
        The names of its subfolders as that listing found them.

    Returns
    -------
    bytes
    """
    return stamp_of(st) + "\0".join(subfolders).encode("utf-8", "surrogateescape")


# ---- folders of folders: one record per imported folder ------------------------------------

#: ``meta`` key prefix of an imported folder's record of the stamps of its
#: folders that hold only folders (they have no listing to keep a stamp):
#: followed by the imported folder's path key.
FOLDERS_KEY = b"folder-stamps\0"
_LENS = struct.Struct("<HI")


def encode_folders(stamps: dict[bytes, bytes]) -> bytes:
    """The record of the stamp sections of folders that hold only folders.

    Parameters
    ----------
    stamps : dict of bytes to bytes
        Folder path key -> its :func:`section`.

    Returns
    -------
    bytes
        Each key and section after their lengths, in key order.
    """
    return b"".join(_LENS.pack(len(k), len(s)) + k + s for k, s in sorted(stamps.items()))


def decode_folders(raw: bytes | None) -> dict[bytes, bytes]:
    """What :func:`encode_folders` made (empty for None or a record cut short).

    Parameters
    ----------
    raw : bytes or None
        The stored record.

    Returns
    -------
    dict of bytes to bytes
    """
    out: dict[bytes, bytes] = {}
    if not raw:
        return out
    p, n, unpack = 0, len(raw), _LENS.unpack_from
    while p + 6 <= n:
        kl, sl = unpack(raw, p)
        k = raw[p + 6:p + 6 + kl]
        s = raw[p + 6 + kl:p + 6 + kl + sl]
        p += 6 + kl + sl
        if p > n:
            return {}
        out[k] = s
    return out
