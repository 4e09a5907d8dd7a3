"""Images without any calibration say so in core's own words (issue 12, "Calibration").

A DICOM image without Pixel Spacing, Imager Pixel Spacing or ultrasound
regions is planned on a 1 px grid; the assembly report (``pocketpacs report
--json``, the NIfTI export's report JSON) says it is "uncalibrated (measured
in px)", as the viewer's assembly panel does, and never speaks of mm pixels
(before: "no Pixel Spacing: 1 mm pixels assumed", which the page rewrote).
A file with Imager Pixel Spacing is calibrated and has no such note.
"""
from __future__ import annotations

import json

from pocketpacs.cli import main
from pocketpacs.images.stackplan import UNCALIBRATED_NOTE
from test_calibration import image_file


def _report(capsys, path) -> dict:
    assert main(["report", "--json", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def _notes(rep: dict) -> list[str]:
    return [n for st in rep["stacks"] for n in st.get("notes", [])]


def test_report_of_an_uncalibrated_image_says_uncalibrated_in_px(tmp_path, capsys):
    rep = _report(capsys, image_file(tmp_path / "plain.dcm", modality="OT"))
    notes = _notes(rep)
    assert UNCALIBRATED_NOTE in notes, notes
    assert "uncalibrated (measured in px)" in UNCALIBRATED_NOTE
    assert not [n for n in notes if "mm pixel" in n or "1 mm" in n], notes


def test_export_report_json_of_an_uncalibrated_image_agrees(tmp_path, capsys):
    src = image_file(tmp_path / "in" / "plain.dcm", modality="OT")
    out = tmp_path / "out" / "plain.nii.gz"
    assert main(["export", "--report", src, str(out)]) == 0
    text = (tmp_path / "out" / "plain.json").read_text(encoding="utf-8")   # beside the NIfTI
    assert "uncalibrated (measured in px)" in text and "1 mm pixels" not in text


def test_a_detector_calibrated_image_has_no_uncalibrated_note(tmp_path, capsys):
    rep = _report(capsys, image_file(tmp_path / "dx.dcm", modality="DX",
                                     extra={"ImagerPixelSpacing": [0.15, 0.15]}))
    assert not [n for n in _notes(rep) if "uncalibrated" in n], _notes(rep)
