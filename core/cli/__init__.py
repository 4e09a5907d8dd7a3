"""The ``pocketpacs`` command line.

``pocketpacs [--archive PATH] COMMAND ...`` (``--archive`` may also follow the
command); the archive is, in order, ``--archive``, ``$POCKETPACS_ARCHIVE``, or
the user's data folder.

Commands: ``import``, ``search``, ``show``, ``rm``, ``verify``, ``check``,
``rebuild``, ``stats``, ``export`` (NIfTI / PNG), ``report`` (assembly report); the
desktop app adds ``app``, ``serve`` and ``demo``.  Each is one function ``cmd_<name>(args) -> int`` registered
with :func:`command`; other modules add commands the same way.  One command
table serves every entry point (``pocketpacs``, ``python -m pocketpacs``,
``python -m pocketpacs.ui``): :func:`entry` loads the commands of the
installed plugins (entry-point group :data:`PLUGIN_GROUP`; the desktop app is
one, so the core never imports the UI) and runs :data:`.framework.DEFAULT_COMMAND` when
no command is given.

Exit codes
----------
0  success (``search``: at least one result)
1  finished, but something needs attention: files not indexed or in
   conflict (``import``), no result (``search``), offline or changed files
   (``verify``)
2  usage error, or a path that does not exist
3  the archive is locked by another process
4  any other archive error (e.g. a read-only archive folder)
5  the archive database is damaged: ``pocketpacs rebuild`` re-creates it
130  interrupted (Ctrl-C); the archive stays consistent

JSON output (``--json``; stable, for scripts)
---------------------------------------------
``import --json``: one object ``{"root", "cancelled", "elapsed_s",
"files_per_s", "compile_s", "counts": {"seen", "indexed", "unchanged", "relinked",
"duplicate", "conflict", "failed", "missing", "online_again"}, "failed":
[{"path", "reason", "message"}], "conflicts": [...same...], "dicomdir":
null | {"referenced", "found", "missing", "rejected"}}`` (several folders:
a list of such objects).  ``compile_s``: seconds of ``elapsed_s`` spent
compiling the parser on the first run after installing (0 once the kernels
are cached), left out of ``files_per_s``.  Reasons: ``not_dicom``, ``truncated``,
``unreadable``, ``permission_denied``, ``vanished``, ``unsupported``,
``malformed``.

``show --json`` without argument: a list with one object per instance:
``{"patient_name", "patient_id", "birth_date", "anonymous",
"study_instance_uid", "study_date", "series_instance_uid", "series_number",
"sop_instance_uid", "instance_number", "modality", "transfer_syntax",
"online", "conflict", "paths"}``.  With an argument: the tree of that
patient/study/series as nested objects.

``search --json``: ``{"counts": {"patients", "studies", "series",
"instances", "size"}, "results": [{"patient": {...}, "study": {...},
"series": [...] (with --series)}]}``.

``report --json``: the assembly report of the series: ``{"stacks": [{"shape",
"spacing", "affine_lps", "kind", ...}], "notes", "errors", ...}`` (see
:class:`pocketpacs.images.assemblyreport.AssemblyReport`).  ``export --json``:
``{"written": [paths]}``.

Modules
-------
:mod:`.framework` the command table, the parser and :func:`main`;
:mod:`.output` terminal and JSON output; :mod:`.archive_commands` and
:mod:`.image_commands` the commands (importing this package registers them);
:mod:`.guard` the console entry and the crash guard.  The settable state
(``COMMANDS``, ``DEFAULT_COMMAND``) lives in :mod:`.framework`, ``GUARDED``
in :mod:`.guard`: set them there.
"""
from __future__ import annotations

from . import archive_commands, image_commands, log_command  # registers the commands, in this order
from . import network_commands  # noqa: F401  (registers remote and listen; issue 14)
from . import bench_command  # noqa: F401  (registers `bench`)
from . import measure_commands  # noqa: F401  (registers measurements; issue 17)
from .framework import (
    COMMANDS,
    EXIT_ARCHIVE,
    EXIT_ATTENTION,
    EXIT_DAMAGED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    PLUGIN_GROUP,
    Command,
    build_parser,
    command,
    load_plugins,
    main,
)
from .guard import GUARDED, entry, run_guarded

__all__ = [
    "COMMANDS", "EXIT_ARCHIVE", "EXIT_ATTENTION", "EXIT_DAMAGED", "EXIT_INTERRUPTED", "EXIT_LOCKED", "EXIT_OK",
    "EXIT_USAGE", "GUARDED", "PLUGIN_GROUP", "Command", "archive_commands", "build_parser", "command", "entry",
    "image_commands", "load_plugins", "log_command", "main", "run_guarded",
]
