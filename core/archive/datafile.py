"""Low-level checks of the LMDB database file, with plain file I/O (no LMDB).

:func:`check_data_file` is the cheap guard run before every open of an
archive: the two meta pages of ``data.mdb`` are read with plain reads, and a
file whose header is missing or damaged, or that is shorter than the pages
its newest meta page claims (a truncated copy: LMDB would SIGBUS on it), is
refused.  :data:`OPEN_MARK` names the side file a writable store keeps while
it is open, so the next open knows whether the last writer closed cleanly.
The storage layer uses both; what to do about an unclean shutdown (the deep
check) is decided where the archive is opened (``open_archive``).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

#: Written while a writable archive is open; present at the next open means
#: the last writer did not close cleanly (crash, kill -9, power loss).
OPEN_MARK = "open.mark"

_MAGIC = 0xBEEFC0DE


def check_data_file(path: os.PathLike[str] | str) -> str | None:
    """Cheap check of an LMDB ``data.mdb`` with plain reads (no LMDB).

    Returns
    -------
    str or None
        Why the file cannot be opened safely, or None when its meta pages
        are sound and the file is as long as they say.  A missing file is
        fine (a new archive).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size == 0:
            return "the database file is empty"
        with open(p, "rb") as f:
            head = f.read(16 + 160)
            if len(head) < 176:
                return "the database file is truncated (shorter than its first page)"
            psize = struct.unpack_from("<I", head, 40)[0]
            if psize < 512 or psize > 1 << 20 or psize & (psize - 1):
                return "the database file has no valid header (first meta page damaged)"
            f.seek(psize)
            head2 = f.read(176)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"the database file cannot be read ({e.strerror or type(e).__name__})"
    metas = []
    for h in (head, head2):
        if len(h) < 176:
            continue
        magic, version = struct.unpack_from("<II", h, 16)
        last_pg, txnid = struct.unpack_from("<QQ", h, 136)
        if magic == _MAGIC and version == 1:
            metas.append((txnid, last_pg))
    if not metas:
        return "the database file has no valid header (meta pages damaged)"
    txnid, last_pg = max(metas)
    if (last_pg + 1) * psize > size:
        return (f"the database file is truncated ({size:,} bytes; its header needs "
                f"{(last_pg + 1) * psize:,})")
    return None
