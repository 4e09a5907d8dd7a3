// shortcuts.js -- the one table of keyboard shortcuts.
//
// The archive browser's key handler and the page's global handler look their
// keys up here (`action` names a method of the object handling them), and the
// help overlay (`?`) is generated from the same table, so what it lists is
// what the keys do.  The viewer's rows (scope 'viewer') are the keys of
// viewer/input.js, listed for the help only.

export const SHORTCUTS = [
  { scope: 'global', keys: ['?'], what: 'Show or hide this help', action: 'help' },
  { scope: 'global', keys: ['Escape'], label: 'Esc', what: 'Close a menu, dialog or this help; back to the archive from the viewer', action: 'escape' },
  { scope: 'archive', keys: ['/'], what: 'Search: go to the Name field', action: 'search' },
  { scope: 'archive', keys: ['ArrowUp', 'ArrowDown'], label: '↑ ↓', what: 'Previous / next row', action: 'move' },
  { scope: 'archive', keys: ['ArrowRight'], label: '→', what: 'Expand a patient or study (or go to its first row)', action: 'expand' },
  { scope: 'archive', keys: ['ArrowLeft'], label: '←', what: 'Collapse (or go to the patient or study above)', action: 'collapse' },
  { scope: 'archive', keys: ['Home', 'End'], label: 'Home End', what: 'First / last row', action: 'ends' },
  { scope: 'archive', keys: ['PageUp', 'PageDown'], label: 'PgUp PgDn', what: 'Ten rows up / down', action: 'page' },
  { scope: 'archive', keys: ['Enter'], what: 'Open the series (expand or collapse a patient or study)', action: 'enter' },
  { scope: 'archive', keys: ['Delete'], label: 'Del', what: 'Remove the patient, study or series from the archive (asks first)', action: 'remove' },
  { scope: 'archive', keys: ['ContextMenu'], label: 'Menu / right-click', what: 'Actions of the row', action: 'menu' },
  { scope: 'viewer', keys: ['ArrowUp', 'ArrowDown', 'PageUp', 'PageDown', 'Home', 'End'], label: '↑ ↓ PgUp PgDn Home End', what: 'Scroll through the slices' },
  { scope: 'viewer', keys: ['1'], label: '1 … 9', what: 'Window presets' },
  { scope: 'viewer', keys: ['i'], label: 'I', what: 'Invert' },
  { scope: 'viewer', keys: ['f'], label: 'F', what: 'Fit / reset the view' },
  { scope: 'viewer', keys: ['+', '-'], label: '+ −', what: 'Zoom in / out' },
  { scope: 'viewer', keys: [' '], label: 'Space', what: 'Cine' },
  { scope: 'viewer', keys: ['s'], label: 'S', what: 'Screenshot' },
  { scope: 'viewer', keys: ['n', 'c', 'd', 'a', 'r', 'e'], label: 'N C D A R E', what: 'Tools: pan, crosshair, distance, angle, rectangle, ellipse' },
  { scope: 'viewer', keys: ['p'], label: 'P', what: 'Side panel (measurements, header, assembly)' },
  { scope: 'viewer', keys: ['Delete'], label: 'Del', what: 'Remove the last measurement' },
];

const SCOPES = { global: 'Everywhere', archive: 'Archive list', viewer: 'Viewer' };

/** The shortcut of `scope` bound to `key`, or undefined. */
export function shortcutFor(scope, key) {
  return SHORTCUTS.find((s) => s.scope === scope && s.action && s.keys.includes(key));
}

/** Fill `el` (the help dialog's body) with the table, one section per scope. */
export function renderHelp(el) {
  const parts = [];
  for (const [scope, title] of Object.entries(SCOPES)) {
    const h = document.createElement('h3');
    h.textContent = title;
    const table = document.createElement('table');
    table.className = 'shortcuts';
    for (const s of SHORTCUTS.filter((x) => x.scope === scope)) {
      const tr = document.createElement('tr');
      const k = document.createElement('td');
      const kbd = document.createElement('kbd');
      kbd.textContent = s.label || s.keys.join(' ');
      k.appendChild(kbd);
      const w = document.createElement('td');
      w.textContent = s.what;
      tr.append(k, w);
      table.appendChild(tr);
    }
    parts.push(h, table);
  }
  el.replaceChildren(...parts);
}
