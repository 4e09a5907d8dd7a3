"""Measurements kept with a series in the archive (issue 17): the
``annotations`` database, its schema-5 migration, the Python API, removal and
rebuild, the media (memory) archive, and the ``measurements`` CLI."""
from __future__ import annotations

import csv
import io
import json
import math
import os

import pytest

import dicomgen
import pocketpacs
from pocketpacs import cli
from pocketpacs.archive import annotations, store
from pocketpacs.errors import ArchiveError, SchemaVersionMismatch

UID = "1.2.826.0.1.3680043.9.7.17.1"

DIST = {"type": "distance", "points": [[0.0, 0.0, 3.0], [30.0, 40.0, 3.0]], "unit": "mm", "view": "native:2",
        "plane": {"native": True, "slice": 2}, "slice": 2, "stack": 0,
        "result": {"mm": 50.0, "unit": "mm", "suffix": ""}}
ANGLE = {"type": "angle", "points": [[10.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 10.0, 3.0]], "unit": "mm",
         "view": "native:2", "plane": {"native": True, "slice": 2}, "slice": 2}
ROI = {"type": "ellipse", "points": [[1.0, 1.0, 2.0], [3.0, 3.0, 2.0]], "unit": "mm", "view": "axial:2.00",
       "plane": {"native": False, "u": [1, 0, 0], "v": [0, 1, 0]},
       "result": {"mean": 12.5, "sd": 1.25, "min": 10, "max": 15, "area": 3.14, "n": 4, "unit": "mm", "suffix": ""}}


@pytest.fixture
def archive_dir(tmp_path):
    folder = tmp_path / "data"
    dicomgen.write_series(folder, 4, series_uid=UID)
    arc = tmp_path / "ar"
    with pocketpacs.open_archive(arc) as ar:
        assert ar.import_folder(folder).indexed == 4
    return arc, folder


def test_saved_measurements_come_back_after_reopen(archive_dir):
    arc, _ = archive_dir
    with pocketpacs.open_archive(arc) as ar:
        assert ar.measurements(UID) == []
        assert ar.save_measurements(UID, [DIST, ANGLE, ROI]) == 3
    with pocketpacs.open_archive(arc, readonly=True) as ar:
        got = ar.measurements(UID)
        se = ar.get_series(UID)
        assert ar.measurements(se.key) == got            # by hex key too
    assert [m["type"] for m in got] == ["distance", "angle", "ellipse"]
    assert got[0]["points"] == DIST["points"] and got[0]["result"]["mm"] == 50.0
    assert got[1]["slice"] == 2 and got[1]["stack"] == 0
    assert got[2]["plane"] == {"native": False, "u": [1.0, 0.0, 0.0], "v": [0.0, 1.0, 0.0]}
    assert got[2]["slice"] is None
    with pocketpacs.open_archive(arc) as ar:                # an empty list deletes the record
        ar.save_measurements(UID, [])
        assert ar.measurements(UID) == []
        with ar._store.read() as t:
            assert t.count("annotations") == 0


def test_bad_measurements_are_refused_by_name(archive_dir):
    arc, _ = archive_dir
    bad = [
        ({**DIST, "type": "circle"}, "measurement 2: type must be one of"),
        ({**DIST, "points": [[0, 0, 0]]}, "measurement 2: a distance has 2 points"),
        ({**DIST, "points": [[0, 0, 0], [0, float("nan"), 0]]}, "measurement 2: point 2 is not a finite number"),
        ({**DIST, "unit": "cm"}, "measurement 2: unit must be mm or px"),
        ({**DIST, "result": {"mm": 1, "evil": "x"}}, "measurement 2: result has an unknown field 'evil'"),
        ({**DIST, "slice": -1}, "measurement 2: slice is not a whole number >= 0"),
    ]
    with pocketpacs.open_archive(arc) as ar:
        ar.save_measurements(UID, [DIST])
        for m, msg in bad:
            with pytest.raises(ValueError, match=msg):
                ar.save_measurements(UID, [ANGLE, m])
        assert ar.measurements(UID) == [annotations.check_measurement(DIST)]   # unchanged
        with pytest.raises(KeyError):
            ar.save_measurements("1.2.3.4.5.6.7", [DIST])
        with pytest.raises(KeyError):
            ar.measurements("1.2.3.4.5.6.7")
    with pocketpacs.open_archive(arc, readonly=True) as ar:
        with pytest.raises(ArchiveError, match="read-only"):
            ar.save_measurements(UID, [DIST])


def test_removed_series_takes_its_measurements_rebuild_keeps_them(archive_dir):
    arc, folder = archive_dir
    with pocketpacs.open_archive(arc) as ar:
        ar.save_measurements(UID, [DIST])
        ar.rebuild()                                        # same files, same series key
        assert ar.measurements(UID)[0]["points"] == DIST["points"]
        assert ar.check() == []
        ar.remove(series=UID)
        with ar._store.read() as t:
            assert t.count("annotations") == 0
        ar.import_folder(folder)
        assert ar.measurements(UID) == []


def test_media_archive_keeps_measurements_in_memory_only(tmp_path):
    folder = tmp_path / "cd"
    dicomgen.write_series(folder, 2, series_uid=UID)
    before = sorted(os.listdir(tmp_path))
    with pocketpacs.open_media(folder) as media:
        assert media.path is None
        media.save_measurements(UID, [DIST])
        assert media.measurements(UID)[0]["result"]["mm"] == 50.0
    assert sorted(os.listdir(tmp_path)) == before
    assert sorted(os.listdir(folder)) == sorted(p.name for p in folder.iterdir())


def test_schema4_archive_gets_the_annotations_database(archive_dir):
    """A schema-4 archive (no annotations database) is refused read-only with
    the upgrade message, and a writable open adds the database (schema 5)."""
    import lmdb

    arc, _ = archive_dir
    env = lmdb.open(str(arc), max_dbs=len(store.DBS) + 4)
    with env.begin(write=True) as t:
        t.drop(env.open_db(b"annotations", txn=t), delete=True)
        t.put(b"schema", b"4", db=env.open_db(b"meta", txn=t))
    env.close()
    with pytest.raises(SchemaVersionMismatch, match="schema 4 and needs an upgrade"):
        pocketpacs.open_archive(arc, readonly=True)
    # left by a writer that did not close (the app killed): the check before the
    # upgrade reads it whole instead of calling it damaged
    from pocketpacs.archive.datafile import OPEN_MARK
    from pocketpacs.archive.integrity import deep_check

    (arc / OPEN_MARK).write_text("1")
    res = deep_check(arc)
    assert res.status == "ok" and "schema 4" in res.message, res.message
    with pocketpacs.open_archive(arc) as ar:
        assert ar._store.schema_version == store.SCHEMA_VERSION >= 5
        assert ar.check() == []
        assert ar.measurements(UID) == []
        ar.save_measurements(UID, [DIST])
    with pocketpacs.open_archive(arc, readonly=True) as ar:
        assert len(ar.measurements(UID)) == 1


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_measurements_text_json_csv(archive_dir, capsys):
    arc, _ = archive_dir
    rc, out, _ = run(capsys, "--archive", arc, "measurements", UID)
    assert rc == 0 and out.strip() == "no measurements kept with this series"
    with pocketpacs.open_archive(arc) as ar:
        ar.save_measurements(UID, [DIST, ANGLE, ROI])
    rc, out, _ = run(capsys, "--archive", arc, "measurements", UID)
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 3
    assert "distance" in lines[0] and "50.0 mm" in lines[0] and "slice 3" in lines[0]
    assert "angle" in lines[1] and "90.0°" in lines[1]
    assert "mean 12.5" in lines[2] and "area 3.1 mm²" in lines[2]
    rc, out, _ = run(capsys, "--archive", arc, "measurements", "--json", UID)
    d = json.loads(out)
    assert rc == 0 and d["series_uid"] == UID and len(d["measurements"]) == 3
    assert d["measurements"][0]["points"] == DIST["points"]
    rc, out, _ = run(capsys, "--archive", arc, "measurements", "--csv", UID)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and list(rows[0]) == list(annotations.CSV_COLUMNS)
    assert [r["type"] for r in rows] == ["distance", "angle", "ellipse"]
    assert float(rows[0]["value"]) == 50.0 and rows[0]["value_unit"] == "mm"
    assert math.isclose(float(rows[1]["value"]), 90.0) and rows[1]["value_unit"] == "deg"
    assert rows[1]["x3"] == "0.0" and rows[1]["y3"] == "10.0"
    assert float(rows[2]["mean"]) == 12.5 and rows[2]["area_unit"] == "mm2" and rows[2]["value"] == ""
    rc, _, err = run(capsys, "--archive", arc, "measurements", "1.2.3.999")
    assert rc == 2 and "no series with this Series Instance UID" in err
    rc, _, err = run(capsys, "--archive", arc, "measurements", "--json", "--csv", UID)
    assert rc == 2 and "--csv: not allowed with argument --json" in err
