"""Network speed: retrieve and send 1,000 synthetic 512x512 CT instances against a
local Orthanc, PocketPACS vs DCMTK (and a plain dicomweb-client loop), in one run.

Starts its own Orthanc (tests/net_support.py: loopback, ``TCP_NODELAY=1``),
uploads ``--n`` single-frame CT instances (``pocketpacs.synth``, ``--size``
pixels square, explicit VR little endian) and times, each ``--repeat`` times,
ours and the peer's in turns (the medians are kept; ``--json`` adds the CPU
time each side and Orthanc spent per instance):

- C-GET: ``Remote.get`` into a fresh archive (files written *and indexed*)
  vs ``getscu -od DIR`` (files written);
- C-MOVE: ``Remote.get`` with ``--retrieve move`` vs ``movescu --port P -od DIR``;
- WADO-RS: ``Remote.get`` vs a dicomweb-client ``iter_series`` loop writing
  each instance with pydicom;
- send: ``Remote.send`` (C-STORE) into an emptied Orthanc vs ``storescu``
  of the same files.

DCMTK's tools run with ``TCP_NODELAY=1`` (PocketPACS turns Nagle's algorithm
off on its DIMSE sockets; without it both run at about 20 instances/s).
PocketPACS runs as its users get it: a study the archive lacks is asked for
series by series without listing its instances first (so the single series
here goes over one association, as DCMTK's), each received instance is
written by a writer thread while the next one arrives
(``pocketpacs.net.writebehind``), and our associations announce no PDU
limit; send, and retrieves that split (several series, or a listed
remainder), go over several associations in worker processes
(``pocketpacs.net.parallel``: one per 100 instances, at most 4 and the CPU
count).  Orthanc keeps its defaults (``DicomThreadsCount`` 4,
``MaximumPduLength`` 16 KiB for what it receives).

``--only floor`` times what pynetdicom itself costs: a bare pynetdicom C-GET
(and a C-MOVE into a bare pynetdicom storage SCP) of the same study whose
handler drops each instance (no file, no archive), with the same settings
(no PDU limit, no debug logging, Nagle off), against getscu/movescu: the
ceiling of any PocketPACS retrieve built on pynetdicom.

Prints instances/s and the ratio ours / peer (above 1: faster than the peer).

Usage::

    python benchmarks/bench_network.py                  # 1,000 CT instances of 512x512 (issue 14)
    python benchmarks/bench_network.py --n 100 --size 64 --json    # the suite's --quick size
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pocketpacs
import pocketpacs.net  # gives Archive.remote
from pocketpacs.net.nodes import RemoteNode, save_node

REPO = Path(__file__).resolve().parents[1]
NAME = "network"
DCMTK_TOOLS = ("getscu", "movescu", "storescu")


def orthanc_support():
    """The tests' Orthanc helper (tests/net_support.py, a checkout with the test
    extras): ``(module, None)``, or ``(None, why not)``."""
    if not (REPO / "tests" / "net_support.py").is_file():
        return None, "needs a checkout (tests/net_support.py starts the local Orthanc)"
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    try:
        import net_support
    except ImportError as e:
        return None, f"the tests' Orthanc helper does not import ({e}): pip install -e '.[test]'"
    if not os.path.exists(net_support.ORTHANC) or not os.path.exists(net_support.DICOMWEB_PLUGIN):
        return None, "Orthanc with its DICOMweb plugin not installed: apt-get install orthanc orthanc-dicomweb"
    return net_support, None


#: DCMTK turns Nagle's algorithm off when TCP_NODELAY=1 (as PocketPACS does on its sockets)
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


#: every timing taken (seconds), in the order of the rows (ours, then the peer's): printed with --json
TIMINGS: list[list[float]] = []


#: CPU seconds per row (ours, the peer's, Orthanc's while ours ran, Orthanc's while the peer's ran), summed
CPU: dict[str, list[float]] = {}


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended (workers, DCMTK's tools)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a running process (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def paired(row: str, ours, peer, repeat: int, server_pid: int) -> tuple[list[float], list[float]]:
    """*repeat* timings (seconds) of *ours* and of *peer*, taken in turns (ours, peer, ours, ...)
    so that a change of the machine's load falls on both; kept in :data:`TIMINGS` too, with
    the CPU time of each side and of the server in :data:`CPU`."""
    a, b = [], []
    cpu = CPU.setdefault(row, [0.0, 0.0, 0.0, 0.0])
    for _ in range(repeat):
        for i, (fn, out) in enumerate(((ours, a), (peer, b))):
            c0, s0 = _cpu(), _proc_cpu(server_pid)
            out.append(fn())
            cpu[i] += _cpu() - c0
            cpu[2 + i] += _proc_cpu(server_pid) - s0
    TIMINGS.append([round(t, 3) for t in a])
    TIMINGS.append([round(t, 3) for t in b])
    return a, b


def measure(N, n_inst: int, size: int, repeat: int, only=None, log=lambda m: None):
    """Time every row against a fresh local Orthanc.

    Returns
    -------
    (dict, float)
        Row name -> (our seconds per repeat, the peer's, the peer's name), and
        the seconds the upload into Orthanc took (not a row).
    """
    tmp = Path(tempfile.mkdtemp(prefix="bench-network-"))
    (tmp / "orthanc").mkdir()
    o = N.Orthanc(tmp / "orthanc")
    o.start()
    rows = {}
    try:
        files = N.synth_files(tmp / "synth", series=1, slices=n_inst, rows=size, cols=size,
                              compressed_fraction=0.0, implicit_fraction=0.0)
        t = time.perf_counter()
        o.upload(files)
        upload_s = time.perf_counter() - t
        n = len(o.sop_uids())
        assert n == n_inst, n
        log(f"{n} instances uploaded into Orthanc in {upload_s:.1f} s")
        k = 0

        def fresh_archive(kind: str, **kw) -> Path:
            nonlocal k
            k += 1
            ar = tmp / f"ar{k}"
            save_node(ar, RemoteNode(kind, "dimse" if kind != "web" else "dicomweb", aet=N.AET, host="127.0.0.1",
                                     port=o.dicom_port, url=o.dicomweb, move_port=o.pocket_port, **kw))
            return ar

        with pocketpacs.open_archive(fresh_archive("get")) as ar:
            study = ar.remote("get").find()[0]["study_instance_uid"]
        se = o.rest(f"/instances/{o.sop_uids()[next(iter(o.sop_uids()))]}/simplified-tags")["SeriesInstanceUID"]

        def ours(kind: str, **kw):
            def run() -> float:
                path = fresh_archive(kind, **kw)
                with pocketpacs.open_archive(path) as ar:
                    t = time.perf_counter()
                    res = ar.remote(kind).get(study)
                    dt = time.perf_counter() - t
                    assert res.complete and res.indexed == n, res
                return dt
            return run

        def dcmtk(cmd: list[str]):
            def run() -> float:
                out = Path(tempfile.mkdtemp(dir=tmp))
                t = time.perf_counter()
                p = subprocess.run([*cmd, "-od", str(out)], capture_output=True, env=DCMTK_ENV)
                dt = time.perf_counter() - t
                if p.returncode != 0:   # (what the tool said, not only its status)
                    said = (p.stderr or p.stdout).decode("utf-8", "replace").strip().splitlines()[-6:]
                    raise RuntimeError(f"{cmd[0]} exited with status {p.returncode}: " + " | ".join(said))
                assert len(list(out.iterdir())) == n
                return dt
            return run

        keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
        base = ["-aet", N.POCKET_AET, "-aec", N.AET, "127.0.0.1", str(o.dicom_port), *keys]

        def web_loop() -> float:
            from dicomweb_client.api import DICOMwebClient
            from pydicom.filewriter import dcmwrite

            out = Path(tempfile.mkdtemp(dir=tmp))
            t = time.perf_counter()
            c = DICOMwebClient(o.dicomweb)
            for i, ds in enumerate(c.iter_series(study, se, media_types=(("application/dicom", "*"),))):
                buf = io.BytesIO()
                dcmwrite(buf, ds, enforce_file_format=True)
                (out / f"{i}.dcm").write_bytes(buf.getvalue())
            return time.perf_counter() - t

        only = set(only or ["get", "move", "web", "send"])
        pid = o.proc.pid
        getscu = dcmtk([N.dcmtk_tool("getscu"), *base])
        movescu = dcmtk([N.dcmtk_tool("movescu"), "--port", str(o.pocket_port), "-aem", N.POCKET_AET, *base])
        if "get" in only:
            rows["C-GET"] = (*paired("C-GET", ours("get"), getscu, repeat, pid), "getscu")
        if "move" in only:
            rows["C-MOVE"] = (*paired("C-MOVE", ours("move", retrieve="move"), movescu, repeat, pid), "movescu")
        if "floor" in only:
            rows["bare pynetdicom C-GET"] = (*paired("bare pynetdicom C-GET", bare_get(o, study, n), getscu,
                                                     repeat, pid), "getscu")
            rows["bare pynetdicom C-MOVE"] = (*paired("bare pynetdicom C-MOVE", bare_move(o, study, n), movescu,
                                                      repeat, pid), "movescu")
        if "web" in only:
            rows["WADO-RS"] = (*paired("WADO-RS", ours("web"), web_loop, repeat, pid), "dicomweb-client loop")

        send_ar = fresh_archive("get")
        with pocketpacs.open_archive(send_ar) as ar:
            ar.import_folder(files[0].parent)

        def send_ours() -> float:
            o.clear()
            with pocketpacs.open_archive(send_ar, readonly=True) as ar:
                t = time.perf_counter()
                res = ar.remote("get").send([study])
                dt = time.perf_counter() - t
            assert res.sent == n and not res.failed, res
            return dt

        def send_dcmtk() -> float:
            o.clear()
            t = time.perf_counter()
            subprocess.run([N.dcmtk_tool("storescu"), "-aet", N.POCKET_AET, "-aec", N.AET, "127.0.0.1", str(o.dicom_port),
                            *map(str, files)], check=True, capture_output=True, env=DCMTK_ENV)
            return time.perf_counter() - t

        if "send" in only:
            rows["send (C-STORE)"] = (*paired("send (C-STORE)", send_ours, send_dcmtk, repeat, pid), "storescu")
    finally:
        o.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, upload_s


def _bare_ae(N):
    """A pynetdicom AE set up as PocketPACS sets its own (no PDU limit, no debug logging)."""
    from pynetdicom import AE

    from pocketpacs.net import tuning

    tuning.apply()
    ae = AE(ae_title=N.POCKET_AET)
    ae.maximum_pdu_size = 0
    return ae


def _nodelay(assoc) -> None:
    import socket

    from pocketpacs.net import wakeup

    wakeup.attach(assoc)
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def bare_get(o, study: str, n: int):
    """A timing of a bare pynetdicom C-GET of *study* whose handler drops every instance."""
    def run() -> float:
        from pydicom.dataset import Dataset
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import CTImageStorage
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

        N = orthanc_support()[0]
        count = []
        ae = _bare_ae(N)
        ae.add_requested_context(GET)
        ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
        t = time.perf_counter()
        assoc = ae.associate("127.0.0.1", o.dicom_port, ae_title=N.AET, max_pdu=0,
                             ext_neg=[build_role(CTImageStorage, scp_role=True)],
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: count.append(1) or 0)])
        _nodelay(assoc)
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study
        for _ in assoc.send_c_get(ds, GET):
            pass
        assoc.release()
        dt = time.perf_counter() - t
        assert len(count) == n, len(count)
        return dt
    return run


def bare_move(o, study: str, n: int):
    """A timing of a bare pynetdicom C-MOVE of *study* into a pynetdicom storage SCP that drops every instance."""
    def run() -> float:
        from pydicom.dataset import Dataset
        from pynetdicom import evt
        from pynetdicom.sop_class import CTImageStorage
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

        N = orthanc_support()[0]
        count = []
        scp = _bare_ae(N)
        scp.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        server = scp.start_server(("127.0.0.1", o.pocket_port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, lambda event: count.append(1) or 0),
                                                (evt.EVT_CONN_OPEN, lambda event: _nodelay(event.assoc))])
        try:
            ae = _bare_ae(N)
            ae.add_requested_context(MOVE)
            t = time.perf_counter()
            assoc = ae.associate("127.0.0.1", o.dicom_port, ae_title=N.AET, max_pdu=0)
            _nodelay(assoc)
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = study
            for _ in assoc.send_c_move(ds, N.POCKET_AET, MOVE):
                pass
            assoc.release()
            dt = time.perf_counter() - t
        finally:
            server.shutdown()
        assert len(count) == n, len(count)
        return dt
    return run


def run(ctx) -> list:
    """Retrieve (C-GET, C-MOVE, WADO-RS) and send (C-STORE) of synthetic 512x512 CT
    instances (100 of 64x64 with --quick) with a local Orthanc, PocketPACS vs DCMTK and a dicomweb-client loop."""
    from pocketpacs.benchmarks.results import add_ratio, from_samples, rates, skipped

    n, size = ctx.pick(100, 1000), ctx.pick(64, 512)
    repeat = ctx.reps(1, 3)
    N, why = orthanc_support()
    missing = [t for t in DCMTK_TOOLS if N is not None and N.dcmtk_tool(t) is None]
    if why is None and missing:
        why = f"DCMTK's {', '.join(missing)} not installed: apt-get install dcmtk"
    names = {"C-GET": "getscu", "C-MOVE": "movescu", "WADO-RS": "dicomweb-client loop", "send (C-STORE)": "storescu"}
    if why is not None:
        return [skipped(f"{k}, {n} instances of {size}x{size}", f"PocketPACS vs {p}", "inst/s", why)
                for k, p in names.items()]
    rows, _upload = measure(N, n, size, repeat, log=ctx.log)
    out = []
    for k, (ours_s, peer_s, peer) in rows.items():
        what = f"{k}, {n} instances of {size}x{size}, local Orthanc"
        ours = from_samples(what, f"PocketPACS {k}" + (" (files written and indexed)" if k != "send (C-STORE)" else ""),
                            "inst/s", rates(n, ours_s), headline=True, target=f">= 1x {peer}")
        ref = from_samples(what, peer, "inst/s", rates(n, peer_s))
        add_ratio(ours, ref, peer)
        ours.met = ours.ratios[peer] >= 1 if peer in ours.ratios else None
        out += [ours, ref]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="instances (default 1000)")
    ap.add_argument("--size", type=int, default=512, help="rows = columns (default 512, as issue 14 says)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per row, the median kept (default 3)")
    ap.add_argument("--only", nargs="*", choices=["get", "move", "web", "send", "floor"],
                    help="the rows to time (default: get move web send; floor: bare pynetdicom C-GET/C-MOVE "
                         "loops that drop the data, vs getscu/movescu)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    N, why = orthanc_support()
    if N is None:
        sys.exit(why)
    for tool in DCMTK_TOOLS:
        if N.dcmtk_tool(tool) is None:
            sys.exit(f"DCMTK's {tool} is missing: apt-get install dcmtk")
    import statistics

    samples, upload_s = measure(N, args.n, args.size, args.repeat, args.only)
    rows = {k: (statistics.median(a), statistics.median(b), p) for k, (a, b, p) in samples.items()}
    result = {"n": args.n, "size": args.size, "upload_rest_s": round(upload_s, 2),
              "rows": {k: {"ours_s": round(a, 3), "peer_s": round(b, 3), "peer": p,
                           "ours_per_s": round(args.n / a, 1), "peer_per_s": round(args.n / b, 1),
                           "ratio": round(b / a, 2)} for k, (a, b, p) in rows.items()},
              "timings_s": TIMINGS,
              "cpu_ms_per_instance": {k: {"ours": round(1000 * c[0] / (args.n * args.repeat), 2),
                                          "peer": round(1000 * c[1] / (args.n * args.repeat), 2),
                                          "orthanc_for_ours": round(1000 * c[2] / (args.n * args.repeat), 2),
                                          "orthanc_for_peer": round(1000 * c[3] / (args.n * args.repeat), 2)}
                                      for k, c in CPU.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.n} instances of {args.size}x{args.size}, explicit VR LE; local Orthanc 1.10 (TCP_NODELAY=1)")
        print(f"{'':24} {'PocketPACS':>16} {'peer':>16}  ratio  peer")
        for k, r in result["rows"].items():
            print(f"{k:24} {r['ours_per_s']:>10.1f} inst/s {r['peer_per_s']:>10.1f} inst/s  {r['ratio']:>5.2f}  "
                  f"{r['peer']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
