"""``pocketpacs log``: where the app's log file is, and its last lines.

The app and ``pocketpacs serve`` write a rotating log (file paths hashed, no
header values: :mod:`pocketpacs.log`); "the details are in the log" in the
app points here.
"""
from __future__ import annotations

import argparse
import json
import os

from ..log import LOG_NAME, log_dir
from .framework import EXIT_ATTENTION, EXIT_OK, command
from .output import _say


def _lines(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return n


def _setup_log(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tail", type=_lines, default=20, metavar="N", help="last N lines (0: only the path)")
    p.add_argument("--json", action="store_true", help='{"path", "exists", "lines"}')


@command("log", "show where the app's log file is and its last lines", _setup_log)
def cmd_log(args: argparse.Namespace) -> int:
    path = log_dir() / LOG_NAME
    lines: list[str] = []
    exists = path.is_file()
    if exists and args.tail:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()[-args.tail:]
    if args.json:
        print(json.dumps({"path": str(path), "exists": exists, "lines": lines}))
        return EXIT_OK if exists else EXIT_ATTENTION
    _say(f"log file: {path}" + ("" if exists else " (not written yet: the app writes it)"))
    for ln in lines:
        _say(ln)
    return EXIT_OK if exists else EXIT_ATTENTION
