"""Integrity of an archive database: invariants, a deep check in a child
process, and recovery of a damaged archive from its imported folders.

:func:`check_invariants` checks, in one read transaction, what every
committed state of the archive must satisfy (after a crash, a kill -9, a
full disk...):

- every instance has its series, study and patient, and its SOP entry;
  every SOP entry has its instance; every instance has at least one file;
- the stored counts and sizes of series, studies and patients equal those
  of their children; no series, study or patient is empty;
- the link tables (``study_series``, ``pat_studies``) match the records;
- the search indexes hold exactly the entries computed from the records;
- folder listings name existing instances (indexed rows); conflicts belong
  to an existing instance;
- folder listings, conflicts and imported folders are keyed by the key of
  their path (:func:`pocketpacs.archive.pathkeys.path_key`: long paths hashed,
  with the path stored in the value).

Messages name record keys (hex), never patient data or file paths.

:func:`deep_check` runs :func:`check_invariants` plus a read of every
record of every database in a **child process**: LMDB trusts its file, and a
truncated or crafted ``data.mdb`` can crash the process that reads it
(SIGBUS, SIGSEGV).  The parent only reads the child's JSON answer or its
exit signal.  The cheap in-process guard of the file itself
(:func:`~pocketpacs.archive.datafile.check_data_file`) lives with the
storage layer, in :mod:`pocketpacs.archive.datafile`.

:func:`move_damaged_aside` moves a damaged database aside (into
``damaged-<time>/`` inside the archive folder, never deleted); the folders
listed in ``roots.json`` (kept next to the database by every import) are
then imported into a fresh one by
:func:`pocketpacs.archive.api.rebuild_damaged`.

Command line: ``pocketpacs check`` (deep check, exit 0 / 1 / 5) and
``pocketpacs rebuild`` (uses :func:`~pocketpacs.archive.api.rebuild_damaged` when the deep check
fails).  ``python -m pocketpacs.archive.integrity ARCHIVE`` is the child process.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import REBUILD_ADVICE
from ..paths import read_private_file, write_private_file
from . import pathkeys
from .dirstamps import FOLDERS_KEY
from . import query
from . import records
from . import sopindex
from .txn import COUNTS_DB, counts_problems
from .datafile import OPEN_MARK, check_data_file

#: Name of the side file listing the imported folders (for a rebuild when the
#: database itself cannot be read).
ROOTS_FILE = "roots.json"
MAX_PROBLEMS = 200


# ---- invariants -------------------------------------------------------------------------

class _Problems(list):
    def add(self, msg: str) -> None:
        self.n = getattr(self, "n", 0) + 1
        if len(self) < MAX_PROBLEMS:
            self.append(msg)


#: The stored counts of a series, study and patient record, in the order
#: :func:`series_counts` and :func:`add_child` compute them.
COUNT_FIELDS: dict[str, tuple[str, ...]] = {
    "series": ("n_instances", "size", "n_offline"),
    "studies": ("n_series", "n_instances", "size", "n_offline"),
    "patients": ("n_studies", "n_series", "n_instances", "size"),
}


def stored_counts(db: str, rec: dict) -> list:
    """The counts stored in a series, study or patient record (``db`` names
    its database), in :data:`COUNT_FIELDS` order (``n_offline`` defaults to 0)."""
    return [rec.get(f, 0) if f == "n_offline" else rec.get(f) for f in COUNT_FIELDS[db]]


def series_counts(instances: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[int]]:
    """[n_instances, size, n_offline] of each series, from instance items
    ``(key, value)`` (the series key is the first 8 bytes of the key).
    ``Archive.verify`` (which repairs) and :func:`check_invariants` (which
    reports) both count with it."""
    import numpy as np

    cnt: dict[bytes, list[int]] = {}
    for k, v in instances:
        head = np.frombuffer(v[:records.HEAD], dtype=records.INST_DTYPE)[0]
        c = cnt.setdefault(k[:8], [0, 0, 0])
        c[0] += 1
        c[1] += int(head["size"])
        c[2] += bool(int(head["flags"]) & records.OFFLINE)
    return cnt


def add_child(totals: dict[bytes, list[int]], key: bytes, c: list[int]) -> None:
    """Add one child's [n_instances, size, n_offline] to its parent's
    [n_children, n_instances, size, n_offline] (series to study, study to
    patient: a study's totals are the child counts of its patient)."""
    t = totals.setdefault(key, [0, 0, 0, 0])
    t[0] += 1
    t[1] += c[0]
    t[2] += c[1]
    t[3] += c[2]


def check_invariants(txn: Any) -> list[str]:
    """Check the archive's invariants in one read transaction.

    Parameters
    ----------
    txn : pocketpacs.archive.store.Txn
        A read transaction (``store.read()``).

    Returns
    -------
    list of str
        One message per violation (at most :data:`MAX_PROBLEMS`, then a
        count of the rest); empty when every invariant holds.
    """
    import numpy as np

    P = _Problems()
    if not txn.get("meta", b"schema"):
        P.add("meta: no schema version")
    def checked_instances() -> Iterator[tuple[bytes, bytes]]:
        for k, v in txn.range("instances"):
            if len(k) != 16 or len(v) < records.HEAD:
                P.add(f"instance {k.hex()}: malformed key or value")
                continue
            _head, _tx, locs = records.split_instance(v)
            if not locs:
                P.add(f"instance {k.hex()}: no file location")
            if sopindex.series_key(txn, k[8:]) != k[:8]:
                P.add(f"instance {k.hex()}: its SOP entry is missing or points elsewhere")
            yield k, v

    # instances -> series counts
    ser_cnt = series_counts(checked_instances())
    for k, v in sopindex.entries(txn):
        if txn.get("instances", v + k) is None:
            P.add(f"SOP entry {k.hex()}: no instance")
    for k, _v in txn.range(sopindex.RECENT):
        if txn.get(sopindex.MAIN, k) is not None:
            P.add(f"SOP entry {k.hex()}: in both SOP databases")
    series: dict[bytes, dict] = {}
    for k, v in txn.range("series"):
        series[k] = records.loads(v)
    studies: dict[bytes, dict] = {}
    for k, v in txn.range("studies"):
        studies[k] = records.loads(v)
    patients: dict[bytes, dict] = {}
    for k, v in txn.range("patients"):
        patients[k] = records.loads(v)
    for p in counts_problems(txn):
        P.add(p)
    for k in ser_cnt:
        if k not in series:
            P.add(f"instances of series {k.hex()}: the series record is missing")
    st_cnt: dict[bytes, list[int]] = {}
    for k, se in series.items():
        c = ser_cnt.get(k, [0, 0, 0])
        if c[0] == 0:
            P.add(f"series {k.hex()}: no instances")
        stored = stored_counts("series", se)
        if stored != c:
            P.add(f"series {k.hex()}: counts {stored} but its instances give {c}")
        sk, pk = bytes.fromhex(se["study_key"]), bytes.fromhex(se["patient_key"])
        st = studies.get(sk)
        if st is None:
            P.add(f"series {k.hex()}: its study {sk.hex()} is missing")
        elif st.get("patient_key") != se["patient_key"]:
            P.add(f"series {k.hex()}: patient differs from its study's")
        if pk not in patients:
            P.add(f"series {k.hex()}: its patient {pk.hex()} is missing")
        if txn.get("study_series", sk + k) is None:
            P.add(f"series {k.hex()}: no study_series link")
        add_child(st_cnt, sk, c)
    pa_cnt: dict[bytes, list[int]] = {}
    for k, st in studies.items():
        c = st_cnt.get(k, [0, 0, 0, 0])
        if c[0] == 0:
            P.add(f"study {k.hex()}: no series")
        stored = stored_counts("studies", st)
        if stored != c:
            P.add(f"study {k.hex()}: counts {stored} but its series give {c}")
        pk = bytes.fromhex(st["patient_key"])
        if pk not in patients:
            P.add(f"study {k.hex()}: its patient {pk.hex()} is missing")
        if txn.get("pat_studies", pk + k) is None:
            P.add(f"study {k.hex()}: no pat_studies link")
        add_child(pa_cnt, pk, c)
    for k, pa in patients.items():
        c = pa_cnt.get(k, [0, 0, 0, 0])
        if c[0] == 0:
            P.add(f"patient {k.hex()}: no studies")
        stored = stored_counts("patients", pa)
        if stored != c:
            P.add(f"patient {k.hex()}: counts {stored} but its studies give {c}")
    for k, _ in txn.range("study_series"):
        se = series.get(k[8:])
        if se is None or se["study_key"] != k[:8].hex():
            P.add(f"study_series link {k.hex()}: no such series in that study")
    for k, _ in txn.range("pat_studies"):
        st = studies.get(k[16:])
        if st is None or st["patient_key"] != k[:16].hex():
            P.add(f"pat_studies link {k.hex()}: no such study of that patient")
    # search indexes: exactly the entries computed from the records
    want: set = set()
    for k, pa in patients.items():
        want |= query.patient_entries(k, pa)
    for k, st in studies.items():
        want |= query.study_entries(k, st)
    have: set = set()
    for db in ("idx_name", "idx_pid", "idx_birth", "idx_sdate", "idx_mod", "idx_desc", "idx_acc"):
        have |= {(db, k, v) for k, v in txn.range(db)}
    if want != have:
        missing, extra = want - have, have - want
        for db in sorted({e[0] for e in missing | extra}):
            m = sum(1 for e in missing if e[0] == db)
            x = sum(1 for e in extra if e[0] == db)
            P.add(f"index {db}: {m} entries missing, {x} stale")
    # folder listings and conflicts
    for dk, raw in txn.range("dirs"):
        try:
            lst = records.DirListing.decode(raw)
            folder = pathkeys.listing_folder(dk, raw)
        except Exception:
            P.add("a folder listing cannot be decoded")
            continue
        if pathkeys.path_key(folder) != dk:
            P.add(f"a folder listing is not keyed by its folder's key (a key of {len(dk)} bytes)")
        for r in np.nonzero((lst.code == 0) & ~lst.missing)[0].tolist():
            ik = lst.key(r)
            v = txn.get("instances", ik)
            if v is None:
                P.add(f"folder listing: indexed file of instance {ik.hex()} has no instance")
            elif os.path.join(folder, lst.names[r]) not in records.split_instance(v)[2]:
                P.add(f"folder listing: instance {ik.hex()} does not list its file")
    for k, v in txn.range("conflicts"):
        if txn.get("instances", k[:16]) is None:
            P.add(f"conflict {k[:16].hex()}: no instance")
        try:
            path = pathkeys.conflict_path(k, records.loads(v))
        except ValueError:
            P.add(f"conflict {k[:16].hex()}: its file's path cannot be read")
            continue
        if pathkeys.path_key(path) != k[16:]:
            P.add(f"conflict {k[:16].hex()}: not keyed by its file's key (a key of {len(k)} bytes)")
    for k, v in txn.range("roots"):
        try:
            root = pathkeys.root_path(k, v)
        except ValueError:
            P.add("an imported folder's path cannot be read")
            continue
        if pathkeys.path_key(root) != k:
            P.add(f"an imported folder is not keyed by its path's key (a key of {len(k)} bytes)")
    out = list(P)
    n = getattr(P, "n", 0)
    if n > len(out):
        out.append(f"... and {n - len(out)} more")
    return out


#: Bytes a blank UID consists of (padding and white space), as the header batch strips them.
_BLANK = " \0\t\n\r\f\v"


def _blank(uid: Any) -> bool:
    return isinstance(uid, str) and not uid.strip(_BLANK)


def blank_uid_instances(txn: Any) -> int:
    """Instances archived under an empty UID (by archives made before such files were refused).

    A SOP, Series or Study Instance UID present but empty (or only padding
    or white space) identifies nothing; imports refuse such files now, but
    an archive made before may hold them, every such file of a kind merged
    under the one key of the empty string.

    Parameters
    ----------
    txn : read transaction
        Of the archive's store.

    Returns
    -------
    int
        Instances whose series or study record has a blank ``uid`` or whose
        own SOP Instance UID is blank (each counted once).
    """
    blank_studies = {k for k, v in txn.range("studies") if _blank(records.loads(v).get("uid"))}
    blank_series = set()
    for k, v in txn.range("series"):
        se = records.loads(v)
        try:
            sk = bytes.fromhex(str(se.get("study_key", "")))
        except ValueError:
            sk = b""
        if _blank(se.get("uid")) or sk in blank_studies:
            blank_series.add(k)
    n = 0
    for k, v in txn.range("instances"):
        if k[:8] in blank_series:                      # instance key: series key + SOP key
            n += 1
            continue
        _h, texts, _p = records.split_instance(v)
        n += _blank(texts.get("SOPInstanceUID"))
    return n


def blank_uid_message(n: int) -> str:
    """What ``verify`` says about *n* instances archived under an empty UID."""
    return (f"{n} instance{'s' if n != 1 else ''} archived under an empty UID (SOP, Series or Study "
            "Instance UID); re-import or remove")


def record_dump(txn: Any) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every record of every database, for comparing two archives.

    The generation counter, the roots' timestamps and the folders' stamps
    (after their listings, and those of folders of folders in ``meta``) are left out (they differ between two imports of
    the same files); patient, study and series records are compared in
    their counted form (a schema-5 record, plain JSON, equals its counted
    rewrite); the SOP index's two databases as one, under ``sop`` (which
    of them holds an entry depends on when merges ran); everything else is
    compared byte for byte.
    """
    from .store import DBS

    out: dict[str, list[tuple[bytes, bytes]]] = {}
    for db in DBS:
        if db == sopindex.RECENT or db in COUNTS_DB.values():
            continue   # (the SOP index is one, under "sop"; counts are in the records as read)
        items = sorted(sopindex.entries(txn)) if db == sopindex.MAIN else list(txn.range(db))
        if db in ("patients", "studies", "series"):
            items = [(k, records.dumps_counted(records.loads(v))) for k, v in items]
        elif db == "meta":
            items = [(k, v) for k, v in items if k != b"generation" and not k.startswith(FOLDERS_KEY)]
        elif db == "roots":
            items = [(k, b"") for k, _ in items]
        elif db == "dirs":
            items = [(k, records.listing_without_section(v)) for k, v in items]
        out[db] = items
    return out


# ---- deep check in a child process ---------------------------------------------------------

@dataclass
class DeepCheck:
    """Outcome of :func:`deep_check`.

    Attributes
    ----------
    status : str
        ``"ok"``, ``"inconsistent"`` (readable, invariants violated:
        ``verify`` or ``rebuild`` repairs), ``"damaged"`` (the database
        cannot be read: ``rebuild``), ``"missing"`` (no database) or
        ``"cancelled"`` or ``"unchecked"`` (the checking process could not
        be started).
    message : str
        One sentence for the user (no patient data).
    problems : list of str
        Invariant violations.
    records : int
        Records read.
    """
    status: str
    message: str
    problems: list[str] = field(default_factory=list)
    records: int = 0
    roots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "message": self.message,
                "problems": list(self.problems), "records": self.records}


def _child_raw(path: str, today: int) -> dict[str, Any]:
    """The deep check of an archive of another schema: every record of every
    database read as bytes (LMDB walks every page), nothing decoded."""
    import lmdb

    n = 0
    try:
        env = lmdb.open(str(path), subdir=True, readonly=True, lock=False, max_dbs=64)
    except lmdb.Error:
        return {"status": "damaged", "message": "LMDB cannot open the database file (damaged)"}
    try:
        with env.begin(buffers=False) as t:
            raw = t.get(b"schema", db=env.open_db(b"meta", txn=t, create=False))
            names = [k for k, _v in t.cursor()]
            for name in names:
                for _k, _v in t.cursor(db=env.open_db(name, txn=t, create=False)):
                    n += 1
    except lmdb.Error as e:
        return {"status": "damaged", "records": n,
                "message": f"a record cannot be read ({type(e).__name__}) after {n:,} good ones"}
    finally:
        env.close()
    return {"status": "ok", "records": n,
            "message": f"{n:,} records read (schema {int(raw or 0)}, this PocketPACS writes {today}: "
                       "not decoded)"}


def _child(path: str) -> dict[str, Any]:
    """The deep check itself (run in the child process)."""
    import lmdb

    from ..errors import ArchiveError, SchemaVersionMismatch
    from .store import DBS, SCHEMA_VERSION, LmdbStore

    why = check_data_file(Path(path) / "data.mdb")
    if why is not None:
        return {"status": "damaged", "message": why}
    if not (Path(path) / "data.mdb").exists():
        return {"status": "missing", "message": "there is no archive database in this folder"}
    try:
        store = LmdbStore(path, readonly=True, check=False)
    except SchemaVersionMismatch:
        # another schema: today's decoders do not apply; every page is read as raw
        # records (the open that follows upgrades an older one, refuses a newer one)
        return _child_raw(path, SCHEMA_VERSION)
    except ArchiveError:
        return {"status": "damaged", "message": "LMDB cannot open the database file (damaged)"}
    n = 0
    try:
        with store.read() as t:
            for db in DBS:
                for _key, v in t.range(db):
                    n += 1
                    if db in ("patients", "studies", "series", "roots"):
                        records.loads(v)
                    elif db == "instances":
                        records.split_instance(v)
                    elif db == "dirs":
                        records.DirListing.decode(v)
            problems = check_invariants(t)
            roots = pathkeys.roots(t)
    except (lmdb.Error, ValueError, KeyError, TypeError, IndexError, UnicodeError) as e:
        return {"status": "damaged", "records": n,
                "message": f"a record cannot be read ({type(e).__name__}) after {n:,} good ones"}
    finally:
        store.close()
    if problems:
        return {"status": "inconsistent", "records": n, "problems": problems, "roots": roots,
                "message": f"{len(problems)} invariant violation(s); `pocketpacs verify` repairs counts, "
                           + REBUILD_ADVICE}
    return {"status": "ok", "records": n, "roots": roots, "message": f"{n:,} records read, invariants hold"}


def deep_check(path: os.PathLike[str] | str, timeout: float = 600.0, nice: int = 0,
               cancel: Any = None) -> DeepCheck:
    """Read every record of the archive at ``path`` and check its invariants,
    in a child process (a damaged file may crash the process reading it).

    Parameters
    ----------
    path : path-like
        Archive folder.
    timeout : float
        Seconds before the child is killed (reported as damaged).
    nice : int
        Lower the child's CPU priority by this much (POSIX; the app's
        background check uses 10).
    cancel : threading.Event, optional
        When set, the child is killed (status ``"cancelled"``).

    Returns
    -------
    DeepCheck

    Raises
    ------
    ArchiveUnsafe
        Another local user could change the archive folder (never read, nor
        reported as damaged).
    """
    from .store import refuse_unsafe_folder

    p = os.fspath(Path(path).expanduser().absolute())
    refuse_unsafe_folder(Path(p))
    kw: dict[str, Any] = {}
    if nice and hasattr(os, "nice"):
        kw["preexec_fn"] = lambda: os.nice(nice)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pocketpacs.archive.integrity", p],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, **kw)
    except OSError as e:  # no Python to run (permissions, resources): nothing was checked
        return DeepCheck("unchecked", "the checking process could not be started "
                         f"({e.strerror or type(e).__name__})")
    end = time.monotonic() + timeout
    out = b""
    while True:
        try:
            out, _ = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > end or (cancel is not None and cancel.is_set()):
                proc.kill()
                proc.communicate()
                if cancel is not None and cancel.is_set():
                    return DeepCheck("cancelled", "the check was cancelled")
                return DeepCheck("damaged", f"reading the database did not finish within {timeout:.0f} s")
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        return DeepCheck("damaged", f"reading the database crashed the checking process ({sig})")
    try:
        d = json.loads(out.decode("utf-8", "surrogateescape").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return DeepCheck("damaged", f"the checking process failed (exit status {proc.returncode})")
    return DeepCheck(d["status"], d["message"], d.get("problems", []), d.get("records", 0),
                     d.get("roots", []))


# ---- roots side file and recovery ------------------------------------------------------------

def save_roots(archive_dir: os.PathLike[str] | str, roots: list[str]) -> None:
    """Write ``roots.json`` (atomically, 0600) next to the database."""
    data = json.dumps({"roots": [r.encode("utf-8", "surrogateescape").hex() for r in roots]}).encode()
    write_private_file(Path(archive_dir) / ROOTS_FILE, data)


def load_roots(archive_dir: os.PathLike[str] | str) -> list[str]:
    """The folders listed in ``roots.json`` (empty when absent, unreadable or a link)."""
    try:
        d = json.loads(read_private_file(Path(archive_dir) / ROOTS_FILE, 64 << 20))
        return [bytes.fromhex(h).decode("utf-8", "surrogateescape") for h in d["roots"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def move_damaged_aside(path: os.PathLike[str] | str) -> Path:
    """Move a damaged database aside, under the writer lock.

    ``data.mdb``, ``lock.mdb`` and the open mark go to ``damaged-<time>/``
    inside the archive folder (kept, for inspection; delete it when done);
    the secret and ``roots.json`` stay, so patient keys are unchanged and the
    folders can be imported again
    (:func:`pocketpacs.archive.api.rebuild_damaged`).

    Returns
    -------
    Path
        The folder holding the damaged files.

    Raises
    ------
    ArchiveLocked
        Another process is writing to the archive.
    """
    from .store import LOCK_FILE, _acquire_lock, _release_lock

    d = Path(path).expanduser().absolute()
    fd = _acquire_lock(d / LOCK_FILE)   # nobody may write while the files move
    try:
        aside = d / time.strftime("damaged-%Y%m%d-%H%M%S")
        n = 0
        while aside.exists():
            n += 1
            aside = d / (time.strftime("damaged-%Y%m%d-%H%M%S") + f"-{n}")
        aside.mkdir(mode=0o700)
        for name in ("data.mdb", "lock.mdb", OPEN_MARK):
            if (d / name).exists():
                os.replace(d / name, aside / name)
    finally:
        _release_lock(fd)
    return aside


def _main(argv: list[str]) -> int:
    out = _child(argv[0])
    sys.stdout.write(json.dumps(out, ensure_ascii=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
