"""The command framework of ``pocketpacs``: exit codes, the command table.

Commands register with :func:`command` into :data:`COMMANDS` (plugins through
the entry-point group :data:`PLUGIN_GROUP`, loaded by :func:`load_plugins`);
:func:`build_parser` makes one argument parser of them, with the global
options accepted before and after the command, and :func:`main` runs one
command line and turns the archive's errors into the exit codes.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import REBUILD_ADVICE, ArchiveDamaged, ArchiveError, ArchiveLocked, ArchiveUnsafe, PocketPacsError
from ..paths import ENV_ARCHIVE
from ..process import prefer_passive_waits
from .output import _err, _safe

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_ARCHIVE = 4
EXIT_DAMAGED = 5
EXIT_INTERRUPTED = 130


@dataclass
class Command:
    """A registered subcommand."""
    name: str
    help: str
    setup: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}

#: Entry-point group of the packages that add commands: each entry point is a
#: function called without arguments that registers them with :func:`command`.
PLUGIN_GROUP = "pocketpacs.commands"

#: The command :func:`entry` runs when none is given (a plugin sets it: the
#: desktop app makes it ``app``); None: print the help.
DEFAULT_COMMAND: str | None = None

_plugins_loaded = False


def load_plugins() -> None:
    """Register the commands of every installed plugin (once).

    A plugin that fails to load is reported on stderr; the other commands
    still work.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from .plugins import load_each  # (not importlib.metadata: start-up time, issue 16)

    load_each(PLUGIN_GROUP, lambda ep, e: _err(f"the commands of {ep.value} are not available "
                                               f"({type(e).__name__}: {e})"))


def command(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``fn(args) -> exit code`` as subcommand ``name``.

    Parameters
    ----------
    name : str
    help : str
        One line for ``pocketpacs --help``.
    setup : callable, optional
        Adds the subcommand's arguments to its parser.
    """
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, setup or (lambda p: None), fn)
        return fn
    return deco

# ---- helpers ---------------------------------------------------------------------------

def _open(args: argparse.Namespace, readonly: bool = False):
    from ..archive.api import open_archive

    return open_archive(args.archive, readonly=readonly)


def _add_global_options(p: Any, after_command: bool = False) -> None:
    """The options of the whole command line, accepted before and after the command.

    After the command they default to ``SUPPRESS``, so that a value given
    before the command is not overwritten by the subcommand's default.
    """
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    p.add_argument("--archive", metavar="PATH", help=f"archive folder (default: ${ENV_ARCHIVE} or the data folder)",
                   **kw)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors show the arguments escaped (:func:`.output._safe`):
    ``unrecognized arguments: ...`` quotes them as given."""

    def error(self, message: str):  # type: ignore[override]
        super().error(_safe(message, sys.stderr))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every registered command.

    Parameters
    ----------
    argv : list of str, optional
        The command line it will parse.  Given, only what that line can
        need is built (start-up time, issue 16): the arguments of the
        commands named in it, and no other command at all unless it asks
        for help or names none (the list of commands is then complete).
        A line this parser rejects is parsed again by the whole parser
        (:func:`parse_command_line`), so errors read the same.

    Returns
    -------
    argparse.ArgumentParser
    """
    named = None if argv is None else {a for a in argv if a in COMMANDS}
    listed = named
    if argv is not None and (not named or "-h" in argv or "--help" in argv):
        listed = None  # the help lists every command
    epilog = f"The archive is --archive, ${ENV_ARCHIVE}, or your data folder."
    if DEFAULT_COMMAND in COMMANDS:
        epilog += f" Without a command: `pocketpacs {DEFAULT_COMMAND}`."
    ap = _Parser(prog="pocketpacs", description="PocketPACS: a local DICOM archive and viewer.",
                 epilog=epilog)
    _add_global_options(ap)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for c in COMMANDS.values():
        if listed is not None and c.name not in listed:
            continue
        sp = sub.add_parser(c.name, help=c.help, description=c.help)
        if named is None or c.name in named:
            c.setup(sp)
            _add_global_options(sp.add_argument_group("global options"), after_command=True)
    return ap


_parsed: dict[tuple, argparse.Namespace] = {}


def parse_command_line(argv: list[str], known_only: bool = False) -> argparse.Namespace:
    """*argv* parsed by the parser built for it (:func:`build_parser`); a
    line parsed before is not parsed again (the crash guard asks for the
    command, then the command runs).

    A line that parser rejects is parsed again by the whole parser, which
    prints the usage error as it always did.

    Parameters
    ----------
    argv : list of str
    known_only : bool
        Leave unknown arguments alone (``parse_known_args``), quietly: a
        usage error or a help raises SystemExit without printing.

    Returns
    -------
    argparse.Namespace
        A copy: the caller may change it.

    Raises
    ------
    SystemExit
        A usage error or ``--help`` (as argparse raises it).
    """
    import contextlib
    import io

    key = (tuple(argv), known_only, tuple((c.name, id(c)) for c in COMMANDS.values()), DEFAULT_COMMAND)
    ns = _parsed.get(key)
    if ns is None:
        quiet = io.StringIO()
        try:
            with contextlib.redirect_stderr(quiet):
                if known_only:
                    with contextlib.redirect_stdout(quiet):
                        ns = build_parser(argv).parse_known_args(argv)[0]
                else:
                    ns = build_parser(argv).parse_args(argv)  # (a help is printed, then SystemExit(0))
        except SystemExit as e:
            if known_only or e.code in (0, None):
                raise
            build_parser().parse_args(argv)  # the whole parser says what is wrong
            raise
        _parsed.clear()
        _parsed[key] = ns
    return argparse.Namespace(**vars(ns))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    prefer_passive_waits()
    from ..log import protect_patient_data

    protect_patient_data()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_command_line(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else EXIT_USAGE
    if not args.command:
        build_parser(argv).print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except ArchiveLocked as e:
        _err(str(e))
        return EXIT_LOCKED
    except ArchiveDamaged as e:
        _err(_safe(str(e)))
        return EXIT_DAMAGED
    except (FileNotFoundError, ArchiveUnsafe) as e:
        _err(str(e))
        return EXIT_USAGE
    except (ArchiveError, PocketPacsError) as e:
        _err(str(e))
        return EXIT_ARCHIVE
    except KeyboardInterrupt:
        _err("interrupted; the archive is consistent")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:  # a file that cannot be written or read (a full disk, no permission): say which
        _err(_os_error_message(e))
        return EXIT_ARCHIVE
    except Exception as e:
        import lmdb

        if not isinstance(e, lmdb.Error):
            raise
        if isinstance(e, lmdb.BadValsizeError):  # a key or value size of ours: a bug, not damage
            _err(f"internal error of PocketPACS: LMDB refused a key or value size ({type(e).__name__}); "
                 "the archive is not damaged; please report this")
            return EXIT_ARCHIVE
        _err(f"the archive database could not be read ({type(e).__name__}): it may be damaged; "
             f"`pocketpacs check` says, {REBUILD_ADVICE}")
        return EXIT_DAMAGED


def _os_error_message(e: OSError) -> str:
    """``FILE: reason`` of an OSError, e.g. ``out.nii: no space left on device``."""
    reason = e.strerror or str(e) or type(e).__name__
    reason = reason[:1].lower() + reason[1:]
    return f"{os.fsdecode(e.filename)}: {reason}" if e.filename is not None else reason


def _command_of(argv: list[str]) -> str | None | bool:
    """The command *argv* names (None: none), parsed quietly; False on ``--help`` or a
    usage error, which :func:`main` prints once."""
    try:
        return parse_command_line(argv, known_only=True).command
    except SystemExit:
        return False
