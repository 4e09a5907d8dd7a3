// viewer/input.js -- the viewer's input: pointer (window/level, pan, zoom,
// crosshair, measurement tools, 3D orbit), wheel, keyboard shortcuts, and the
// toolbar and 3D controls, all bound once by bind() from the constructor.

import { requestRedraw } from '../scheduler.js';
import { PLANES, orbit, toCanvas, toWorld } from '../mpr.js';
import { PRESETS } from '../tf.js';
import * as measure from '../measure.js';
import { shortcutFor } from '../shortcuts.js';

const $ = (id) => document.getElementById(id);

/** Methods of {@link Viewer} (mixed into its prototype by viewer.js). */
export class ViewerInput {
  bind() {
    const c = this.canvas;
    let drag = null;
    const dpr = () => window.devicePixelRatio || 1;
    const local = (e) => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * dpr(), (e.clientY - r.top) * dpr()]; };
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('pointerdown', (e) => {
      c.setPointerCapture(e.pointerId);
      const [px, py] = local(e);
      const vp = this.vpAt(px, py);
      if (vp) this.active = vp.kind;
      const st = vp && PLANES[vp.kind] ? this.planeState[vp.kind] : this.s;
      drag = { button: e.button, x: e.clientX, y: e.clientY, center: this.s.center, width: this.s.width,
        panX: st.panX, panY: st.panY, zoom: st.zoom, st, vp, shift: e.shiftKey,
        R: this.ray.cam.R, cam: { ...this.ray.cam }, c3: this.r3.center, w3: this.r3.width };
      this.stage.focus();
      if (!vp || !this.vol || e.button !== 0) return;
      const m = vp.kind === '3d' ? null : this.mapping(vp);
      if (!m) return;
      const p = toWorld(m, px, py);
      if (this.tool === 'cross') { this.setCross(p); drag.mode = 'cross'; return; }
      // a measurement under the pointer: select it, drag a handle or the whole of it
      // (with a drawing tool: a handle of the selected one only)
      const angleOpen = this.pending && this.pending.stage === 2;
      const found = angleOpen ? null : this.measurementAt(vp, px, py, this.tool === 'navigate');
      if (found) { this.startMove(drag, found, p); return; }
      if (this.selected !== null) this.selectMeasurement(null);
      if (['distance', 'rect', 'ellipse'].includes(this.tool)) {
        this.pending = measure.make(this.tool, this.planeKey(vp), [p, p.slice()], this.planeInfo(vp));
        drag.mode = 'measure';
        requestRedraw(this.draw);
        return;
      }
      if (this.tool === 'angle') {
        if (this.pending && this.pending.type === 'angle' && this.pending.stage === 2 && this.pending.view === this.planeKey(vp)) {
          this.pending.pts[2] = p;
          this.finishMeasurement();
          drag = null;
          return;
        }
        this.pending = measure.make('angle', this.planeKey(vp), [p, p.slice()], this.planeInfo(vp));
        this.pending.stage = 1;
        drag.mode = 'measure';
        requestRedraw(this.draw);
      }
    });
    c.addEventListener('pointermove', (e) => {
      const [px, py] = local(e);
      const r = c.getBoundingClientRect();
      const p = this.probe(e.clientX - r.left, e.clientY - r.top);
      const real = p && !p.rgb && (Number.isInteger(p.real) ? String(p.real) : p.real.toFixed(2));
      const at = p ? `(${p.x}, ${p.y}${this.vps.length > 1 || this.single !== 'native' ? `, ${p.z}` : ''})` : '';
      $('probe').textContent = !p ? '' : p.rgb ? `${at}  R ${p.rgb[0]}  G ${p.rgb[1]}  B ${p.rgb[2]}`
        : `${at}  stored ${p.stored}  value ${real} ${p.units || ''}`.trim();
      if (!drag) {
        const vp = this.vpAt(px, py);
        if (vp) this.active = vp.kind;
        if (this.pending && this.pending.stage === 2 && vp && vp.kind !== '3d' && this.pending.view === this.planeKey(vp)) {
          this.pending.pts[2] = toWorld(this.mapping(vp), px, py);
          requestRedraw(this.draw);
        }
        return;
      }
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      const vp = drag.vp;
      if (vp && vp.kind === '3d') {
        if (drag.button === 0 && !drag.shift) {
          this.ray.cam.R = orbit(drag.R, dx * 0.01, dy * 0.01);
        } else if (drag.button === 1 || drag.shift) {
          this.ray.cam.panX = drag.cam.panX + dx * dpr(); this.ray.cam.panY = drag.cam.panY + dy * dpr();
        } else if (drag.button === 2 && this.r3.mode !== 'dvr') {
          // right-drag on MIP / MinIP: the 3D window (its own, not the 2D one): horizontal = width, vertical = level
          const k = Math.max(drag.w3, 10) / 256;
          this.setWindow3d(drag.c3 + dy * k, drag.w3 + dx * k);
          return;
        } else if (drag.button === 2) {   // volume rendering (a transfer function, no window): zoom
          this.ray.cam.zoom = Math.max(0.2, Math.min(20, drag.cam.zoom * Math.exp(-dy / 200)));
        }
        this.interact();
        return;
      }
      if (drag.button === 2) {
        // right-drag: horizontal = width, vertical = level; step scales with the width
        const k = Math.max(drag.width, 10) / 256;
        this.setWindow(drag.center + dy * k, drag.width + dx * k);
      } else if (drag.button === 1) {
        drag.st.zoom = Math.max(0.1, Math.min(40, drag.zoom * Math.exp(-dy / 200)));
        requestRedraw(this.draw);
      } else if (drag.mode === 'move') {
        this.moveTo(drag, px, py);
      } else if (drag.mode === 'cross') {
        if (vp) this.setCross(toWorld(this.mapping(vp), px, py));
      } else if (drag.mode === 'measure') {
        if (this.pending && vp) { this.pending.pts[1] = toWorld(this.mapping(vp), px, py); requestRedraw(this.draw); }
      } else if (drag.button === 0) {
        drag.st.panX = drag.panX + dx; drag.st.panY = drag.panY + dy;
        requestRedraw(this.draw);
      }
    });
    const end = (e) => {
      if (drag && drag.mode === 'move') this.endMove(drag);
      // right click (no drag) on a measurement: its menu
      if (drag && e && drag.button === 2 && Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 3
          && drag.vp && drag.vp.kind !== '3d') {
        const [px, py] = local(e);
        const found = this.measurementAt(drag.vp, px, py);
        if (found) { this.selectMeasurement(found.m.id); this.showMeasureMenu(e.clientX, e.clientY, found.m.id); }
      }
      if (drag && drag.mode === 'measure' && this.pending) {
        const [px, py] = e ? local(e) : [0, 0];
        const m = this.mapping(drag.vp);
        const p0 = toCanvas(m, this.pending.pts[0]);
        const far = Math.hypot(px - p0[0], py - p0[1]) > 3;
        if (this.pending.type === 'angle' && this.pending.stage === 1) {
          if (far) { this.pending.stage = 2; this.pending.pts[2] = this.pending.pts[1].slice(); } else this.pending = null;
        } else if (far) this.finishMeasurement();
        else this.pending = null;
        requestRedraw(this.draw);
      }
      drag = null;
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', () => { drag = null; });
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const [px, py] = local(e);
      const vp = this.vpAt(px, py);
      const kind = vp ? vp.kind : this.active;
      if (kind === '3d') this.zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1, '3d');
      else if (e.ctrlKey) this.zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1, kind);
      else this.scroll(e.deltaY > 0 ? 1 : -1, kind);
    }, { passive: false });
    c.addEventListener('webglcontextlost', (e) => { e.preventDefault(); this.contextLost(); });
    c.addEventListener('webglcontextrestored', () => { this.contextRestored(); });
    this.stage.addEventListener('keydown', (e) => this.key(e));
    $('preset').addEventListener('change', (e) => this.applyPreset(Number(e.target.value)));
    $('btn-invert').addEventListener('click', () => this.toggleInvert());
    $('btn-fit').addEventListener('click', () => this.fit());
    $('btn-cine').addEventListener('click', () => this.toggleCine());
    $('btn-shot').addEventListener('click', () => this.screenshot().catch(() => {}));
    $('layout').addEventListener('change', (e) => this.setLayout(e.target.value));
    $('single').addEventListener('change', (e) => this.setLayout('1', e.target.value));
    for (const b of document.querySelectorAll('[data-tool]')) b.addEventListener('click', () => this.setTool(b.dataset.tool));
    $('btn-panel').addEventListener('click', () => this.togglePanel());
    this.panels.root.addEventListener('tab', () => this.panelRefresh());
    const tf = $('tf-preset');
    tf.replaceChildren(...Object.entries(PRESETS).map(([k, p]) => { const o = document.createElement('option'); o.value = k; o.textContent = p.label; return o; }));
    tf.addEventListener('change', () => { this.r3.preset = tf.value; this.invalidate3d(); });
    $('render-mode').addEventListener('change', (e) => { this.r3.mode = e.target.value; this.invalidate3d(); });
    $('shade').addEventListener('change', (e) => { this.r3.shade = e.target.checked; this.invalidate3d(); });
    $('btn-reset3d').addEventListener('click', () => this.reset3d());
    $('btn-clip-reset').addEventListener('click', () => { this.resetClip(); this.interact(); });
    ['x', 'y', 'z'].forEach((ax, i) => {
      for (const end of ['0', '1']) {
        $(`clip-${ax}${end}`).addEventListener('input', (e) => {
          const v = Number(e.target.value) / 100;
          if (end === '0') this.r3.clipLo[i] = v; else this.r3.clipHi[i] = v;
          this.interact();
        });
      }
    });
  }

  finishMeasurement() {
    const m = this.pending;
    this.pending = null;
    if (!m || !this.vol) return;
    delete m.stage;
    this.ensureData();
    measure.evaluate(this.vol, m);
    this.measurements.push(m);
    this.updateMeasurements();
    this.saveMeasurements();
    requestRedraw(this.draw);
  }

  key(e) {
    const sc = shortcutFor('viewer', e.key);        // the keys are the table's (shortcuts.js), the user's own if set
    if (!sc) return;
    const nz = this.vol ? this.vol.header.shape[0] : 0;
    const acts = {
      sliceUp: () => this.scroll(-1), sliceDown: () => this.scroll(1),
      pageUp: () => this.scroll(-10), pageDown: () => this.scroll(10),
      firstSlice: () => this.setSlice(0), lastSlice: () => this.setSlice(nz - 1),
      preset: () => this.applyPreset(Number(e.key) - 1),   // 1 … 9: the preset of that number
      invert: () => this.toggleInvert(), fit: () => this.fit(), cine: () => this.toggleCine(),
      zoomIn: () => this.zoomBy(1.25), zoomOut: () => this.zoomBy(0.8),
      screenshot: () => this.screenshot().catch(() => {}),
      toolNavigate: () => this.setTool('navigate'), toolCross: () => this.setTool('cross'), toolDistance: () => this.setTool('distance'),
      toolAngle: () => this.setTool('angle'), toolRect: () => this.setTool('rect'), toolEllipse: () => this.setTool('ellipse'),
      panel: () => this.togglePanel(),
      // the selected measurement (else the last one drawn)
      deleteMeasurement: () => {
        const m = this.selected !== null ? this.measurements.find((x) => x.id === this.selected) : this.measurements[this.measurements.length - 1];
        if (m) this.deleteMeasurement(m.id);
      },
    };
    if (acts[sc.action]) { acts[sc.action](); e.preventDefault(); }
  }
}
