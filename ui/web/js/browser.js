// browser.js -- the archive browser: search fields, counts, series table, thumbnails.
// Every DICOM string is set with textContent (names and descriptions are untrusted),
// its bidi controls shown escaped (text.js).

import * as api from './api.js';
import { visible } from './text.js';

const $ = (id) => document.getElementById(id);
const COLS = ['patient_name', 'patient_id', 'birth_date', 'study_date', 'study_description',
  'accession', 'modality', 'series_description', 'images'];

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
    this.tbody = document.querySelector('#series-table tbody');
    this.rows = [];
    this.selected = -1;
    this.seq = 0;
    this.timer = null;
    this.thumbs = new IntersectionObserver((entries) => this.loadThumbs(entries), { root: $('table-wrap') });
    this.form.addEventListener('input', () => this.schedule());
    this.form.addEventListener('reset', () => setTimeout(() => this.refresh(), 0));
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.refresh(); });
    this.tbody.addEventListener('keydown', (e) => this.key(e));
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

  /** Re-run the search; stale answers (older sequence numbers) are dropped.
   * A date field still being typed holds the search back, with a hint. */
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
      res = await api.call('search', this.filters());
    } catch (e) {
      if (seq === this.seq) this.dispatchEvent(new CustomEvent('error', { detail: e }));
      return;
    }
    if (seq !== this.seq) return;
    this.render(res);
  }

  render(res) {
    const keep = this.rows[this.selected] && this.rows[this.selected].series_id;
    this.rows = res.rows;
    const c = res.counts;
    $('counts').textContent = `${c.patients} patients · ${c.studies} studies · ${c.series} series · ${c.images} images`
      + (res.truncated ? ' (first rows shown; refine the search)' : '');
    this.thumbs.disconnect();
    const trs = this.rows.map((r, i) => this.row(r, i));
    this.tbody.replaceChildren(...trs);
    const idx = this.rows.findIndex((r) => r.series_id === keep);
    this.select(idx >= 0 ? idx : (this.rows.length ? 0 : -1), false);
    document.body.dataset.archiveRows = String(this.rows.length);
    if (!document.body.dataset.tArchive) document.body.dataset.tArchive = String(performance.now());
    this.dispatchEvent(new CustomEvent('rendered'));
  }

  row(r, i) {
    const tr = document.createElement('tr');
    tr.dataset.seriesId = r.series_id;
    tr.tabIndex = -1;
    if (r.offline) tr.classList.add('offline');
    const thumbCell = document.createElement('td');
    const cv = document.createElement('canvas');
    cv.className = 'thumb'; cv.width = 64; cv.height = 64; cv.dataset.seriesId = r.series_id;
    thumbCell.appendChild(cv);
    tr.appendChild(thumbCell);
    this.thumbs.observe(cv);
    for (const k of COLS) {
      const td = document.createElement('td');
      td.textContent = r[k] == null ? '' : visible(r[k]);
      td.dataset.col = k;
      tr.appendChild(td);
    }
    const st = document.createElement('td');
    st.textContent = r.offline ? 'offline' : 'online';
    tr.appendChild(st);
    const act = document.createElement('td');
    const rm = document.createElement('button');
    rm.type = 'button'; rm.textContent = 'Remove'; rm.className = 'remove';
    rm.addEventListener('click', (e) => { e.stopPropagation(); this.emit('remove', i); });
    if (!this.readonly) act.appendChild(rm);
    tr.appendChild(act);
    tr.addEventListener('click', () => this.select(i, true));
    tr.addEventListener('dblclick', () => this.emit('open', i));
    return tr;
  }

  emit(type, i) {
    const r = this.rows[i];
    if (r) this.dispatchEvent(new CustomEvent(type, { detail: r }));
  }

  select(i, focus) {
    const trs = this.tbody.children;
    if (trs[this.selected]) { trs[this.selected].classList.remove('selected'); trs[this.selected].tabIndex = -1; }
    this.selected = i;
    const tr = trs[i];
    if (!tr) return;
    tr.classList.add('selected');
    tr.tabIndex = 0;
    if (focus) { tr.focus(); tr.scrollIntoView({ block: 'nearest' }); }
  }

  key(e) {
    const n = this.rows.length;
    const acts = {
      ArrowDown: () => this.select(Math.min(n - 1, this.selected + 1), true),
      ArrowUp: () => this.select(Math.max(0, this.selected - 1), true),
      Home: () => this.select(0, true), End: () => this.select(n - 1, true),
      PageDown: () => this.select(Math.min(n - 1, this.selected + 10), true),
      PageUp: () => this.select(Math.max(0, this.selected - 10), true),
      Enter: () => this.emit('open', this.selected),
      Delete: () => this.emit('remove', this.selected),
    };
    if (acts[e.key]) { acts[e.key](); e.preventDefault(); }
  }

  focusTable() {
    const tr = this.tbody.children[Math.max(0, this.selected)];
    if (tr) tr.focus();
  }

  async loadThumbs(entries) {
    for (const en of entries) {
      if (!en.isIntersecting) continue;
      const cv = en.target;
      this.thumbs.unobserve(cv);
      const t = await api.thumbnail(cv.dataset.seriesId);
      if (!t) continue;
      const [h, w, c = 1] = t.header.shape;
      const img = new ImageData(w, h);
      for (let i = 0; i < w * h; i++) {
        const v = t.data[c * i];   // colour thumbnails: RGB
        img.data[4 * i] = v; img.data[4 * i + 1] = t.data[c * i + (c > 1 ? 1 : 0)];
        img.data[4 * i + 2] = t.data[c * i + (c > 1 ? 2 : 0)]; img.data[4 * i + 3] = 255;
      }
      cv.width = w; cv.height = h;
      cv.getContext('2d').putImageData(img, 0, 0);
    }
  }
}
