"""Compare (issue 17): two or four viewports, each with its own series, linked on demand.

The archive is written here with pydicom (:mod:`dicomgen`) so the Frame of
Reference, slice positions, dates and descriptions are chosen: one patient's
current CT study holds two series in one Frame of Reference with different
slice spacing and offset, a third in another Frame of Reference, and a series
whose files are gone; earlier and later CT studies (the priors), an MR series
and another patient's CT that ``priors`` must leave out.  The server side
(``priors``, the header's ``frame_of_reference``, one volume job per
viewport) is checked through the real session; the page through
`pocketpacs serve` in headless Chromium.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import dicomgen
import ppui_support as S

FOR_A = "1.2.826.0.1.3680043.17.100"      # current study: series A1 and A2
FOR_B = "1.2.826.0.1.3680043.17.200"      # current study: series A3
PID = "CMP17"
AXIAL = [1, 0, 0, 0, 1, 0]
CORONAL = [1, 0, 0, 0, 0, -1]

#: (study, series uid suffix, modality, description, slices, first z, spacing, FoR, orientation)
SERIES = [
    ("A", "1", "CT", "Thorax 2.5mm", 20, 0.0, 2.5, FOR_A, AXIAL),
    ("A", "2", "CT", "Thorax 1.25mm", 40, 1.0, 1.25, FOR_A, AXIAL),
    ("A", "3", "CT", "Other frame", 15, 100.0, 3.0, FOR_B, AXIAL),
    ("A", "9", "CT", "Gone", 6, 0.0, 2.0, FOR_A, AXIAL),
    ("B", "1", "CT", "Thorax 2,5 mm", 18, 5.0, 2.5, "1.2.826.0.1.3680043.17.300", AXIAL),
    ("B", "2", "CT", "Thorax 2.5mm", 12, 0.0, 2.5, "1.2.826.0.1.3680043.17.300", CORONAL),
    ("B", "3", "MR", "Thorax 2.5mm", 10, 0.0, 2.5, "1.2.826.0.1.3680043.17.301", AXIAL),
    ("C", "1", "CT", "Chest", 10, 0.0, 5.0, "1.2.826.0.1.3680043.17.400", AXIAL),
    ("D", "1", "CT", "Thorax late", 10, 0.0, 5.0, "1.2.826.0.1.3680043.17.500", AXIAL),
    ("E", "1", "MR", "Head", 8, 0.0, 5.0, "1.2.826.0.1.3680043.17.600", AXIAL),
]
STUDIES = {"A": "20210501", "B": "20190301", "C": "20170110", "D": "20230815", "E": "20200101"}


def _uid(study: str, series: str | None = None) -> str:
    base = f"1.2.826.0.1.3680043.17.{ord(study)}"
    return base if series is None else f"{base}.{series}"


def write_archive(root: Path) -> dict:
    """Write and import the archive; delete the "Gone" series' files afterwards."""
    import pocketpacs

    files = root / "files"
    for st, se, mod, desc, n, z0, dz, fr, iop in SERIES:
        for i in range(n):
            z = z0 + i * dz
            pos = [0.0, 0.0, z] if iop is AXIAL else [0.0, z, 0.0]
            uid = _uid(st, se)
            dicomgen.write(files / st / se / f"IM{i:04d}.dcm", patient_name="Compare^Pat", patient_id=PID,
                           study_uid=_uid(st), series_uid=uid, sop_uid=f"{uid}.{i + 1}", modality=mod,
                           study_date=STUDIES[st], study_desc=f"Study {st}", series_desc=desc,
                           series_number=int(se), instance_number=i + 1, rows=32, cols=32,
                           extra={"FrameOfReferenceUID": fr, "ImagePositionPatient": pos,
                                  "ImageOrientationPatient": iop})
    # another patient's CT: never a prior of this one
    dicomgen.write_series(files / "other", 4, series_uid="1.2.826.0.1.3680043.17.999.1",
                          patient_name="Else^Other", patient_id="OTHER1", study_uid="1.2.826.0.1.3680043.17.999",
                          study_date="20180101", series_desc="Thorax 2.5mm", rows=32, cols=32)
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
        keys = {s.uid: s.key for st in ar.studies() for s in ar.series(st.key)}
    for p in (files / "A" / "9").iterdir():
        p.unlink()
    return {"archive": root / "archive", "keys": keys}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("ui_compare"))


def key(built, study: str, series: str) -> str:
    return built["keys"][_uid(study, series)]


# ------------------------------------------------------------------ server side
@pytest.fixture
def session(built):
    from pocketpacs.ui.session import Session

    s = Session(str(built["archive"]), readonly=True)
    yield s
    s.close()


def call(name: str, args: dict) -> dict:
    from pocketpacs.ui import bridge

    env = bridge.call(name, args)
    assert env["ok"], env
    return env["data"]


def test_priors_are_the_patients_other_studies_of_the_modality_newest_earlier_first(session, built):
    got = call("priors", {"series_id": key(built, "A", "1")})
    assert got["modality"] == "CT" and got["orientation"] == "axial"
    studies = got["studies"]
    # B (2019) and C (2017) are earlier: most recent first; D (2023) is later; E has no CT
    assert [s["study_date"] for s in studies] == ["2019-03-01", "2017-01-10", "2023-08-15"]
    assert [s["prior"] for s in studies] == [True, True, False]
    b = studies[0]
    assert {s["series_id"] for s in b["series"]} == {key(built, "B", "1"), key(built, "B", "2")}   # no MR
    assert {s["series_id"]: s["orientation"] for s in b["series"]} == {
        key(built, "B", "1"): "axial", key(built, "B", "2"): "coronal"}
    # the same orientation wins over the same description
    assert b["best"] == key(built, "B", "1")
    assert all(s["study_description"] != "Study A" for s in studies)
    # the other patient's CT is not there
    assert sum(len(s["series"]) for s in studies) == 4


def test_priors_of_an_unknown_series_is_a_clear_error(session):
    from pocketpacs.ui import bridge

    env = bridge.call("priors", {"series_id": "ab" * 16})
    assert not env["ok"] and env["error"] == {"code": "not_found", "message": "No such series in the archive."}
    env = bridge.call("priors", {"series_id": "../etc"})
    assert not env["ok"] and env["error"]["code"] == "bad_request"


def test_volume_header_carries_the_frame_of_reference(session, built):
    for (st, se), fr in {("A", "1"): FOR_A, ("A", "2"): FOR_A, ("A", "3"): FOR_B}.items():
        data = call("open_series", {"series_id": key(built, st, se), "slot": f"cmp{se}"})
        hdr = session.volumes.get(data["volume_id"]).wait_header(30.0)
        assert hdr is not None and hdr["frame_of_reference"] == fr


def test_each_viewport_slot_keeps_its_volume(session, built):
    """Four viewports and the main viewer: opening one cancels no other viewport's volume
    (the registry keeps the newest job of every slot), a second open of one slot replaces
    only that slot's job."""
    opened = {}
    for slot, (st, se) in {"main": ("A", "1"), "cmp0": ("A", "1"), "cmp1": ("A", "2"),
                           "cmp2": ("A", "3"), "cmp3": ("B", "1")}.items():
        opened[slot] = call("open_series", {"series_id": key(built, st, se), "slot": slot})["volume_id"]
    for slot, vid in opened.items():
        job = session.volumes.get(vid)
        assert job is not None, slot
        assert job.join(30.0) and job.status()["done"] and not job.status().get("error"), slot
    again = call("open_series", {"series_id": key(built, "C", "1"), "slot": "cmp1"})["volume_id"]
    assert session.volumes.get(again) is not None
    for slot in ("main", "cmp0", "cmp2", "cmp3"):
        assert session.volumes.get(opened[slot]) is not None, slot


# ------------------------------------------------------------------ the page
@pytest.fixture
def page(browser, served):
    pg = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.add_init_script("window.POCKETPACS_TEST_LIMITS = {}; localStorage.clear();")
    pg.goto(served.url)
    S.wait_js(pg, "document.body.dataset.ready")
    assert pg.evaluate("document.body.dataset.ready") == "1", errors
    yield pg
    pg.close()
    assert not errors, errors


def vp(page, i: int) -> dict:
    return S.dataset(page, f"#cmp-vp{i}")


def corner(page, i: int, k: str = "bl") -> str:
    return page.locator(f"#cmp-vp{i} .corner.{k}").inner_text()


def loaded(page, i: int) -> dict:
    S.wait_js(page, f"document.querySelector('#cmp-vp{i}') && document.querySelector('#cmp-vp{i}').dataset.state === 'ready'")
    return vp(page, i)


def open_in(page, sid: str, i: int) -> dict:
    page.evaluate("([sid, i]) => window.POCKETPACS_TEST_HOOK.viewer.openInViewport(sid, i)", [sid, i])
    return loaded(page, i)


def wheel(page, i: int, steps: int) -> None:
    box = page.locator(f"#cmp-vp{i} canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(abs(steps)):
        page.mouse.wheel(0, 100 if steps > 0 else -100)
    S.wait_js(page, f"document.querySelector('#cmp-vp{i}').dataset.drawn !== ''")


def world_z(d: dict) -> float:
    return float(d["pos"])


@pytest.mark.slow
def test_same_frame_of_reference_links_by_world_position(page, built):
    """Two series of one Frame of Reference, 2.5 mm and 1.25 mm apart with another first
    slice: scrolling one moves the other to the slice nearest the same world z."""
    open_in(page, key(built, "A", "1"), 0)
    open_in(page, key(built, "A", "2"), 1)
    assert page.evaluate("document.body.dataset.compare") == "1"
    page.check("#cmp-link-scroll")
    for steps in (3, -7, 2, 30):
        wheel(page, 0, steps)
        a, b = vp(page, 0), vp(page, 1)
        za = world_z(a)
        # A2's slices: z = 1.0 + 1.25 k, k in 0..39
        want = min(39, max(0, round((za - 1.0) / 1.25)))
        assert int(b["slice"]) == want, (a, b)
        assert abs(world_z(b) - (1.0 + 1.25 * want)) < 1e-3
        assert abs(world_z(b) - za) <= 1.25 / 2 + 1e-3 or want in (0, 39)
        assert b["link"] == "world" and "linked by world position" in corner(page, 1)
        assert f"Pos {za:.1f} mm" in corner(page, 0)
    # and the other way round: the 2.5 mm series follows the 1.25 mm one
    wheel(page, 1, -9)
    a, b = vp(page, 0), vp(page, 1)
    assert int(a["slice"]) == min(19, max(0, round(world_z(b) / 2.5)))


@pytest.mark.slow
def test_different_frame_of_reference_links_by_index_and_says_so(page, built):
    open_in(page, key(built, "A", "1"), 0)
    open_in(page, key(built, "A", "3"), 1)
    page.check("#cmp-link-scroll")
    a0, b0 = int(vp(page, 0)["slice"]), int(vp(page, 1)["slice"])
    wheel(page, 0, 4)
    a, b = vp(page, 0), vp(page, 1)
    assert int(a["slice"]) == a0 + 4 and int(b["slice"]) == b0 + 4
    for i in (0, 1):
        assert vp(page, i)["link"] == "index"
        assert "linked by slice index (no common frame of reference)" in corner(page, i)
    # unlinked: the other viewport stays, and the notice goes
    page.uncheck("#cmp-link-scroll")
    wheel(page, 0, 2)
    assert int(vp(page, 1)["slice"]) == b0 + 4 and "linked by" not in corner(page, 1)


@pytest.mark.slow
def test_window_and_zoom_linking(page, built):
    open_in(page, key(built, "A", "1"), 0)
    open_in(page, key(built, "A", "3"), 1)
    w1 = (vp(page, 1)["wc"], vp(page, 1)["ww"])
    box = page.locator("#cmp-vp0 canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def right_drag(dx, dy):
        page.mouse.move(cx, cy)
        page.mouse.down(button="right")
        page.mouse.move(cx + dx, cy + dy, steps=4)
        page.mouse.up(button="right")

    right_drag(40, 20)                          # not linked: only viewport 0 changes
    assert (vp(page, 1)["wc"], vp(page, 1)["ww"]) == w1
    assert (vp(page, 0)["wc"], vp(page, 0)["ww"]) != w1
    page.check("#cmp-link-window")              # linking copies the active window at once
    S.wait_js(page, "document.querySelector('#cmp-vp1').dataset.wc === document.querySelector('#cmp-vp0').dataset.wc")
    right_drag(-30, 10)
    S.wait_js(page, "document.querySelector('#cmp-vp1').dataset.ww === document.querySelector('#cmp-vp0').dataset.ww"
                    " && document.querySelector('#cmp-vp1').dataset.wc === document.querySelector('#cmp-vp0').dataset.wc")
    a = vp(page, 0)
    assert f"W {round(float(a['ww']))}  L {round(float(a['wc']))}" in corner(page, 1, "br")
    # zoom/pan
    page.check("#cmp-link-zoom")
    page.mouse.move(cx, cy)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    S.wait_js(page, "document.querySelector('#cmp-vp1').dataset.zoom !== '1'")
    assert vp(page, 1)["zoom"] == vp(page, 0)["zoom"] != "1"


@pytest.mark.slow
def test_open_prior_opens_the_closest_series_of_the_latest_earlier_study(page, built):
    open_in(page, key(built, "A", "1"), 0)
    page.click("#cmp-prior")
    d = loaded(page, 1)
    vid = d["vid"]
    h = S.fetch_header(page, vid)
    assert h["labels"]["study_date"] == "2019-03-01" and h["labels"]["series_description"] == "Thorax 2,5 mm"
    assert "Prior: 2019-03-01" in page.locator("#cmp-status").inner_text()
    assert "2019-03-01" in corner(page, 1, "tr") and "Thorax 2,5 mm" in corner(page, 1, "tr")
    assert "Thorax 2.5mm" in corner(page, 0, "tr")      # the current series stays


@pytest.mark.slow
def test_failed_open_clears_only_its_viewport(page, built):
    open_in(page, key(built, "A", "1"), 0)
    open_in(page, key(built, "A", "2"), 1)
    before0 = vp(page, 0)
    page.evaluate("([sid]) => window.POCKETPACS_TEST_HOOK.viewer.openInViewport(sid, 1)", [key(built, "A", "9")])
    S.wait_js(page, "document.querySelector('#cmp-vp1').dataset.state === 'failed'")
    d1 = vp(page, 1)
    assert "vid" not in d1 and "slice" not in d1 and "drawn" not in d1
    for k in ("tl", "tr", "bl", "br"):
        assert corner(page, 1, k) == ""
    assert page.locator("#cmp-vp1 .cmp-msg").inner_text().startswith("Could not open this series:")
    assert not page.locator("#error-banner").is_hidden()
    # the canvas of the failed viewport is black; viewport 0 kept its series
    black = page.evaluate("""() => {
      const c = document.querySelector('#cmp-vp1 canvas'), gl = c.getContext('webgl2');
      const px = new Uint8Array(c.width * c.height * 4);
      gl.readPixels(0, 0, c.width, c.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
      return px.every((v, i) => i % 4 === 3 || v === 0);
    }""")
    assert black
    after0 = vp(page, 0)
    assert after0["vid"] == before0["vid"] and after0["state"] == "ready" and after0["drawn"] != ""
    assert "Compare, Pat" in corner(page, 0, "tl")


@pytest.mark.slow
def test_archive_double_click_opens_into_the_active_viewport_and_layout_is_remembered(page, built):
    sid1, sid2 = key(built, "A", "1"), key(built, "A", "2")
    page.locator(f"#series-table tbody tr[data-series-id='{sid1}']").dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    page.click("#btn-compare")
    loaded(page, 0)                                     # the main viewer's series, adopted
    assert "Thorax 2.5mm" in corner(page, 0, "tr")
    page.locator("#cmp-vp1 canvas").click()             # viewport 1 active
    page.select_option("#cmp-layout", "2x2")
    page.check("#cmp-link-scroll")
    page.click("#btn-archive")
    page.locator(f"#series-table tbody tr[data-series-id='{sid2}']").dblclick()
    loaded(page, 1)
    assert "Thorax 1.25mm" in corner(page, 1, "tr") and "Thorax 2.5mm" in corner(page, 0, "tr")
    assert page.evaluate("document.getElementById('cmp-vp3').hidden") is False
    saved = page.evaluate("localStorage.getItem('pocketpacs.compare.CT')")
    assert json.loads(saved) == {"layout": "2x2", "link": {"scroll": True, "zoom": False, "window": False}}
    # nothing of a patient in the browser's storage
    assert page.evaluate("Object.keys(localStorage)") == ["pocketpacs.compare.CT"]
    # a later CT in the first viewport brings the remembered layout back
    page.click("#cmp-exit")
    page.evaluate("localStorage.setItem('pocketpacs.compare.CT', JSON.stringify({layout: '1x2', link: {scroll: false, zoom: true, window: true}}))")
    page.evaluate("([sid]) => window.POCKETPACS_TEST_HOOK.viewer.openInViewport(sid, 0)", [key(built, "D", "1")])
    loaded(page, 0)
    S.wait_js(page, "document.getElementById('cmp-vp2').hidden")
    assert page.evaluate("[...['scroll','zoom','window']].map(k => document.getElementById('cmp-link-' + k).checked)") == [
        False, True, True]


@pytest.mark.slow
def test_a_series_dropped_on_a_viewport_opens_there(page, built):
    open_in(page, key(built, "A", "1"), 0)
    page.evaluate("""([sid]) => {
      const dt = new DataTransfer();
      dt.setData('application/x-pocketpacs-series', sid);
      const el = document.getElementById('cmp-vp1');
      el.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
      el.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [key(built, "A", "3")])
    loaded(page, 1)
    assert "Other frame" in corner(page, 1, "tr") and "Thorax 2.5mm" in corner(page, 0, "tr")
    assert page.evaluate("document.getElementById('compare-grid').dataset.active") == "1"


@pytest.mark.corpus
def test_real_series_headers_carry_their_frame_of_reference(corpus, tmp_path):
    """Real scanner series (Philips CT; Siemens mosaics acquired axial, coronal and sagittal in
    one session): the volume header's frame_of_reference is the files' Frame of Reference UID
    as pydicom reads it, planned from the archive's rows or from the files alike."""
    import pydicom

    import pocketpacs
    from pocketpacs.ui import sources

    sets = [corpus / "dcm_qa_ct_philips_S21570" / "In", corpus / "dcm_qa_orientation" / "In"]
    sets = [s for s in sets if s.is_dir()]
    if not sets:
        pytest.skip("the corpus has neither the Philips CT nor the orientation set")
    checked = 0
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        for s in sets:
            ar.import_folder(s)
        for st in ar.studies():
            for se in ar.series(st.key):
                files = ar.series_files(se.key)
                want = {str(pydicom.dcmread(f, stop_before_pixels=True).get("FrameOfReferenceUID", ""))
                        for f in files}
                assert len(want) == 1, se.description
                src = sources.open_dicom_series(ar, se.key)
                assert src.header().to_json()["frame_of_reference"] == want.pop() != ""
                checked += 1
    assert checked >= 2


@pytest.mark.slow
def test_compare_uses_the_users_keys(page, built):
    """Compare's keys are the viewer's rows of the shortcuts table: a key the user
    rebinds in the help overlay moves the active viewport, the old key no longer does."""
    open_in(page, key(built, "A", "1"), 0)
    grid = page.locator("#cmp-vp0 canvas")
    grid.click()
    s0 = int(vp(page, 0)["slice"])
    page.keyboard.press("ArrowDown")
    S.wait_js(page, f"document.querySelector('#cmp-vp0').dataset.slice === '{s0 + 1}'")
    page.keyboard.press("?")
    S.wait_js(page, "document.getElementById('help-dialog').open")
    page.click("#help-edit")
    page.click("#help-body button.key-edit[data-action=sliceDown]")
    S.wait_js(page, "document.querySelector('#help-body button.key-edit.capturing[data-action=sliceDown]')")
    page.keyboard.press("j")
    assert page.locator("#help-msg").inner_text() == "Next slice: J"
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('help-dialog').open")
    grid.click()
    page.keyboard.press("j")
    S.wait_js(page, f"document.querySelector('#cmp-vp0').dataset.slice === '{s0 + 2}'")
    page.keyboard.press("ArrowDown")                 # no longer bound
    page.keyboard.press("j")
    S.wait_js(page, f"document.querySelector('#cmp-vp0').dataset.slice === '{s0 + 3}'")
