"""Make the README's screenshots of the archive browser at 1280x800 (issue 17).

Run from the repository root: ``.venv/bin/python docs/screenshots/make_screenshots.py [WORKDIR]``.
A synthetic archive (pocketpacs.synth) is built in WORKDIR (default
/tmp/pocketpacs-shots), served with ``pocketpacs serve``, and Debian's
Chromium takes the pictures; they are saved as 128-colour PNGs next to this
script.
"""
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "ui"))
sys.path.insert(0, str(REPO / "tests"))

import ppui_support as S  # noqa: E402
import pocketpacs  # noqa: E402
from pocketpacs import synth  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

THUMBS_SHOWN = ("[...document.querySelectorAll('#series-table canvas.thumb')]"
                ".filter(c => c.getBoundingClientRect().top < innerHeight).every(c => c.dataset.drawn)")


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pocketpacs-shots")
    if not (root / "archive").exists():
        root.mkdir(parents=True, exist_ok=True)
        synth.generate(root / "files", patients=4, studies=2, series=2, slices=24, rows=64, cols=64,
                       junk=0, enhanced=0, seed=11)
        with pocketpacs.open_archive(root / "archive") as ar:
            ar.import_folder(root / "files")
    srv = S.Served(root / "archive")
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=S.CHROMIUM, args=S.CHROMIUM_ARGS)
            pg = b.new_page(viewport={"width": 1280, "height": 800})
            pg.goto(srv.url)
            S.wait_js(pg, "document.body.dataset.ready")
            S.wait_js(pg, THUMBS_SHOWN, 90)
            pg.locator(S.SERIES_ROWS).nth(1).click()
            pg.screenshot(path=str(HERE / "browser-1280x800.png"))
            pg.locator(S.SERIES_ROWS).nth(3).click(button="right")
            pg.click("#row-menu [data-act=remove]")
            time.sleep(0.3)
            pg.screenshot(path=str(HERE / "remove-confirm-1280x800.png"))
            pg.click("#confirm-dialog button[value=cancel]")
            rows = S.tree_rows(pg)
            idx = next(i for i, r in enumerate(rows) if r["series_description"].startswith("AX"))
            pg.locator(S.SERIES_ROWS).nth(idx).dblclick()
            S.wait_js(pg, "document.getElementById('view').dataset.tLoaded")
            time.sleep(2)
            pg.screenshot(path=str(HERE / "viewer-strip-1280x800.png"))
            b.close()
    finally:
        srv.stop()
    for f in sorted(HERE.glob("*.png")):
        Image.open(f).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(f, optimize=True)


if __name__ == "__main__":
    main()
