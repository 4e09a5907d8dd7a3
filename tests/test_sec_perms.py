"""Archive folder 0700, files 0600, when a non-root user creates them (issue 7).

Tests run as root (CI too), and root's files say little about a user's, so a
child process loads PocketPACS (and its compiled kernels, which live in
root's folders) as root, then drops to uid/gid 65534 ("nobody") and, with a
umask of 022 and then 000 (the worst case), creates everything a user's
first runs create: the default archive under a fresh HOME through
``pocketpacs import``, an archive at a nested explicit path (missing parents
too), a rebuild and a verify, and an app session (the served UI's session:
search, open a series, thumbnail) on it.  The test then walks what was
created: every folder 0700, every file 0600, all owned by 65534.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import dicomgen
from conftest import require_system

NOBODY = 65534

CHILD = textwrap.dedent("""
    import json, os, sys, time
    data, warm, home, nested, umask = sys.argv[1:6]
    import pocketpacs
    from pocketpacs import cli
    from pocketpacs.ui.session import Session
    from pocketpacs.ui import protocol

    def session_round(path):
        s = Session(path, mode="serve")
        try:
            rows = s.cmd_search(protocol.validate_args({}, __import__("pocketpacs.ui.bridge", fromlist=["x"]).SCHEMAS["search"]))["rows"]
            vid = s.cmd_open_series({"series_id": rows[0]["series_id"], "slot": "main"})["volume_id"]
            job = s.volumes.get(vid)
            assert job.wait_header(60) is not None, job.error_message()
            assert s.thumbnail(rows[0]["series_id"]) is not None
            return len(rows)
        finally:
            s.close()

    # as root: import every module and load every kernel the run below needs
    # (the interpreter and numba's cache are in root-only folders)
    assert cli.main(["--archive", warm, "import", data]) == 0
    assert cli.main(["--archive", warm, "verify"]) == 0
    session_round(warm)

    os.setgroups([])
    os.setgid(%(uid)d)
    os.setuid(%(uid)d)
    assert os.getuid() == %(uid)d and os.geteuid() == %(uid)d
    os.umask(int(umask, 8))
    os.environ["HOME"] = home
    for k in [k for k in os.environ if k.startswith(("XDG_", "POCKETPACS"))]:
        del os.environ[k]
    from pocketpacs.paths import default_archive_dir
    default = str(default_archive_dir())
    assert default.startswith(home), default
    out = {"default": default}
    out["import"] = cli.main(["import", data])
    out["import_nested"] = cli.main(["--archive", nested, "import", data])
    out["rebuild"] = cli.main(["--archive", nested, "rebuild"])
    out["verify"] = cli.main(["verify"])
    out["rows"] = session_round(None)
    with pocketpacs.open_archive(nested) as ar:
        out["search"] = sum(len(h.series) for h in ar.search(level="series").hits)
    print("RESULT " + json.dumps(out))
""") % {"uid": NOBODY}


def created_by_nobody(root: Path) -> list[tuple[str, int, int, bool]]:
    """(path, mode, uid, is_dir) of everything under *root*, root included."""
    out = []
    for dirpath, _dirnames, filenames in os.walk(root):
        st = os.lstat(dirpath)
        out.append((dirpath, stat.S_IMODE(st.st_mode), st.st_uid, True))
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out.append((p, stat.S_IMODE(st.st_mode), st.st_uid, stat.S_ISDIR(st.st_mode)))
    return out


@pytest.fixture
def open_tmp():
    """A temp folder uid 65534 can reach (pytest's own is under a root-only folder)."""
    d = Path(tempfile.mkdtemp(prefix="pp-perms-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("umask", ["022", "000"])
def test_archive_created_by_a_user_is_private(open_tmp, umask):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534 (CI runs as root)")
    tmp_path = open_tmp
    data = tmp_path / "data"
    dicomgen.write_series(data / "s1", 4, series_uid="1.2.840.81.1", rows=16, cols=16)
    dicomgen.write_series(data / "s2", 3, series_uid="1.2.840.81.2", rows=16, cols=16, modality="MR")
    for p in [tmp_path, *tmp_path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    home = tmp_path / "home"
    users = tmp_path / "users"            # a folder the user owns, for the explicit path
    for d in (home, users):
        d.mkdir()
        os.chown(d, NOBODY, NOBODY)
    nested = users / "a" / "b" / "archive"
    warm = tmp_path / "warm"
    r = subprocess.run([sys.executable, "-c", CHILD, str(data), str(warm), str(home), str(nested), umask],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert out["import"] == 0 and out["import_nested"] == 0 and out["rebuild"] == 0 and out["verify"] == 0
    assert out["rows"] == 2 and out["search"] == 2
    default = Path(out["default"])
    # everything PocketPACS created for the user: the default archive and every
    # folder it made on the way (under HOME), the nested archive and its parents
    made = created_by_nobody(home) + created_by_nobody(users / "a")
    made = [m for m in made if m[0] != str(home)]
    assert any(p == str(default / "data.mdb") for p, *_ in made)
    assert any(p == str(nested / "data.mdb") for p, *_ in made)
    wrong = [(p, oct(mode), uid) for p, mode, uid, is_dir in made
             if uid != NOBODY or mode != (0o700 if is_dir else 0o600)]
    assert wrong == [], wrong
    files = [p for p, _m, _u, d in made if not d]
    assert len(files) >= 8          # data.mdb, lock.mdb, writer.lock, secret.key in both archives


def test_write_private_file_is_atomic_owner_only_and_never_follows_a_link(tmp_path):
    from pocketpacs.paths import write_private_file

    old = os.umask(0)            # the worst umask: the file is still 0600
    try:
        p = tmp_path / "roots.json"
        assert write_private_file(p, b"first") is True
        assert p.read_bytes() == b"first" and stat.S_IMODE(p.stat().st_mode) == 0o600
        victim = tmp_path / "victim"
        victim.write_bytes(b"keep")
        p.unlink()
        p.symlink_to(victim)     # a link planted at the target is replaced, not written through
        assert write_private_file(p, b"second") is True
        assert not p.is_symlink() and p.read_bytes() == b"second" and victim.read_bytes() == b"keep"
        # first writer wins: an existing file is left as it is
        assert write_private_file(p, b"third", keep_existing=True) is False
        assert p.read_bytes() == b"second"
        q = tmp_path / "secret"
        assert write_private_file(q, b"\x00" * 32, keep_existing=True) is True
        assert q.read_bytes() == b"\x00" * 32 and stat.S_IMODE(q.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["roots.json", "secret", "victim"]  # no temp left


# ---- issue 13: an archive folder another local user could change ------------------------------

REFUSE_CHILD = textwrap.dedent("""
    import contextlib, io, json, os, sys
    data, warm = sys.argv[1:3]
    cases = json.loads(sys.argv[3])
    from pocketpacs import cli
    assert cli.main(["--archive", warm, "import", data]) == 0   # as root: load every module first
    os.setgroups([])
    os.setgid(%(uid)d)
    os.setuid(%(uid)d)
    assert os.getuid() == %(uid)d and os.geteuid() == %(uid)d
    out = {}
    for name, archive in cases.items():
        for cmd in (["import", data], ["rebuild"], ["check"], ["stats"]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = cli.main(["--archive", archive, *cmd])
            out[name + " " + cmd[0]] = [rc, err.getvalue()]
    print("RESULT " + json.dumps(out))
""") % {"uid": NOBODY}


def test_an_archive_folder_another_user_could_change_is_refused_as_a_second_uid(open_tmp):
    """As uid 65534: an archive folder of its own that others may write, one
    owned by another user (root here) that it may write, one reached through
    its own link into a folder others may write, and one under such a folder
    are refused by import, rebuild, check and stats with exit 2 and a message
    naming the folder and why; nothing is written into them.  A private folder of its own is used as before."""
    require_system(os.geteuid() == 0, "root, to run a child as uid 65534 (CI runs as root)")
    tmp = open_tmp
    data = tmp / "data"
    dicomgen.write_series(data / "s1", 3, series_uid="1.2.840.81.9", rows=16, cols=16)
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    home = tmp / "home"
    shared = tmp / "shared"              # a root-owned folder anyone may write (no sticky bit)
    for d in (home, shared):
        d.mkdir()
    os.chown(home, NOBODY, NOBODY)
    shared.chmod(0o777)

    def folder(p: Path, mode: int, uid: int = NOBODY) -> Path:
        p.mkdir()
        os.chown(p, uid, uid)
        p.chmod(mode)
        return p

    writable = folder(home / "writable", 0o777)
    others = folder(tmp / "others", 0o777, uid=0)
    folder(shared / "target", 0o700)
    link = home / "link"
    link.symlink_to(shared / "target")
    os.lchown(link, NOBODY, NOBODY)
    under = folder(shared / "under", 0o700)
    ok = home / "mine"
    cases = {"writable": writable, "others": others, "link": link, "under": under, "ok": ok}
    expect = {"writable": (writable, "may be written by other users (mode 777)"),
              "others": (others, "is owned by another user (uid 0)"),
              "link": (shared, "a folder above it, may be written by other users"),
              "under": (shared, "a folder above it, may be written by other users")}
    r = subprocess.run([sys.executable, "-c", REFUSE_CHILD, str(data), str(tmp / "warm"),
                        json.dumps({k: str(v) for k, v in cases.items()})],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    for cmd in ("import", "rebuild", "stats"):   # (check runs a child interpreter, not reachable as 65534)
        assert out[f"ok {cmd}"][0] == 0, (cmd, out[f"ok {cmd}"])
    assert (ok / "data.mdb").exists() and stat.S_IMODE(ok.stat().st_mode) == 0o700
    for name, (where, why) in expect.items():
        for cmd in ("import", "rebuild", "check", "stats"):
            rc, err = out[f"{name} {cmd}"]
            assert rc == 2, (name, cmd, rc, err)
            assert f"the archive folder {cases[name]} is refused" in err and str(where) in err and why in err, \
                (name, cmd, err)
    assert list(writable.iterdir()) == [] and stat.S_IMODE(writable.stat().st_mode) == 0o777  # left alone
    assert list(others.iterdir()) == [] and list((shared / "target").iterdir()) == [] and list(under.iterdir()) == []


@pytest.mark.parametrize("name", ["open.mark", "writer.lock", "roots.json", "roots.json.tmp"])
def test_a_link_planted_at_a_fixed_name_is_never_written_through(tmp_path, name):
    """A symbolic link at ``open.mark``, the lock file, ``roots.json`` or its
    old temporary name, pointing at a victim file: opening the archive and
    importing leave the victim as it was (issue 13)."""
    import pocketpacs

    data = tmp_path / "data"
    dicomgen.write_series(data, 2, series_uid="1.2.840.81.10", rows=8, cols=8)
    arc = tmp_path / "archive"
    with pocketpacs.open_archive(arc):
        pass
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"the victim's own words\n")
    target = arc / name
    if target.exists():
        target.unlink()
    target.symlink_to(victim)
    try:
        with pocketpacs.open_archive(arc) as ar:
            ar.import_folder(data)
            assert ar.roots() == [str(data)]
    except pocketpacs.ArchiveError as e:            # refused is fine too, written through is not
        assert name in str(e) and "symbolic link" in str(e), e
    assert victim.read_bytes() == b"the victim's own words\n"


def test_the_app_says_plainly_that_an_unsafe_archive_folder_is_not_used(tmp_path):
    """The app's session: the start-up notice and a command's error say the
    folder is not used and why in plain words; it is neither read (no deep
    check) nor reported as damaged, and nothing is written into it."""
    from pocketpacs.errors import ArchiveUnsafe
    from pocketpacs.ui import protocol
    from pocketpacs.ui.bridge import SCHEMAS
    from pocketpacs.ui.session import Session

    arc = tmp_path / "shared"
    arc.mkdir()
    arc.chmod(0o777)
    s = Session(arc, mode="serve")
    try:
        assert s.startup_check(background=False) == protocol.UNSAFE_ARCHIVE
        with pytest.raises(ArchiveUnsafe) as caught:
            s.cmd_search(protocol.validate_args({}, SCHEMAS["search"]))
        assert str(arc) in str(caught.value) and "may be written by other users" in str(caught.value)
        env = protocol.envelope_for_exception(caught.value)
        assert env["ok"] is False and env["error"]["message"] == protocol.UNSAFE_ARCHIVE
    finally:
        s.close()
    assert list(arc.iterdir()) == [] and stat.S_IMODE(arc.stat().st_mode) == 0o777
