"""The ``pocketpacs`` command line: JSON shapes, exit codes, messages."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import dicomgen
from pocketpacs import cli


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=1, series=2, slices=2)
    return root, n


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_import_json_and_exit_codes(tmp_path, data, capsys):
    root, n = data
    arch = tmp_path / "archive"
    rc, out, _ = run(capsys, "--archive", arch, "import", "--json", root)
    rep = json.loads(out)
    assert rc == 0
    assert rep["counts"] == {"seen": n, "indexed": n, "unchanged": 0, "relinked": 0, "duplicate": 0,
                             "conflict": 0, "failed": 0, "missing": 0, "online_again": 0}
    assert rep["failed"] == [] and rep["root"] == str(root)
    (root / "junk.txt").write_text("not dicom")
    rc, out, _ = run(capsys, "--archive", arch, "import", "--json", root)
    rep = json.loads(out)
    assert rc == 1 and rep["counts"]["unchanged"] == n and rep["counts"]["failed"] == 1
    assert rep["failed"] == [{"path": str(root / "junk.txt"), "reason": "not_dicom",
                              "message": rep["failed"][0]["message"]}]
    rc, _, err = run(capsys, "--archive", arch, "import", tmp_path / "missing")
    assert rc == 2 and "no such file or folder" in err
    rc, out, _ = run(capsys, "--archive", arch, "import", root)  # human output
    assert rc == 1 and "not indexed [not_dicom]" in out


def test_search_show_stats(tmp_path, data, capsys, monkeypatch):
    root, n = data
    monkeypatch.setenv("POCKETPACS_ARCHIVE", str(tmp_path / "env-archive"))
    assert run(capsys, "import", "--no-progress", root)[0] == 0
    rc, out, _ = run(capsys, "search", "--json", "--name", "patient1", "--modality", "mr")
    res = json.loads(out)
    assert rc == 0 and res["counts"]["studies"] == 1 and res["counts"]["patients"] == 1
    hit = res["results"][0]
    assert hit["patient"]["name"] == "Patient1^Test" and "MR" in hit["study"]["modalities"]
    rc, out, _ = run(capsys, "search", "--json", "--series", "--modality", "MR")
    res = json.loads(out)
    assert all(s["modality"] == "MR" for h in res["results"] for s in h["series"])
    assert res["counts"]["series"] == 2
    for opt, val in (("--patient-id", "ID0000"), ("--birth-date", "1950-1951"), ("--study-date", "2010"),
                     ("--description", "series 1"), ("--accession", "a00")):
        rc, out, _ = run(capsys, "search", "--json", opt, val)
        assert rc == 0 and json.loads(out)["counts"]["studies"] >= 1, opt
    rc, out, _ = run(capsys, "search", "--name", "nobody")
    assert rc == 1 and "0 studies" in out
    rc, _, err = run(capsys, "search", "--study-date", "2020-13")
    assert rc == 2 and "date" in err
    rc, out, _ = run(capsys, "show", "--json")
    rows = json.loads(out)
    assert rc == 0 and len(rows) == n
    need = {"patient_name", "patient_id", "birth_date", "study_instance_uid", "series_instance_uid",
            "sop_instance_uid", "series_number", "instance_number", "modality", "transfer_syntax", "online",
            "paths"}
    assert all(need <= set(r) for r in rows)
    assert {r["patient_name"] for r in rows} == {"Patient0^Test", "Patient1^Test"}
    study_uid = rows[0]["study_instance_uid"]
    rc, out, _ = run(capsys, "show", study_uid)
    assert rc == 0 and study_uid in out and "#1" in out
    rc, out, _ = run(capsys, "show", "--json", rows[0]["series_instance_uid"])
    assert rc == 0 and len(json.loads(out)["instances"]) == 2
    rc, _, err = run(capsys, "show", "9.9.9")
    assert rc == 2 and "no patient, study or series" in err
    rc, out, _ = run(capsys, "show")
    assert rc == 0 and "Patient0^Test" in out
    rc, out, _ = run(capsys, "stats", "--json")
    st = json.loads(out)
    assert rc == 0 and st["instances"] == n and st["roots"] == [str(root)]


def test_rm_verify_rebuild(tmp_path, data, capsys):
    root, n = data
    a = ["--archive", tmp_path / "ar"]
    run(capsys, *a, "import", root)
    rc, out, _ = run(capsys, *a, "rm", "--json", "--series", "1.2.826.0.2.0.0.0.0")
    assert rc == 0 and json.loads(out) == {"instances": 2}
    assert (root / "p0" / "s0" / "r0" / "IM00001").exists()
    rc, out, _ = run(capsys, *a, "verify", "--json")
    assert rc == 0 and json.loads(out)["ok"] and json.loads(out)["instances"] == n - 2
    (root / "p1" / "s0" / "r1" / "IM00001").unlink()
    rc, out, _ = run(capsys, *a, "verify", "--json")
    assert rc == 1 and json.loads(out)["went_offline"] == 1
    rc, out, _ = run(capsys, *a, "rebuild", "--json")
    assert rc == 0 and json.loads(out)[0]["counts"]["indexed"] == n - 1
    rc, _, _ = run(capsys, *a, "rm", "--instance", "1.2.3.4.5.6.7")
    assert rc == 1
    assert run(capsys, *a, "rm")[0] == 2


_HOLD = textwrap.dedent("""
    import sys, time, pocketpacs
    ar = pocketpacs.open_archive(sys.argv[1])
    print("ready", flush=True)
    time.sleep(60)
""")


def test_locked_archive_message(tmp_path, data, capsys):
    root, _ = data
    arch = tmp_path / "ar"
    run(capsys, "--archive", arch, "import", root)
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(arch)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        rc, _, err = run(capsys, "--archive", arch, "import", root)
        assert rc == 3 and "being written by another PocketPACS process" in err and str(arch) in err
        rc, out, _ = run(capsys, "--archive", arch, "stats", "--json")  # reading still works
        assert rc == 0 and json.loads(out)["instances"] > 0
    finally:
        p.kill()
        p.wait()


def test_usage_errors_and_registry(capsys, monkeypatch, tmp_path):
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    capsys.readouterr()
    monkeypatch.setattr(cli.framework, "COMMANDS", dict(cli.COMMANDS))

    @cli.command("hello", "say hello", lambda p: p.add_argument("who"))
    def cmd_hello(args):
        print(f"hello {args.who}")
        return 0

    assert cli.main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert {"import", "search", "show", "rm", "verify", "rebuild", "stats", "hello"} <= set(cli.framework.COMMANDS)


def test_console_script_runs(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pocketpacs", "--archive", str(tmp_path / "a"), "stats", "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 4 and "no archive" in res.stderr


def test_progress_bar_on_a_terminal(tmp_path, data, capsys, monkeypatch):
    root, n = data
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    from pocketpacs.archive import ingest

    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 0.0)
    rc, out, err = run(capsys, "--archive", tmp_path / "ar", "import", root)
    assert rc == 0 and f"{n} files" in out and "files/s" in err


@pytest.mark.parametrize("args", [["check", "--help"], ["import"], ["rebuild", "--nope"]])
def test_help_and_usage_errors_print_once(tmp_path, args):
    """The console entry (archive commands run in a guarded child) prints a
    command's help or usage error once, not once per process."""
    res = subprocess.run([sys.executable, "-m", "pocketpacs", "--archive", str(tmp_path / "a"), *args],
                         capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert out.count("usage: pocketpacs") == 1, out
    assert res.returncode == (0 if "--help" in args else 2)


# ---- global options after the command; one command table for every entry point -------------

@pytest.mark.parametrize("order", ["before", "after"])
def test_archive_option_before_or_after_the_command(tmp_path, data, capsys, monkeypatch, order):
    """``pocketpacs import|search|show ... --archive X`` works like ``pocketpacs --archive X import ...``."""
    root, n = data
    monkeypatch.delenv("POCKETPACS_ARCHIVE", raising=False)
    arch = tmp_path / "archive"

    def argv(cmd, *rest):
        return ("--archive", arch, cmd, *rest) if order == "before" else (cmd, "--archive", arch, *rest)

    rc, out, err = run(capsys, *argv("import", "--json", root))
    assert rc == 0 and json.loads(out)["counts"]["indexed"] == n, err
    rc, out, err = run(capsys, *argv("search", "--json"))
    assert rc == 0 and json.loads(out)["counts"]["instances"] == n, err
    rc, out, err = run(capsys, "search", "--json", "--name", "patient1", "--archive", arch)  # at the end
    assert rc == 0 and json.loads(out)["counts"]["patients"] == 1, err
    assert (arch / "data.mdb").exists()


def test_archive_option_after_the_command_does_not_clobber_the_one_before(monkeypatch):
    from pocketpacs.ui import launch

    monkeypatch.setattr(cli.framework, "COMMANDS", dict(cli.COMMANDS))
    monkeypatch.setattr(cli.framework, "DEFAULT_COMMAND", None)
    launch.register_commands()
    ap = cli.build_parser()
    for cmd in ("import", "search", "serve", "app", "demo"):
        rest = ["/some/folder"] if cmd == "import" else []
        for argv in (["--archive", "A", cmd, *rest], [cmd, "--archive", "A", *rest], [cmd, *rest, "--archive", "A"]):
            args = ap.parse_args(argv)
            assert (args.command, args.archive) == (cmd, "A"), argv
        assert ap.parse_args([cmd, *rest]).archive is None
        assert ap.parse_args(["--archive", "B", cmd, *rest, "--archive", "A"]).archive == "A"
    args = ap.parse_args(["serve", "--archive", "A", "--port", "8123", "--readonly"])
    assert (args.archive, args.port, args.readonly) == ("A", 8123, True)


#: The three ways to start PocketPACS; they must accept the same commands.
_CONSOLE_SCRIPT = [sys.executable, "-c", textwrap.dedent("""
    import sys
    from importlib.metadata import entry_points
    (ep,) = entry_points(group="console_scripts", name="pocketpacs")
    sys.argv[0] = "pocketpacs"
    sys.exit(ep.load()())
""")]
ENTRY_POINTS = {"pocketpacs": _CONSOLE_SCRIPT,
                "python -m pocketpacs": [sys.executable, "-m", "pocketpacs"],
                "python -m pocketpacs.ui": [sys.executable, "-m", "pocketpacs.ui"]}


def _listed_commands(help_text: str) -> list[str]:
    import re

    block = help_text.split("positional arguments:", 1)[1].split("options:", 1)[0]
    return re.findall(r"^ {4}(\w+)\b", block, re.M)


def test_every_entry_point_has_the_same_commands():
    helps = {}
    for name, cmd in ENTRY_POINTS.items():
        res = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (name, res.stderr)
        helps[name] = res.stdout
    listed = {name: _listed_commands(text) for name, text in helps.items()}
    assert set(map(tuple, listed.values())) == {tuple(listed["pocketpacs"])}, listed
    assert {"import", "search", "show", "rm", "verify", "check", "rebuild", "stats", "export", "report",
            "app", "serve", "demo"} <= set(listed["pocketpacs"])
    assert len(set(helps.values())) == 1, helps                       # the very same parser
    for sub in (["serve", "--help"], ["import", "--help"]):            # and the same subcommands
        outs = {subprocess.run([*cmd, *sub], capture_output=True, text=True, timeout=120).stdout
                for cmd in ENTRY_POINTS.values()}
        assert len(outs) == 1 and "--archive" in outs.pop(), sub


def test_every_entry_point_runs_archive_commands(tmp_path):
    for name, cmd in ENTRY_POINTS.items():
        res = subprocess.run([*cmd, "stats", "--json", "--archive", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 4 and "no archive" in res.stderr, (name, res.stderr)


def test_search_limit_must_be_at_least_one(tmp_path, data, capsys):
    """``search --limit -5`` (or 0) was accepted and listed nothing: a usage error now (issue 13)."""
    root, _ = data
    a = ["--archive", tmp_path / "ar"]
    assert run(capsys, *a, "import", "--no-progress", root)[0] == 0
    for bad in ("-5", "0", "two"):
        rc, out, err = run(capsys, *a, "search", "--limit", bad)
        assert rc == 2 and out == "" and "--limit" in err, (bad, err)
    assert "must be at least 1" in run(capsys, *a, "search", "--limit", "-5")[2]
    rc, out, _ = run(capsys, *a, "search", "--limit", "1", "--json")
    assert rc == 0 and len(json.loads(out)["results"]) == 1
