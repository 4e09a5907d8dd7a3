// viewer.js -- the viewer: loading (progressive), layouts (acquired slices, axial /
// coronal / sagittal MPR, 3D), linked crosshair, measurements, panels, overlay, cine, probe.
//
// One WebGL2 canvas holds every viewport (gl.viewport + scissor); the canvas
// keeps its pixels (preserveDrawingBuffer), so a change redraws only what it
// touches: a slice scroll never re-renders the 3D view.  Graphics (crosshair,
// measurements) go on a 2D overlay canvas above it.
//
// The methods live in one module per job under viewer/ (loading, layout, overlay,
// input) and are mixed into Viewer's prototype here; this file keeps the state,
// the actions (slice, crosshair, window, zoom, tools, cine, screenshot, probe)
// and context-loss handling.

import * as api from './api.js';
import { requestRedraw } from './scheduler.js';
import { SliceView } from './views/slice-view.js';
import { MprView } from './views/mpr-view.js';
import { RayView } from './views/ray-view.js';
import { RenderVolume } from './gl/volume3d.js';
import { PLANES, add, apply, scale, stepAlong, toWorld } from './mpr.js';
import { Panels } from './panels.js';
import { ViewerLoading } from './viewer/loading.js';
import { ViewerLayout } from './viewer/layout.js';
import { ViewerOverlay } from './viewer/overlay.js';
import { ViewerInput } from './viewer/input.js';
import { ViewerNonImage } from './viewer/nonimage.js';
import { ViewerTimeline } from './viewer/timeline.js';
import { Compare } from './compare.js';
import { ViewerAnnotations } from './viewer/annotations.js';

const $ = (id) => document.getElementById(id);

export class Viewer {
  constructor() {
    this.canvas = $('view');
    this.stage = $('stage');
    this.overlay = $('overlay');
    this.view = new SliceView(this.canvas);
    this.gl = this.view.gl;
    this.mpr = new MprView(this.gl);
    this.ray = new RayView(this.gl);
    this.rv = null;           // RenderVolume (MPR + 3D: the slice view's series texture, or a reduced copy)
    this.vol = null;          // {vid, header, data, ready: Uint8Array, uploaded, complete}
    this.seq = 0;             // newer opens supersede older ones
    this.abort = null;
    this.s = { slice: 0, center: 40, width: 400, invert: false, zoom: 1, panX: 0, panY: 0, smooth: true, sliceReady: false };
    this.planeState = { axial: { zoom: 1, panX: 0, panY: 0 }, coronal: { zoom: 1, panX: 0, panY: 0 }, sagittal: { zoom: 1, panX: 0, panY: 0 } };
    // the 3D view has its own window (MIP / MinIP), set from the volume's robust range at open
    this.r3 = { mode: 'dvr', preset: 'ct-bone', shade: true, clipLo: [0, 0, 0], clipHi: [1, 1, 1], center: 40, width: 400 };
    this.layout = '1';
    this.single = 'native';
    this.tool = 'navigate';
    this.crossPt = [0, 0, 0];
    this.vps = [];
    this.active = 'native';
    this.dirty3d = true;
    this.interacting = false;
    this.settleTimer = null;
    this.renders3d = 0;
    this.measurements = [];
    this.pending = null;      // measurement being drawn
    this.lost = false;
    this.presets = [];
    this.cine = null;
    this.draw = () => this.render();
    this.uploadPending = () => {};
    this.onFail = null;       // (error) => void: a volume failed after open() resolved (its stream)
    this.panels = new Panels();
    // the 2D slice programs compile at page load, so a first open draws at once
    for (const dtype of ['int16', 'uint16', 'float32', 'uint8']) this.view.program(dtype).catch(() => {});
    this.glReady = Promise.all([this.mpr.init(), this.ray.init()]).catch((e) => this.glError(e));
    this.bind();
    this.bindTimeline();
    this.bindAnnotations();
    this.setTool('navigate');
    new ResizeObserver(() => this.invalidate3d()).observe(this.stage);
    this.compare = new Compare(this);   // the Compare view (viewports of their own)
  }

  /** Open an archived series in Compare viewport `index` (the active one by default); Compare turns on. */
  openInViewport(seriesId, index = this.compare.active) { return this.compare.openInViewport(seriesId, index); }

  glError(e) {
    const n = $('gl-notice');
    n.textContent = e.message;
    n.hidden = false;
    this.canvas.dataset.glError = e.message;
  }

  // ------------------------------------------------------------ actions
  setSlice(z) {
    if (!this.vol) return;
    const nz = this.vol.header.shape[0];
    z = Math.max(0, Math.min(nz - 1, z));
    if (z === this.s.slice) return;
    this.s.slice = z;
    // keep the crosshair on the acquired slice shown
    const g = apply(this.Ainv, this.crossPt);
    g[2] = z;
    this.crossPt = apply(this.vol.header.affine_lps, g);
    this.refresh(true);
    requestRedraw(this.draw);
    if (this.panels.visible && this.panels.tab === 'header') this.panelRefresh();
  }

  /** Move the crosshair to a patient-space point; every view follows. */
  setCross(p) {
    if (!this.vol) return;
    this.crossPt = p.slice();
    const g = apply(this.Ainv, p);
    const nz = this.vol.header.shape[0];
    const z = Math.max(0, Math.min(nz - 1, Math.round(g[2])));
    if (z !== this.s.slice) {
      this.s.slice = z;
      this.refresh(true);
      if (this.panels.visible && this.panels.tab === 'header') this.panelRefresh();
    }
    requestRedraw(this.draw);
  }

  scroll(dz, kind = this.active) {
    if (!this.vol) return;
    if (kind === 'native' || kind === '3d' || !PLANES[kind]) { this.setSlice(this.s.slice + dz); return; }
    const pl = PLANES[kind];
    const n = [0, 1, 2].map((i) => (i === pl.axis ? 1 : 0));
    const step = stepAlong(this.Ainv, n);
    // stay inside the volume's extent along n
    const h = this.vol.header, [nz, ny, nx] = h.shape;
    let p = add(this.crossPt, scale(n, dz * step));
    const g = apply(this.Ainv, p);
    if (g.some((v, i) => v < -0.5 || v > [nx, ny, nz][i] - 0.5)) p = this.crossPt;
    this.setCross(p);
  }

  setWindow(center, width) {
    this.s.center = center; this.s.width = Math.max(1, width);
    if (this.r3.mode !== 'dvr') this.dirty3d = true;
    this.showWindowName();
    requestRedraw(this.draw);
  }

  /** The 3D view's window (MIP / MinIP; right-drag in the 3D view), apart from the 2D one. */
  setWindow3d(center, width) {
    this.r3.center = center; this.r3.width = Math.max(1, width);
    this.interact();
  }

  /** The window box names the window in use: its preset, or "Custom (L/W)". */
  showWindowName() {
    const sel = $('preset');
    const same = (p) => p && p.center === this.s.center && Math.max(1, p.width) === Math.max(1, this.s.width);
    let custom = sel.querySelector('option[value=custom]');
    let i = Number(sel.value);
    if (!same(this.presets[i])) i = this.presets.findIndex(same);
    if (i >= 0) {
      if (custom) custom.remove();
      sel.value = String(i);
      return;
    }
    if (!this.presets.length) return;
    if (!custom) {
      custom = document.createElement('option');
      custom.value = 'custom';
      sel.append(custom);
    }
    custom.textContent = `Custom (${Math.round(this.s.center)}/${Math.round(this.s.width)})`;
    sel.value = 'custom';
  }

  applyPreset(i) {
    const p = this.presets[i];
    if (!p) return;
    $('preset').value = String(i);
    this.setWindow(p.center, p.width);
  }

  toggleInvert() { this.s.invert = !this.s.invert; requestRedraw(this.draw); }

  fit() {
    Object.assign(this.s, { zoom: 1, panX: 0, panY: 0 });
    for (const k of Object.keys(this.planeState)) this.planeState[k] = { zoom: 1, panX: 0, panY: 0 };
    requestRedraw(this.draw);
  }

  zoomBy(f, kind = this.active) {
    if (kind === '3d') { this.ray.cam.zoom = Math.max(0.2, Math.min(20, this.ray.cam.zoom * f)); this.interact(); return; }
    const st = PLANES[kind] ? this.planeState[kind] : this.s;
    st.zoom = Math.max(0.1, Math.min(40, st.zoom * f));
    requestRedraw(this.draw);
  }

  setTool(t) {
    this.tool = t;
    this.pending = null;
    for (const b of document.querySelectorAll('[data-tool]')) b.setAttribute('aria-pressed', String(b.dataset.tool === t));
    requestRedraw(this.draw);
  }

  /** 3D: draw coarse now, and a full-quality frame once the user is still. */
  interact() {
    this.interacting = true;
    this.invalidate3d();
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => { this.interacting = false; this.invalidate3d(); }, 180);
  }

  /** Camera and clip box back to their defaults. */
  reset3d() { this.ray.resetCamera(); this.resetClip(); if (this.vol) this.setup3dWindow(this.vol.header); this.invalidate3d(); }

  toggleCine() { if (this.cine) this.stopCine(); else this.startCine(); }

  startCine() {
    if (!this.vol) return;
    const fps = Math.max(1, Math.min(60, Number($('cine-fps').value) || 10));
    let last = performance.now();
    const step = (t) => {
      if (!this.cine) return;
      if (t - last >= 1000 / fps) {
        last = t;
        this.setSlice((this.s.slice + 1) % this.vol.header.shape[0]);
      }
      this.cine = requestAnimationFrame(step);
    };
    this.cine = requestAnimationFrame(step);
    $('btn-cine').setAttribute('aria-pressed', 'true');
  }

  stopCine() {
    if (this.cine) cancelAnimationFrame(this.cine);
    this.cine = null;
    $('btn-cine').setAttribute('aria-pressed', 'false');
  }

  async screenshot() {
    this.dirty3d = true;
    this.render();
    const out = document.createElement('canvas');
    out.width = this.canvas.width; out.height = this.canvas.height;
    const ctx = out.getContext('2d');
    ctx.drawImage(this.canvas, 0, 0);
    ctx.drawImage(this.overlay, 0, 0);
    return api.savePng(out, `pocketpacs-slice-${this.s.slice + 1}.png`);
  }

  /** Voxel under a canvas (CSS px) point: indices, stored and rescaled value. */
  probe(cx, cy) {
    if (!this.vol || this.view.header !== this.vol.header) return null;
    const dpr = window.devicePixelRatio || 1;
    const vp = this.vpAt(cx * dpr, cy * dpr);
    if (!vp || vp.kind === '3d') return null;
    const [nz, ny, nx] = this.vol.header.shape;
    let x, y, z;
    if (vp.kind === 'native') {
      const xf = this.view.transform(this.s, vp.rect);
      x = Math.floor((cx * dpr - xf[2]) / xf[0]);
      y = Math.floor((cy * dpr - xf[3]) / xf[1]);
      z = this.s.slice;
    } else {
      const g = apply(this.Ainv, toWorld(this.mapping(vp), cx * dpr, cy * dpr)).map(Math.round);
      [x, y, z] = g;
    }
    if (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz || !this.vol.ready[z]) return null;
    if (this.unreadableReason(z) !== null) return null;       // no image there: nothing to probe
    const spp = this.vol.header.samples || 1;
    const data = this.ensureData(), i = ((z * ny + y) * nx + x) * spp;
    if (spp === 3) return { x, y, z, rgb: [data[i], data[i + 1], data[i + 2]] };   // colour: R, G, B
    const stored = data[i];
    const r = this.vol.header.rescale;
    return { x, y, z, stored, real: stored * r.slope + r.intercept, units: this.vol.header.units };
  }

  // ------------------------------------------------------------ context loss
  contextLost() {
    this.lost = true;
    const n = $('gl-notice');
    n.textContent = 'The graphics context was lost; restoring…';
    n.hidden = false;
    this.canvas.dataset.contextLost = '1';
  }

  async contextRestored() {
    this.view.reset(); this.mpr.reset(); this.ray.reset();
    const dtype = this.vol ? this.vol.header.dtype : 'int16';
    this.glReady = Promise.all([this.mpr.init(), this.ray.init(), this.mpr.init(dtype), this.ray.init(dtype)]);
    await this.glReady;
    this.lost = false;
    if (this.vol) {
      const v = this.vol;
      this.ensureData(v);
      await this.view.setVolume(v.header, v.data);
      const upto = v.complete;
      if (upto > 0) this.view.upload(0, upto);
      else if (v.ready[this.s.slice]) this.view.upload(this.s.slice, this.s.slice + 1);
      if (this.rv || v.started) {
        this.rv = new RenderVolume(this.gl, v.header, v.data, this.view);
        if (upto > 0) this.rv.upload(0, upto);
      }
      this.noteGpuMemory();
    }
    $('gl-notice').hidden = true;
    this.canvas.dataset.contextLost = '0';
    this.canvas.dataset.restored = String(Number(this.canvas.dataset.restored || 0) + 1);
    this.invalidate3d();
  }

  /** Stop showing the volume (the media it came from was closed). */
  close() { this.memoryKept.clear(); this.clear(); this.compare.clearAll(); }
}

// the methods of each job, as if declared in the class (non-enumerable, like class methods)
for (const part of [ViewerLoading, ViewerLayout, ViewerOverlay, ViewerInput, ViewerNonImage, ViewerTimeline, ViewerAnnotations]) {
  for (const name of Object.getOwnPropertyNames(part.prototype)) {
    if (name === 'constructor') continue;
    if (Object.prototype.hasOwnProperty.call(Viewer.prototype, name)) throw new Error(`Viewer.${name} defined twice`);
    Object.defineProperty(Viewer.prototype, name, Object.getOwnPropertyDescriptor(part.prototype, name));
  }
}
