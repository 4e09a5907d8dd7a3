"""CPU seconds of a benchmark's child processes, by what they are (Linux /proc).

The UI benchmark (:mod:`.bench_ui`) times what a user waits for on a machine
it shares with others: a wall-clock figure moves with their load.  The CPU
seconds each process spent over the same interval (the server and its helper
processes, Chromium's GPU process, page, network service and browser process,
Playwright's driver) say where the time went, and barely move with the load:
:func:`cpu_seconds` before and after, :func:`cpu_text` of the two.  Elsewhere
than Linux the counts are empty.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def _children() -> dict[int, int]:
    """Parent pid of every process (Linux /proc; {} elsewhere)."""
    out = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def kind(pid: int) -> str:
    """What a process is, from its command line.

    Parameters
    ----------
    pid : int
        Process id.

    Returns
    -------
    str
        ``server``, ``server's <module>`` (its ``python -m pocketpacs.*``
        helpers), ``GPU``, ``page``, ``network``, ``zygote``, ``browser``
        (Chromium), ``bench driver`` (Playwright's), ``other: <program>`` or
        ``gone``.
    """
    try:
        cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    text = b" ".join(cmd)
    if b"pocketpacs.ui" in text:
        return "server"
    m = re.search(rb"-m pocketpacs\.(\S+)", text)
    if m:                                   # the server's helper processes, by module
        return "server's " + m.group(1).decode("ascii", "replace").rsplit(".", 1)[-1]
    for flag, name in ((b"--type=gpu-process", "GPU"), (b"--type=renderer", "page"),
                       (b"--type=utility", "network"), (b"--type=zygote", "zygote")):
        if flag in text:
            return name
    if b"chrom" in (cmd[0] or b"").lower():
        return "browser"
    if b"playwright" in (cmd[0] or b""):
        return "bench driver"
    return "other: " + Path(os.fsdecode(cmd[0] or b"?")).name + (" " + os.fsdecode(cmd[1])[:40] if len(cmd) > 1 else "")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's living descendants.

    Returns
    -------
    dict
        Seconds by :func:`kind` (the server and its helper processes by module,
        Chromium's GPU process, page, network service, browser process,
        Playwright's driver); {} where there is no /proc.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    for pid in descendants():
        try:
            f = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        k = kind(pid)
        out[k] = out.get(k, 0.0) + (int(f[11]) + int(f[12])) / tick
    return out


def descendants() -> set[int]:
    """Pids of this process's living descendants.

    Returns
    -------
    set of int
        Every process whose parent chain leads here (this one excluded).
    """
    parents = _children()
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return mine - {os.getpid()}


def cpu_text(before: dict[str, float], after: dict[str, float]) -> str:
    """The CPU seconds spent between two :func:`cpu_seconds`, in all and by kind.

    Parameters
    ----------
    before, after : dict
        Counts by kind, earlier and later.

    Returns
    -------
    str
        ``"CPU 2.31 s (page 0.80, GPU 0.55, ...)"``, the largest first.
    """
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    d = {k: v for k, v in d.items() if v > 0.005}
    return f"CPU {sum(d.values()):.2f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in sorted(d.items(), key=lambda x: -x[1])) + ")"
