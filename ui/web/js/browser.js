// browser.js -- the archive browser: search fields, counts, and the patient ->
// study -> series tree (collapsible, sortable by a column header, keyboard,
// right-click menu, thumbnails or an icon for series without images).
// Every DICOM string is set with textContent (names and descriptions are
// untrusted), its bidi controls shown escaped (text.js); cells holding such
// text (td[data-col]) hold nothing else.

import * as api from './api.js';
import { visible } from './text.js';
import { NON_IMAGE, SORTS, buildTree, flatten, sortTree } from './browse_tree.js';
import { shortcutFor } from './shortcuts.js';

const $ = (id) => document.getElementById(id);

/** Cells of each level: [column class, field or null, text function]. Fields
 * become td[data-col] (tests and the strip read them); functions give the
 * counts and summaries shown where a level has no field of its own. */
const studies = (n) => `${n} ${n === 1 ? 'study' : 'studies'}`;
const CELLS = {
  patient: [['c-name', 'patient_name'], ['c-pid', 'patient_id'], ['c-birth', 'birth_date'],
    ['c-date', null, (d) => { const ds = d.studies.map((s) => s.study_date).filter(Boolean).sort(); return ds.length ? (ds[0] === ds[ds.length - 1] ? ds[0] : `${ds[0]} … ${ds[ds.length - 1]}`) : ''; }],
    ['c-mod', null, (d) => [...new Set(d.studies.flatMap((s) => s.modality.split(' ')).filter(Boolean))].sort().join(' ')],
    ['c-desc', null, () => ''], ['c-acc', null, () => ''],
    ['c-count', null, (d) => `${studies(d.n_studies)} · ${d.n_series} series · ${d.images} img`]],
  study: [['c-name', null, () => 'Study'], ['c-pid', null, () => ''], ['c-birth', null, () => ''],
    ['c-date', 'study_date'], ['c-mod', null, (d) => d.modality], ['c-desc', 'study_description'],
    ['c-acc', 'accession'], ['c-count', null, (d) => `${d.n_series} series · ${d.images} img`]],
  series: [['c-name', null, null], ['c-pid', null, () => ''], ['c-birth', null, () => ''],
    ['c-date', null, () => ''], ['c-mod', 'modality'], ['c-desc', 'series_description'],
    ['c-acc', null, (d) => (d.series_number == null ? '' : `#${d.series_number}`)], ['c-count', 'images']],
};
/** Above this many series the tree starts collapsed (patients only). */
const EXPAND_ALL_UP_TO = 300;

const DATE = /^(\d{4})(?:(\d{2})(\d{2})?|-(\d{2})(?:-(\d{2}))?)?$/;

/** Whether s is one date as the archive search takes it (YYYY, YYYYMM, YYYYMMDD, YYYY-MM, YYYY-MM-DD). */
function oneDate(s) {
  const m = DATE.exec(s);
  if (!m) return false;
  const mm = m[2] || m[4], dd = m[3] || m[5];
  return (!mm || (+mm >= 1 && +mm <= 12)) && (!dd || (+dd >= 1 && +dd <= 31));
}

/** Whether a date field holds a complete date or range (the rules of
 * pocketpacs.archive.query.parse_date_range), so a date still being typed is
 * not sent (and not reported as an error). */
export function dateSpecComplete(v) {
  const s = v.trim();
  if (!s || oneDate(s)) return true;
  let seps = [...s.matchAll(/\s*(?:\.\.|\bto\b|–|—)\s*/gi)];
  if (!seps.length) seps = [...s.matchAll(/\s*-\s*/g)];
  let ok = 0;
  for (const m of seps) {
    const a = s.slice(0, m.index).trim(), b = s.slice(m.index + m[0].length).trim();
    if ((!a || oneDate(a)) && (!b || oneDate(b))) ok += 1;
  }
  return ok === 1;
}

export class Browser extends EventTarget {
  constructor() {
    super();
    this.form = $('search');
    this.table = $('series-table');
    this.tbody = this.table.querySelector('tbody');
    this.nodes = [];           // the tree (patients)
    this.flat = [];            // every node, depth first (DOM order)
    this.byKey = new Map();
    this.cur = null;           // the selected node
    this.open = new Map();     // key -> expanded, as the user left it
    this.sort = { col: null, dir: 1 };
    this.seq = 0;
    this.timer = null;
    this.readonly = false;
    this.res = null;
    this.thumbs = new IntersectionObserver((entries) => this.loadThumbs(entries), { root: $('table-wrap') });
    this.form.addEventListener('input', () => this.schedule());
    this.form.addEventListener('reset', () => setTimeout(() => this.refresh(), 0));
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.refresh(); });
    this.tbody.addEventListener('keydown', (e) => this.key(e));
    this.tbody.addEventListener('click', (e) => this.click(e));
    this.tbody.addEventListener('dblclick', (e) => this.dblclick(e));
    this.tbody.addEventListener('contextmenu', (e) => this.contextMenu(e));
    for (const th of this.table.querySelectorAll('th[data-sort]')) {
      th.addEventListener('click', () => this.sortBy(th.dataset.sort));
      th.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.sortBy(th.dataset.sort); } });
    }
    $('row-menu').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-act]');
      if (!b) return;
      const node = this.menuNode;
      this.closeMenu();
      if (node && b.dataset.act === 'open') this.activate(node);
      if (node && b.dataset.act === 'remove') this.emitRemove(node);
      if (node && b.dataset.act === 'share') this.dispatchEvent(new CustomEvent('share', { detail: node }));
    });
    $('row-menu').addEventListener('keydown', (e) => {
      const items = [...$('row-menu').querySelectorAll('button:not([hidden])')];
      const i = items.indexOf(document.activeElement);
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].focus();
      }
      if (e.key === 'Escape' || e.key === 'Tab') { e.preventDefault(); this.closeMenu(true); }
    });
    document.addEventListener('mousedown', (e) => { if (!$('row-menu').hidden && !e.target.closest('#row-menu')) this.closeMenu(); });
  }

  filters() {
    const f = {};
    for (const el of this.form.elements) {
      if (el.name && el.value.trim()) f[el.name] = el.value.trim();
    }
    return f;
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 150);
  }

  /** Search again.  A date field still being typed (not yet a date or a
   * range) holds the search back, with a hint. */
  async refresh() {
    const seq = ++this.seq;
    const partial = [...this.form.querySelectorAll('input[data-date]')]
      .filter((el) => { const bad = !dateSpecComplete(el.value); el.classList.toggle('incomplete', bad); return bad; });
    if (partial.length) {
      $('counts').textContent = `${partial.map((el) => el.labels[0].firstChild.textContent.trim()).join(', ')}: `
        + 'finish the date (YYYY, YYYY-MM or YYYY-MM-DD) or range (FROM-TO)';
      document.body.dataset.searchHeld = '1';
      return;
    }
    delete document.body.dataset.searchHeld;
    let res;
    try {
      res = await api.call('browse', this.filters());
    } catch (e) {
      if (seq === this.seq) this.dispatchEvent(new CustomEvent('error', { detail: e }));
      return;
    }
    if (seq !== this.seq) return;
    this.render(res);
  }

  render(res) {
    this.res = res;
    const keep = this.cur && this.cur.key;
    const c = res.counts;
    const filtered = Object.keys(this.filters()).length > 0;
    $('counts').textContent = `${c.patients} patients · ${c.studies} studies · ${c.series} series · ${c.images} images`
      + (res.truncated ? ' (first rows shown; refine the search)' : '')
      + (filtered && !c.series ? ' — nothing matches: change or clear the search' : '');
    $('empty-archive').hidden = !!(c.series || filtered);
    this.table.hidden = !c.series && !filtered;
    this.nodes = sortTree(buildTree(res), this.sort.col, this.sort.dir);
    this.flat = flatten(this.nodes);
    this.byKey = new Map(this.flat.map((n) => [n.key, n]));
    const expandAll = c.series <= EXPAND_ALL_UP_TO;
    for (const n of this.flat) n.expanded = n.level !== 'series' && (this.open.has(n.key) ? this.open.get(n.key) : expandAll);
    this.thumbs.disconnect();
    this.tbody.replaceChildren(...this.flat.map((n) => this.row(n)));
    this.applyVisibility();
    this.select(this.byKey.get(keep) || this.firstSeries() || this.flat[0] || null, false);
    this.showSort();
    document.body.dataset.archiveRows = String(this.flat.filter((n) => n.level === 'series').length);
    if (!document.body.dataset.tArchive) document.body.dataset.tArchive = String(performance.now());
    this.dispatchEvent(new CustomEvent('rendered'));
  }

  firstSeries() {
    return this.visible().find((n) => n.level === 'series');
  }

  row(n) {
    const tr = document.createElement('tr');
    n.tr = tr;
    tr.className = n.level;
    tr.tabIndex = -1;
    tr.dataset.key = n.key;
    tr.setAttribute('aria-level', String({ patient: 1, study: 2, series: 3 }[n.level]));
    if (n.level === 'series') tr.dataset.seriesId = n.data.series_id;
    if (n.data.offline) tr.classList.add('offline');
    for (const [cls, field, fn] of CELLS[n.level]) {
      const td = document.createElement('td');
      td.className = cls;
      if (field) {
        td.textContent = n.data[field] == null ? '' : visible(n.data[field]);
        td.dataset.col = field;
      } else if (fn) {
        td.textContent = visible(fn(n.data));
      }
      if (cls === 'c-name') {
        td.classList.add('tree');
        if (n.level === 'series') td.appendChild(this.thumbCell(n.data));
      }
      tr.appendChild(td);
    }
    const st = document.createElement('td');
    st.className = 'c-status';
    st.textContent = n.data.offline ? 'offline' : '';
    st.title = n.data.offline ? 'Some files of this are missing (a removed disc or drive?)' : '';
    tr.appendChild(st);
    return tr;
  }

  /** A thumbnail canvas, or the icon of a series without images. */
  thumbCell(r) {
    if (NON_IMAGE.has(String(r.modality).toUpperCase())) return nonImageIcon(r.modality, r.modality);
    const cv = document.createElement('canvas');
    cv.className = 'thumb'; cv.width = 64; cv.height = 64; cv.dataset.seriesId = r.series_id;
    this.thumbs.observe(cv);
    return cv;
  }

  /** Hide the rows under collapsed patients and studies; set aria-expanded. */
  applyVisibility() {
    for (const n of this.flat) {
      let shown = true;
      for (let p = n.parent; p; p = p.parent) if (!p.expanded) { shown = false; break; }
      n.tr.hidden = !shown;
      if (n.level !== 'series') n.tr.setAttribute('aria-expanded', n.expanded ? 'true' : 'false');
    }
  }

  /** The rows on screen, in order (what the keyboard walks). */
  visible() {
    return this.flat.filter((n) => !n.tr.hidden);
  }

  setExpanded(n, on) {
    if (!n || n.level === 'series' || n.expanded === on) return;
    n.expanded = on;
    this.open.set(n.key, on);
    this.applyVisibility();
  }

  sortBy(col) {
    if (!SORTS[col]) return;
    this.sort = { col, dir: this.sort.col === col ? -this.sort.dir : 1 };
    if (this.res) this.render(this.res);
  }

  showSort() {
    for (const th of this.table.querySelectorAll('th[data-sort]')) {
      const on = th.dataset.sort === this.sort.col;
      th.setAttribute('aria-sort', on ? (this.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    this.table.dataset.sort = this.sort.col ? `${this.sort.col}:${this.sort.dir > 0 ? 'asc' : 'desc'}` : '';
  }

  nodeOf(e) {
    const tr = e.target.closest('tr');
    return tr ? this.byKey.get(tr.dataset.key) : null;
  }

  click(e) {
    const n = this.nodeOf(e);
    if (!n) return;
    this.select(n, true);
    // the twisty: the space left of a patient's or study's name cell
    const td = e.target.closest('td');
    if (n.level !== 'series' && td && td.classList.contains('tree')) {
      const pad = parseFloat(getComputedStyle(td).paddingLeft) || 0;
      if (e.clientX - td.getBoundingClientRect().left <= pad) this.setExpanded(n, !n.expanded);
    }
  }

  dblclick(e) {
    const n = this.nodeOf(e);
    if (n) this.activate(n);
  }

  /** Enter / double-click: open a series, expand or collapse the others. */
  activate(n) {
    if (n.level === 'series') this.dispatchEvent(new CustomEvent('open', { detail: n.data }));
    else this.setExpanded(n, !n.expanded);
  }

  select(n, focus) {
    if (this.cur && this.cur.tr) { this.cur.tr.classList.remove('selected'); this.cur.tr.tabIndex = -1; this.cur.tr.setAttribute('aria-selected', 'false'); }
    this.cur = n;
    if (!n) return;
    n.tr.classList.add('selected');
    n.tr.tabIndex = 0;
    n.tr.setAttribute('aria-selected', 'true');
    if (focus) { n.tr.focus(); n.tr.scrollIntoView({ block: 'nearest' }); }
  }

  key(e) {
    const sc = shortcutFor('archive', e.key);
    if (!sc || !this.cur || e.altKey || e.ctrlKey || e.metaKey) return;
    const vis = this.visible();
    const i = Math.max(0, vis.indexOf(this.cur));
    const go = (j) => this.select(vis[Math.max(0, Math.min(vis.length - 1, j))], true);
    const n = this.cur;
    const acts = {
      move: () => go(i + (e.key === 'ArrowDown' ? 1 : -1)),
      page: () => go(i + (e.key === 'PageDown' ? 10 : -10)),
      ends: () => go(e.key === 'Home' ? 0 : vis.length - 1),
      expand: () => { if (n.level === 'series') return; if (!n.expanded) this.setExpanded(n, true); else if (n.children[0]) this.select(n.children[0], true); },
      collapse: () => { if (n.level !== 'series' && n.expanded) this.setExpanded(n, false); else if (n.parent) this.select(n.parent, true); },
      enter: () => this.activate(n),
      remove: () => { if (!this.readonly) this.emitRemove(n); },
      menu: () => { const r = n.tr.getBoundingClientRect(); this.showMenu(n, r.left + 40, r.bottom); },
    };
    if (acts[sc.action]) { acts[sc.action](); e.preventDefault(); }
  }

  focusTable() {
    const n = this.cur || this.flat[0];
    if (n && n.tr && !n.tr.hidden) n.tr.focus();
  }

  // ------------------------------------------------------------ right-click menu and remove
  contextMenu(e) {
    const n = this.nodeOf(e);
    if (!n) return;
    e.preventDefault();
    this.select(n, true);
    this.showMenu(n, e.clientX, e.clientY);
  }

  showMenu(n, x, y) {
    const m = $('row-menu');
    this.menuNode = n;
    m.querySelector('[data-act=open]').textContent = n.level === 'series' ? 'Open' : (n.expanded ? 'Collapse' : 'Expand');
    const rm = m.querySelector('[data-act=remove]');
    rm.textContent = `Remove this ${n.level} from the archive…`;
    rm.hidden = this.readonly;
    m.hidden = false;
    const w = m.offsetWidth, h = m.offsetHeight;
    m.style.left = `${Math.max(0, Math.min(x, innerWidth - w - 2))}px`;
    m.style.top = `${Math.max(0, Math.min(y, innerHeight - h - 2))}px`;
    m.querySelector('button').focus();
  }

  closeMenu(refocus = false) {
    $('row-menu').hidden = true;
    if (refocus && this.cur) this.cur.tr.focus();
  }

  /** Ask main.js to remove `n`, with the sentence naming what goes. */
  emitRemove(n) {
    this.dispatchEvent(new CustomEvent('remove', { detail: { level: n.level, data: n.data, text: describe(n, this.filters()) } }));
  }

  // ------------------------------------------------------------ series strip support
  /** The series rows of the study holding series `sid` (as listed), or []. */
  studySeries(sid) {
    const n = this.byKey.get(`x:${sid}`);
    return n ? n.parent.children.map((c) => c.data) : [];
  }

  /** The study node holding series `sid`, or null. */
  studyOf(sid) {
    const n = this.byKey.get(`x:${sid}`);
    return n ? n.parent : null;
  }

  async loadThumbs(entries) {
    for (const en of entries) {
      if (!en.isIntersecting) continue;
      const cv = en.target;
      this.thumbs.unobserve(cv);
      await drawThumb(cv);
    }
  }
}

/** An icon standing for a series without images (a report, SR, presentation state...). */
export function nonImageIcon(label, title) {
  const d = document.createElement('span');
  d.className = 'thumb no-image';
  d.textContent = String(label || 'DOC').slice(0, 8);
  d.title = `Not an image${title ? `: ${title}` : ''}`;
  return d;
}

/** Draw series `cv.dataset.seriesId`'s thumbnail into `cv` (an icon replaces it for a non-image). */
export async function drawThumb(cv) {
  const t = await api.thumbnail(cv.dataset.seriesId);
  if (!t) return;
  if (t.header.not_image) {
    if (cv.isConnected) cv.replaceWith(nonImageIcon(t.header.kind && t.header.kind.length <= 8 ? t.header.kind : 'DOC', t.header.kind));
    return;
  }
  const [h, w, c = 1] = t.header.shape;
  const img = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {   // colour thumbnails: RGB, (h, w, 3)
    img.data[4 * i] = t.data[c * i]; img.data[4 * i + 1] = t.data[c * i + (c > 1 ? 1 : 0)];
    img.data[4 * i + 2] = t.data[c * i + (c > 1 ? 2 : 0)]; img.data[4 * i + 3] = 255;
  }
  cv.width = w; cv.height = h;
  cv.getContext('2d').putImageData(img, 0, 0);
  cv.dataset.drawn = '1';
}

/** The confirmation sentence naming what a remove takes away. */
function describe(n, filters) {
  const d = n.data;
  const img = (k) => `${k} image${k === 1 ? '' : 's'}`;
  const tail = ' The files on disk are not deleted.';
  const hidden = Object.keys(filters).length ? ' (also its series the search does not show)' : '';
  if (n.level === 'patient') {
    return `Remove patient ${visible(d.patient_name)}${d.patient_id ? ` (ID ${visible(d.patient_id)})` : ''} from the archive: `
      + `${d.n_studies} ${d.n_studies === 1 ? 'study' : 'studies'}, ${d.n_series} series, ${img(d.images)}${hidden}?${tail}`;
  }
  const p = n.level === 'study' ? n.parent.data : n.parent.parent.data;
  const st = n.level === 'study' ? d : n.parent.data;
  const study = `study of ${st.study_date || 'unknown date'}${st.study_description ? ` “${visible(st.study_description)}”` : ''}`;
  if (n.level === 'study') {
    return `Remove the ${study} of ${visible(p.patient_name)} from the archive: ${d.n_series} series, ${img(d.images)}${hidden}?${tail}`;
  }
  return `Remove series “${visible(d.series_description || '(no description)')}” (${d.modality || '?'}, ${img(d.images)}) `
    + `of ${visible(p.patient_name)}, ${study}, from the archive?${tail}`;
}
