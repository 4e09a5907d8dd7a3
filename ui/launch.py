"""Command functions of the app: ``pocketpacs`` (window), ``pocketpacs serve``, ``pocketpacs demo``.

:func:`register_commands` adds them to the one command table of
``pocketpacs.cli`` (called through the ``pocketpacs.commands`` entry point,
so the core never imports the UI), and makes ``app`` the command run when
none is given.  ``pocketpacs``, ``python -m pocketpacs`` and ``python -m
pocketpacs.ui`` therefore accept the same commands.  Each command function
takes the parsed :class:`argparse.Namespace` and returns an exit status.

Environment detection: without a display or without a usable GUI backend,
``pocketpacs`` says so plainly and serves the UI to a browser instead
(printing the URL with its token).  Qt WebEngine flags are added only where
needed: the Chromium sandbox is disabled only when running as root, and the
software-GL flags only when there is no GPU device (``/dev/dri``) or when
asked (``--software-gl`` / ``POCKETPACS_SOFTWARE_GL=1``).
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

SOFTWARE_GL_FLAGS = ("--ignore-gpu-blocklist", "--disable-gpu-compositing")


# ----------------------------------------------------------------- arguments
def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the app commands (``--archive`` is the CLI's global option,
    accepted before or after the command).

    Parameters
    ----------
    p : argparse.ArgumentParser
        Parser (or sub-parser) to extend.
    """
    p.add_argument("--readonly", action="store_true", help="open the archive read-only")


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``pocketpacs`` (the window).

    Parameters
    ----------
    p : argparse.ArgumentParser
        Parser to extend.
    """
    add_common_arguments(p)
    p.add_argument("--software-gl", action="store_true",
                   help="add Qt WebEngine flags for software OpenGL (no GPU)")
    p.add_argument("--selftest", metavar="FILE", default=None, help=argparse.SUPPRESS)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``pocketpacs serve``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        Parser to extend.
    """
    add_common_arguments(p)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    p.add_argument("--open", action="store_true", help="open the URL in the default browser")


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``pocketpacs demo``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        Parser to extend.
    """
    p.add_argument("--dir", metavar="DIR", default=None,
                   help="where the demo files and archive live (default: user data folder/demo)")
    p.add_argument("--serve", action="store_true", help="serve to a browser instead of a window")
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--open", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--software-gl", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--selftest", metavar="FILE", default=None, help=argparse.SUPPRESS)


# ----------------------------------------------------------------- environment
def _x_display_reachable(display: str) -> bool:
    """Return True when an X server answers on *display* (``:N`` or ``host:N``)."""
    try:
        host, _, rest = display.rpartition(":")
        num = int(rest.split(".")[0])
    except ValueError:
        return False
    try:
        if host in ("", "unix"):
            path = f"/tmp/.X11-unix/X{num}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(path)
            return True
        with socket.create_connection((host, 6000 + num), timeout=1.0):
            return True
    except OSError:
        return False


def gui_problem() -> str | None:
    """Say why a native window cannot be opened here, or None when it can.

    Returns
    -------
    str or None
        A plain-language reason (no display, no GUI backend), or None.
    """
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY", "")
        wayland = os.environ.get("WAYLAND_DISPLAY", "")
        if not display and not wayland:
            return "there is no display (DISPLAY and WAYLAND_DISPLAY are not set)"
        if display and not wayland and not _x_display_reachable(display):
            return f"the X display {display} does not answer"
        try:
            import PyQt6.QtWebEngineWidgets  # noqa: F401
        except Exception as exc:  # ImportError, or a missing system library
            return (f"the Qt WebEngine GUI backend cannot be loaded ({type(exc).__name__}; "
                    "install pywebview[qt] and the Qt system libraries)")
    try:
        import webview  # noqa: F401
    except Exception as exc:
        return f"pywebview cannot be imported ({type(exc).__name__})"
    return None


def configure_qt_environment(software_gl: bool = False) -> list[str]:
    """Set Qt WebEngine environment variables where this machine needs them.

    Parameters
    ----------
    software_gl : bool
        Force the software-GL flags.

    Returns
    -------
    list of str
        Notes about what was set (printed by the caller).
    """
    notes: list[str] = []
    if os.environ.pop("QTWEBENGINE_REMOTE_DEBUGGING", None) is not None:
        notes.append("ignored QTWEBENGINE_REMOTE_DEBUGGING (remote debugging stays off)")
    if not sys.platform.startswith("linux"):
        return notes
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not os.environ.get("QTWEBENGINE_DISABLE_SANDBOX"):
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
        notes.append("running as root: the Chromium sandbox of Qt WebEngine is disabled")
    want_soft = (software_gl or os.environ.get("POCKETPACS_SOFTWARE_GL") == "1"
                 or not Path("/dev/dri").exists())
    if want_soft:
        flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
        added = [f for f in SOFTWARE_GL_FLAGS if f not in flags]
        if added:
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags + added)
            notes.append("no GPU device: using software OpenGL flags for Qt WebEngine")
    return notes


# ----------------------------------------------------------------- commands
def _archive_path(args: argparse.Namespace) -> str | None:
    return getattr(args, "archive", None)


def run_serve(args: argparse.Namespace) -> int:
    """``pocketpacs serve``: serve the UI on 127.0.0.1 and print its URL.

    Parameters
    ----------
    args : argparse.Namespace
        ``archive``, ``readonly``, ``port``, ``open``.

    Returns
    -------
    int
        Exit status (0 after Ctrl-C).
    """
    from pocketpacs.log import protect_patient_data

    from .server import DataServer
    from .session import Session

    protect_patient_data()
    session = Session(_archive_path(args), readonly=getattr(args, "readonly", False), mode="serve")
    notice = session.startup_check()
    if notice:
        print(f"pocketpacs: {notice}", flush=True)
    server = DataServer(session, port=getattr(args, "port", 0) or 0)
    print("PocketPACS is serving its UI on this computer only.", flush=True)
    print(f"Open this URL (it carries the access token; keep it private):\n    {server.launch_url}",
          flush=True)
    if getattr(args, "open", False):
        import webbrowser

        webbrowser.open(server.launch_url)
    import signal
    import threading

    def on_term(signum: int, frame: object) -> None:  # a logout or `kill`: close cleanly
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        session.close()
    return 0


def run_app(args: argparse.Namespace) -> int:
    """``pocketpacs``: open the desktop window (or serve to a browser when impossible).

    Parameters
    ----------
    args : argparse.Namespace
        ``archive``, ``readonly``, ``software_gl``, ``selftest``.

    Returns
    -------
    int
        Exit status.
    """
    problem = gui_problem()
    if problem:
        print(f"pocketpacs: cannot open a window: {problem}.", flush=True)
        print("Serving the UI to a browser instead.", flush=True)
        if not hasattr(args, "port"):
            args.port = 0
        return run_serve(args)
    from pocketpacs.log import protect_patient_data

    protect_patient_data()
    for note in configure_qt_environment(getattr(args, "software_gl", False)):
        print(f"pocketpacs: {note}", flush=True)
    from .app import open_window

    return open_window(_archive_path(args), readonly=getattr(args, "readonly", False),
                       selftest=getattr(args, "selftest", None))


def demo_dir(args: argparse.Namespace) -> Path:
    """Folder holding the demo's DICOM files and archive.

    Parameters
    ----------
    args : argparse.Namespace
        ``dir`` overrides the default.

    Returns
    -------
    Path
    """
    if getattr(args, "dir", None):
        return Path(args.dir).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("pocketpacs", appauthor=False)) / "demo"


def build_demo(root: Path, progress=print) -> Path:
    """Create the demo archive under *root* on first use.

    Parameters
    ----------
    root : Path
        Demo folder; ``files/`` gets the synthetic DICOM, ``archive/`` the archive.
    progress : callable
        Called with one line of text per step.

    Returns
    -------
    Path
        The archive folder.
    """
    import pocketpacs
    from pocketpacs import synth
    from pocketpacs.paths import ensure_private_dir

    archive_dir = root / "archive"
    done_mark = root / "demo-complete"
    if done_mark.exists():
        return archive_dir
    ensure_private_dir(root)
    files = root / "files"
    progress("Building the demo archive (synthetic CT and MR phantoms; first run only)...")
    synth.generate(files, **synth.PRESETS["demo"])
    with pocketpacs.open_archive(archive_dir) as arc:
        arc.import_folder(files)
    done_mark.write_text("ok\n")
    return archive_dir


def run_demo(args: argparse.Namespace) -> int:
    """``pocketpacs demo``: build the demo archive on first use, then open it.

    Parameters
    ----------
    args : argparse.Namespace
        ``dir``, ``serve`` and the app options.

    Returns
    -------
    int
        Exit status.
    """
    archive_dir = build_demo(demo_dir(args), progress=lambda s: print(s, flush=True))
    args.archive = str(archive_dir)
    args.readonly = False
    if getattr(args, "serve", False):
        return run_serve(args)
    return run_app(args)


def register_commands() -> None:
    """Add ``app``, ``serve`` and ``demo`` to the core CLI's command registry.

    The core (``pocketpacs.cli``) never imports the UI; the UI registers
    itself with :func:`pocketpacs.cli.command` instead.  Idempotent.
    """
    from pocketpacs import cli

    cli.DEFAULT_COMMAND = "app"
    if "serve" in cli.COMMANDS:
        return
    cli.command("app", "open the desktop window (the default without a command)",
                add_app_arguments)(run_app)
    cli.command("serve", "serve the UI to a browser on 127.0.0.1 (prints a URL with a token)",
                add_serve_arguments)(run_serve)
    cli.command("demo", "open a demo archive of synthetic CT and MR phantoms (built on first use)",
                add_demo_arguments)(run_demo)


def cli_main(argv: list[str] | None = None) -> int:
    """``python -m pocketpacs.ui``: the one command line (:func:`pocketpacs.cli.entry`)
    with the app commands registered even where the package's entry points
    are not installed; no command opens the window.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    from pocketpacs import cli

    register_commands()
    return cli.entry(argv)


#: The former name of :func:`cli_main`.
main = cli_main
