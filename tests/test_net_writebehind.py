"""The write-behind queue of DIMSE retrieves (issue 14, ``pocketpacs.net.writebehind``):
every queued instance is written (in order) or its failure reported before ``close``
returns, the bytes waiting stay bounded, and a failing write or callback never stops
the writes that follow."""
from __future__ import annotations

import os
import threading

from pocketpacs.net.writebehind import WriteBehind


def test_every_queued_instance_is_written_in_order_before_close_returns(tmp_path):
    done: list[str] = []

    def write(data, se, sop):
        path = tmp_path / f"{sop}.bin"
        path.write_bytes(data)
        return path

    with WriteBehind(write, lambda sop, path: done.append(sop), lambda sop, e: None) as w:
        for i in range(50):
            w.submit(bytes([i]) * 1000, "1.2", f"sop{i:02d}")
    assert done == [f"sop{i:02d}" for i in range(50)]
    assert sorted(os.listdir(tmp_path)) == [f"sop{i:02d}.bin" for i in range(50)]
    assert (tmp_path / "sop07.bin").read_bytes() == bytes([7]) * 1000


def test_the_bytes_waiting_stay_under_the_limit(tmp_path):
    gate = threading.Event()
    seen = []

    def write(data, se, sop):
        gate.wait()
        seen.append(w._pending)
        return sop

    w = WriteBehind(write, lambda sop, path: None, lambda sop, e: None, max_pending=3000)
    with w:
        t = threading.Thread(target=lambda: [w.submit(b"x" * 1000, "1.2", str(i)) for i in range(10)])
        t.start()
        t.join(0.5)
        assert t.is_alive()          # the submitter waits: 3 of 1000 bytes fill the queue
        assert w._pending <= 3000
        gate.set()
        t.join()
    assert max(seen) <= 3000 and len(seen) == 10


def test_a_failed_write_is_reported_and_the_next_ones_go_on(tmp_path):
    errors, done = [], []

    def write(data, se, sop):
        if sop == "bad":
            raise OSError(28, "No space left on device")
        return sop

    def on_written(sop, path):
        done.append(sop)
        if sop == "b":
            raise RuntimeError("a progress callback that fails")

    with WriteBehind(write, on_written, lambda sop, e: errors.append((sop, e.errno))) as w:
        for sop in ("a", "bad", "b", "c"):
            w.submit(b"data", "1.2", sop)
    assert errors == [("bad", 28)]
    assert done == ["a", "b", "c"]
    assert isinstance(w.callback_error, RuntimeError)
