"""The installed plugins' entry points, read without ``importlib.metadata``.

Every ``pocketpacs`` command line loads the commands of the installed
plugins (the desktop app is one).  ``importlib.metadata`` costs 35-45 ms of
CPU to import and scan on the 2-core development machine, a sixth of what
``pocketpacs stats`` took in all (issue 16), most of it in modules it imports
(``email``, ``zipfile``...) to read metadata we never look at.  This module
reads the same files it reads for :func:`importlib.metadata.entry_points`:
the ``entry_points.txt`` of every distribution folder (``*.dist-info``,
``*.egg-info``) found in the folders of ``sys.path``, in order, the first
distribution of a (normalised) name winning, and nothing else.  Zipped
distributions (an egg file on ``sys.path``) are not looked into.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple


class EntryPoint(NamedTuple):
    """One entry point: ``name = module:attribute``, of a group."""
    name: str
    value: str
    group: str

    def load(self) -> Any:
        """Import the module and return the attribute the entry point names.

        Returns
        -------
        object
            The attribute (the module itself when none is named).

        Raises
        ------
        ImportError, AttributeError
            As an import or an attribute lookup raises them.
        """
        module, _, attr = self.value.partition(":")
        obj: Any = importlib.import_module(module.strip())
        for part in attr.split("[")[0].strip().split(".") if attr else ():
            obj = getattr(obj, part)
        return obj


def _normalised(folder_name: str) -> str:
    """The distribution name of a ``name-version.dist-info`` folder, normalised
    as ``importlib.metadata`` normalises it (PEP 503, then ``_``)."""
    stem = folder_name.rsplit(".", 1)[0]
    return re.sub(r"[-_.]+", "-", stem.partition("-")[0]).lower().replace("-", "_")


def _entries(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of the lines of section ``[group]`` of an ``entry_points.txt``."""
    out: list[tuple[str, str]] = []
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, _, value = line.partition("=")
            out.append((name.strip(), value.strip()))
    return out


def entry_points(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """The entry points of *group* of the distributions installed on *path*.

    Parameters
    ----------
    group : str
        The entry-point group (``pocketpacs.commands``).
    path : list of str, optional
        The folders to look in, in order; default ``sys.path``.

    Returns
    -------
    list of EntryPoint
        In the order ``importlib.metadata.entry_points(group=...)`` gives.
    """
    seen: set[str] = set()
    out: list[EntryPoint] = []
    for folder in sys.path if path is None else path:
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:  # not a folder (a zip), or gone
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = _normalised(name)
            if dist in seen:
                continue
            seen.add(dist)
            try:
                with open(os.path.join(folder or ".", name, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            out.extend(EntryPoint(n, v, group) for n, v in _entries(text, group))
    return out


def load_each(group: str, on_error: Callable[[EntryPoint, Exception], None]) -> None:
    """Load every entry point of *group* and call it without arguments.

    Parameters
    ----------
    group : str
    on_error : callable
        Called with the entry point and the exception when one fails to
        load or to run; the others still run.
    """
    for ep in entry_points(group):
        try:
            ep.load()()
        except Exception as e:  # a broken optional part must not take the other commands down
            on_error(ep, e)
