"""The command line's start-up shortcuts give what the long way gives (issue 16).

The parser built for one command line (only the commands it names) parses
it as the whole parser does, and rejects what the whole parser rejects with
the same message; the plugins' entry points read without
``importlib.metadata`` are the ones it finds.
"""
from __future__ import annotations

import contextlib
import io
from importlib.metadata import entry_points as metadata_entry_points

import pytest

from pocketpacs.cli import framework, load_plugins
from pocketpacs.cli.plugins import EntryPoint, _entries, _normalised, entry_points

LINES = [
    ["stats"], ["stats", "--json"], ["--archive", "/tmp/a", "stats"], ["stats", "--archive", "/tmp/a"],
    ["search", "--modality", "CT", "--json"], ["search", "--name", "stats"], ["--archive", "search", "stats"],
    ["import", "--no-progress", "--json", "a", "b"], ["show"], ["rm", "--help"], ["--help"], ["stats", "-h"],
    ["serch"], ["--archive", "stats", "serch"], ["stats", "--bogus"], ["search", "--limit", "x"], [],
]


def _parse(parse) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            res = ("ok", vars(parse()))
        except SystemExit as e:
            res = ("exit", e.code)
    return res, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", LINES, ids=lambda a: " ".join(a) or "(none)")
def test_the_parser_built_for_a_line_parses_it_as_the_whole_parser(argv):
    load_plugins()
    framework._parsed.clear()
    whole = _parse(lambda: framework.build_parser().parse_args(argv))
    built = _parse(lambda: framework.parse_command_line(argv))
    assert built == whole
    if whole[0][0] == "exit" and whole[0][1]:
        assert "error:" in built[2]  # the error was said once, as before
        assert built[2].count("error:") == 1


def test_the_command_is_asked_quietly_then_the_line_parsed_once(capsys):
    load_plugins()
    framework._parsed.clear()
    assert framework._command_of(["--archive", "/tmp/a", "stats", "--json"]) == "stats"
    assert framework._command_of(["stats", "--help"]) is False
    assert framework._command_of(["serch"]) is False
    assert capsys.readouterr() == ("", "")  # quiet
    ns = framework.parse_command_line(["--archive", "/tmp/a", "stats", "--json"])
    ns.json = False  # a copy: the next parse of the line is not changed
    assert framework.parse_command_line(["--archive", "/tmp/a", "stats", "--json"]).json is True


@pytest.mark.parametrize("group", ["pocketpacs.commands", "console_scripts", "pytest11", "no.such.group"])
def test_entry_points_are_those_importlib_metadata_finds(group):
    ours = sorted((e.name, e.value) for e in entry_points(group))
    theirs = sorted((e.name, e.value) for e in metadata_entry_points(group=group))
    assert ours == theirs
    if group == "pocketpacs.commands":
        (ep,) = [e for e in entry_points(group) if e.name == "app"]
        assert callable(ep.load()) and ep.load().__name__ == "register_commands"


def test_entry_points_files_are_read_as_importlib_metadata_reads_them(tmp_path):
    site = tmp_path / "site"
    for folder, text in [("Some_Plugin-1.0.dist-info", "[pocketpacs.commands]\n# a comment\n x = os.path:join\n"
                                                       "[other]\ny = os:getcwd\n"),
                         ("some.plugin-2.0.dist-info", "[pocketpacs.commands]\nshadowed = os:getcwd\n"),
                         ("broken-1.0.dist-info", None),
                         ("old_egg-0.1.egg-info", "[pocketpacs.commands]\nz = os\n")]:
        (site / folder).mkdir(parents=True)
        if text is not None:
            (site / folder / "entry_points.txt").write_text(text)
    got = entry_points("pocketpacs.commands", [str(site), str(tmp_path / "missing")])
    # the first distribution of a normalised name wins (sorted folder names: "Some_Plugin" < "some.plugin")
    assert [(e.name, e.value) for e in got] == [("x", "os.path:join"), ("z", "os")]
    assert got[0].load() is __import__("os").path.join and got[1].load() is __import__("os")
    assert _normalised("Some_Plugin-1.0.dist-info") == _normalised("some.plugin-2.0.dist-info") == "some_plugin"
    assert _entries("[g]\na = m:f [extra]\n", "g") == [("a", "m:f [extra]")]
    assert EntryPoint("a", "os:getcwd [extra]", "g").load() is __import__("os").getcwd
