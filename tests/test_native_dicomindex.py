"""The element-table kernel (issue 15) against its plain-Python reference.

Every file of ``../shared/corpus`` and of pydicom's bundled data sets, whole,
truncated and with bytes changed, is indexed by
:func:`pocketpacs.native.dicomindex.index_elements` and by
:func:`pocketpacs.native.reference.index_elements`: same outcome, same rows,
same offset where the walk stopped.
"""
from __future__ import annotations

import os
import random

import numpy as np
import pytest

from pocketpacs.native import reference
from pocketpacs.native.dicomindex import (
    COL_END,
    COL_PARENT,
    COL_START,
    COL_TAG,
    COL_VEND,
    COL_VSTART,
    IDX_FULL,
    IDX_OK,
    NCOLS,
    REASONS,
    index_elements,
)
from pocketpacs.share.elements import _VR_KINDS, MAX_DEPTH, NotRewritable, index_table, nested, sq_tags
from pydicom_data import bundled_file, bundled_files


def _dataset_start(data: bytes) -> tuple[int, bool] | None:
    """Where the data set of a Part 10 file starts and whether it is implicit VR (None: no meta)."""
    if len(data) < 140 or data[128:132] != b"DICM":
        return None
    pos, ts = 132, ""
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"UN", b"SQ", b"UT"):
            length, hdr = int.from_bytes(data[pos + 8:pos + 12], "little"), 12
        else:
            length, hdr = int.from_bytes(data[pos + 6:pos + 8], "little"), 8
        if data[pos + 2:pos + 4] == b"\x10\x00":
            ts = data[pos + hdr:pos + hdr + length].decode("latin-1").rstrip("\0 ")
        pos += hdr + length
    return pos, ts == "1.2.840.10008.1.2"


def _both(data: bytes, pos: int, implicit: bool, rows: int = 4096):
    out = np.zeros((rows, NCOLS), dtype=np.int64)
    code, n, where = index_elements(np.frombuffer(data, dtype=np.uint8), pos, len(data), implicit, _VR_KINDS,
                                    sq_tags(), MAX_DEPTH, out)
    want = reference.index_elements(data, pos, len(data), implicit, _VR_KINDS, sq_tags(), MAX_DEPTH)
    return (code, [tuple(r) for r in out[:n].tolist()], where), want


def _samples(corpus) -> list[str]:
    files = [os.path.join(d, f) for d, _, names in os.walk(corpus) for f in sorted(names)]
    files += bundled_files("**/*.dcm")
    return sorted(files)


@pytest.fixture(scope="module")
def parts10(corpus) -> list[tuple[str, bytes, int, bool]]:
    out = []
    for path in _samples(corpus):
        with open(path, "rb") as f:
            data = f.read()
        start = _dataset_start(data)
        if start is not None and start[0] < len(data):
            out.append((path, data, *start))
    assert len(out) > 500
    return out


def test_kernel_equals_reference_on_every_file(parts10):
    outcomes: dict[int, int] = {}
    for path, data, pos, implicit in parts10:
        got, want = _both(data, pos, implicit)
        assert got == want, path
        outcomes[got[0]] = outcomes.get(got[0], 0) + 1
    assert outcomes[IDX_OK] > 400
    assert len(outcomes) > 2, outcomes   # the corpus has data sets the rewriter refuses, for several reasons


def test_kernel_equals_reference_on_damaged_files(parts10):
    rng = random.Random(15)
    codes = set()
    for path, data, pos, implicit in rng.sample(parts10, 120):
        for _ in range(6):
            buf = bytearray(data[:rng.randrange(pos, len(data) + 1)])
            for _k in range(rng.randrange(0, 4)):
                if len(buf) > pos:
                    buf[rng.randrange(pos, len(buf))] = rng.randrange(256)
            got, want = _both(bytes(buf), pos, implicit)
            assert got == want, path
            codes.add(got[0])
    assert {IDX_OK, 10}.issubset(codes) and len(codes) >= 5, codes  # 10: an element longer than the data left


def test_rows_describe_the_file():
    """Top-level rows tile the data set; items and their elements nest inside their sequence."""
    data = open(bundled_file("rtplan.dcm"), "rb").read()
    pos, implicit = _dataset_start(data)
    (code, rows, where), _ = _both(data, pos, implicit)
    assert code == IDX_OK and where == len(data)
    top = [r for r in rows if r[COL_PARENT] == -1]
    assert top[0][COL_START] == pos and top[-1][COL_END] == len(data)
    assert all(a[COL_END] == b[COL_START] for a, b in zip(top, top[1:]))
    nested_rows = [r for r in rows if r[COL_PARENT] >= 0]
    assert nested_rows
    for r in nested_rows:
        parent = rows[r[COL_PARENT]]
        assert parent[COL_VSTART] <= r[COL_START] <= r[COL_END] <= parent[COL_VEND]
        assert (r[COL_TAG] == 0xFFFEE000) == (parent[COL_TAG] != 0xFFFEE000)  # items in sequences, elements in items


def test_a_small_table_asks_for_more_rows():
    data = open(bundled_file("CT_small.dcm"), "rb").read()
    pos, implicit = _dataset_start(data)
    out = np.zeros((5, NCOLS), dtype=np.int64)
    code, n, _ = index_elements(np.frombuffer(data, dtype=np.uint8), pos, len(data), implicit, _VR_KINDS, sq_tags(),
                                MAX_DEPTH, out)
    assert code == IDX_FULL and n == 5
    table, n = index_table(data, pos, implicit)   # grows the table itself
    assert n > 5 and [tuple(r) for r in table[:n].tolist()] == _both(data, pos, implicit)[1][1]


def test_nesting_deeper_than_allowed_is_refused():
    """A sequence in an item in a sequence ..., 17 levels deep (explicit VR, undefined lengths)."""
    head = b"\x08\x00\x15\x11SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    tail = b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"
    for depth, ok in ((MAX_DEPTH, True), (MAX_DEPTH + 1, False)):
        data = head * depth + tail * depth
        (code, rows, _), want = _both(data, 0, False)
        assert (code, rows) == want[:2]
        assert (code == IDX_OK) == ok and (ok or REASONS[code] == "sequences nested too deep")


def test_index_table_names_the_reason_and_nests_like_the_file():
    data = open(bundled_file("CT_small.dcm"), "rb").read()
    pos, implicit = _dataset_start(data)
    with pytest.raises(NotRewritable, match="longer than the data left"):
        index_table(data[:-100], pos, implicit)
    table, n = index_table(data, pos, implicit)
    top = nested(table, n, implicit)
    assert [e[0] for e in top] == [r[COL_TAG] for r in table[:n].tolist() if r[COL_PARENT] == -1]
    assert all(e[4] == r[COL_VEND] for e, r in zip(top, [r for r in table[:n].tolist() if r[COL_PARENT] == -1]))
