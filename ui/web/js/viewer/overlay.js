// viewer/overlay.js -- what the viewer draws and writes over the images: the
// crosshair and measurements on the 2D overlay canvas, orientation letters,
// the corner texts (patient/study labels, slice, position, window, zoom; set
// with textContent only, as every label is attacker-controlled DICOM text),
// and the side panel (header, assembly report, histogram, measurement list).
// A slice whose pixel data could not be decoded is never shown as an image: the
// acquired-slice view covers it with a blank placeholder and a centred red
// message "slice N could not be decoded: <reason>", the corner counts such
// slices, and MPR/3D say how many are missing (shown as 0).

import { NO_LABELS, edgeLabels, hasPatientAxes, letters, slicePosition } from '../orientation.js';
import { PLANES, toCanvas } from '../mpr.js';
import { PRESETS } from '../tf.js';
import * as measure from '../measure.js';
import { visible } from '../text.js';

const $ = (id) => document.getElementById(id);

/** Methods of {@link Viewer} (mixed into its prototype by viewer.js). */
export class ViewerOverlay {
  /** Crosshair, measurements and the measurement being drawn, on the 2D overlay canvas. */
  drawOverlay() {
    const o = this.overlay;
    if (o.width !== this.canvas.width || o.height !== this.canvas.height) { o.width = this.canvas.width; o.height = this.canvas.height; }
    const ctx = o.getContext('2d');
    ctx.clearRect(0, 0, o.width, o.height);
    o.dataset.labels = '[]';
    this.updateUnreadableMsg();
    if (!this.vol || this.view.header !== this.vol.header) return;
    const labels = [];
    const dpr = window.devicePixelRatio || 1;
    const units = this.vol.header.units;
    for (const vp of this.vps) {
      const m = vp.kind === '3d' ? null : this.mapping(vp);
      if (!m) continue;
      const [x, y, w, h] = vp.rect;
      ctx.save();
      ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip();
      if (vp.kind === 'native' && this.unreadableReason(this.s.slice) !== null) {
        ctx.fillStyle = '#000';          // its zeros are no image: a blank placeholder
        ctx.fillRect(x, y, w, h);
      }
      const showCross = this.layout === '2x2' || this.tool === 'cross';
      if (showCross) {
        const [cx, cy] = toCanvas(m, this.crossPt);
        ctx.strokeStyle = 'rgba(80, 220, 120, 0.8)';
        ctx.lineWidth = dpr;
        const gap = 8 * dpr;
        ctx.beginPath();
        ctx.moveTo(x, cy); ctx.lineTo(cx - gap, cy); ctx.moveTo(cx + gap, cy); ctx.lineTo(x + w, cy);
        ctx.moveTo(cx, y); ctx.lineTo(cx, cy - gap); ctx.moveTo(cx, cy + gap); ctx.lineTo(cx, y + h);
        ctx.stroke();
      }
      const key = this.planeKey(vp);
      const toPx = (p) => toCanvas(m, p);
      for (const meas of this.measurements) {
        if (meas.view !== key) continue;
        // the result at the measurement (a ROI's mean / SD / area beside it)
        const text = measure.labelLines(meas, units);
        const box = measure.draw(ctx, meas, toPx, text, meas.id === this.selected);
        if (box) labels.push({ id: meas.id, type: meas.type, text, ...box });
      }
      if (this.pending && this.pending.view === key) measure.draw(ctx, this.pending, toPx, '');
      ctx.restore();
    }
    o.dataset.labels = JSON.stringify(labels);
  }

  /** The centred red message over an acquired slice that could not be decoded (hidden otherwise). */
  updateUnreadableMsg() {
    const first = this.vps[0];
    const why = this.vol && first && first.kind === 'native' && this.view.header === this.vol.header
      ? this.unreadableReason(this.s.slice) : null;
    let el = $('unreadable-msg');
    if (!el) {
      if (why === null) return;
      el = document.createElement('div');
      el.id = 'unreadable-msg';
      el.setAttribute('role', 'status');
      Object.assign(el.style, { position: 'absolute', left: '0', right: '0', top: '50%', transform: 'translateY(-50%)',
        textAlign: 'center', color: '#ff5252', fontSize: '15px', fontWeight: 'bold', whiteSpace: 'pre-wrap',
        padding: '0 12px', pointerEvents: 'none', textShadow: 'var(--outline)', unicodeBidi: 'isolate' });
      $('vp0').append(el);
    }
    el.hidden = why === null;
    // textContent only: the reason is the decoder's message
    el.textContent = why === null ? '' : `slice ${this.s.slice + 1} could not be decoded: ${visible(why)}`;
    this.canvas.dataset.unreadableShown = why === null ? '' : String(this.s.slice);
  }

  /** "K of N slices could not be decoded" for the whole series, or ''. */
  unreadableCount() {
    const v = this.vol;
    const k = v && v.unreadable ? v.unreadable.size : 0;
    if (!k) return '';
    const n = v.header.shape[0] * Math.max(1, (v.header.volumes || {}).count || 1);
    return `${k} of ${n} slice${n === 1 ? '' : 's'} could not be decoded`;
  }

  updateLabels() {
    if (!this.vol) return;
    for (const vp of this.vps) {
      let e;
      if (vp.kind === 'native') e = edgeLabels(this.vol.header.affine_lps);
      else if (vp.kind === '3d') {
        const { right, up } = this.ray.axes();
        const neg = (v) => v.map((x) => -x);
        e = { right: letters(right), left: letters(neg(right)), top: letters(up), bottom: letters(neg(up)) };
      } else {
        const pl = PLANES[vp.kind];
        const neg = (v) => v.map((x) => -x);
        e = { right: letters(pl.u), left: letters(neg(pl.u)), bottom: letters(pl.v), top: letters(neg(pl.v)) };
      }
      if (!hasPatientAxes(this.vol.header)) e = NO_LABELS;
      for (const k of ['top', 'bottom', 'left', 'right']) vp.el.querySelector(`.orient.${k}`).textContent = e[k];
    }
  }

  /** Position text of a viewport (mm along its axis). */
  positionText(vp) {
    if (vp.kind === '3d') {
      return `3D ${{ dvr: 'volume rendering', mip: 'MIP', minip: 'MinIP' }[this.r3.mode]}`
        + (this.r3.mode === 'dvr' ? ` · ${PRESETS[this.r3.preset].label}`
          : ` · W ${Math.round(this.r3.width)} L ${Math.round(this.r3.center)}`);
    }
    const pl = PLANES[vp.kind];
    const axisName = ['x (R→L)', 'y (A→P)', 'z (I→S)'][pl.axis];
    const pos = this.crossPt[pl.axis];
    vp.el.dataset.pos = String(pos);
    if (!hasPatientAxes(this.vol.header)) return `${pl.label}  ${pos.toFixed(1)} ${measure.calibrationOf(this.vol.header).unit}`;
    return `${pl.label}  ${axisName} ${pos.toFixed(1)} mm`;
  }

  updateOverlay() {
    if (!this.vol) return;
    const h = this.vol.header, L = h.labels || {};
    const [nz, ny, nx] = h.shape;
    const lines = (...xs) => xs.filter((x) => x).map(visible).join('\n');
    const first = this.vps[0];
    this.updateTimeline();
    // textContent only: every label is attacker-controlled DICOM text.
    $('corner-tl').textContent = lines(L.patient_name, L.patient_id, L.birth_date);
    $('corner-tr').textContent = lines(L.study_description, L.study_date, L.series_description, L.modality || h.modality);
    if (!first || first.kind === 'native') {
      const pos = slicePosition(h.affine_lps, this.s.slice, nx, ny);
      $('corner-bl').textContent = lines(`Slice ${this.s.slice + 1} / ${nz}`,
        hasPatientAxes(h) ? `Pos ${pos.along.toFixed(1)} mm` : '', `${nx}×${ny}  ${measure.spacingText(h)}`,
        h.kind === 'sequence' ? 'sequence (not a regular volume)' : '',
        (h.samples || 1) > 1 ? 'colour shown as grey in MPR/3D' : '', ...this.timelineText(), this.unreadableCount());
    } else {
      $('corner-bl').textContent = lines(this.positionText(first), this.missingNotice());
    }
    for (const vp of this.vps.slice(1)) vp.el.querySelector('.vp-info').textContent = lines(this.positionText(vp), this.missingNotice());
    $('corner-br').textContent = lines(`W ${Math.round(this.s.width)}  L ${Math.round(this.s.center)}`,
      first && first.kind !== '3d' && first.kind !== 'native' ? `Zoom ${(this.planeState[first.kind].zoom * 100).toFixed(0)}%`
        : `Zoom ${(this.s.zoom * 100).toFixed(0)}%`, this.s.invert ? 'Inverted' : '');
  }

  // ------------------------------------------------------------ panels
  togglePanel(show = this.panels.root.hidden) {
    this.panels.root.hidden = !show;
    $('btn-panel').setAttribute('aria-pressed', String(show));
    this.panelRefresh();
    this.invalidate3d();
  }

  panelRefresh() {
    if (!this.vol || !this.panels.visible) return;
    const t = this.panels.tab;
    if (t === 'header') this.panels.loadHeader(this.vol.vid, this.s.slice);
    if (t === 'assembly') {
      this.panels.loadReport(this.vol.vid, measure.calibrationOf(this.vol.header));
      this.panels.drawHistogram(this.s.center, this.s.width, this.vol.header.units);
    }
  }

  updateMeasurements() {
    const units = this.vol ? this.vol.header.units : '';
    this.panels.setMeasurements(this.measurements, (m) => measure.describe(m, units), (id) => this.deleteMeasurement(id),
      this.selected, (id) => this.selectMeasurement(id));
    this.canvas.dataset.measurements = String(this.measurements.length);
    $('btn-panel').textContent = this.measurements.length ? `Panel (${this.measurements.length})` : 'Panel';
  }
}
