"""The "Export / Share…" dialog and its bridge commands (issue 15).

Bridge level: a real :class:`~pocketpacs.ui.session.Session` on a generated
archive previews a de-identification (no original value in the answer) and
exports through ``share_start`` / ``share_status``; the files are those the
``pocketpacs export --dicom`` command line writes from the same archive, byte
for byte.  Browser level: `pocketpacs serve` driven by Playwright + Chromium
opens the dialog on a selected row, previews, exports into a typed folder and
the files are checked with pydicom.  Skips without Chromium, fails under CI=true.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return S.build_archive(tmp_path_factory.mktemp("ui_share"))


def _tree(root: Path) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _dirs, files in os.walk(root) for f in files}


def test_share_commands_preview_then_export_what_the_cli_writes(built, tmp_path):
    from pocketpacs.ui import bridge
    from pocketpacs.ui.session import Session

    s = Session(str(built["archive"]), mode="serve")
    try:
        rows = bridge.call("search", {})["data"]["rows"]
        row = next(r for r in rows if r["modality"] == "CT")
        se = s.archive.get_series(row["series_id"])
        study_uid = s.archive.study(se.study_key).uid
        originals = {row["patient_id"], se.uid, study_uid}
        opts = ["modified-dates", "patient-characteristics"]

        env = bridge.call("share_preview", {"series_id": row["series_id"], "scope": "study", "options": opts})
        assert env["ok"], env
        pv = env["data"]
        texts = [c["text"] for c in pv["changes"]]
        assert any(t.startswith("PatientName: replaced (") and t.endswith(" chars → pseudonym)") for t in texts)
        assert "SeriesInstanceUID: replaced (%d chars → pseudonym UID)" % len(se.uid) in texts
        assert any(t.startswith("StudyDate: shifted (8 chars") for t in texts)
        assert pv["refused"] is None and pv["instances"] >= row["images"]
        blob = json.dumps(env)
        assert not [v for v in originals if v and v in blob]  # values are masked to their length

        bad = bridge.call("share_preview", {"series_id": row["series_id"], "options": ["no-such-option"]})
        assert not bad["ok"] and bad["error"]["code"] == "bad_request"

        out = tmp_path / "ui"
        env = bridge.call("share_start", {"series_id": row["series_id"], "scope": "study", "deidentify": True,
                                          "options": opts, "path": str(out)})
        assert env["ok"], env
        job = env["data"]["job_id"]
        assert env["data"]["folder"] == "ui"
        end = time.monotonic() + 120
        while True:
            st = bridge.call("share_status", {"job_id": job})["data"]
            if st["done"] or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert st["done"] and st["error"] is None, st
        res = st["result"]
        assert res["instances"] == pv["instances"] and res["studies"] == 1 and res["refused"] == 0
        assert res["files"] == res["instances"] and str(tmp_path) not in json.dumps(st)

        # a folder with files in it: the export goes into a new folder inside it
        env = bridge.call("share_start", {"series_id": row["series_id"], "path": str(out)})
        assert env["ok"] and env["data"]["folder"].startswith("PocketPACS export ")

        # a medium with the portable viewer
        env = bridge.call("share_start", {"series_id": row["series_id"], "deidentify": True, "dicomdir": True,
                                          "viewer": True, "path": str(tmp_path / "cd")})
        assert env["ok"], env
        end = time.monotonic() + 120
        while not (st := bridge.call("share_status", {"job_id": env["data"]["job_id"]})["data"])["done"]:
            assert time.monotonic() < end
            time.sleep(0.1)
        assert st["error"] is None and st["result"]["instances"] == row["images"], st
        assert (tmp_path / "cd" / "DICOMDIR").is_file() and (tmp_path / "cd" / "VIEWER" / "index.html").is_file()
        doc = json.loads((tmp_path / "cd" / "VIEWER" / "index.json").read_text())
        assert [h["shape"][0] for h in doc["series"]] == [row["images"]]
    finally:
        s.close()
    time.sleep(0.5)  # the second (plain) export finishes in the background; its folder is not compared

    cli = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "pocketpacs", "--archive", str(built["archive"]), "export", study_uid,
                    str(cli), "--dicom", "--deidentify", "--keep", *opts], check=True, capture_output=True)
    ui_files = {k: v for k, v in _tree(out).items() if not k.startswith("PocketPACS export ")}
    assert ui_files and ui_files == _tree(cli)
    for d, _dirs, files in os.walk(out / "PAT00001"):
        assert oct(os.stat(d).st_mode & 0o777) == "0o700"
        for f in files:
            assert oct(os.stat(os.path.join(d, f)).st_mode & 0o777) == "0o600"
            ds = pydicom.dcmread(os.path.join(d, f))
            assert ds.PatientIdentityRemoved == "YES" and ds.PatientID != row["patient_id"]


@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 1000, 760) as pg:
        assert pg.evaluate("document.body.dataset.ready") == "1"
        yield pg


def test_the_share_dialog_previews_and_exports_the_selected_series(page, built, tmp_path):
    rows = S.tree_rows(page)
    idx = next(i for i, r in enumerate(rows) if r.get("modality") == "CT")
    page.locator(S.SERIES_ROWS).nth(idx).click()
    page.click("#btn-share")
    S.wait_js(page, "document.getElementById('share-dialog').open")
    assert page.locator("#share-preview-btn").is_disabled()  # a plain copy changes nothing
    page.check("#share-dialog input[name=share-mode][value=deidentify]")
    page.check("#share-options input[value=modified-dates]")
    page.click("#share-preview-btn")
    S.wait_js(page, "document.getElementById('share-dialog').dataset.previewed", timeout=60)
    preview = page.locator("#share-preview").inner_text()
    assert "PatientName: replaced (" in preview and "→ pseudonym)" in preview
    assert "StudyDate: shifted (8 chars → shifted date)" in preview
    assert rows[idx]["patient_id"] not in preview
    out = tmp_path / "shared"
    page.click("#share-go")
    page.fill("#path-input", str(out))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('share-dialog').dataset.done", timeout=120)
    d = S.dataset(page, "#share-dialog")
    assert int(d["instances"]) == int(rows[idx]["images"]), page.locator("#share-text").inner_text()
    assert "exported to “shared”" in page.locator("#share-text").inner_text()
    files = [os.path.join(dd, f) for dd, _x, fs in os.walk(out) for f in fs]
    assert len(files) == int(rows[idx]["images"])
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert ds.PatientID != rows[idx]["patient_id"]
    page.click("#share-close")
    S.wait_js(page, "!document.getElementById('share-dialog').open")


def test_the_tree_menu_opens_the_share_dialog_on_a_study(page):
    """Right-click on a study of the archive tree -> Export / Share… -> the dialog
    acts on that study."""
    page.locator("#series-table tbody tr.study").nth(0).click(button="right")
    S.wait_js(page, "!document.getElementById('row-menu').hidden")
    page.click("#row-menu [data-act=share]")
    S.wait_js(page, "document.getElementById('share-dialog').open")
    assert page.evaluate("document.querySelector('input[name=share-scope]:checked').value") == "study"


# ---- named profiles and cancelling (issue 15) --------------------------------------------------------

class _HeldOpen:
    """A Linux write lease on a source file: whoever opens it (the export's reader) waits in
    ``open()`` until :meth:`release` (or the kernel's lease-break time, 45 s by default), so
    a test can act while an export is stopped on a known file."""

    def __init__(self, path: str):
        import fcntl
        import signal

        self._old = signal.signal(signal.SIGIO, lambda *_a: None)  # the lease-break notice
        self.fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as e:
            os.close(self.fd)
            signal.signal(signal.SIGIO, self._old)
            pytest.skip(f"no file leases on this filesystem ({e.strerror})")

    def release(self):
        import fcntl
        import signal

        if self.fd is not None:
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            os.close(self.fd)
            self.fd = None
            signal.signal(signal.SIGIO, self._old)


PROFILES = {"profiles": {"research": {"description": "dates shifted", "options": ["modified-dates",
                                                                                  "retain-institution"]}}}


def _third_file(archive_path, series_id):
    import pocketpacs

    with pocketpacs.open_archive(archive_path, readonly=True) as ar:
        files = ar.series_files(ar.get_series(series_id), check=False)
    assert len(files) > 4
    return files[2]


def test_share_profiles_are_listed_used_and_a_cancelled_export_leaves_nothing(built, tmp_path):
    from pocketpacs.share import save_profiles
    from pocketpacs.ui import bridge
    from pocketpacs.ui.session import Session

    settings = built["archive"] / "share-profiles.json"
    save_profiles(settings, PROFILES)
    s = Session(str(built["archive"]), mode="serve")
    try:
        env = bridge.call("share_profiles", {})
        assert env["ok"] and env["data"]["error"] is None, env
        assert [p["name"] for p in env["data"]["profiles"]] == ["research"]
        assert env["data"]["profiles"][0]["options"] == ["modified-dates", "retain-institution"]
        row = next(r for r in bridge.call("search", {})["data"]["rows"] if r["modality"] == "CT")
        bad = bridge.call("share_preview", {"series_id": row["series_id"], "profile": "nope"})
        assert not bad["ok"] and "share-profiles.json: profiles.nope: no such profile" in bad["error"]["message"]
        assert str(built["archive"]) not in json.dumps(bad)

        env = bridge.call("share_start", {"series_id": row["series_id"], "profile": "research",
                                          "path": str(tmp_path / "p")})
        assert env["ok"], env
        end = time.monotonic() + 120
        while not (st := bridge.call("share_status", {"job_id": env["data"]["job_id"]})["data"])["done"]:
            assert time.monotonic() < end
            time.sleep(0.1)
        assert st["error"] is None and not st["cancelled"] and st["result"]["instances"] == row["images"]
        ds = pydicom.dcmread(next((tmp_path / "p").rglob("*.dcm")))
        assert {it.CodeValue for it in ds.DeidentificationMethodCodeSequence} == {"113100", "113107", "113112"}

        # an export stopped on its third file (its reads run ahead of the rewriting: it waits
        # there before the first file is done), cancelled, then let go: nothing of it is left
        held = _HeldOpen(_third_file(built["archive"], row["series_id"]))
        try:
            out = tmp_path / "cancelled"
            env = bridge.call("share_start", {"series_id": row["series_id"], "deidentify": True,
                                              "path": str(out)})
            job = env["data"]["job_id"]
            end = time.monotonic() + 30
            while not out.is_dir():                      # the export has begun
                assert time.monotonic() < end
                time.sleep(0.05)
            st = bridge.call("share_status", {"job_id": job})["data"]
            assert not st["done"], st
            assert bridge.call("share_cancel", {"job_id": job})["ok"]
        finally:
            held.release()
        end = time.monotonic() + 60
        while not (st := bridge.call("share_status", {"job_id": job})["data"])["done"]:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert st["cancelled"] and st["error"] is None and st["result"] is None, st
        assert not out.exists()
    finally:
        s.close()
        settings.unlink()


def test_the_share_dialog_offers_profiles_and_cancels_an_export(page, built, tmp_path):
    from pocketpacs.share import save_profiles

    rows = S.tree_rows(page)
    idx = next(i for i, r in enumerate(rows) if r.get("modality") == "CT")
    page.locator(S.SERIES_ROWS).nth(idx).click()
    page.click("#btn-share")
    S.wait_js(page, "document.getElementById('share-dialog').dataset.profiles !== undefined")
    assert page.locator("#share-profile").is_hidden()  # no settings file: no list
    page.click("#share-close")
    settings = built["archive"] / "share-profiles.json"
    save_profiles(settings, PROFILES)
    try:
        page.click("#btn-share")
        S.wait_js(page, "document.getElementById('share-dialog').dataset.profiles === '1'")
        assert page.locator("#share-profile option").nth(1).inner_text() == "research — dates shifted"
        page.select_option("#share-profile", "research")
        assert page.is_checked("#share-dialog input[name=share-mode][value=deidentify]")
        assert page.is_checked("#share-options input[value=modified-dates]")
        assert page.is_checked("#share-options input[value=retain-institution]")
        _cancel_in_the_dialog(page, built, tmp_path, idx)
    finally:
        settings.unlink()


def _cancel_in_the_dialog(page, built, tmp_path, idx):
    assert page.locator("#share-cancel").is_hidden()
    series_id = S.tree_rows(page, full=True)[idx]["id"]
    held = _HeldOpen(_third_file(built["archive"], series_id))
    out = tmp_path / "to-cancel"
    try:
        page.click("#share-go")
        page.fill("#path-input", str(out))
        page.click("#path-ok")
        end = time.monotonic() + 30                     # the export has begun (it waits on the third file)
        while not out.is_dir():
            assert time.monotonic() < end
            time.sleep(0.05)
        S.wait_js(page, "!document.getElementById('share-cancel').hidden")
        page.click("#share-cancel")
        S.wait_js(page, "document.getElementById('share-text').textContent.startsWith('Cancelling')")
    finally:
        held.release()
    S.wait_js(page, "document.getElementById('share-dialog').dataset.cancelled", timeout=60)
    assert page.locator("#share-text").inner_text() == "Export cancelled: the files it had written were removed."
    assert page.locator("#share-cancel").is_hidden() and not out.exists()
    page.click("#share-close")


# ---- the Full Dates and Clean Recognizable Visual Features options (issue 15) --------------------------

def _wait_job(bridge, job_id):
    end = time.monotonic() + 120
    while not (st := bridge.call("share_status", {"job_id": job_id})["data"])["done"]:
        assert time.monotonic() < end
        time.sleep(0.1)
    return st


def test_share_commands_take_full_dates_and_visual_features(built, tmp_path):
    from pocketpacs.ui import bridge
    from pocketpacs.ui.session import Session

    s = Session(str(built["archive"]), mode="serve")
    try:
        row = next(r for r in bridge.call("search", {})["data"]["rows"] if r["modality"] == "CT")
        opts = ["full-dates", "clean-visual-features"]
        env = bridge.call("share_preview", {"series_id": row["series_id"], "options": opts})
        assert env["ok"], env
        texts = [c["text"] for c in env["data"]["changes"]]
        assert env["data"]["refused"] is None  # a chest or abdomen CT shows no face
        assert "LongitudinalTemporalInformationModified: added (UNMODIFIED)" in texts
        assert not [c for c in env["data"]["changes"] if c["action"] == "shifted"]
        bad = bridge.call("share_start", {"series_id": row["series_id"], "deidentify": True,
                                          "options": ["full-dates", "modified-dates"], "path": str(tmp_path / "b")})
        assert not bad["ok"] and bad["error"]["code"] == "bad_request"
        assert "exclude each other" in bad["error"]["message"] and not (tmp_path / "b").exists()
        env = bridge.call("share_start", {"series_id": row["series_id"], "deidentify": True, "options": opts,
                                          "path": str(tmp_path / "o")})
        assert env["ok"], env
        st = _wait_job(bridge, env["data"]["job_id"])
        assert st["error"] is None and st["result"]["instances"] == row["images"], st
        se = s.archive.get_series(row["series_id"])
        src = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
               for p in s.archive.series_files(se)}
        outs = sorted((tmp_path / "o").rglob("*.dcm"))
        assert len(outs) == row["images"]
        for f in outs:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            assert [it.CodeValue for it in ds.DeidentificationMethodCodeSequence] == ["113100", "113102", "113106"]
            assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
        before = pydicom.dcmread(next(iter(src.values())), stop_before_pixels=True)
        after = pydicom.dcmread(outs[0], stop_before_pixels=True)
        assert (after.StudyDate, after.StudyTime) == (before.StudyDate, before.StudyTime)
    finally:
        s.close()


def test_share_commands_refuse_a_head_volume_with_visual_features(corpus, tmp_path):
    """The GE 3D T1 of a head (130 slices): the preview says it would be refused, the export
    refuses it whole and says why; without the option it is exported."""
    import pocketpacs
    from pocketpacs.ui import bridge
    from pocketpacs.ui.session import Session

    with pocketpacs.open_archive(tmp_path / "a") as ar:
        ar.import_folder(corpus / "dcm_qa_ge_mprage")
    s = Session(str(tmp_path / "a"), mode="serve")
    try:
        row, = bridge.call("search", {})["data"]["rows"]
        args = {"series_id": row["series_id"], "options": ["clean-visual-features"]}
        env = bridge.call("share_preview", args)
        assert env["ok"] and env["data"]["refused"].startswith(
            "refused (clean-visual-features): an MR series of 130 images"), env
        env = bridge.call("share_start", {**args, "deidentify": True, "path": str(tmp_path / "o")})
        st = _wait_job(bridge, env["data"]["job_id"])
        res = st["result"]
        assert st["error"] is None and res["instances"] == 0 and res["refused"] == 130, st
        assert res["warnings"][0].startswith("series 1: refused (clean-visual-features)")
        assert not list((tmp_path / "o").rglob("*.dcm"))
        env = bridge.call("share_start", {"series_id": row["series_id"], "deidentify": True,
                                          "path": str(tmp_path / "p")})
        assert _wait_job(bridge, env["data"]["job_id"])["result"]["instances"] == 130
    finally:
        s.close()


def test_the_share_dialog_offers_full_dates_and_visual_features(page, tmp_path):
    rows = S.tree_rows(page)
    idx = next(i for i, r in enumerate(rows) if r.get("modality") == "CT")
    page.locator(S.SERIES_ROWS).nth(idx).click()
    page.click("#btn-share")
    S.wait_js(page, "document.getElementById('share-dialog').open")
    page.check("#share-dialog input[name=share-mode][value=deidentify]")
    page.check("#share-options input[value=modified-dates]")
    page.check("#share-options input[value=full-dates]")  # dates kept as they are, or shifted: one of them
    assert not page.is_checked("#share-options input[value=modified-dates]")
    page.check("#share-options input[value=modified-dates]")
    assert not page.is_checked("#share-options input[value=full-dates]")
    page.check("#share-options input[value=full-dates]")
    page.check("#share-options input[value=clean-visual-features]")
    assert "No recognizable faces" in page.locator("#share-options").inner_text()
    page.click("#share-preview-btn")
    S.wait_js(page, "document.getElementById('share-dialog').dataset.previewed", timeout=60)
    preview = page.locator("#share-preview").inner_text()
    assert "LongitudinalTemporalInformationModified: added (UNMODIFIED)" in preview
    assert "shifted" not in preview
    out = tmp_path / "faces"
    page.click("#share-go")
    page.fill("#path-input", str(out))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('share-dialog').dataset.done", timeout=120)
    assert int(S.dataset(page, "#share-dialog")["instances"]) == int(rows[idx]["images"])
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == int(rows[idx]["images"])
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert [it.CodeValue for it in ds.DeidentificationMethodCodeSequence] == ["113100", "113102", "113106"]
        assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    page.click("#share-close")
