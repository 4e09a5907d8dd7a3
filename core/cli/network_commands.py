"""The network commands: ``remote add|list|rm|echo|find|get|send`` and ``listen``
(:mod:`pocketpacs.net`), registered with :func:`~pocketpacs.cli.framework.command`.

Exit codes as for the archive commands; a node that cannot be reached, or
refuses us, is exit 4 with a message saying why; ``remote find`` with no
result, a partial ``remote get``/``send`` and a ``get`` that met SOP UID
conflicts are exit 1.  ``--json``: ``remote list`` a list of nodes (never a
password); ``remote find`` ``{"results": [...]}``; ``remote get``
``{"received", "indexed", "already", "failed": [{"sop_instance_uid",
"reason"}]}`` (and ``"conflicts"`` of the same form when there are any);
``remote send`` ``{"sent", "failed": [...]}``.  ``--timeout SECONDS`` of
``echo/find/get/send``: how long a node may stay silent (no byte either way)
before the command gives up (default the node's, 60 s).  ``listen`` warns
on stderr when it listens on an address other computers can reach.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .framework import (
    EXIT_ARCHIVE,
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    _add_global_options,
    _open,
    command,
)
from .output import _err, _print_json, _safe, _say


def _quiet_network_libraries() -> None:
    """pynetdicom and dicomweb-client log identifiers (patient names) and URLs: keep them out of logs."""
    for name in ("pynetdicom", "dicomweb_client"):
        lg = logging.getLogger(name)
        lg.propagate = False
        lg.disabled = True


def _folder(args: argparse.Namespace) -> Path:
    from ..paths import default_archive_dir, ensure_private_dir

    return ensure_private_dir(Path(args.archive).expanduser() if getattr(args, "archive", None)
                              else default_archive_dir())


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="patient name words: prefixes, * and ? wildcards, Family^Given")
    p.add_argument("--patient-id", help="patient ID (exact, or with * and ? wildcards)")
    p.add_argument("--birth-date", help="YYYYMMDD, YYYYMM, YYYY or a range FROM-TO")
    p.add_argument("--study-date", help="YYYYMMDD, YYYYMM, YYYY or a range FROM-TO")
    p.add_argument("--modality", help="modality code(s), comma-separated")
    p.add_argument("--description", help="words of the study description")
    p.add_argument("--accession", help="accession number (exact, or with wildcards)")


def _setup_remote(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="remote_command", metavar="ACTION")
    a = sub.add_parser("add", help="add a remote node (DIMSE or DICOMweb)")
    a.add_argument("node", metavar="NAME")
    kind = a.add_mutually_exclusive_group(required=True)
    kind.add_argument("--dimse", metavar="AET@HOST:PORT", help="a DIMSE peer (C-ECHO/FIND/GET/MOVE/STORE)")
    kind.add_argument("--dicomweb", metavar="URL", help="a DICOMweb base URL (QIDO/WADO/STOW-RS)")
    a.add_argument("--calling-aet", default="POCKETPACS", help="our AE title (default POCKETPACS)")
    a.add_argument("--retrieve", choices=("get", "move"), default="get",
                   help="C-GET (default) or C-MOVE to our own listener")
    a.add_argument("--move-port", type=int, default=11112,
                   help="port of our listener for C-MOVE (the peer must know our AE title there; default 11112)")
    a.add_argument("--user", help="DICOMweb user (basic authentication)")
    a.add_argument("--password-file", metavar="FILE", help="file whose first line is the DICOMweb password")
    a.add_argument("--no-verify", action="store_true", help="do not check the https certificate")
    a.add_argument("--replace", action="store_true", help="replace a node of the same name")
    ls = sub.add_parser("list", help="list the remote nodes")
    ls.add_argument("--json", action="store_true")
    rm = sub.add_parser("rm", help="forget a remote node (and its password)")
    rm.add_argument("node", metavar="NAME")
    e = sub.add_parser("echo", help="check that a node answers (C-ECHO or a QIDO-RS query)")
    e.add_argument("node", metavar="NAME")
    f = sub.add_parser("find", help="search the studies of a node (the filters of `search`)")
    f.add_argument("node", metavar="NAME")
    _filters(f)
    f.add_argument("--json", action="store_true")
    g = sub.add_parser("get", help="retrieve a study (or some series) into the archive")
    g.add_argument("node", metavar="NAME")
    g.add_argument("study_uid", metavar="STUDY_UID")
    g.add_argument("--series", nargs="+", metavar="UID", help="only these series")
    g.add_argument("--json", action="store_true")
    s = sub.add_parser("send", help="send archived patients / studies / series / instances to a node")
    s.add_argument("node", metavar="NAME")
    s.add_argument("uids", nargs="+", metavar="UID", help="patient IDs, study, series or SOP instance UIDs")
    s.add_argument("--json", action="store_true")
    a.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="the node's time-out: seconds without a byte moving before a command gives up (default 60)")
    for sp in (e, f, g, s):
        sp.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up after this many seconds without a byte from or to the node (default: the "
                             "node's, 60); a slow transfer that keeps moving is never cut off")
    for sp in (a, ls, rm, e, f, g, s):  # --archive after the action too
        _add_global_options(sp.add_argument_group("global options"), after_command=True)


@command("remote", "remote nodes: add, list, rm, echo, find, get, send (DIMSE and DICOMweb)", _setup_remote)
def cmd_remote(args: argparse.Namespace) -> int:
    from ..net import NetError

    _quiet_network_libraries()
    action = getattr(args, "remote_command", None)
    if not action:
        _err("remote: give an action: add, list, rm, echo, find, get, send (see `pocketpacs remote --help`)")
        return EXIT_USAGE
    try:
        return _ACTIONS[action](args)
    except NetError as e:
        _err(str(e))
        return EXIT_ARCHIVE
    except ValueError as e:
        _err(str(e))
        return EXIT_USAGE


def _add(args: argparse.Namespace) -> int:
    from ..net.nodes import NetError, RemoteNode, check_aet, check_name, check_port, check_url, parse_dimse, save_node
    from ..net.watchdog import check_timeout

    check_name(args.node)
    password = None
    if args.dimse:
        if args.user or args.password_file:
            raise NetError("--user and --password-file are for --dicomweb nodes")
        aet, host, port = parse_dimse(args.dimse)
        node = RemoteNode(args.node, "dimse", aet=aet, host=host, port=port,
                          calling_aet=check_aet(args.calling_aet, "--calling-aet"), retrieve=args.retrieve,
                          move_port=check_port(args.move_port, "--move-port"))
    else:
        node = RemoteNode(args.node, "dicomweb", url=check_url(args.dicomweb), user=args.user or "",
                          verify=not args.no_verify)
        if args.password_file:
            if not args.user:
                raise NetError("--password-file needs --user")
            try:
                with open(args.password_file, encoding="utf-8") as fh:
                    password = fh.readline().rstrip("\r\n")
            except OSError as e:
                raise NetError(f"{args.password_file}: cannot be read ({(e.strerror or '').lower()})") from None
            except UnicodeDecodeError:
                raise NetError(f"{args.password_file}: not UTF-8 text") from None
    if args.timeout is not None:
        node.timeout = check_timeout(args.timeout)
    save_node(_folder(args), node, password, replace=args.replace)
    _say(f"added remote {node.name}: {node.kind} {node.address()}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from ..net.nodes import load_nodes

    nodes = load_nodes(_folder(args))
    if args.json:
        _print_json([n.to_json() for n in nodes.values()])
        return EXIT_OK
    if not nodes:
        _say("no remote nodes; add one with `pocketpacs remote add NAME --dimse AET@HOST:PORT`")
    for n in nodes.values():
        extra = (f"calling AE {n.calling_aet}, retrieve {n.retrieve}"
                 + (f" (our port {n.move_port})" if n.retrieve == "move" else "")
                 if n.kind == "dimse" else (f"user {n.user}" if n.user else "no user"))
        _say(f"{n.name}  {n.kind}  {n.address()}  ({extra})")
    return EXIT_OK


def _rm(args: argparse.Namespace) -> int:
    from ..net.nodes import remove_node

    remove_node(_folder(args), args.node)
    _say(f"removed remote {args.node}")
    return EXIT_OK


def _echo(args: argparse.Namespace) -> int:
    from ..net import dimse, web
    from ..net.nodes import get_node, node_password

    folder = _folder(args)
    node = get_node(folder, args.node)
    if args.timeout is not None:
        from ..net.watchdog import check_timeout

        node.timeout = check_timeout(args.timeout)
    if node.kind == "dimse":
        dimse.echo(node)
    else:
        web.echo(node, node_password(folder, node.name))
    _say(f"{args.node} ({node.address()}) answers")
    return EXIT_OK


def _open_reading(args: argparse.Namespace) -> Any:
    """The archive read-only (a running `listen` may hold the writer lock); created when absent."""
    return _open(args, readonly=(_folder(args) / "data.mdb").exists())


def _find(args: argparse.Namespace) -> int:
    from ..net import Remote

    filters = {k: getattr(args, k) for k in ("name", "patient_id", "birth_date", "study_date", "modality",
                                             "description", "accession")}
    with _open_reading(args) as ar:
        res = Remote(ar, args.node, timeout=args.timeout).find(**filters)
    if args.json:
        _print_json({"results": res})
    else:
        for s in res:
            mark = "  [in archive]" if s["in_archive"] else ""
            _say(f"{s['study_date'] or '--------'}  {s['patient_name']}  ({s['patient_id']})  "
                 f"{'/'.join(s['modalities'])}  {s['description']}  "
                 f"{s['n_series'] if s['n_series'] is not None else '?'} series, "
                 f"{s['n_instances'] if s['n_instances'] is not None else '?'} instances{mark}")
            _say(f"    {s['study_instance_uid']}")
        _say(f"{len(res)} studies")
    return EXIT_OK if res else EXIT_ATTENTION


class _Progress:
    """``received N/M`` on stderr when it is a terminal."""

    def __init__(self, what: str, enabled: bool):
        import sys

        self.what = what
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            import sys

            sys.stderr.write(f"\r{self.what} {done}/{total}")
            sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            import sys

            sys.stderr.write("\n")


def _get(args: argparse.Namespace) -> int:
    from ..net import Remote

    cancel = threading.Event()
    bar = _Progress("received", not args.json)
    with _open(args) as ar:
        r = Remote(ar, args.node, timeout=args.timeout)
        try:
            res = r.get(args.study_uid, args.series, cancel=cancel, progress=bar)
        except KeyboardInterrupt:
            bar.end()
            _err("interrupted: what arrived is archived; `pocketpacs remote get` again fetches the rest")
            return EXIT_INTERRUPTED
    bar.end()
    if args.json:
        _print_json(res.to_json())
    else:
        _say(f"received {res.received}, indexed {res.indexed}, already in the archive {res.already}, "
             f"failed {len(res.failed)}")
        for f in res.failed[:20]:
            _say(f"  not retrieved [{f['reason']}]: {f['sop_instance_uid']}")
        for c in res.conflicts[:20]:
            _say(f"  conflict: {c['sop_instance_uid']}")
    if res.conflicts:
        _err(f"{len(res.conflicts)} instances of the node have the SOP Instance UID of an archived instance with "
             "other content: the archived files are kept, never overwritten (`pocketpacs stats` counts conflicts)")
    if res.failed or res.problem:
        _err(f"partial retrieve: {res.problem or 'some instances are missing'}; run the same `remote get` again to "
             "fetch the rest")
        return EXIT_ATTENTION
    return EXIT_ATTENTION if res.conflicts else EXIT_OK


def _send(args: argparse.Namespace) -> int:
    from ..net import Remote

    bar = _Progress("sent", not args.json)
    with _open_reading(args) as ar:
        res = Remote(ar, args.node, timeout=args.timeout).send(args.uids, progress=bar)
    bar.end()
    if args.json:
        _print_json(res.to_json())
    else:
        _say(f"sent {res.sent}, failed {len(res.failed)}"
             + (f" ({res.transcoded} transcoded to explicit VR little endian)" if res.transcoded else ""))
        for f in res.failed[:20]:
            _say(f"  not sent [{_safe(f['reason'])}]: {f['sop_instance_uid']}")
    if res.failed:
        _err(f"partial send: {len(res.failed)} of {res.sent + len(res.failed)} instances not sent (first: "
             f"{res.failed[0]['reason']}); run the same `remote send` again")
    return EXIT_ATTENTION if res.failed else EXIT_OK


_ACTIONS = {"add": _add, "list": _list, "rm": _rm, "echo": _echo, "find": _find, "get": _get, "send": _send}


def _setup_listen(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=11112, help="TCP port (default 11112)")
    p.add_argument("--aet", default="POCKETPACS", help="our AE title (default POCKETPACS)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0: every interface, "
                        "with a warning: other computers can then send to the archive)")
    p.add_argument("--allow", nargs="+", metavar="AET", help="accept only these calling AE titles")


@command("listen", "receive instances (C-STORE SCP, C-ECHO) into the archive until Ctrl-C", _setup_listen)
def cmd_listen(args: argparse.Namespace) -> int:
    import signal

    from ..net import NetError, listen

    _quiet_network_libraries()
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        with _open(args) as ar:
            try:
                lst = listen(ar, port=args.port, aet=args.aet, bind=args.bind, allow=args.allow)
            except NetError as e:
                _err(str(e))
                return EXIT_ARCHIVE
            allow = f", allowing {' '.join(lst.allow)}" if lst.allow else ""
            _say(f"listening as {lst.aet} on {lst.bind or '0.0.0.0'}:{lst.port}{allow} (pid {os.getpid()}); "
                 "Ctrl-C stops")
            if lst.warning:
                _err(f"warning: {lst.warning}")
            sys.stdout.flush()          # the line that says it is ready: a pipe holds it otherwise
            try:
                while not stop.wait(1.0):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                lst.stop()
            st = lst.status
            _say(f"received {st.received}, indexed {st.indexed}, failed {st.failed}, "
                 f"refused associations {st.refused_associations}"
                 + (f", conflicts {st.conflicts} (kept apart, never overwritten)" if st.conflicts else ""))
    finally:
        signal.signal(signal.SIGTERM, old)
    return EXIT_OK
