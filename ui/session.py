"""The app session: the archive (or removable media), jobs, and the bridge commands.

One :class:`Session` per launch.  It implements every command of
:data:`pocketpacs.ui.bridge.ALLOWED` (bound with :func:`bridge.bind`) and the
three things :class:`~pocketpacs.ui.server.DataServer` asks for: commands over
HTTP, volume streams and thumbnails.  Long work (import, assembly, decoding,
thumbnails) runs on worker threads; commands only start it and answer at once.

Ids the page sees are opaque hex: series keys from the archive (hashes of
UIDs), random volume and job ids.  Paths never travel to the page in the
desktop app (the native pickers run here); in serve mode the page may *send*
a typed path (the user's own input) but never receives one.

The session is assembled from one mixin per job: :class:`ArchiveHealth`
(:mod:`.health`: opening the archive, read-only fallback, damage checks),
:class:`WarmUp` (:mod:`.warmup`), :class:`Thumbnails` (:mod:`.thumbnails`) and
:class:`Commands` (:mod:`.commands`: every ``cmd_<name>``) and
:class:`NetworkCommands` (:mod:`.network_commands`: the Network view's
``cmd_net_<name>``); import jobs live in :mod:`.import_jobs`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from . import bridge
from .commands import Commands
from .health import ArchiveHealth
from .import_jobs import ImportJob
from .share_commands import ShareCommands, ShareJob
from .network_commands import NetworkCommands
from .thumbnails import Thumbnails
from .volumes import JobRegistry, VolumeJob
from .warmup import WarmUp


class Session(ArchiveHealth, WarmUp, Thumbnails, Commands, ShareCommands, NetworkCommands):
    """State of one launch and the implementation of the bridge commands.

    Parameters
    ----------
    archive_path : str, optional
        Archive folder (the default location when None).
    readonly : bool
        Open the archive read-only.
    mode : {"app", "serve"}
        Desktop window or browser.
    """

    def __init__(self, archive_path: str | None = None, readonly: bool = False, mode: str = "serve"):
        self.archive_path = archive_path
        self.readonly = readonly
        self.mode = mode
        self.dialogs: Any = None
        self._archive: Any = None
        self._media: Any = None
        self._lock = threading.RLock()
        self.volumes = JobRegistry()
        self.imports: dict[str, ImportJob] = {}
        self.shares: dict[str, ShareJob] = {}
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._thumb_lock = threading.Lock()
        self._labels: dict[str, dict] = {}
        self._warmed = False
        #: Why the archive is read-only or unusable (None when all is well);
        #: shown by the page and printed at startup.
        self.archive_notice: str | None = None
        self._damaged: str | None = None
        self._closed = False
        self._check_thread: threading.Thread | None = None
        self._warmup: threading.Thread | None = None
        self._closing = threading.Event()   # stops the warm-up and the background check
        #: seconds before the background check of the archive starts
        self.check_delay = 2.0
        bridge.bind({name: self._guarded(getattr(self, f"cmd_{name}")) for name in bridge.ALLOWED})

    def close(self) -> None:
        """Cancel work, wait (briefly) for the workers, and close the archive."""
        self._closing.set()
        self.volumes.clear(wait=10.0)
        for job in list(self.imports.values()):
            job.cancel_event.set()
        self.net_close()
        warm = self._warmup
        if warm is not None and warm is not threading.current_thread():
            warm.join(10.0)
        with self._lock:
            self._closed = True
            for a in (self._media, self._archive):
                if a is not None:
                    try:
                        a.close()
                    except Exception:
                        pass
            self._media = self._archive = None

    # ----------------------------------------------------------- server hooks
    def call(self, name: str, args: Any) -> dict:
        """Run a command for the HTTP transport (same table as the bridge).

        Parameters
        ----------
        name : str
        args : Any

        Returns
        -------
        dict
            Envelope.
        """
        return bridge.call(name, args)

    def volume_stream(self, vid: str) -> VolumeJob | None:
        """The volume job *vid*, or None.

        Parameters
        ----------
        vid : str

        Returns
        -------
        VolumeJob or None
        """
        return self.volumes.get(vid)
