"""XSS corpus through the served UI in headless Chromium (issue 7).

Every payload of :mod:`xss_corpus` (script tags, event handlers, javascript:
URLs, attribute breakouts, template literals, CSS, encoded and unicode
variants) is written into ten text elements of its own series -- patient
name and ID, study and series description, accession, institution, referring
physician, protocol, operators' name, image comments -- imported into an
archive and served.  Chromium then shows the archive list, search results,
every series in the viewer (overlay corners), its header panel and its
assembly panel, and the import dialog's report of skipped files whose names
are payloads.

The sweep runs twice: once with the page's real CSP, and once with the CSP
bypassed (Playwright ``bypass_csp``), so that the rendering code itself is
tested -- with no CSP, any payload taken as markup would run its hook.
Counted: hooks that ran (``__xss(n)`` calls, dialogs, requests to the
payloads' URL, CSP violations), elements created from data (tags beyond the
page's own), and cells whose text differs from the data the server sent.
"""
from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S
import xss_corpus as X

pytestmark = pytest.mark.slow

PAYLOADS = X.payloads()
#: bidi controls: embeddings/overrides, isolates, marks.  The page shows each escaped (issue 13).
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(s: str) -> str:
    """What the page shows for *s* (ui/web/js/text.js): bidi controls as ``\\uXXXX``."""
    return BIDI.sub(lambda m: "\\u%04x" % ord(m.group()), s)

#: DICOM keyword -> where the page shows it (besides the header panel).
FIELDS = {
    "PatientName": "list, overlay", "PatientID": "list, overlay", "StudyDescription": "list, overlay",
    "SeriesDescription": "list, overlay", "AccessionNumber": "list", "InstitutionName": "header",
    "ReferringPhysicianName": "header", "ProtocolName": "header", "OperatorsName": "header",
    "ImageComments": "header",
}
#: tags the page itself creates while rendering data (rows, cells, options...)
GROWS = {"TR", "TD", "CANVAS", "BUTTON", "OPTION", "P", "DL", "DT", "DD", "UL", "LI", "SPAN", "DETAILS",
         "SUMMARY"}

INIT = """
window.__xssHits = [];
window.__xss = (n) => { window.__xssHits.push(n); };
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(String(e.violatedDirective) + ' ' + String(e.blockedURI));
});
"""

SCAN = """() => {
  const tags = {};
  const onattrs = [];
  for (const e of document.querySelectorAll('*')) {
    tags[e.tagName] = (tags[e.tagName] || 0) + 1;
    for (const a of e.attributes) {
      if (a.name.toLowerCase().startsWith('on') || /javascript:|xss/i.test(a.value)) onattrs.push(e.tagName + ' ' + a.name);
    }
  }
  return { tags, onattrs, hits: window.__xssHits.slice(), csp: window.__csp.slice() };
}"""


def write_payload_archive(root: Path) -> dict:
    import dicomgen
    import pocketpacs

    files = root / "files"
    for i, p in enumerate(PAYLOADS, 1):
        uid = f"1.2.826.0.1.3680043.77.{i}"
        extra = {k: p for k in FIELDS if k not in ("PatientName", "PatientID", "StudyDescription",
                                                  "SeriesDescription", "AccessionNumber")}
        dicomgen.write(files / f"s{i:03d}.dcm", patient_name=p, patient_id=p, study_desc=p, series_desc=p,
                       accession=p, charset="ISO_IR 192", study_uid=uid, series_uid=uid + ".1",
                       sop_uid=uid + ".1.1", rows=8, cols=8, extra=extra)
    # files whose *names* are payloads (no "/" in a file name): shown in the import report
    junk = root / "junk"
    junk.mkdir()
    for i, p in enumerate(PAYLOADS, 1):
        name = p.replace("/", "\u2215")[:120]
        (junk / name).write_bytes(b"not dicom %d" % i)
    with pocketpacs.open_archive(root / "archive") as ar:
        rep = ar.import_folder(files)
        assert rep.failed == 0, rep.to_json()["failed"][:3]
    return {"archive": root / "archive", "junk": junk}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return write_payload_archive(tmp_path_factory.mktemp("sec_xss"))


def api(served, name, args=None):
    req = urllib.request.Request(f"{served.base}/v1/call/{name}", data=json.dumps(args or {}).encode(),
                                 headers={"X-PocketPACS-Token": served.token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        env = json.loads(r.read())
    assert env["ok"], env
    return env["data"]


def table_rows(page):
    return S.tree_rows(page, full=True)


class Sweep:
    """One browser pass; collects everything a payload could have triggered."""

    def __init__(self, browser, served, bypass_csp: bool):
        self.ctx = browser.new_context(bypass_csp=bypass_csp, viewport={"width": 1100, "height": 700})
        self.ctx.add_init_script(INIT)
        self.page = self.ctx.new_page()
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url) if "xss" in r.url.lower() else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("popup", lambda p: self.requests.append("popup " + p.url))
        self.page.on("framenavigated", lambda f: self.requests.append("navigation " + f.url)
                     if f == self.page.main_frame and self.page.url != self.start_url else None)
        self.served = served
        self.literal_checks = 0
        self.start_url = served.url           # the page keeps its URL (no redirect, issue 13)
        self.page.goto(served.url)
        S.wait_js(self.page, "document.body.dataset.ready")
        self.baseline = self.page.evaluate(SCAN)["tags"]

    def close(self):
        self.ctx.close()

    def check(self, where: str) -> None:
        s = self.page.evaluate(SCAN)
        grown = {t: n for t, n in s["tags"].items() if n > self.baseline.get(t, 0) and t not in GROWS}
        assert grown == {}, (where, "markup accepted", grown)
        assert s["onattrs"] == [], (where, s["onattrs"])
        assert s["hits"] == [] and self.dialogs == [] and self.requests == [], \
            (where, "executed", s["hits"], self.dialogs, self.requests)
        assert s["csp"] == [], (where, "CSP violations", s["csp"])

    def check_list(self, data_rows: list[dict]) -> None:
        shown = {r["id"]: r["cells"] for r in table_rows(self.page)}
        assert len(shown) == len(data_rows)
        for row in data_rows:
            cells = shown[row["series_id"]]
            for col, (text, children) in cells.items():
                want = "" if row[col] is None else visible(str(row[col]))
                assert text == want and children == 0, (col, text, want)
                self.literal_checks += 1
        self.check("list")


def open_and_inspect(sw: Sweep, index: int, by_id: dict, assembly: bool) -> None:
    page = sw.page
    old_vid = S.dataset(page).get("vid", "")
    if page.locator("#browser").is_visible():
        # from the archive list: select the row, open it with the keyboard
        page.locator("#series-table tbody tr.series").nth(index).click()
        sid = page.evaluate("document.querySelector('#series-table tbody tr.series.selected').dataset.seriesId")
        page.evaluate("document.getElementById('view').dataset.drawn = ''")
        page.keyboard.press("Enter")
    else:
        # already in the viewer: the row's own dblclick handler (saves a view switch per series)
        sid = page.evaluate("""(i) => { const tr = document.querySelectorAll('#series-table tbody tr.series')[i];
            tr.dispatchEvent(new MouseEvent('dblclick', {bubbles: true})); return tr.dataset.seriesId; }""", index)
    row = by_id[sid]
    S.wait_js(page, f"(() => {{ const d = document.getElementById('view').dataset;"
                    f" return d.drawn && d.vid && d.vid !== {json.dumps(old_vid)}; }})()")
    vid = S.dataset(page)["vid"]
    # the overlay shows this volume's labels (the header the page fetched)
    labels = S.fetch_header(page, vid)["labels"]
    want_tl = "\n".join(visible(x) for x in (labels["patient_name"], labels["patient_id"], labels["birth_date"]) if x)
    S.wait_js(page, f"document.getElementById('corner-tl').textContent === {json.dumps(want_tl)}")
    # overlay corners: the labels as text, no element inside
    corners = page.evaluate("""['tl','tr'].map(k => { const e = document.getElementById('corner-' + k);
        return [e.textContent, e.childElementCount]; })""")
    tl, tr = corners
    assert tl[1] == 0 and tr[1] == 0
    for key in ("patient_name", "patient_id"):
        assert visible(row[key]) in tl[0], (key, row[key], tl[0])
        sw.literal_checks += 1
    for key in ("study_description", "series_description"):
        assert visible(row[key]) in tr[0], (key, row[key], tr[0])
        sw.literal_checks += 1
    # header panel: every element's value cell equals what the server sent
    if page.locator("#panel").is_hidden():
        page.click("#btn-panel")
    if page.locator("#tab-header").is_hidden():
        page.click("#panel [data-tab=header]")
    data = api(sw.served, "instance_header", {"volume_id": vid, "slice": 0})
    want = {e["keyword"]: e["value"] for e in data["elements"] if e["keyword"] in FIELDS}
    assert len(want) == len(FIELDS), sorted(want)
    uid = next(e["value"] for e in data["elements"] if e["keyword"] == "SOPInstanceUID")
    # this instance's header is shown (its UID, which holds no payload), then compare
    S.wait_js(page, f"""(() => {{ const v = [...document.querySelectorAll('#header-table tbody tr')]
        .find(tr => tr.children[1].textContent === 'SOPInstanceUID');
        return v && v.children[3].textContent === {json.dumps(uid)}; }})()""")
    shown = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#header-table tbody tr')]
        .map(tr => [tr.children[1].textContent, [tr.children[3].textContent, tr.children[3].childElementCount]]))""")
    for kw, value in want.items():
        assert shown[kw] == [visible(value), 0], (kw, shown.get(kw), value)
        sw.literal_checks += 1
    if assembly:
        page.click("#panel [data-tab=assembly]")
        S.wait_js(page, "document.getElementById('report-body').dataset.stacks")
    sw.check(f"series {index}")


def run_sweep(sw: Sweep, served, built, full: bool) -> dict:
    data = api(served, "search", {})
    rows = data["rows"]
    assert len(rows) == len(PAYLOADS)
    sw.check_list(rows)
    order = [r["id"] for r in table_rows(sw.page)]
    by_id = {r["series_id"]: r for r in rows}
    picks = range(len(order)) if full else range(0, len(order), 12)
    for i in picks:
        open_and_inspect(sw, i, by_id, assembly=i % 10 == 0)
    sw.page.click("#btn-archive")
    S.wait_js(sw.page, "!document.getElementById('browser').hidden")
    # search results: type payloads into the search fields
    for p in PAYLOADS[: (12 if full else 4)]:
        sw.page.fill("#search input[name=patient_id]", p)
        sw.page.evaluate("document.body.dataset.tArchive = ''")
        S.wait_js(sw.page, "document.body.dataset.tArchive")
        got = table_rows(sw.page)
        found = api(served, "search", {"patient_id": p})["rows"]
        assert [r["id"] for r in got] == [r["series_id"] for r in found]
        sw.check_list(found)
    sw.page.fill("#search input[name=patient_id]", "")
    # the import dialog lists skipped files by name: names that are payloads
    sw.page.click("#btn-import")
    sw.page.fill("#path-input", str(built["junk"]))
    sw.page.click("#path-ok")
    S.wait_js(sw.page, "!document.getElementById('import-close').hidden", timeout=60)
    sw.page.click("#import-report summary")
    names = sw.page.evaluate("[...document.querySelectorAll('#import-report li')].map(li => [li.textContent, li.childElementCount])")
    shown_names = [t for t, n in names if n == 0 and ": " in t]
    for p in PAYLOADS:
        n = visible(p.replace("/", "\u2215")[:120])
        assert any(t.startswith(n + ": ") for t in shown_names), n
        sw.literal_checks += 1
    sw.check("import report")
    sw.page.click("#import-close")
    assert sw.errors == [], sw.errors
    return {"opened": len(picks)}


def test_xss_corpus_without_csp_none_runs_none_is_markup(browser, served, built):
    """The rendering itself: with the CSP bypassed, nothing runs and nothing is markup."""
    assert len(PAYLOADS) >= 50
    sw = Sweep(browser, served, bypass_csp=True)
    try:
        # the hooks are live in this context: a payload taken as markup would call them
        sw.page.evaluate("(() => { const d = document.createElement('div'); d.innerHTML = '<img src=x onerror=__xss(0)>'; })()")
        S.wait_js(sw.page, "window.__xssHits.length === 1")
        sw.page.evaluate("window.__xssHits.length = 0")
        res = run_sweep(sw, served, built, full=True)
    finally:
        sw.close()
    assert res["opened"] == len(PAYLOADS)
    assert sw.literal_checks >= len(PAYLOADS) * len(FIELDS)
    print(f"\nXSS (no CSP): {len(PAYLOADS)} payloads x {len(FIELDS)} elements + file names, {res['opened']} series"
          f" opened, {sw.literal_checks} cells/labels compared with the data: 0 executed, 0 markup")


def test_xss_corpus_with_the_real_csp(browser, served, built):
    """The page as shipped: the same checks plus 0 CSP violations."""
    sw = Sweep(browser, served, bypass_csp=False)
    try:
        res = run_sweep(sw, served, built, full=False)
    finally:
        sw.close()
    assert res["opened"] >= 5
    print(f"\nXSS (real CSP): {res['opened']} series opened, {sw.literal_checks} cells compared: 0 executed,"
          " 0 markup, 0 CSP violations")


# --------------------------------------------------------------------------- bidi controls (issue 13)
BIDI_FIELDS = {
    "patient_name": "Evil\u202egpj.exe^Mal\u202c", "patient_id": "\u2066ID\u2069\u2067R\u2069",
    "study_desc": "\u200fStudy\u202b\u202d\u2068x\u2069", "series_desc": "\u061cSeries\u202a\u200e",
    "accession": "AC\u202e123",
}


def test_bidi_controls_are_shown_escaped_and_isolated(browser, tmp_path):
    """U+202E and the other bidi controls in names and descriptions are not shown raw: the list,
    the overlay corners and the header panel show them escaped (\\u202e), in elements that isolate
    their text (unicode-bidi: isolate); the text is still set as text, never markup."""
    import dicomgen
    import pocketpacs
    from pocketpacs.ui.server import DataServer
    from pocketpacs.ui.session import Session

    uid = "1.2.826.0.1.3680043.78.1"
    dicomgen.write_series(tmp_path / "files", 3, series_uid=uid + ".1", study_uid=uid, rows=8, cols=8,
                          charset="ISO_IR 192", **BIDI_FIELDS)
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        assert ar.import_folder(tmp_path / "files").failed == 0
    session = Session(str(tmp_path / "archive"), mode="serve")
    srv = DataServer(session).start()
    ctx = browser.new_context(viewport={"width": 1100, "height": 700})
    try:
        page = ctx.new_page()
        page.goto(srv.launch_url)
        S.wait_js(page, "document.body.dataset.ready")
        S.wait_js(page, "document.querySelectorAll('#series-table tbody tr.series').length === 1")
        rows = table_rows(page)
        row = session.call("search", {})["data"]["rows"][0]
        cells = rows[0]["cells"]
        checked = 0
        for col in ("patient_name", "patient_id", "study_description", "series_description", "accession"):
            text, children = cells[col]
            assert BIDI.search(row[col]), col                                  # the data has them
            assert not BIDI.search(text) and text == visible(row[col]) and children == 0, (col, text)
            checked += 1
        assert cells["patient_name"][0].startswith("Evil\\u202egpj.exe")
        isolate = page.evaluate("""[...document.querySelectorAll('#series-table tbody td[data-col]')]
            .map(td => getComputedStyle(td).unicodeBidi)""")
        assert set(isolate) == {"isolate"}, isolate
        # the viewer: overlay corners, then the header panel
        page.locator("#series-table tbody tr.series").first.dblclick()
        S.wait_js(page, "document.getElementById('view').dataset.drawn")
        S.wait_js(page, "document.getElementById('corner-tl').textContent.length > 0")
        corners = page.evaluate("""['tl', 'tr'].map(k => { const e = document.getElementById('corner-' + k);
            return [e.textContent, e.childElementCount, getComputedStyle(e).unicodeBidi]; })""")
        for text, children, bidi in corners:
            assert not BIDI.search(text) and children == 0 and bidi == "isolate", (text, bidi)
        assert visible(row["patient_name"]) in corners[0][0] and visible(row["series_description"]) in corners[1][0]
        page.click("#btn-panel")
        if page.locator("#tab-header").is_hidden():
            page.click("#panel [data-tab=header]")
        S.wait_js(page, """[...document.querySelectorAll('#header-table tbody tr')]
            .some(tr => tr.children[1].textContent === 'PatientName')""")
        shown = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#header-table tbody tr')]
            .map(tr => [tr.children[1].textContent, [tr.children[3].textContent,
                                                      getComputedStyle(tr.children[3]).unicodeBidi]]))""")
        for kw in ("PatientName", "PatientID", "StudyDescription", "SeriesDescription", "AccessionNumber"):
            text, bidi = shown[kw]
            assert not BIDI.search(text) and "\\u" in text and bidi == "isolate", (kw, text, bidi)
            checked += 1
    finally:
        ctx.close()
        srv.stop()
        session.close()
    print(f"\nbidi: {len(BIDI_FIELDS)} fields with 11 kinds of bidi control; {checked} cells + 2 overlay corners"
          " shown escaped and isolated, none raw")
