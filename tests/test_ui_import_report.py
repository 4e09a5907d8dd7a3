"""The import report the page shows adds up (issue 17).

Every file an import looks at is counted exactly once: added, already
present, moved (relinked), a duplicate copy, in conflict or skipped.  Before,
the page said "Added 477, skipped 133" for 657 files: duplicates and
conflicts were left out.
"""
from __future__ import annotations

import shutil

import dicomgen
import pocketpacs
from pocketpacs.ui.import_jobs import summarize_report

PARTS = ("added", "unchanged", "relinked", "duplicates", "conflicts", "skipped")


def test_every_file_is_counted_once(tmp_path):
    root = tmp_path / "data"
    files = dicomgen.write_series(root / "a", 3, series_uid="1.2.826.0.17.1")
    shutil.copy(files[0], root / "copy.dcm")                         # a duplicate copy
    dicomgen.write(root / "clash.dcm", series_uid="1.2.826.0.17.1",  # same SOP UID, other pixels
                   sop_uid="1.2.826.0.17.1.2", instance_number=2, rows=8, cols=8)
    (root / "notes.txt").write_text("not DICOM")                     # skipped
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        s = summarize_report(ar.import_folder(root), str(root))
        assert s["seen"] == 6 == sum(s[k] for k in PARTS)
        assert (s["added"], s["duplicates"], s["conflicts"], s["skipped"]) == (3, 1, 1, 1)
        (root / "b").mkdir()
        shutil.move(files[2], root / "b" / "moved.dcm")              # moved: found again
        s = summarize_report(ar.import_folder(root), str(root))
        assert s["seen"] == 6 == sum(s[k] for k in PARTS)
        assert s["relinked"] == 1 and s["added"] == 0
