"""Compare view: a linked scroll step over four viewports (a WebGL2 context each) vs the single viewer.

Writes (once, into the data cache) the CT series of one patient that the
Compare tests use -- two series in one Frame of Reference with different
slice spacing, a third in another, and an earlier study's series -- imports
them, serves the archive with ``python -m pocketpacs.ui serve`` and drives
headless Chromium (SwiftShader) at 1280x800; each repeat is a new page:

* **single viewer**: the one-canvas viewer stepping through acquired slices,
  one frame per step (``Viewer.setSlice`` + ``render``);
* **Compare 2x2, scroll linked**: four Compare viewports with scroll linking
  on (by world position in the shared Frame of Reference, by slice index
  otherwise); one step moves viewport 0 and, through the link, the other
  three, and every viewport draws its frame;
* **open 4**: from asking for four series in the four viewports to the last
  one loaded whole.

Every frame is forced to completion with a one-pixel ``gl.readPixels``.  On
SwiftShader the cost follows the pixels drawn, so absolute times say little
on a loaded machine; the point is the ratio of the two scroll rows (the
linked step's time as a multiple of the single viewer's).  Playwright comes
with ``pip install -e ".[bench]"``, Chromium from the system; without them
the rows say so.

Usage::

    pocketpacs bench compare [--quick] [--json FILE]
    python benchmarks/bench_compare.py [--quick] [--json FILE]   # the same
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

NAME = "compare"

FOR_A = "1.2.826.0.1.3680043.17.100"      # current study: series A1 and A2
FOR_B = "1.2.826.0.1.3680043.17.200"      # current study: series A3
FOR_PRIOR = "1.2.826.0.1.3680043.17.300"  # the earlier study
#: (study, series, slices, first z, spacing, Frame of Reference): the four series opened, in viewport order.
SERIES = [("A", 1, 20, 0.0, 2.5, FOR_A), ("A", 2, 40, 1.0, 1.25, FOR_A), ("A", 3, 20, 100.0, 3.0, FOR_B),
          ("B", 1, 20, 5.0, 2.5, FOR_PRIOR)]
STUDY_DATES = {"A": "20210501", "B": "20190301"}
VIEWPORT = {"width": 1280, "height": 800}

_COMPARE_JS = r"""async ([n]) => {
  const C = window.POCKETPACS_TEST_HOOK.viewer.compare, px = new Uint8Array(4);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    C.panes[0].setSlice(i % 20);
    for (const p of C.panes) { p.render(); p.view.gl.readPixels(0, 0, 1, 1, p.view.gl.RGBA, p.view.gl.UNSIGNED_BYTE, px); }
  }
  return (performance.now() - t) / n;
}"""
_SINGLE_JS = r"""async ([n]) => {
  const V = window.POCKETPACS_TEST_HOOK.viewer, px = new Uint8Array(4), gl = V.gl;
  const t = performance.now();
  for (let i = 0; i < n; i++) { V.setSlice(i % 20); V.render(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); }
  return (performance.now() - t) / n;
}"""


def _uid(study: str, series: int | None = None) -> str:
    base = f"1.2.826.0.1.3680043.17.{ord(study)}"
    return base if series is None else f"{base}.{series}"


def write_archive(root: Path, size: int) -> None:
    """Write the four series (pydicom, *size* x *size* slices) under ``root/files``, import them
    into ``root/archive`` and keep their archive keys in ``root/keys.json``.

    Parameters
    ----------
    root : Path
        An empty private folder (the data cache's).
    size : int
        Rows and columns of every slice.
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    import pocketpacs
    from pocketpacs.paths import ensure_private_dir, write_private_file

    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.4) ** 2
    for st, se, n, z0, dz, fr in SERIES:
        folder = root / "files" / st / str(se)
        ensure_private_dir(folder)
        uid = _uid(st, se)
        for i in range(n):
            ds = Dataset()
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ds.SOPInstanceUID = f"{uid}.{i + 1}"
            ds.StudyDate, ds.StudyTime, ds.Modality = STUDY_DATES[st], "101500", "CT"
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Bench^Compare", "BENCH17", "19700101"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(st), uid
            ds.StudyDescription, ds.SeriesDescription = f"Study {st}", f"Thorax {dz} mm"
            ds.SeriesNumber, ds.InstanceNumber = se, i + 1
            ds.FrameOfReferenceUID = fr
            ds.ImagePositionPatient = [0.0, 0.0, z0 + i * dz]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [0.7, 0.7]
            ds.SliceThickness = dz
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows = ds.Columns = size
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.WindowCenter, ds.WindowWidth = 40, 400
            img = np.where(disc, 1024 + 40 + (xx + 3 * i) % 200, 24).astype(np.uint16)
            ds.PixelData = img.tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(folder / f"IM{i:04d}.dcm", enforce_file_format=True)
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
        keys = {s.uid: s.key for st in ar.studies() for s in ar.series(st.key)}
    order = [keys[_uid(st, se)] for st, se, *_ in SERIES]
    write_private_file(root / "keys.json", json.dumps(order).encode(), sync=False)


class Served:
    """``python -m pocketpacs.ui --archive ARCHIVE serve`` in a child process; ``url`` carries its token."""

    def __init__(self, archive: Path, timeout: float = 120.0):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DISPLAY", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "pocketpacs.ui", "--archive", str(archive), "serve"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url = None
        end, lines = time.monotonic() + timeout, []
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+)", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("pocketpacs serve did not print its URL: " + "".join(lines)[-1500:])

    def stop(self) -> None:
        """Stop the child (SIGINT, then kill)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_js(page, expr: str, timeout: float = 120.0):
    """Poll a JavaScript expression in *page* until it is truthy; its value."""
    end = time.monotonic() + timeout
    while True:
        v = page.evaluate(expr)
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {expr}")
        time.sleep(0.05)


def measure_page(browser, url: str, keys: list[str], steps: int) -> tuple[float, float, float]:
    """One new page: the single viewer's step, the four series opened, the linked step.

    Returns
    -------
    (float, float, float)
        Milliseconds per single-viewer step, from asking for the four series
        to the last one loaded, and per linked Compare step.
    """
    pg = browser.new_page(viewport=VIEWPORT)
    try:
        pg.add_init_script("window.POCKETPACS_TEST_LIMITS = {};")
        pg.goto(url)
        wait_js(pg, "document.body.dataset.ready")
        pg.locator(f"#series-table tbody tr[data-series-id='{keys[0]}']").dblclick()
        wait_js(pg, "document.getElementById('view').dataset.tLoaded")
        pg.evaluate(_SINGLE_JS, [5])  # untimed: the first frames build the programs
        single = pg.evaluate(_SINGLE_JS, [steps])
        t0 = pg.evaluate("performance.now()")
        for i, k in enumerate(keys):
            pg.evaluate("([s, i]) => window.POCKETPACS_TEST_HOOK.viewer.openInViewport(s, i)", [k, i])
        for i in range(len(keys)):
            wait_js(pg, f"document.querySelector('#cmp-vp{i}').dataset.state === 'ready'")
        loaded = max(float(pg.evaluate(f"document.querySelector('#cmp-vp{i}').dataset.tLoaded"))
                     for i in range(len(keys)))
        pg.check("#cmp-link-scroll")
        pg.evaluate(_COMPARE_JS, [5])
        linked = pg.evaluate(_COMPARE_JS, [steps])
        return float(single), loaded - float(t0), float(linked)
    finally:
        pg.close()


def run(ctx) -> list:
    """A linked scroll step over four Compare viewports vs a step of the single viewer; opening four series."""
    from pocketpacs.benchmarks.bench_render import browser_missing
    from pocketpacs.benchmarks.bench_ui import ARGS, CHROMIUM
    from pocketpacs.benchmarks.results import add_ratio, from_samples, skipped

    size = ctx.pick(64, 256)
    steps = ctx.pick(20, 60)
    pages = ctx.reps(2, 3)
    what = f"scroll step, {size}x{size} CT slices, {VIEWPORT['width']}x{VIEWPORT['height']} page, SwiftShader"
    open_what = f"open 4 series ({size}x{size}) into the 2x2 Compare view"
    single_m, linked_m = "single viewer (one canvas)", "Compare 2x2, scroll linked (four WebGL2 contexts)"
    lo = dict(higher_is_better=False)
    reason = browser_missing()
    if reason:
        return [skipped(what, single_m, "ms", reason, **lo), skipped(what, linked_m, "ms", reason, headline=True, **lo),
                skipped(open_what, "ask -> last viewport loaded", "ms", reason, **lo)]
    data = ctx.cached("compare", {"size": size, "series": SERIES}, lambda d: write_archive(d, size),
                      sources=[write_archive])
    keys = json.loads((data / "keys.json").read_text())
    from playwright.sync_api import sync_playwright

    singles, opens, linked = [], [], []
    srv = Served(data / "archive")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                for i in range(pages):
                    ctx.log(f"page {i + 1} of {pages}: {steps} steps single, open 4, {steps} steps linked ...")
                    s, o, c = measure_page(browser, srv.url, keys, steps)
                    singles.append(s)
                    opens.append(o)
                    linked.append(c)
            finally:
                browser.close()
    finally:
        srv.stop()
    single = from_samples(what, single_m, "ms", singles, **lo)
    four = from_samples(what, linked_m, "ms", linked, headline=True, **lo)
    add_ratio(four, single, "single viewer")
    return [single, four, from_samples(open_what, "ask -> last viewport loaded", "ms", opens, **lo)]


def main(argv: list[str] | None = None) -> int:
    """``pocketpacs bench compare`` with *argv* (``--quick``, ``--json FILE``, ...); the exit status."""
    from pocketpacs.benchmarks.runner import main as bench_main

    return bench_main(["compare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
