"""PocketPACS on the network: remote nodes, query, retrieve, receive and send.

DIMSE through pynetdicom (:mod:`.dimse`), DICOMweb through dicomweb-client
(:mod:`.web`); the nodes of an archive are stored in its folder
(:mod:`.nodes`); what is received goes to the archive's store folder and is
indexed while it arrives (:mod:`.incoming`); :class:`Remote` (:mod:`.remote`)
is one node seen from an archive, and :func:`listen` (:mod:`.listener`) runs
a C-STORE SCP.  Importing this package also gives
:class:`~pocketpacs.archive.api.Archive` a ``remote(name)`` method.
"""
from __future__ import annotations

from ..archive.api import Archive
from .listener import Listener, listen
from .nodes import NetError, RemoteNode, load_nodes, remove_node, save_node
from .remote import Remote, RetrieveResult, SendResult


def _archive_remote(self: Archive, name: str, timeout: float | None = None) -> Remote:
    """The remote node *name* of this archive (:class:`pocketpacs.net.Remote`; *timeout*: seconds of silence)."""
    return Remote(self, name, timeout=timeout)


Archive.remote = _archive_remote  # type: ignore[attr-defined]

__all__ = ["Listener", "NetError", "Remote", "RemoteNode", "RetrieveResult", "SendResult", "listen", "load_nodes",
           "remove_node", "save_node"]
