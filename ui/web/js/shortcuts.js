// shortcuts.js -- the one table of keyboard shortcuts, and the user's own keys.
//
// The archive browser's, the viewer's (viewer/input.js) and the page's global
// key handlers look their keys up here with shortcutFor(scope, key) (`action`
// names what the handler does), and the help overlay (`?`) is generated from
// the same table, so what it lists is what the keys do.  Its Edit mode changes
// the key of an action (rows marked `fixed` keep theirs: their handlers tell
// keys apart, like ↑ from ↓); the user's keys are kept in localStorage
// (`pocketpacs.shortcuts`: action -> keys, nothing else) and applied when this
// module loads; stored data that does not fit the table is ignored.

export const SHORTCUTS = [
  { scope: 'global', keys: ['?'], what: 'Show or hide this help', action: 'help' },
  { scope: 'global', keys: ['Escape'], label: 'Esc', what: 'Close a menu, dialog or this help; back to the archive from the viewer', action: 'escape', fixed: true },
  { scope: 'archive', keys: ['/'], what: 'Search: go to the Name field', action: 'search', fixed: true },
  { scope: 'archive', keys: ['ArrowUp', 'ArrowDown'], label: '↑ ↓', what: 'Previous / next row', action: 'move', fixed: true },
  { scope: 'archive', keys: ['ArrowRight'], label: '→', what: 'Expand a patient or study (or go to its first row)', action: 'expand' },
  { scope: 'archive', keys: ['ArrowLeft'], label: '←', what: 'Collapse (or go to the patient or study above)', action: 'collapse' },
  { scope: 'archive', keys: ['Home', 'End'], label: 'Home End', what: 'First / last row', action: 'ends', fixed: true },
  { scope: 'archive', keys: ['PageUp', 'PageDown'], label: 'PgUp PgDn', what: 'Ten rows up / down', action: 'page', fixed: true },
  { scope: 'archive', keys: ['Enter'], what: 'Open the series (expand or collapse a patient or study)', action: 'enter' },
  { scope: 'archive', keys: ['Delete'], label: 'Del', what: 'Remove the patient, study or series from the archive (asks first)', action: 'remove' },
  { scope: 'archive', keys: ['ContextMenu'], label: 'Menu / right-click', what: 'Actions of the row', action: 'menu' },
  { scope: 'viewer', keys: ['ArrowUp'], what: 'Previous slice', action: 'sliceUp' },
  { scope: 'viewer', keys: ['ArrowDown'], what: 'Next slice', action: 'sliceDown' },
  { scope: 'viewer', keys: ['PageUp'], what: 'Ten slices back', action: 'pageUp' },
  { scope: 'viewer', keys: ['PageDown'], what: 'Ten slices on', action: 'pageDown' },
  { scope: 'viewer', keys: ['Home'], what: 'First slice', action: 'firstSlice' },
  { scope: 'viewer', keys: ['End'], what: 'Last slice', action: 'lastSlice' },
  // the one special case: keys 1 … 9 pick the preset of their number (fixed)
  { scope: 'viewer', keys: ['1', '2', '3', '4', '5', '6', '7', '8', '9'], label: '1 … 9', what: 'Window presets', action: 'preset', fixed: true },
  { scope: 'viewer', keys: ['i'], what: 'Invert', action: 'invert' },
  { scope: 'viewer', keys: ['f'], what: 'Fit / reset the view', action: 'fit' },
  { scope: 'viewer', keys: ['+', '='], what: 'Zoom in', action: 'zoomIn' },
  { scope: 'viewer', keys: ['-'], what: 'Zoom out', action: 'zoomOut' },
  { scope: 'viewer', keys: [' '], what: 'Cine', action: 'cine' },
  { scope: 'viewer', keys: ['s'], what: 'Screenshot', action: 'screenshot' },
  { scope: 'viewer', keys: ['n'], what: 'Tool: pan', action: 'toolNavigate' },
  { scope: 'viewer', keys: ['c'], what: 'Tool: crosshair', action: 'toolCross' },
  { scope: 'viewer', keys: ['d'], what: 'Tool: distance', action: 'toolDistance' },
  { scope: 'viewer', keys: ['a'], what: 'Tool: angle', action: 'toolAngle' },
  { scope: 'viewer', keys: ['r'], what: 'Tool: rectangle', action: 'toolRect' },
  { scope: 'viewer', keys: ['e'], what: 'Tool: ellipse', action: 'toolEllipse' },
  { scope: 'viewer', keys: ['p'], what: 'Side panel (measurements, header, assembly)', action: 'panel' },
  { scope: 'viewer', keys: ['Delete'], label: 'Del', what: 'Remove the selected (else the last) measurement', action: 'deleteMeasurement' },
];

const SCOPES = { global: 'Everywhere', archive: 'Archive list', viewer: 'Viewer' };

const STORE = 'pocketpacs.shortcuts';
const DEFAULTS = Object.fromEntries(SHORTCUTS.map((s) => [s.action, s.keys.slice()]));
const NAMES = { ' ': 'Space', Escape: 'Esc', Delete: 'Del', ArrowUp: '↑', ArrowDown: '↓', ArrowLeft: '←', ArrowRight: '→',
  PageUp: 'PgUp', PageDown: 'PgDn', '-': '−', ContextMenu: 'Menu' };
// keys that cannot be bound: Esc cancels an edit, Tab moves the focus, modifiers alone are no key
const UNBINDABLE = new Set(['Escape', 'Tab', 'Shift', 'Control', 'Alt', 'Meta', 'AltGraph', 'CapsLock', 'Fn', 'Dead', 'Unidentified', 'Process']);

/** How a key is shown: `i` as I, `I` as Shift+I, named keys by their short name. */
export function keyName(k) {
  if (NAMES[k]) return NAMES[k];
  if (k.length === 1 && k >= 'a' && k <= 'z') return k.toUpperCase();
  if (k.length === 1 && k >= 'A' && k <= 'Z') return `Shift+${k}`;
  return k;
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const labelOf = (s) => (s.label && same(s.keys, DEFAULTS[s.action]) ? s.label : s.keys.map(keyName).join(' '));

/** The row already using `key` where a key of `scope` would clash (global keys work everywhere), except `action`'s own. */
export function conflictFor(scope, key, action) {
  return SHORTCUTS.find((s) => s.action !== action && s.keys.includes(key)
    && (s.scope === scope || s.scope === 'global' || scope === 'global'));
}

function checkBindings(map) {
  if (!map || typeof map !== 'object' || Array.isArray(map)) return 'not an object';
  for (const [action, keys] of Object.entries(map)) {
    const row = SHORTCUTS.find((s) => s.action === action);
    if (!row) return `unknown action ${JSON.stringify(action).slice(0, 40)}`;
    if (row.fixed) return `${action} cannot be changed`;
    if (!Array.isArray(keys) || !keys.length || keys.length > 9
        || !keys.every((k) => typeof k === 'string' && k.length > 0 && k.length <= 20 && !UNBINDABLE.has(k))) {
      return `bad keys for ${action}`;
    }
  }
  return null;
}

/** Apply `map` (action -> keys) over the defaults; refused (an error message) if it does not fit the table or keys clash. */
function applyBindings(map) {
  const bad = checkBindings(map);
  if (bad) return bad;
  for (const s of SHORTCUTS) s.keys = (map[s.action] || DEFAULTS[s.action]).slice();
  for (const s of SHORTCUTS) {
    for (const k of s.keys) {
      if (conflictFor(s.scope, k, s.action)) {
        for (const r of SHORTCUTS) r.keys = DEFAULTS[r.action].slice();
        return `key ${JSON.stringify(k).slice(0, 20)} used twice`;
      }
    }
  }
  return null;
}

function save() {
  const map = {};
  for (const s of SHORTCUTS) if (!same(s.keys, DEFAULTS[s.action])) map[s.action] = s.keys.slice();
  try {
    if (Object.keys(map).length) localStorage.setItem(STORE, JSON.stringify(map));
    else localStorage.removeItem(STORE);
  } catch (err) { console.warn(`shortcuts: cannot keep your keys in localStorage (${err.name})`); }
}

/** Load the user's keys from localStorage (at page load); anything invalid: the defaults. */
export function loadBindings() {
  let raw = null;
  try { raw = localStorage.getItem(STORE); } catch { raw = null; }
  if (raw === null) return;
  let map;
  try { map = JSON.parse(raw); } catch { map = null; }
  const bad = map === null ? 'not JSON' : applyBindings(map);
  if (bad) console.warn(`shortcuts: stored keys (${STORE}) ignored, defaults used: ${bad}`);
}

/** Back to the default keys (and forget the stored ones). */
export function resetBindings() {
  for (const s of SHORTCUTS) s.keys = DEFAULTS[s.action].slice();
  save();
}

/** Bind `action` to `key` alone; returns null, or why not (naming the action that has the key). */
export function rebind(action, key) {
  const row = SHORTCUTS.find((s) => s.action === action);
  if (!row || row.fixed) return `${row ? row.what : action}: this key cannot be changed`;
  if (UNBINDABLE.has(key)) return `${keyName(key)} cannot be bound`;
  const other = conflictFor(row.scope, key, action);
  if (other) return `${keyName(key)} is already used by “${other.what}” (${SCOPES[other.scope]})`;
  row.keys = [key];
  save();
  return null;
}

loadBindings();

/** The shortcut of `scope` bound to `key`, or undefined. */
export function shortcutFor(scope, key) {
  return SHORTCUTS.find((s) => s.scope === scope && s.action && s.keys.includes(key));
}

// ---- the help overlay and its Edit mode
const ui = { el: null, editing: false, capturing: null, wired: false };

function say(text) {
  const m = ui.el && ui.el.closest('dialog').querySelector('#help-msg');
  if (m) m.textContent = text;
}

function setEditing(on) {
  ui.editing = on;
  ui.capturing = null;
  const dlg = ui.el.closest('dialog');
  dlg.classList.toggle('editing', on);
  const b = dlg.querySelector('#help-edit');
  b.textContent = on ? 'Done' : 'Edit';
  b.setAttribute('aria-pressed', String(on));
  dlg.querySelector('#help-reset').hidden = !on;
  say(on ? 'Click a key to change it, then press the new key (Esc cancels).' : '');
  renderHelp(ui.el);
}

// While a key is awaited, every key goes here first (capture phase): none reaches
// the page's handlers, and Esc cancels instead of closing the dialog.
function onCaptureKey(e) {
  if (!ui.capturing) return;
  e.preventDefault();
  e.stopImmediatePropagation();
  const row = SHORTCUTS.find((s) => s.action === ui.capturing);
  if (e.key === 'Escape') { ui.capturing = null; say('Cancelled.'); renderHelp(ui.el); return; }
  if (UNBINDABLE.has(e.key)) return;                  // a modifier alone: wait for the key
  const why = rebind(row.action, e.key);
  ui.capturing = null;
  renderHelp(ui.el);
  ui.el.querySelector(`button.key-edit[data-action="${row.action}"]`).focus();
  say(why ? `Refused: ${why}.` : `${row.what}: ${keyName(e.key)}`);
}

function wire(el) {
  ui.el = el;
  if (ui.wired) return;
  ui.wired = true;
  const dlg = el.closest('dialog');
  window.addEventListener('keydown', onCaptureKey, true);
  dlg.addEventListener('cancel', (e) => { if (ui.capturing) e.preventDefault(); });
  dlg.addEventListener('close', () => { if (ui.editing) setEditing(false); });
  dlg.querySelector('#help-edit').addEventListener('click', () => setEditing(!ui.editing));
  dlg.querySelector('#help-reset').addEventListener('click', () => {
    resetBindings();
    ui.capturing = null;
    renderHelp(ui.el);
    say('Default keys restored.');
  });
  el.addEventListener('click', (e) => {
    const b = e.target.closest('button.key-edit');
    if (!b || !ui.editing) return;
    ui.capturing = b.dataset.action;
    renderHelp(ui.el);
    const row = SHORTCUTS.find((s) => s.action === ui.capturing);
    say(`Press the new key for “${row.what}” (Esc cancels).`);
  });
}

/** Fill `el` (the help dialog's body) with the table, one section per scope; in Edit mode each changeable key is a button. */
export function renderHelp(el) {
  wire(el);
  const parts = [];
  for (const [scope, title] of Object.entries(SCOPES)) {
    const h = document.createElement('h3');
    h.textContent = title;
    const table = document.createElement('table');
    table.className = 'shortcuts';
    for (const s of SHORTCUTS.filter((x) => x.scope === scope)) {
      const tr = document.createElement('tr');
      tr.dataset.action = s.action;
      const k = document.createElement('td');
      const kbd = document.createElement('kbd');
      kbd.textContent = ui.capturing === s.action ? 'press a key…' : labelOf(s);
      if (ui.editing && !s.fixed) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'key-edit';
        b.dataset.action = s.action;
        b.title = `Change the key of: ${s.what}`;
        if (ui.capturing === s.action) b.classList.add('capturing');
        b.appendChild(kbd);
        k.appendChild(b);
      } else {
        if (ui.editing) k.title = 'This key cannot be changed';
        k.appendChild(kbd);
      }
      const w = document.createElement('td');
      w.textContent = s.what;
      tr.append(k, w);
      table.appendChild(tr);
    }
    parts.push(h, table);
  }
  el.replaceChildren(...parts);
  if (ui.capturing) el.querySelector('button.key-edit.capturing').focus();
}
