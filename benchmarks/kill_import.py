"""kill -9 at random points of a large import; check the archive after each kill.

For each round a child process imports the synthetic tree into a fresh
archive and is killed with SIGKILL at a random moment of the import (drawn
uniformly over the duration of an uninterrupted import, measured first).
Then, in this process:

1. the archive's database file passes the deep check (every record read
   in a child process: :func:`pocketpacs.archive.integrity.deep_check`);
2. the archive opens (writable: the open after an unclean shutdown runs the
   deep check itself) and its invariants hold
   (:meth:`pocketpacs.Archive.check`: every instance has its series, study
   and patient; counts match; links and indexes match the records);
3. ``stats()`` counts equal the records counted directly;
4. a resumed import completes, and the archive's records equal those of an
   uninterrupted import of the same tree byte for byte
   (:func:`pocketpacs.archive.integrity.record_dump`; only the generation counter
   and the roots' timestamps are left out).

With ``--chain N`` the same archive is killed N times in a row before the
final import (kills during resumed imports).

Example (the README's figure)::

    python benchmarks/kill_import.py --rounds 25 --chain 2 --files 12000
    python benchmarks/kill_import.py --rounds 25 --chain 2 --files 12000 --window commit

Prints one JSON object: kills, violations, converged rounds, where the
kills landed (instances committed at the kill, as a fraction of the total).
Exit status 0 when every round holds its invariants and converges.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import sys
from pocketpacs.archive import ingest
import pocketpacs
ingest.CHUNK = int(sys.argv[3])
from pocketpacs.dicom.headers import parse_files
import os
import pydicom, pydicom.charset, pydicom.valuerep  # the fallback parser, loaded before the clock
for d, _, fs in os.walk(sys.argv[2]):  # load the parser's kernels before the clock starts
    if fs:
        parse_files([os.path.join(d, fs[0])])
        break
with pocketpacs.open_archive(sys.argv[1]) as ar:
    print("ready", flush=True)
    real_flush = ingest.Importer._flush
    def flush(self, n):  # the first chunk: the walk is over, parsing and commits start
        if not getattr(ingest, "_said", False):
            ingest._said = True
            print("import", flush=True)
        return real_flush(self, n)
    ingest.Importer._flush = flush
    ar.import_folder(sys.argv[2])
    print("done", flush=True)
"""


def run_child(archive: Path, root: Path, chunk: int, kill_after: float | None,
              secret: bytes | None = None, window: str = "all") -> tuple[int, float, float]:
    """Run the import in a child; kill it ``kill_after`` seconds after its
    archive is open (``window="all"``) or after its walk ended (``"commit"``).

    Returns (exit status, seconds from open to the end of the import,
    seconds from the end of the walk to the end of the import)."""
    if secret is not None and not archive.exists():
        archive.mkdir(mode=0o700, parents=True)
        (archive / "secret.key").write_bytes(secret)  # same patient keys as the reference
        os.chmod(archive / "secret.key", 0o600)
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(archive), str(root), str(chunk)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    line = p.stdout.readline()
    t0 = time.perf_counter()
    t_import = t_done = None
    if kill_after is not None and line.startswith(b"ready"):
        if window == "commit":
            line = p.stdout.readline()
        if line.startswith((b"ready", b"import")):
            try:
                p.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
    elif kill_after is None:
        for line in p.stdout:
            if line.startswith(b"import"):
                t_import = time.perf_counter() - t0
            elif line.startswith(b"done"):
                t_done = time.perf_counter() - t0
    p.wait()
    p.stdout.close()
    total = t_done if t_done is not None else time.perf_counter() - t0
    return p.returncode, total, total - (t_import or 0.0)


def dump(path: Path) -> dict:
    import pocketpacs
    from pocketpacs.archive.integrity import record_dump

    with pocketpacs.open_archive(path, readonly=True) as ar:
        with ar._store.read() as t:
            return record_dump(t)


def check_after_kill(path: Path, total: int) -> dict:
    """Deep check, open, invariants, counts. Returns the round's findings."""
    import pocketpacs
    from pocketpacs.archive.integrity import deep_check

    out: dict = {"violations": []}
    if not (path / "data.mdb").exists():
        out["instances"] = 0
        return out
    dc = deep_check(path)
    if dc.status not in ("ok",):
        out["violations"].append(f"deep check: {dc.status}: {dc.message}")
    with pocketpacs.open_archive(path) as ar:
        out["violations"] += ar.check()
        st = ar.stats()
        with ar._store.read() as t:
            direct = {db: sum(1 for _ in t.range(db)) for db in ("patients", "studies", "series", "instances")}
        for db, n in direct.items():
            if st[db] != n:
                out["violations"].append(f"stats {db} = {st[db]} but {n} records")
        out["instances"] = st["instances"]
        ar.search(name="a")  # the indexes are usable
    if out["instances"] > total:
        out["violations"].append(f"{out['instances']} instances > {total} files")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=25, help="fresh archives (default 25)")
    ap.add_argument("--chain", type=int, default=1, help="kills per round before the final import")
    ap.add_argument("--files", type=int, default=12000, help="about this many DICOM files")
    ap.add_argument("--chunk", type=int, default=500,
                    help="files per parsed chunk (default 500; a commit groups up to ingest.COMMIT_CHUNKS of them, as in an import)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--window", choices=("all", "commit"), default="all",
                    help="draw kill times over the whole import (default) or only after the walk "
                         "(the commit phase)")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
    a = ap.parse_args(argv)

    from pocketpacs import synth

    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="pp-kill-"))
    rng = random.Random(a.seed)
    try:
        root = work / "data"
        slices = 50
        series = 5
        patients = max(1, a.files // (slices * series * 2))
        if not root.exists():
            synth.generate(root, patients=patients, studies=2, series=series, slices=slices, rows=16, cols=16,
                           compressed_fraction=0.2, implicit_fraction=0.2, enhanced=2, junk=20)
        nfiles = sum(len(fs) for _, _, fs in os.walk(root))
        ref = work / "ref"
        shutil.rmtree(ref, ignore_errors=True)
        rc, t_ref, t_commit = run_child(ref, root, a.chunk, None)
        secret = (ref / "secret.key").read_bytes()
        if rc != 0:
            print(json.dumps({"error": f"reference import failed ({rc})"}))
            return 2
        want = dump(ref)
        total = len(want["instances"])
        kills = 0
        landed: list[float] = []
        violations: list[str] = []
        converged = 0
        t_start = time.perf_counter()
        for r in range(a.rounds):
            arc = work / f"a{r}"
            shutil.rmtree(arc, ignore_errors=True)
            for _k in range(a.chain):
                span = t_ref if a.window == "all" else t_commit
                rc, _, _ = run_child(arc, root, a.chunk, rng.uniform(0.0, span), secret, a.window)
                if rc == 0:
                    continue  # the import finished before the kill
                kills += 1
                res = check_after_kill(arc, total)
                landed.append(res.get("instances", 0) / max(total, 1))
                violations += [f"round {r}: {v}" for v in res["violations"]]
            rc, _, _ = run_child(arc, root, a.chunk, None, secret)
            if rc != 0:
                violations.append(f"round {r}: the resumed import failed ({rc})")
                continue
            got = dump(arc)
            if got == want:
                converged += 1
            else:
                diff = [db for db in want if want[db] != got.get(db)]
                violations.append(f"round {r}: records differ from the uninterrupted import in {diff}")
            shutil.rmtree(arc, ignore_errors=True)
        landed.sort()
        out = {
            "files": nfiles, "instances": total, "chunk": a.chunk, "reference_import_s": round(t_ref, 2),
            "reference_commit_phase_s": round(t_commit, 2), "window": a.window,
            "rounds": a.rounds, "kills": kills, "violations": len(violations),
            "converged": converged, "elapsed_s": round(time.perf_counter() - t_start, 1),
            "landed_fraction": {"min": round(landed[0], 3) if landed else None,
                                "median": round(landed[len(landed) // 2], 3) if landed else None,
                                "max": round(landed[-1], 3) if landed else None,
                                "partial": sum(1 for x in landed if 0 < x < 1)},
            "landed": [round(x, 3) for x in landed] if len(landed) <= 100 else None,
            "problems": violations[:20],
        }
        print(json.dumps(out, indent=2))
        return 0 if not violations and converged == a.rounds else 1
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
