"""The export's file reading and writing in batches on its I/O thread (issue 15)."""
from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from pocketpacs.share import export


@pytest.mark.parametrize("threads", [0, 1])
def test_reads_come_in_order_with_each_failure_in_its_place(tmp_path, threads):
    paths = []
    for i in range(2 * export.IO_BATCH + 3):  # full batches and a short last one
        p = tmp_path / f"f{i}"
        if i % 5 != 3:
            p.write_bytes(b"x" * i)
        paths.append(str(p))
    pool = export._Inline() if threads == 0 else ThreadPoolExecutor(threads)
    got = list(export._prefetch(pool, paths))
    pool.shutdown()
    assert len(got) == len(paths)
    for i, g in enumerate(got):
        if i % 5 == 3:
            assert isinstance(g, FileNotFoundError)
        else:
            assert g == b"x" * i
    assert list(export._prefetch(export._Inline(), [])) == []


def test_batched_writes_make_new_private_files_and_never_overwrite(tmp_path):
    items = [(str(tmp_path / f"IMG{i:05d}.dcm"), bytes([i]) * 10) for i in range(export.IO_BATCH + 2)]
    export._write_all(items)
    for path, data in items:
        assert open(path, "rb").read() == data
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        export._write_all(items[:1])
    assert open(items[0][0], "rb").read() == items[0][1]
