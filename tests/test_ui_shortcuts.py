"""Configurable keyboard shortcuts (issue 17) in headless Chromium: the viewer's
keys come from the shortcut table (shortcuts.js), the help overlay's Edit mode
rebinds an action (a key already used in the scope is refused, naming the action
that has it), the user's keys survive a reload through localStorage, "Reset to
defaults" brings the defaults back, and invalid stored keys are ignored.

Real parts only: `pocketpacs serve` on a generated archive (ppui_support) and
Debian's Chromium; skips without Chromium, fails under CI=true.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

HELP_OPEN = "document.getElementById('help-dialog').open"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return S.build_archive(tmp_path_factory.mktemp("ui_shortcuts"))


def open_first_series(page):
    """Open the first CT/MR series with Enter and focus the viewer's stage."""
    rows = S.tree_rows(page)
    idx = next(i for i, r in enumerate(rows) if r.get("modality") in ("CT", "MR"))
    page.locator(S.SERIES_ROWS).nth(idx).click()
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.keyboard.press("Enter")
    S.wait_js(page, "!document.getElementById('viewer').hidden && document.getElementById('view').dataset.drawn")
    page.locator("#stage").focus()


def back_to_archive(page):
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('browser').hidden")


def inverted(page):
    return S.dataset(page)["invert"]


def press_in_viewer(page, key):
    """Press `key` on the viewer and wait for the redraw its data-* attributes report."""
    page.evaluate("document.getElementById('view').dataset.invert = 'x'")
    page.keyboard.press(key)
    page.wait_for_timeout(100)
    page.click("#btn-fit")                              # a redraw that leaves the inversion alone writes data-invert
    S.wait_js(page, "document.getElementById('view').dataset.invert !== 'x'")
    page.locator("#stage").focus()
    return inverted(page)


def open_help_editing(page):
    page.keyboard.press("?")
    S.wait_js(page, HELP_OPEN)
    page.click("#help-edit")
    S.wait_js(page, "document.querySelector('#help-body button.key-edit')")


def key_label(page, action):
    return page.evaluate(f"document.querySelector('#help-body tr[data-action={action}] kbd').textContent")


def rebind(page, action, key):
    page.click(f"#help-body button.key-edit[data-action={action}]")
    S.wait_js(page, f"document.querySelector('#help-body button.key-edit.capturing[data-action={action}]')")
    page.keyboard.press(key)
    return page.locator("#help-msg").inner_text()


def stored(page):
    raw = page.evaluate("localStorage.getItem('pocketpacs.shortcuts')")
    return None if raw is None else json.loads(raw)


def test_rebind_invert_to_j_survives_a_reload_and_reset_brings_i_back(browser, served):
    with S.open_page(browser, served.url) as page:
        # the default: I inverts
        page.locator(S.SERIES_ROWS).first.click()
        open_first_series(page)
        assert press_in_viewer(page, "i") == "1"
        assert press_in_viewer(page, "i") == "0"
        back_to_archive(page)

        open_help_editing(page)
        assert key_label(page, "invert") == "I"
        msg = rebind(page, "invert", "j")
        assert msg == "Invert: J", msg
        assert key_label(page, "invert") == "J"
        assert stored(page) == {"invert": ["j"]}
        page.keyboard.press("Escape")                       # not capturing: Esc closes the help
        S.wait_js(page, f"!{HELP_OPEN}")

        open_first_series(page)
        assert press_in_viewer(page, "j") == "1"
        assert press_in_viewer(page, "i") == "1"            # I does nothing now
        assert press_in_viewer(page, "j") == "0"

        # a reload keeps J
        page.reload()
        S.wait_js(page, "document.body.dataset.ready")
        page.locator(S.SERIES_ROWS).first.click()
        open_first_series(page)
        assert press_in_viewer(page, "i") == "0"
        assert press_in_viewer(page, "j") == "1"
        back_to_archive(page)

        # reset: I again, nothing stored
        open_help_editing(page)
        page.click("#help-reset")
        assert key_label(page, "invert") == "I"
        assert "Default keys restored" in page.locator("#help-msg").inner_text()
        assert stored(page) is None
        page.click("#help-close")
        S.wait_js(page, f"!{HELP_OPEN}")
        open_first_series(page)
        before = inverted(page)
        assert press_in_viewer(page, "j") == before
        assert press_in_viewer(page, "i") != before


def test_a_key_used_in_the_scope_is_refused_and_escape_cancels(browser, served):
    with S.open_page(browser, served.url) as page:
        page.locator(S.SERIES_ROWS).first.click()
        open_help_editing(page)
        # F is Fit's key in the viewer: refused, naming Fit
        msg = rebind(page, "invert", "f")
        assert msg.startswith("Refused") and "Fit / reset the view" in msg and "Viewer" in msg, msg
        assert key_label(page, "invert") == "I"
        # a global key (?) clashes with every scope
        msg = rebind(page, "invert", "?")
        assert msg.startswith("Refused") and "Show or hide this help" in msg, msg
        # 1 … 9 belong to the window presets
        msg = rebind(page, "invert", "3")
        assert msg.startswith("Refused") and "Window presets" in msg, msg
        # a key of another scope is free here: → is the archive's Expand, not a viewer key
        assert page.evaluate("import('/js/shortcuts.js').then(m => m.conflictFor('viewer', 'ArrowRight', 'invert'))") is None
        # Esc while a key is awaited cancels, the help stays open
        page.click("#help-body button.key-edit[data-action=invert]")
        page.keyboard.press("Escape")
        assert page.evaluate(HELP_OPEN)
        assert page.locator("#help-msg").inner_text() == "Cancelled."
        assert key_label(page, "invert") == "I"
        assert stored(page) is None
        # fixed rows (their handlers tell keys apart) have no edit button
        assert page.evaluate("document.querySelector('#help-body button.key-edit[data-action=move]')") is None
        assert page.evaluate("document.querySelector('#help-body button.key-edit[data-action=preset]')") is None
        # the archive's Expand moved to X: the archive list follows it
        assert rebind(page, "expand", "x") == "Expand a patient or study (or go to its first row): X"
        page.click("#help-close")
        S.wait_js(page, f"!{HELP_OPEN}")
        row = page.locator("#series-table tbody tr.patient").first
        row.click(position={"x": 200, "y": 5})
        page.keyboard.press("ArrowLeft")                    # collapse the patient
        S.wait_js(page, "document.querySelector('#series-table tbody tr.patient.selected').getAttribute('aria-expanded') === 'false'")
        page.keyboard.press("ArrowRight")                   # no longer Expand
        page.wait_for_timeout(100)
        assert page.evaluate("document.querySelector('#series-table tbody tr.patient.selected').getAttribute('aria-expanded')") == "false"
        page.keyboard.press("x")
        S.wait_js(page, "document.querySelector('#series-table tbody tr.patient.selected').getAttribute('aria-expanded') === 'true'")


@pytest.mark.parametrize("bad", ["not json{", '["j"]', '{"invert": "j"}', '{"nosuch": ["j"]}',
                                 '{"invert": ["f"]}', '{"move": ["x"]}', '{"invert": [""]}'])
def test_invalid_stored_keys_are_ignored(browser, served, bad):
    with S.open_page(browser, served.url) as page:
        page.evaluate("(v) => localStorage.setItem('pocketpacs.shortcuts', v)", bad)
        warnings = []
        page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
        page.reload()
        S.wait_js(page, "document.body.dataset.ready")
        keys = page.evaluate("import('/js/shortcuts.js').then(m => Object.fromEntries(m.SHORTCUTS.map(s => [s.action, s.keys])))")
        assert keys["invert"] == ["i"] and keys["fit"] == ["f"] and keys["move"] == ["ArrowUp", "ArrowDown"]
        assert any("stored keys (pocketpacs.shortcuts) ignored" in w for w in warnings), warnings


def test_every_viewer_row_has_an_action_the_viewer_handles():
    src = (Path(__file__).resolve().parents[1] / "ui" / "web" / "js")
    table = (src / "shortcuts.js").read_text()
    viewer = (src / "viewer" / "input.js").read_text()
    actions = re.findall(r"scope: 'viewer', keys: \[[^\]]*\],(?: label: '[^']*',)? what: '[^']*', action: '(\w+)'", table)
    assert len(actions) == table.count("scope: 'viewer'")
    for a in actions:
        assert re.search(rf"\b{a}: \(\) =>", viewer), a
