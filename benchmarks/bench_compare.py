"""Compare-view benchmark: linked scrolling over four viewports, one WebGL2 context each.

Builds the archive of ``tests/test_ui_compare.py`` (CT series of one patient,
32x32 slices), serves it with ``python -m pocketpacs.ui serve`` and drives
headless Chromium (SwiftShader):

* **single 2D**: the one-canvas viewer stepping through acquired slices, one
  frame per step (``Viewer.setSlice`` + ``render``);
* **compare 2x2 linked**: four Compare viewports (four canvases and WebGL2
  contexts) with scroll linking on; one step moves viewport 0 and, through the
  link, the other three, and every viewport draws its frame;
* **open 4**: from asking for four series in the four viewports to the last
  one loaded whole.

Every frame is forced to completion with a one-pixel ``gl.readPixels``.  On
SwiftShader the cost follows the pixels drawn, so absolute times say little
on a loaded machine; the point is the ratio of the two scroll rows.

Usage::

    python benchmarks/bench_compare.py            # JSON on stdout: ms per step, three runs each
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "ui")]

import ppui_support as S  # noqa: E402  (after the sys.path line above)
import test_ui_compare as T  # noqa: E402

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


def main() -> int:
    """Run the benchmark and print its JSON.

    Returns
    -------
    int
        Exit status.
    """
    from playwright.sync_api import sync_playwright

    built = T.write_archive(Path(tempfile.mkdtemp(prefix="bench-compare-")))
    srv = S.Served(built["archive"])
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=S.CHROMIUM, args=S.CHROMIUM_ARGS)
            pg = b.new_page(viewport={"width": 1280, "height": 800})
            pg.add_init_script("window.POCKETPACS_TEST_LIMITS = {};")
            pg.goto(srv.url)
            S.wait_js(pg, "document.body.dataset.ready")
            sid = T.key(built, "A", "1")
            pg.locator(f"#series-table tbody tr[data-series-id='{sid}']").dblclick()
            S.wait_js(pg, "document.getElementById('view').dataset.tLoaded")
            single = [pg.evaluate(_SINGLE_JS, [60]) for _ in range(3)]
            t0 = pg.evaluate("performance.now()")
            for i, (st, se) in enumerate([("A", "1"), ("A", "2"), ("A", "3"), ("B", "1")]):
                pg.evaluate("([s, i]) => window.POCKETPACS_TEST_HOOK.viewer.openInViewport(s, i)",
                            [T.key(built, st, se), i])
            for i in range(4):
                S.wait_js(pg, f"document.querySelector('#cmp-vp{i}').dataset.state === 'ready'")
            t1 = max(float(S.dataset(pg, f"#cmp-vp{i}")["tLoaded"]) for i in range(4))
            pg.check("#cmp-link-scroll")
            four = [pg.evaluate(_COMPARE_JS, [60]) for _ in range(3)]
            b.close()
    finally:
        srv.stop()
    print(json.dumps({"single_2d_ms": single, "compare_2x2_linked_ms": four, "open4_to_loaded_ms": t1 - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
