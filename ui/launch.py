"""Command functions of the app: ``pocketpacs`` (window), ``pocketpacs serve``, ``pocketpacs demo``.

:func:`register_commands` adds them to the one command table of
``pocketpacs.cli`` (called through the ``pocketpacs.commands`` entry point,
so the core never imports the UI), and makes ``app`` the command run when
none is given.  ``pocketpacs``, ``python -m pocketpacs`` and ``python -m
pocketpacs.ui`` therefore accept the same commands.  Each command function
takes the parsed :class:`argparse.Namespace` and returns an exit status.

Environment detection: without a display or without a usable GUI backend,
``pocketpacs`` says so plainly and serves the UI to a browser instead
(printing the URL with its token).  Qt is first started in a child process
(:func:`probe_qt`): where it cannot load its platform plugin (missing xcb
libraries, a display that does not answer, a broken ``WAYLAND_DISPLAY``) Qt
aborts the process, which must not be this one.  Qt WebEngine flags are added only where
needed: the Chromium sandbox is disabled only when running as root, and the
software-GL flags only when there is no GPU device (``/dev/dri``) or when
asked (``--software-gl`` / ``POCKETPACS_SOFTWARE_GL=1``).  Remote debugging is
never switched on from outside: ``QTWEBENGINE_REMOTE_DEBUGGING`` is dropped and
every remote-debugging switch is removed from ``QTWEBENGINE_CHROMIUM_FLAGS``
and the arguments before Qt starts (:func:`strip_remote_debugging`).
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

SOFTWARE_GL_FLAGS = ("--ignore-gpu-blocklist", "--disable-gpu-compositing")

#: Chromium switches that open the page to DevTools clients (``--remote-debugging-port``,
#: ``-pipe``, ``-address``, ``--remote-allow-origins`` ...): never handed to Qt WebEngine.
_REMOTE_DEBUGGING = re.compile(r"^(?:remote-debugging.*|remote-allow-origins)$", re.IGNORECASE)

#: Debian/Ubuntu packages of the system libraries the Qt window needs (xcb
#: platform plugin and Qt WebEngine); the README and .ci/run list the same.
QT_SYSTEM_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-shape0",
                      "libxcb-xinerama0", "libxcb-randr0", "libxcb-render-util0", "libxcb-image0",
                      "libxkbcommon-x11-0", "libnss3", "libxcomposite1", "libxdamage1", "libxrandr2",
                      "libegl1", "libgl1", "libasound2", "libxtst6", "libxshmfence1", "libgbm1")

#: Seconds the child process of :func:`probe_qt` may take to start Qt
#: (``$POCKETPACS_GUI_PROBE_TIMEOUT`` overrides).
GUI_PROBE_TIMEOUT = 15.0

# Qt WebEngine must be imported before the QApplication exists; a Qt that
# cannot load its platform plugin aborts (SIGABRT) inside QApplication().
_QT_PROBE = r"""
import sys
try:
    import PyQt6.QtWebEngineWidgets
    from PyQt6.QtWidgets import QApplication
except Exception as exc:
    print(f"PROBE-IMPORT-ERROR {type(exc).__name__}: {exc}", flush=True)
    raise SystemExit(3)
app = QApplication(sys.argv[:1])
print("PROBE-OK", app.platformName(), flush=True)
"""


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


def debian_package(soname: str) -> str:
    """The usual Debian/Ubuntu package name of a shared library (a guess from its name).

    ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` ->
    ``libxkbcommon-x11-0``, ``libEGL.so.1`` -> ``libegl1``, ``libnss3.so`` -> ``libnss3``.
    """
    m = re.match(r"(lib[\w+.-]*?)\.so(?:\.(\d+))?", soname)
    if not m:
        return soname
    base, ver = m.group(1).lower(), m.group(2) or ""
    return f"{base}-{ver}" if ver and base[-1].isdigit() else base + ver


def _ldd_missing(text: str) -> list[str]:
    """The libraries ``ldd`` prints as ``not found``."""
    return sorted(set(re.findall(r"^\s*(\S+)\s+=>\s+not found", text, re.M)))


def missing_qt_libraries(plugin: str = "xcb") -> list[str]:
    """System libraries the Qt platform *plugin* needs and this machine lacks (``ldd``).

    Qt's own message on a failed plugin may name another library than the
    missing one; the dynamic loader does not.  Empty when unknown.
    """
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("PyQt6")
    ldd = shutil.which("ldd")
    if spec is None or not spec.submodule_search_locations or not ldd:
        return []
    qt = Path(list(spec.submodule_search_locations)[0]) / "Qt6"
    lib = qt / "plugins" / "platforms" / f"libq{plugin}.so"
    if not lib.exists():
        return []
    try:
        out = subprocess.run([ldd, str(lib)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return _ldd_missing(out)


def explain_qt_failure(returncode: int, output: str, env: dict | None = None) -> str:
    """A plain-language reason from what the Qt probe printed and how it ended.

    Parameters
    ----------
    returncode : int
        Exit status of the probe (negative: killed by that signal).
    output : str
        Its stdout and stderr.
    env : dict, optional
        The environment it ran in (default ``os.environ``).
    """
    env = os.environ if env is None else env
    m = re.search(r"PROBE-IMPORT-ERROR (.*)", output)
    if m:
        why = m.group(1).strip()
        libs = re.findall(r"(lib[\w+.-]*\.so[.\d]*): cannot open shared object file", why)
        hint = (f"install {' '.join(debian_package(x) for x in libs)}" if libs
                else "install pywebview[qt] and the Qt system libraries")
        return f"the Qt WebEngine GUI backend cannot be loaded ({why}; {hint})"
    plugins = list(dict.fromkeys(re.findall(r'(?:load|find) the Qt platform plugin "([^"]+)"', output)))
    if plugins:
        details = [d for d in (_plugin_failure(pl, output, env) for pl in plugins) if d]
        return (f"Qt could not load its platform plugin{'s' if len(plugins) > 1 else ''} "
                f"({', '.join(plugins)})" + (": " + "; ".join(details) if details else ""))
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"Qt stopped with {name} while starting"
    last = [ln for ln in output.strip().splitlines() if ln.strip()]
    return f"Qt could not start (exit status {returncode}{': ' + last[-1].strip() if last else ''})"


def _plugin_failure(plugin: str, output: str, env) -> str:
    """Why the Qt platform *plugin* failed, from the probe's *output* ("" when unknown)."""
    if plugin == "xcb":
        display = env.get("DISPLAY", "")
        if re.search(r"qt\.qpa\.xcb: could not connect to display", output):
            return f"the X display {display} does not answer" if display else "DISPLAY is not set"
        missing = missing_qt_libraries(plugin)
        if missing:
            pkgs = " ".join(dict.fromkeys(debian_package(x) for x in missing))
            return f"the system libraries {', '.join(missing)} are missing (Debian/Ubuntu: apt-get install {pkgs})"
        return ("its system libraries may be missing (Debian/Ubuntu: apt-get install "
                f"{' '.join(QT_SYSTEM_PACKAGES)}; Qt's own message may name another library than the "
                "missing one)")
    if plugin.startswith("wayland"):
        wayland = env.get("WAYLAND_DISPLAY", "")
        return f"the Wayland display {wayland} does not answer" if wayland else "WAYLAND_DISPLAY is not set"
    return ""


def probe_qt(env: dict | None = None, timeout: float | None = None) -> str | None:
    """Start Qt as the window would, in a child process; say why it fails, or None.

    The child imports Qt WebEngine and creates a ``QApplication`` with
    *env* (default: this process's environment, so the same
    ``QT_QPA_PLATFORM``, ``DISPLAY``, ``WAYLAND_DISPLAY``).

    Parameters
    ----------
    env : dict, optional
        Environment of the child.
    timeout : float, optional
        Seconds (default :data:`GUI_PROBE_TIMEOUT` or ``$POCKETPACS_GUI_PROBE_TIMEOUT``).

    Returns
    -------
    str or None
    """
    if timeout is None:
        try:
            timeout = float(os.environ.get("POCKETPACS_GUI_PROBE_TIMEOUT", GUI_PROBE_TIMEOUT))
        except ValueError:
            timeout = GUI_PROBE_TIMEOUT
    try:
        r = subprocess.run([sys.executable, "-c", _QT_PROBE], env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"Qt did not start within {timeout:g} s"
    except OSError as exc:
        return f"the Qt check could not run ({exc})"
    if r.returncode == 0 and "PROBE-OK" in r.stdout:
        return None
    return explain_qt_failure(r.returncode, r.stdout + r.stderr, env)


def gui_problem() -> str | None:
    """Say why a native window cannot be opened here, or None when it can.

    On Linux, after the quick checks of the display, Qt is started in a
    child process (:func:`probe_qt`; ``POCKETPACS_NO_GUI_PROBE=1`` skips it).

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
        if os.environ.get("POCKETPACS_NO_GUI_PROBE") != "1":
            problem = probe_qt()
            if problem:
                return problem
    try:
        import webview  # noqa: F401
    except Exception as exc:
        return f"pywebview cannot be imported ({type(exc).__name__})"
    return None


def strip_remote_debugging(args: list[str]) -> tuple[list[str], list[str]]:
    """Remove every remote-debugging switch from Chromium arguments.

    A switch is ``--name`` or ``-name`` (Chromium accepts both), with its
    value after ``=`` or, when it has none, as the next argument; names
    starting ``remote-debugging`` and ``remote-allow-origins`` are removed,
    any case.  Everything else is kept, in order.

    Parameters
    ----------
    args : list of str
        Arguments (``QTWEBENGINE_CHROMIUM_FLAGS`` split on whitespace, or ``sys.argv[1:]``).

    Returns
    -------
    tuple of list
        ``(kept, removed)``.
    """
    kept: list[str] = []
    removed: list[str] = []
    value_may_follow = False
    for arg in args:
        if value_may_follow:
            value_may_follow = False
            if not arg.startswith("-"):
                removed.append(arg)
                continue
        if arg.startswith("-") and arg != "--":
            name, eq, _value = arg.lstrip("-").partition("=")
            if _REMOTE_DEBUGGING.match(name):
                removed.append(arg)
                value_may_follow = not eq
                continue
        kept.append(arg)
    return kept, removed


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
    # Qt WebEngine also takes Chromium switches from this variable and from the
    # application's arguments (pywebview hands it sys.argv)
    if "QTWEBENGINE_CHROMIUM_FLAGS" in os.environ:
        kept, removed = strip_remote_debugging(os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split())
        if removed:
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(kept)
            notes.append("ignored the remote-debugging switches of QTWEBENGINE_CHROMIUM_FLAGS"
                         " (remote debugging stays off)")
    kept, removed = strip_remote_debugging(sys.argv[1:])
    if removed:
        sys.argv[1:] = kept
        notes.append("ignored remote-debugging switches in the arguments (remote debugging stays off)")
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


def _start_log() -> None:
    """The app's log file (``pocketpacs log`` shows it); the app runs without one it cannot write."""
    from pocketpacs.log import start_log_file

    try:
        start_log_file()
    except OSError as exc:
        print(f"pocketpacs: no log file ({exc.strerror or type(exc).__name__}); going on without one",
              flush=True)


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
    _start_log()
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
    _start_log()
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
    from pocketpacs.cli import framework

    framework.DEFAULT_COMMAND = "app"
    if "serve" in framework.COMMANDS:
        return
    framework.command("app", "open the desktop window (the default without a command)",
                      add_app_arguments)(run_app)
    framework.command("serve", "serve the UI to a browser on 127.0.0.1 (prints a URL with a token)",
                      add_serve_arguments)(run_serve)
    framework.command("demo", "open a demo archive of synthetic CT and MR phantoms (built on first use)",
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
