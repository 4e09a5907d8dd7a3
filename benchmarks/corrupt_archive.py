"""Damage an archive's ``data.mdb`` in many random ways; nothing may crash.

Each round copies a healthy archive and damages its database file in one
of these ways: truncation at a random length, random 8-byte overwrites
(1, 10 or 100 of them), a zeroed page, random bit flips, a wiped meta page.
Then:

1. ``deep_check`` (the database read in a child process) says whether it is
   damaged;
2. the command line in a child process (``stats``, then ``show --json``,
   which reads every instance) must finish with exit status 0, or 5
   (damaged) with the check/rebuild advice.  The command reads the database
   in a forked child (:func:`pocketpacs.cli.run_guarded`): a damaged page
   that LMDB trusts can kill that child (``cli_guarded_crashes``: turned
   into exit 5 and advice); a signal reaching this script
   (``cli_signals``) is a failure;
3. the app's session in a child process (open, background check, search,
   stats through the bridge) must not crash, and when the deep check found
   damage it must say so;
4. ``pocketpacs rebuild`` (a child process) must restore every instance
   from the imported folders, and the result must pass the deep check.

Example (the README's figure)::

    python benchmarks/corrupt_archive.py --rounds 100

Prints one JSON object with the counts per kind; exit status 0 when no
process crashed and every rebuild restored the archive.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("truncate", "garble1", "garble10", "garble100", "zero_page", "bitflip", "wipe_meta")

APP = r"""
import json, sys
from pocketpacs.ui.session import Session
from pocketpacs.ui import bridge
s = Session(sys.argv[1], mode="serve")
s.check_delay = 0
out = {"notice": s.startup_check()}
if s._check_thread is not None:
    s._check_thread.join(600)
out["search"] = bridge.call("search", {"limit": 100})
out["stats"] = bridge.call("stats", {})
out["hello_notice"] = bridge.call("hello", {})["data"]["archive_notice"]
s.close()
print(json.dumps({k: (v if not isinstance(v, dict) else {"ok": v.get("ok"), "error": v.get("error")})
                  for k, v in out.items()}))
"""


def damage(p: Path, kind: str, rng: random.Random) -> None:
    size = p.stat().st_size
    if kind == "truncate":
        os.truncate(p, rng.randrange(0, size))
        return
    with open(p, "r+b") as f:
        if kind.startswith("garble"):
            for _ in range(int(kind[6:])):
                f.seek(rng.randrange(0, size - 8))
                f.write(rng.randbytes(8))
        elif kind == "zero_page":
            f.seek(rng.randrange(0, size // 4096) * 4096)
            f.write(b"\0" * 4096)
        elif kind == "bitflip":
            for _ in range(rng.randint(1, 16)):
                off = rng.randrange(0, size)
                f.seek(off)
                b = f.read(1)[0]
                f.seek(off)
                f.write(bytes([b ^ (1 << rng.randrange(8))]))
        elif kind == "wipe_meta":
            f.seek(rng.choice((0, 4096)))
            f.write(rng.randbytes(4096))


def child(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
    a = ap.parse_args(argv)

    import pocketpacs
    from pocketpacs import synth
    from pocketpacs.archive.integrity import deep_check

    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="pp-corrupt-"))
    rng = random.Random(a.seed)
    try:
        root = work / "data"
        if not root.exists():
            synth.generate(root, patients=4, studies=2, series=3, slices=40, rows=16, cols=16, junk=5)
        good = work / "good"
        if not good.exists():
            with pocketpacs.open_archive(good) as ar:
                ar.import_folder(root)
        with pocketpacs.open_archive(good, readonly=True) as ar:
            n = ar.stats()["instances"]
        per = {k: {"rounds": 0, "detected": 0, "cli_damaged_exit": 0, "app_said_damaged": 0} for k in KINDS}
        crashes: list[str] = []
        cli_signals: list[str] = []
        guarded = 0
        failures: list[str] = []
        t0 = time.perf_counter()
        for r in range(a.rounds):
            kind = KINDS[r % len(KINDS)]
            arc = work / "victim"
            shutil.rmtree(arc, ignore_errors=True)
            shutil.copytree(good, arc)
            damage(arc / "data.mdb", kind, rng)
            st = per[kind]
            st["rounds"] += 1
            dc = deep_check(arc)
            damaged = dc.status != "ok"
            st["detected"] += damaged
            for cmd in (["stats"], ["show", "--json"]):
                cp = child(["-m", "pocketpacs", "--archive", str(arc), *cmd])
                if cp.returncode < 0:
                    cli_signals.append(f"round {r} ({kind}): `pocketpacs {' '.join(cmd)}` died of signal "
                                       f"{-cp.returncode}")
                elif cp.returncode == 5:
                    st["cli_damaged_exit"] += 1
                    guarded += b"crashed (SIG" in cp.stderr
                    if b"pocketpacs rebuild" not in cp.stderr and b"pocketpacs check" not in cp.stderr:
                        failures.append(f"round {r} ({kind}): exit 5 without the rebuild advice")
                elif cp.returncode != 0:
                    failures.append(f"round {r} ({kind}): `pocketpacs {' '.join(cmd)}` exit {cp.returncode}: "
                                    f"{cp.stderr.decode(errors='replace')[-300:]}")
            cp = child(["-c", APP, str(arc)])
            if cp.returncode != 0:
                crashes.append(f"round {r} ({kind}): the app session exited {cp.returncode}")
            else:
                out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
                said = "damaged" in json.dumps(out)
                st["app_said_damaged"] += said
                if damaged and dc.status == "damaged" and not said:
                    failures.append(f"round {r} ({kind}): the deep check found damage, the app did not say so")
            cp = child(["-m", "pocketpacs", "--archive", str(arc), "rebuild"])
            if cp.returncode < 0:
                crashes.append(f"round {r} ({kind}): rebuild died of signal {-cp.returncode}")
            else:
                after = deep_check(arc)
                cnt = -1
                if after.ok:
                    with pocketpacs.open_archive(arc, readonly=True) as ar:
                        cnt = ar.stats()["instances"]
                if not after.ok or cnt != n:
                    failures.append(f"round {r} ({kind}): after rebuild: {after.status}, {cnt} of {n} instances "
                                    f"(exit {cp.returncode})")
        out = {"rounds": a.rounds, "instances": n, "crashes": len(crashes), "failures": len(failures),
               "cli_signals": len(cli_signals), "cli_guarded_crashes": guarded, "cli_runs": 2 * a.rounds,
               "detected_by_deep_check": sum(v["detected"] for v in per.values()),
               "rebuilt": a.rounds - sum(1 for f in failures if "after rebuild" in f),
               "per_kind": per, "elapsed_s": round(time.perf_counter() - t0, 1),
               "problems": (crashes + failures + cli_signals)[:20]}
        print(json.dumps(out, indent=2))
        return 0 if not crashes and not failures and not cli_signals else 1
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
