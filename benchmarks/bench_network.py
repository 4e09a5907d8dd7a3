"""Network speed: retrieve and send 1,000 small synthetic instances against a
local Orthanc, PocketPACS vs DCMTK (and a plain dicomweb-client loop), in one run.

Starts its own Orthanc (tests/net_support.py: loopback, ``TCP_NODELAY=1``),
uploads ``--n`` single-frame CT instances (``pocketpacs.synth``, ``--size``
pixels square, explicit VR little endian) and times, each ``--repeat`` times
(the best is kept):

- C-GET: ``Remote.get`` into a fresh archive (files written *and indexed*)
  vs ``getscu -od DIR`` (files written);
- C-MOVE: ``Remote.get`` with ``--retrieve move`` vs ``movescu --port P -od DIR``;
- WADO-RS: ``Remote.get`` vs a dicomweb-client ``iter_series`` loop writing
  each instance with pydicom;
- send: ``Remote.send`` (C-STORE) into an emptied Orthanc vs ``storescu``
  of the same files.

DCMTK's tools run with ``TCP_NODELAY=1`` (PocketPACS turns Nagle's algorithm
off on its DIMSE sockets; without it both run at about 20 instances/s).

Prints instances/s and the ratio ours / peer (above 1: faster than the peer).

Usage::

    python benchmarks/bench_network.py                  # 1,000 instances of 64x64
    python benchmarks/bench_network.py --n 1000 --size 512 --json
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import net_support as N  # noqa: E402

import pocketpacs  # noqa: E402
import pocketpacs.net  # noqa: E402  (gives Archive.remote)
from pocketpacs.net.nodes import RemoteNode, save_node  # noqa: E402


#: DCMTK turns Nagle's algorithm off when TCP_NODELAY=1 (as PocketPACS does on its sockets)
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


#: every timing taken (seconds), in the order of the rows (ours, then the peer's): printed with --json
TIMINGS: list[list[float]] = []


def best(fn, repeat: int) -> float:
    """The median of *repeat* timings of *fn* (seconds)."""
    import statistics

    times = [fn() for _ in range(repeat)]
    TIMINGS.append([round(t, 3) for t in times])
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="instances (default 1000)")
    ap.add_argument("--size", type=int, default=64, help="rows = columns (default 64)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per row, the median kept (default 3)")
    ap.add_argument("--only", nargs="*", choices=["get", "move", "web", "send"],
                    help="the rows to time (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("getscu", "movescu", "storescu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install dcmtk")
    tmp = Path(tempfile.mkdtemp(prefix="bench-network-"))
    (tmp / "orthanc").mkdir()
    o = N.Orthanc(tmp / "orthanc")
    o.start()
    rows = {}
    try:
        files = N.synth_files(tmp / "synth", series=1, slices=args.n, rows=args.size, cols=args.size,
                              compressed_fraction=0.0, implicit_fraction=0.0)
        t = time.perf_counter()
        o.upload(files)
        upload_s = time.perf_counter() - t
        n = len(o.sop_uids())
        assert n == args.n, n
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
                subprocess.run([*cmd, "-od", str(out)], check=True, capture_output=True, env=DCMTK_ENV)
                dt = time.perf_counter() - t
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

        only = set(args.only or ["get", "move", "web", "send"])
        if "get" in only:
            rows["C-GET"] = (best(ours("get"), args.repeat), best(dcmtk(["getscu", *base]), args.repeat),
                             "getscu")
        if "move" in only:
            rows["C-MOVE"] = (best(ours("move", retrieve="move"), args.repeat),
                              best(dcmtk(["movescu", "--port", str(o.pocket_port), "-aem", N.POCKET_AET, *base]),
                                   args.repeat), "movescu")
        if "web" in only:
            rows["WADO-RS"] = (best(ours("web"), args.repeat), best(web_loop, args.repeat), "dicomweb-client loop")

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
            subprocess.run(["storescu", "-aet", N.POCKET_AET, "-aec", N.AET, "127.0.0.1", str(o.dicom_port),
                            *map(str, files)], check=True, capture_output=True, env=DCMTK_ENV)
            return time.perf_counter() - t

        if "send" in only:
            rows["send (C-STORE)"] = (best(send_ours, args.repeat), best(send_dcmtk, args.repeat), "storescu")
    finally:
        o.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"n": args.n, "size": args.size, "upload_rest_s": round(upload_s, 2),
              "rows": {k: {"ours_s": round(a, 3), "peer_s": round(b, 3), "peer": p,
                           "ours_per_s": round(args.n / a, 1), "peer_per_s": round(args.n / b, 1),
                           "ratio": round(b / a, 2)} for k, (a, b, p) in rows.items()},
              "timings_s": TIMINGS}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.n} instances of {args.size}x{args.size}, explicit VR LE; local Orthanc 1.10 (TCP_NODELAY=1)")
        print(f"{'':16} {'PocketPACS':>16} {'peer':>16}  ratio  peer")
        for k, r in result["rows"].items():
            print(f"{k:16} {r['ours_per_s']:>10.1f} inst/s {r['peer_per_s']:>10.1f} inst/s  {r['ratio']:>5.2f}  "
                  f"{r['peer']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
