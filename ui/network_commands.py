"""The Network view's bridge commands: nodes, echo, remote search, retrieve, send, listener.

:class:`NetworkCommands` is mixed into :class:`~pocketpacs.ui.session.Session`
(one ``cmd_net_<name>`` per command of :data:`pocketpacs.ui.bridge.SCHEMAS`);
every call goes through :mod:`pocketpacs.net`.  Retrieves and sends run as
:class:`NetJob` on a worker thread (progress, cancel; series appear in the
archive list while a retrieve runs, since the store is indexed as it
arrives); the listener is one :class:`pocketpacs.net.Listener` per session,
stopped when the session closes.  Passwords go one way: the page sends one
when a node is added and it is written to the credentials file; replies say
only ``has_password``.  Errors of the network (:class:`NetError`) are
passed to the page as their message, which names the node and the reason,
never patient data.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

from . import protocol
from .jobs import WorkerJob
from .protocol import BridgeError

log = logging.getLogger("pocketpacs.ui.network")

_UID = re.compile(r"[0-9.]{1,64}")


def _net_error(exc: BaseException) -> BridgeError:
    return BridgeError(protocol.UNAVAILABLE, str(exc))


class NetJob(WorkerJob):
    """A retrieve or a send on a worker thread, with progress for the page.

    Parameters
    ----------
    kind : {"get", "send"}
    work : callable
        ``work(cancel_event, progress)`` -> a result with ``to_json()`` and,
        for a retrieve, ``problem``; ``progress(done, total)`` is called as it goes.
    """

    def __init__(self, kind: str, work: Callable[[threading.Event, Callable[[int, int], None]], Any]):
        super().__init__(f"net-{kind}")
        self.kind = kind
        self.result: dict | None = None
        self.problem: str | None = None
        self._task = work

    def _work(self) -> None:
        from pocketpacs.net import NetError

        try:
            res = self._task(self.cancel_event, self._progress)
        except NetError as exc:
            self.error = {"code": protocol.UNAVAILABLE, "message": str(exc)}
            return
        self.result = res.to_json()
        self.problem = getattr(res, "problem", None)
        if self.problem is None and self.result.get("failed"):
            self.problem = f"{len(res.failed)} instances failed"

    def status(self) -> dict:
        """Progress for the page.

        Returns
        -------
        dict
            ``job_id, kind, done, total, rate`` (instances/s), ``finished,
            cancelled, result`` (``remote get/send --json``), ``problem, error``.
        """
        return {"job_id": self.id, "kind": self.kind, "done": self.done, "total": self.total,
                "rate": self.rate(), "finished": self.finished, "cancelled": self.cancel_event.is_set(),
                "result": self.result, "problem": self.problem, "error": self.error}


class NetworkCommands:
    """The Network view's commands (a mixin of Session)."""

    _listener: Any = None
    _net_jobs: dict[str, NetJob]

    # ------------------------------------------------------------- helpers
    def _net_folder(self) -> str:
        if self._media is not None:
            raise BridgeError(protocol.READ_ONLY, "Close the removable media to use the network.")
        arc = self.archive
        if arc.path is None:
            raise BridgeError(protocol.UNAVAILABLE, "This archive has no folder for remote nodes.")
        return str(arc.path)

    def _writable(self) -> Any:
        self._net_folder()
        if self.readonly:
            raise BridgeError(protocol.READ_ONLY, self.archive_notice or "This archive is open read-only.")
        return self.archive

    def _remote(self, name: str) -> Any:
        from pocketpacs.net import NetError, Remote

        self._net_folder()
        try:
            return Remote(self.archive, name)
        except NetError as exc:
            raise _net_error(exc) from None

    def _jobs(self) -> dict[str, NetJob]:
        jobs = getattr(self, "_net_jobs", None)
        if jobs is None:
            jobs = self._net_jobs = {}
        return jobs

    def net_close(self) -> None:
        """Cancel retrieves and sends and stop the listener (the session is closing)."""
        for job in list(self._jobs().values()):
            job.cancel_event.set()
        lst, self._listener = self._listener, None
        if lst is not None:
            try:
                lst.stop()
            except Exception as exc:
                log.warning("stopping the listener failed: %s", type(exc).__name__)

    # ------------------------------------------------------------- nodes
    def cmd_net_nodes(self, a: dict) -> dict:
        """The remote nodes of the archive (never a password: ``has_password`` only)."""
        from pocketpacs.net import NetError, load_nodes

        try:
            nodes = load_nodes(self._net_folder())
        except NetError as exc:
            raise _net_error(exc) from None
        return {"nodes": [n.to_json() for _, n in sorted(nodes.items())]}

    def cmd_net_add(self, a: dict) -> dict:
        """Add (or with ``replace`` change) a node; a password goes to the credentials file only."""
        from pocketpacs.net import NetError, RemoteNode, save_node
        from pocketpacs.net.nodes import check_aet, check_name, check_port, check_url

        folder = self._net_folder()
        if self.readonly:
            raise BridgeError(protocol.READ_ONLY, "This archive is open read-only.")
        try:
            name = check_name(a["name"])
            if a["kind"] == "dimse":
                if not a.get("host"):
                    raise BridgeError(protocol.BAD_REQUEST, "Give the node's host (name or address).")
                node = RemoteNode(name, "dimse", aet=check_aet(a.get("aet") or "", "called AE title"),
                                  host=a["host"].strip(), port=check_port(a.get("port")),
                                  calling_aet=check_aet(a.get("calling_aet") or "POCKETPACS", "calling AE title"),
                                  retrieve=a.get("retrieve") or "get",
                                  move_port=check_port(a.get("move_port") or 11112, "C-MOVE port"))
                password = None
            else:
                node = RemoteNode(name, "dicomweb", url=check_url(a.get("url") or ""), user=a.get("user") or "",
                                  verify=bool(a.get("verify", True)))
                password = a.get("password") or None
                if password and not node.user:
                    raise BridgeError(protocol.BAD_REQUEST, "A password needs a user.")
            save_node(folder, node, password=password, replace=bool(a.get("replace")))
        except NetError as exc:
            raise BridgeError(protocol.BAD_REQUEST, str(exc)) from None
        return self.cmd_net_nodes({})

    def cmd_net_remove(self, a: dict) -> dict:
        """Forget a node and its password."""
        from pocketpacs.net import NetError, remove_node

        folder = self._net_folder()
        if self.readonly:
            raise BridgeError(protocol.READ_ONLY, "This archive is open read-only.")
        try:
            remove_node(folder, a["name"])
        except NetError as exc:
            raise BridgeError(protocol.NOT_FOUND, str(exc)) from None
        return self.cmd_net_nodes({})

    def cmd_net_echo(self, a: dict) -> dict:
        """C-ECHO (or a QIDO-RS ping): ``{"ok": true, "ms"}``, or the reason it failed."""
        from pocketpacs.net import NetError

        remote = self._remote(a["name"])
        t = time.perf_counter()
        try:
            remote.echo()
        except NetError as exc:
            raise _net_error(exc) from None
        return {"ok": True, "ms": round((time.perf_counter() - t) * 1000, 1)}

    # ------------------------------------------------------------- search
    def cmd_net_find(self, a: dict) -> dict:
        """Studies on a node matching the archive search's fields, each marked ``in_archive``."""
        from pocketpacs.net import NetError

        filters = {k: a[k] for k in ("name", "patient_id", "birth_date", "study_date", "modality",
                                     "description", "accession") if a.get(k)}
        if a.get("date_from") or a.get("date_to"):
            filters["study_date"] = f"{a.get('date_from') or ''} to {a.get('date_to') or ''}".strip()
        remote = self._remote(a["node"])
        try:
            found = remote.find(**filters)
        except ValueError as exc:  # a malformed date: the message says which field
            raise BridgeError(protocol.BAD_REQUEST, str(exc).replace("--", "").replace("-", " ", 1)) from None
        except NetError as exc:
            raise _net_error(exc) from None
        return {"results": found[:a["limit"]], "truncated": len(found) > a["limit"]}

    # ------------------------------------------------------------- retrieve / send
    def cmd_net_get(self, a: dict) -> dict:
        """Start retrieving a study (or some of its series) into the archive; answers the job id."""
        self._writable()
        series = a.get("series_uids") or None
        if series is not None and not all(isinstance(s, str) and _UID.fullmatch(s) for s in series):
            raise BridgeError(protocol.BAD_REQUEST, "Argument 'series_uids' is malformed.")
        remote = self._remote(a["node"])
        study = a["study_uid"]

        def work(cancel: threading.Event, progress: Callable[[int, int], None]) -> Any:
            return remote.get(study, series, cancel=cancel, progress=progress)

        job = NetJob("get", work).start()
        self._jobs()[job.id] = job
        return {"job_id": job.id}

    def cmd_net_send(self, a: dict) -> dict:
        """Start sending a series of the archive (or its whole study: ``scope`` "study") to a node."""
        self._net_folder()
        arc = self.archive
        try:
            se = arc.get_series(a["series_id"])
            uid = arc.study(se.study_key).uid if a["scope"] == "study" else se.uid
        except KeyError:
            raise BridgeError(protocol.NOT_FOUND, "No such series in the archive.") from None
        remote = self._remote(a["node"])

        def work(cancel: threading.Event, progress: Callable[[int, int], None]) -> Any:
            return remote.send([uid], cancel=cancel, progress=progress)

        job = NetJob("send", work).start()
        self._jobs()[job.id] = job
        return {"job_id": job.id}

    def cmd_net_job(self, a: dict) -> dict:
        """Progress (and at the end the result) of a retrieve or send."""
        job = self._jobs().get(a["job_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown network job.")
        return job.status()

    def cmd_net_cancel(self, a: dict) -> dict:
        """Ask a retrieve or send to stop (what arrived stays in the archive)."""
        job = self._jobs().get(a["job_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown network job.")
        job.cancel_event.set()
        return {"cancelling": True}

    # ------------------------------------------------------------- listener
    def _listener_status(self) -> dict:
        lst = self._listener
        if lst is None:
            return {"running": False}
        st = lst.status
        return {"running": True, "aet": lst.aet, "port": lst.port, "bind": lst.bind or "0.0.0.0",
                "allow": list(lst.allow or []), "warning": lst.warning,
                "received": st.received, "failed": st.failed, "refused": st.refused_associations,
                "indexed": st.indexed, "conflicts": st.conflicts}

    def cmd_net_listen(self, a: dict) -> dict:
        """Turn the listener (C-STORE SCP storing into the archive) on or off.

        ``bind`` and ``allow`` are checked as ``pocketpacs listen --bind`` and
        ``--allow`` are; the status's ``warning`` says when other computers
        can connect (any address but a loopback one), and whether any calling
        AE title is accepted.
        """
        from pocketpacs.net import NetError, listen
        from pocketpacs.net.listener import check_bind
        from pocketpacs.net.nodes import check_aet

        with self._lock:
            lst = self._listener
            if not a["on"]:
                self._listener = None
                if lst is not None:
                    lst.stop()
                return self._listener_status()
            if lst is not None:
                raise BridgeError(protocol.BAD_REQUEST, f"The listener already runs ({lst.aet} on port {lst.port}).")
            try:
                bind = check_bind(a["bind"])
                allow = [check_aet(t, "allowed AE title") for t in re.split(r"[\s,]+", a["allow"] or "") if t]
                aet = check_aet(a["aet"] or "", "AE title")
            except NetError as exc:
                raise BridgeError(protocol.BAD_REQUEST, str(exc)) from None
            arc = self._writable()
            try:
                self._listener = listen(arc, port=a["port"], aet=aet, bind=bind, allow=allow or None)
            except NetError as exc:
                raise BridgeError(protocol.UNAVAILABLE, str(exc)) from None
        return self._listener_status()

    def cmd_net_listener(self, a: dict) -> dict:
        """Whether the listener runs, its AE title, port and counters."""
        return self._listener_status()
