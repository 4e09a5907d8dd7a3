// panels.js -- the side panel: measurements, DICOM header browser, assembly report + histogram.
// Every DICOM string (header values, keywords) is set with textContent, its bidi
// controls shown escaped (text.js).

import * as api from './api.js';
import { visible } from './text.js';

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = visible(text);
  if (cls) e.className = cls;
  return e;
};

/** Histogram of real-world values: {counts, lo, hi} (sampled to at most ~2M voxels). */
export function histogram(data, slope, intercept, bins = 256) {
  const stride = Math.max(1, Math.floor(data.length / 2000000));
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < data.length; i += stride) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const counts = new Float64Array(bins);
  const span = hi - lo || 1;
  for (let i = 0; i < data.length; i += stride) {
    counts[Math.min(bins - 1, Math.floor(((data[i] - lo) / span) * bins))] += 1;
  }
  const a = lo * slope + intercept, b = hi * slope + intercept;
  return { counts, lo: Math.min(a, b), hi: Math.max(a, b), flip: slope < 0 };
}

export class Panels {
  constructor() {
    this.root = $('panel');
    this.tab = 'measure';
    this.header = null;       // {vid, slice, elements}
    this.hist = null;
    this.reportFor = '';
    for (const b of this.root.querySelectorAll('[data-tab]')) {
      b.addEventListener('click', () => this.show(b.dataset.tab));
    }
    $('header-search').addEventListener('input', () => this.renderHeader());
  }

  get visible() { return !this.root.hidden; }

  show(tab) {
    this.tab = tab;
    for (const b of this.root.querySelectorAll('[data-tab]')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
    for (const s of this.root.querySelectorAll('.tab')) s.hidden = s.id !== `tab-${tab}`;
    this.dispatch('tab');
  }

  dispatch(name) { this.root.dispatchEvent(new CustomEvent(name, { detail: this.tab })); }

  // ------------------------------------------------------------ measurements
  /**
   * Show the list; onRemove(id) is called by each entry's remove button,
   * onSelect(id) by a click on an entry; the selected one is marked.
   */
  setMeasurements(list, describe, onRemove, selected = null, onSelect = null) {
    const ul = $('measure-list');
    ul.replaceChildren(...list.map((m) => {
      const li = el('li');
      li.dataset.id = String(m.id);
      li.setAttribute('aria-selected', String(m.id === selected));
      if (onSelect) li.addEventListener('click', (e) => { if (!e.target.closest('button')) onSelect(m.id); });
      li.dataset.type = m.type;
      li.dataset.view = m.view;
      const r = m.result || {};
      for (const k of ['mm', 'deg', 'mean', 'sd', 'min', 'max', 'area', 'n']) if (k in r) li.dataset[k] = String(r[k]);
      li.appendChild(el('span', describe(m)));
      const rm = el('button', '×', 'remove');
      rm.type = 'button';
      rm.title = 'Remove';
      rm.addEventListener('click', () => onRemove(m.id));
      li.appendChild(rm);
      return li;
    }));
    $('measure-empty').hidden = list.length > 0;
    for (const id of ['btn-measure-json', 'btn-measure-csv']) $(id).disabled = list.length === 0;
  }

  // ------------------------------------------------------------ header
  async loadHeader(vid, slice) {
    const key = `${vid}:${slice}`;
    if (this.header && this.header.key === key) return;
    this.header = { key, elements: [], note: 'Loading…' };
    this.renderHeader();
    try {
      const d = await api.call('instance_header', { volume_id: vid, slice });
      if (this.header.key !== key) return;
      this.header = { key, elements: d.elements, note: d.truncated ? 'Long header: the first elements are shown.' : '' };
    } catch (e) {
      if (this.header.key !== key) return;
      this.header = { key, elements: [], note: e.message };
    }
    this.renderHeader();
  }

  renderHeader() {
    const h = this.header || { elements: [], note: '' };
    const q = $('header-search').value.trim().toLowerCase();
    const hex = q.replace(/[^0-9a-f]/g, '');
    const match = (e) => !q || e.keyword.toLowerCase().includes(q) || e.value.toLowerCase().includes(q)
      || (hex.length >= 4 && e.tag.replace(/[^0-9A-F]/gi, '').toLowerCase().includes(hex));
    const rows = h.elements.filter(match);
    const tbody = $('header-table').querySelector('tbody');
    tbody.replaceChildren(...rows.slice(0, 5000).map((e) => {
      const tr = el('tr');
      const t = el('td', e.tag, 'tag');
      t.style.paddingLeft = `${4 + 10 * e.depth}px`;
      tr.append(t, el('td', e.keyword), el('td', e.vr), el('td', e.value, 'value'));
      return tr;
    }));
    $('header-note').textContent = h.note || `${rows.length} of ${h.elements.length} elements`;
    $('header-table').dataset.rows = String(rows.length);
  }

  // ------------------------------------------------------------ assembly + histogram
  /**
   * The assembly report of a volume.  cal (measure.calibrationOf of its header):
   * an uncalibrated volume (unit 'px') shows its spacings in px, never mm.
   */
  async loadReport(vid, cal = null) {
    if (this.reportFor === vid) return;
    this.reportFor = vid;
    const box = $('report-body');
    box.replaceChildren(el('p', 'Loading…'));
    let rep = null;
    try { rep = (await api.call('volume_report', { volume_id: vid })).report; } catch (e) {
      box.replaceChildren(el('p', e.message));
      return;
    }
    if (this.reportFor !== vid) return;
    if (!rep) { box.replaceChildren(el('p', 'Not a DICOM series: no assembly report.')); return; }
    const parts = [el('p', `${rep.n_files} files, ${rep.n_frames} frames, ${rep.stacks.length} stack(s)`
      + (rep.split_by.length ? `; split by ${rep.split_by.join(', ')}` : ''))];
    const ex = Object.entries(rep.excluded || {});
    if (ex.length) parts.push(el('p', `Left out: ${ex.map(([r, n]) => `${n} × ${r}`).join(', ')}`));
    const uncal = !!cal && cal.unit === 'px';
    const u = uncal ? 'px' : 'mm';
    rep.stacks.forEach((s, i) => {
      const dl = el('dl', undefined, 'stack');
      const row = (k, v) => { if (v !== null && v !== undefined && v !== '') dl.append(el('dt', k), el('dd', v)); };
      row('Stack', `${i + 1}${i === 0 ? ' (shown)' : ''}: ${s.kind}, ${s.shape.join('×')}`);
      if (s.why_sequence) row('Why not a volume', s.why_sequence);
      if (s.split_by && s.split_by.length) row('Split by', s.split_by.join(', '));
      if (uncal) row('Pixel spacing', 'uncalibrated (measured in px)');
      else if (s.pixel_spacing_mm && s.pixel_spacing_mm.length) row('Pixel spacing', `${s.pixel_spacing_mm.map((v) => (+v).toFixed(3)).join(' × ')} mm`);
      const ss = s.slice_spacing_mm || {};
      if (Object.keys(ss).length) row('Slice spacing', Object.entries(ss).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(3) : v}`).join(', '));
      if (s.spacing_mm && s.spacing_mm.length) row('Voxel size', uncal ? 'uncalibrated (1 px grid)' : `${s.spacing_mm.map((v) => (+v).toFixed(3)).join(' × ')} mm`);
      row('Gaps', s.gaps && s.gaps.length ? s.gaps.map((g) => `after slice ${g.after_slice}: ${g.step_mm} ${u} (${g.missing_slices} missing)`).join('; ') : 'none');
      if (s.duplicates && s.duplicates.length) row('Repeated positions', String(s.duplicates.length));
      row('Gantry tilt', s.tilt_deg ? `${(+s.tilt_deg).toFixed(2)}° — ${s.tilt_action}` : 'none');
      if (s.spacing_action && s.spacing_action !== 'none') row('Spacing', s.spacing_action);
      if (s.notes && s.notes.length) row('Notes', s.notes.join('; '));
      parts.push(dl);
    });
    for (const n of rep.notes || []) parts.push(el('p', n, 'note'));
    box.replaceChildren(...parts);
    box.dataset.stacks = String(rep.stacks.length);
  }

  setHistogram(hist) { this.hist = hist; }

  /** Forget the volume shown: its header rows, assembly report and histogram. */
  clear() {
    this.header = null;
    this.reportFor = '';
    this.renderHeader();
    $('header-note').textContent = '';
    const box = $('report-body');
    box.replaceChildren();
    delete box.dataset.stacks;
    const cv = $('histogram');
    cv.getContext('2d').clearRect(0, 0, cv.width, cv.height);
    for (const k of ['lo', 'hi', 'window']) delete cv.dataset[k];
  }

  /** Draw the histogram (log counts) with the window [c - w/2, c + w/2] on it. */
  drawHistogram(center, width, units) {
    const cv = $('histogram');
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(cv.clientWidth * dpr)), H = Math.max(1, Math.round(cv.clientHeight * dpr));
    if (cv.width !== W || cv.height !== H) { cv.width = W; cv.height = H; }
    const ctx = cv.getContext('2d');
    ctx.fillStyle = '#101215';
    ctx.fillRect(0, 0, W, H);
    const h = this.hist;
    if (!h) return;
    const n = h.counts.length;
    let top = 0;
    for (const c of h.counts) top = Math.max(top, Math.log1p(c));
    const xOf = (val) => ((val - h.lo) / ((h.hi - h.lo) || 1)) * W;
    // window band
    const a = xOf(center - width / 2), b = xOf(center + width / 2);
    ctx.fillStyle = 'rgba(79,156,249,0.22)';
    ctx.fillRect(Math.max(0, a), 0, Math.min(W, b) - Math.max(0, a), H);
    ctx.fillStyle = '#c8ccd2';
    for (let i = 0; i < n; i++) {
      const c = h.flip ? h.counts[n - 1 - i] : h.counts[i];
      const bh = (Math.log1p(c) / (top || 1)) * (H - 14 * dpr);
      ctx.fillRect((i / n) * W, H - bh, Math.max(1, W / n), bh);
    }
    ctx.strokeStyle = '#4f9cf9';
    ctx.lineWidth = dpr;
    for (const x of [a, b]) { ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke(); }
    ctx.strokeStyle = '#ffd54f';
    ctx.beginPath(); ctx.moveTo(xOf(center), 0); ctx.lineTo(xOf(center), H); ctx.stroke();
    ctx.fillStyle = '#e6e6e6';
    ctx.font = `${11 * dpr}px sans-serif`;
    ctx.fillText(`${Math.round(h.lo)}`, 2 * dpr, 11 * dpr);
    const hiText = `${Math.round(h.hi)} ${units || ''}`;
    ctx.fillText(hiText, W - ctx.measureText(hiText).width - 2 * dpr, 11 * dpr);
    cv.dataset.lo = String(h.lo); cv.dataset.hi = String(h.hi);
    cv.dataset.window = `${center},${width}`;
  }
}
