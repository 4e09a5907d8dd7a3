// viewer/annotations.js -- measurements that last: loading the measurements
// kept with the open series, saving every change (draw, move, delete), the
// selection (click), moving a handle or the whole measurement (drag), the
// right-click menu, and JSON / CSV export.
//
// The archive keeps them with the series (pocketpacs.archive.annotations) in
// patient coordinates with the plane they were drawn on, so they come back at
// the same place when the series is opened again.  On removable media and a
// read-only archive nothing is stored: this page keeps them in memory for the
// session (forgotten when the media is closed) and the panel says so; a file
// opened with Open Other has no series, so its measurements are not kept.

import * as api from '../api.js';
import { requestRedraw } from '../scheduler.js';
import { add, sub, toCanvas, toWorld } from '../mpr.js';
import * as measure from '../measure.js';

const $ = (id) => document.getElementById(id);

const KEPT = {
  archive: 'Kept with the series in the archive.',
  media: 'Removable media: measurements are kept in memory only, and forgotten when it is closed.',
  readonly: 'Read-only archive: measurements are kept in memory only, for this session.',
  none: 'Not an archived series: measurements are not kept.',
};

/** Methods of {@link Viewer} (mixed into its prototype by viewer.js). */
export class ViewerAnnotations {
  bindAnnotations() {
    this.kept = '';
    this.keptSeries = null;
    this.otherStacks = [];          // records of the series' other stacks (saved along)
    this.memoryKept = new Map();    // series id -> records, where nothing is stored
    this.selected = null;
    this.saving = Promise.resolve();
    this.saves = 0;
    $('btn-measure-json').addEventListener('click', () => this.exportMeasurements('json').catch((e) => this.measureError(e)));
    $('btn-measure-csv').addEventListener('click', () => this.exportMeasurements('csv').catch((e) => this.measureError(e)));
    document.addEventListener('pointerdown', (e) => {
      const menu = $('measure-menu');
      if (menu && !menu.contains(e.target)) menu.remove();
    });
  }

  /** The stack of the open volume (measurements belong to one stack of a series). */
  stackIndex() { return (this.vol && this.vol.header.stack && this.vol.header.stack.index) || 0; }

  /** Ask for the measurements kept with the open volume's series (after open). */
  async loadMeasurements(seq, vid) {
    await this.saving;   // a change still on its way (delete, then reopen at once) lands first
    let d;
    try { d = await api.call('measurements_get', { volume_id: vid }); } catch (e) {
      if (seq === this.seq) this.showKept('none', `Measurements could not be read: ${e.message}`);
      return;
    }
    if (seq !== this.seq || !this.vol) return;
    this.keptSeries = d.series || null;
    // where nothing is stored, this page's copy (a read-only archive starts from what it keeps)
    const records = (d.kept !== 'archive' && this.keptSeries && this.memoryKept.get(this.keptSeries)) || d.measurements;
    const mine = this.stackIndex();
    this.otherStacks = records.filter((r) => (r.stack || 0) !== mine);
    const loaded = records.filter((r) => (r.stack || 0) === mine).map(measure.fromRecord);
    // a measurement drawn while they were on their way stays, after them
    this.measurements = loaded.concat(this.measurements);
    this.showKept(d.kept);
    this.canvas.dataset.measurementsLoaded = '1';
    this.updateMeasurements();
    requestRedraw(this.draw);
  }

  showKept(kept, text = null) {
    this.kept = kept;
    const e = $('measure-kept');
    e.textContent = text || KEPT[kept] || '';
    e.dataset.kept = kept;
  }

  /** Every measurement of the series as archive records (this stack's and the others'). */
  measurementRecords() {
    const unit = this.vol ? measure.calibrationOf(this.vol.header).unit : 'mm';
    const mine = this.stackIndex();
    return this.otherStacks.concat(this.measurements.map((m) => measure.toRecord(m, mine, unit)));
  }

  /** Keep the measurements after a change: in the archive, or in this page's memory. */
  saveMeasurements() {
    if (!this.vol) return;
    const records = this.measurementRecords();
    if (this.kept !== 'archive') {
      if (this.keptSeries && this.kept !== 'none') this.memoryKept.set(this.keptSeries, records);
      return;
    }
    const vid = this.vol.vid;
    this.saving = this.saving.then(() => api.call('measurements_save', { volume_id: vid, measurements: records }))
      .then(() => { this.saves += 1; this.canvas.dataset.measureSaves = String(this.saves); })
      .catch((e) => this.measureError(e));
  }

  measureError(e) {
    const k = $('measure-kept');
    k.textContent = e.message;
    k.dataset.kept = 'error';
  }

  /**
   * The measurement (of the plane a viewport shows) under a canvas point: {m, hit} or null.
   * With a drawing tool (grab = false) only the selected measurement's handles
   * are taken, so a new measurement can start on or inside another one.
   */
  measurementAt(vp, px, py, grab = true) {
    const map = vp && vp.kind !== '3d' ? this.mapping(vp) : null;
    if (!map) return null;
    const key = this.planeKey(vp);
    const toPx = (p) => toCanvas(map, p);
    const tol = 6 * (window.devicePixelRatio || 1);
    // the selected one first, then the newest
    const order = this.measurements.filter((m) => m.view === key).reverse();
    order.sort((a, b) => (b.id === this.selected) - (a.id === this.selected));
    for (const m of order) {
      if (!grab && m.id !== this.selected) continue;
      const h = measure.hit(m, toPx, px, py, tol);
      if (h && (grab || h.handle !== undefined)) return { m, hit: h };
    }
    return null;
  }

  selectMeasurement(id) {
    if (this.selected === id) return;
    this.selected = id;
    this.canvas.dataset.selected = id === null ? '' : String(id);
    this.updateMeasurements();
    requestRedraw(this.draw);
  }

  deleteMeasurement(id) {
    const before = this.measurements.length;
    this.measurements = this.measurements.filter((m) => m.id !== id);
    if (this.measurements.length === before) return;
    if (this.selected === id) this.selected = null;
    this.canvas.dataset.selected = this.selected === null ? '' : String(this.selected);
    this.updateMeasurements();
    this.saveMeasurements();
    requestRedraw(this.draw);
  }

  /** Start moving a measurement: a handle (one point) or the whole of it. */
  startMove(drag, found, p) {
    this.selectMeasurement(found.m.id);
    Object.assign(drag, { mode: 'move', meas: found.m, hit: found.hit, orig: found.m.pts.map((q) => q.slice()), p0: p, moved: false });
  }

  /** Moving: the point under the pointer, for the drag started by startMove. */
  moveTo(drag, px, py) {
    const map = this.mapping(drag.vp);
    if (!map) return;
    const p = toWorld(map, px, py);
    const m = drag.meas;
    if (drag.hit.handle !== undefined) m.pts[drag.hit.handle] = p;
    else { const d = sub(p, drag.p0); m.pts = drag.orig.map((q) => add(q, d)); }
    drag.moved = true;
    this.ensureData();
    measure.evaluate(this.vol, m);
    requestRedraw(this.draw);
  }

  endMove(drag) {
    if (!drag.moved) return;
    this.ensureData();
    measure.evaluate(this.vol, drag.meas);
    this.updateMeasurements();
    this.saveMeasurements();
    requestRedraw(this.draw);
  }

  /** The right-click menu of a measurement (Delete). */
  showMeasureMenu(clientX, clientY, id) {
    const old = $('measure-menu');
    if (old) old.remove();
    const menu = document.createElement('div');
    menu.id = 'measure-menu';
    menu.className = 'context-menu';
    menu.setAttribute('role', 'menu');
    Object.assign(menu.style, { position: 'fixed', left: `${clientX}px`, top: `${clientY}px`, zIndex: '50',
      background: '#20242b', border: '1px solid #4a505a', padding: '2px' });
    const del = document.createElement('button');
    del.type = 'button';
    del.setAttribute('role', 'menuitem');
    del.textContent = 'Delete measurement';
    del.addEventListener('click', () => { menu.remove(); this.deleteMeasurement(id); });
    menu.append(del);
    document.body.append(menu);
    del.focus();
  }

  /** Export every measurement of the series as JSON or CSV (desktop: a save dialog; browser: a download). */
  async exportMeasurements(format) {
    if (!this.vol) return;
    const d = await api.call('measurements_export', { volume_id: this.vol.vid, measurements: this.measurementRecords(), format });
    if (!d || d.text === undefined) return;
    const blob = new Blob([d.text], { type: format === 'json' ? 'application/json' : 'text/csv' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = d.name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
}
