// viewer.js -- the viewer: loading (progressive), layouts (acquired slices, axial /
// coronal / sagittal MPR, 3D), linked crosshair, measurements, panels, overlay, cine, probe.
//
// One WebGL2 canvas holds every viewport (gl.viewport + scissor); the canvas
// keeps its pixels (preserveDrawingBuffer), so a change redraws only what it
// touches: a slice scroll never re-renders the 3D view.  Graphics (crosshair,
// measurements) go on a 2D overlay canvas above it.

import * as api from './api.js';
import { requestRedraw } from './scheduler.js';
import { edgeLabels, letters, slicePosition } from './orientation.js';
import { SliceView } from './views/slice-view.js';
import { MprView } from './views/mpr-view.js';
import { RayView } from './views/ray-view.js';
import { RenderVolume } from './gl/volume3d.js';
import { PLANES, add, apply, dot, invertAffine, orbit, planeMapping, scale, stepAlong, toCanvas, toWorld } from './mpr.js';
import { PRESETS, defaultPreset } from './tf.js';
import * as M from './measure.js';
import { Panels, histogram } from './panels.js';

const $ = (id) => document.getElementById(id);

/** Default presets for CT (HU). */
const CT_PRESETS = [
  { name: 'Brain', center: 40, width: 80 },
  { name: 'Soft tissue', center: 50, width: 400 },
  { name: 'Abdomen', center: 60, width: 360 },
  { name: 'Lung', center: -600, width: 1500 },
  { name: 'Bone', center: 400, width: 1800 },
];

const GRID = ['axial', 'coronal', 'sagittal', '3d'];
const fmt3 = (p) => p.map((v) => v.toFixed(3)).join(',');

export class Viewer {
  constructor() {
    this.canvas = $('view');
    this.stage = $('stage');
    this.overlay = $('overlay');
    this.view = new SliceView(this.canvas);
    this.gl = this.view.gl;
    this.mpr = new MprView(this.gl);
    this.ray = new RayView(this.gl);
    this.rv = null;           // RenderVolume (MPR + 3D)
    this.vol = null;          // {vid, header, data, ready: Uint8Array, uploaded, complete}
    this.seq = 0;             // newer opens supersede older ones
    this.abort = null;
    this.s = { slice: 0, center: 40, width: 400, invert: false, zoom: 1, panX: 0, panY: 0, smooth: true, sliceReady: false };
    this.planeState = { axial: { zoom: 1, panX: 0, panY: 0 }, coronal: { zoom: 1, panX: 0, panY: 0 }, sagittal: { zoom: 1, panX: 0, panY: 0 } };
    this.r3 = { mode: 'dvr', preset: 'ct-bone', shade: true, clipLo: [0, 0, 0], clipHi: [1, 1, 1] };
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
    this.panels = new Panels();
    // the 2D slice programs compile at page load, so a first open draws at once
    for (const dtype of ['int16', 'uint16', 'float32']) this.view.program(dtype).catch(() => {});
    this.glReady = Promise.all([this.mpr.init(), this.ray.init()]).catch((e) => this.glError(e));
    this.bind();
    this.setTool('navigate');
    new ResizeObserver(() => this.invalidate3d()).observe(this.stage);
  }

  glError(e) {
    const n = $('gl-notice');
    n.textContent = e.message;
    n.hidden = false;
    this.canvas.dataset.glError = e.message;
  }

  // ------------------------------------------------------------ loading
  /** Open a volume by id; resolves when the first slice is drawable. */
  async open(vid, t0 = performance.now(), knownHeader = null, tReply = null) {
    const seq = ++this.seq;
    if (this.abort) this.abort.abort();
    const ctrl = new AbortController();
    this.abort = ctrl;
    this.stopCine();
    Object.assign(this.canvas.dataset, { vid, tOpen: String(t0), tFirst: '', tLoaded: '', ready: '0', drawn: '',
      tReply: tReply === null ? '' : String(tReply) });
    this.canvas.dataset.tCall = String(performance.now());
    // open_series answers with the header when the server has it at once
    const header = knownHeader || await api.volumeHeader(vid, ctrl.signal);
    if (seq !== this.seq) return;
    this.canvas.dataset.tHeader = String(performance.now());
    const [nz, ny, nx] = header.shape;
    // ask for the middle slice now: the server reads it while the view is set up
    const first = Math.floor(nz / 2);
    const firstReq = api.volumeSlice(vid, first, ctrl.signal);
    firstReq.catch(() => {});  // handled below; superseded opens abort it
    // the whole-volume array, the 3D textures and the stream come after the
    // first slice is on screen (start()): the first draw needs only that slice
    if (this.rv) { this.rv.dispose(); this.rv = null; }
    this.vol = { vid, header, data: null, ready: new Uint8Array(nz), uploaded: 0, complete: 0, first, firstData: null, started: false };
    this.Ainv = invertAffine(header.affine_lps);
    await this.view.setHeader(header);
    if (seq !== this.seq) return;
    this.setupPresets(header);
    this.setup3d(header);
    Object.assign(this.s, { slice: Math.floor(nz / 2), zoom: 1, panX: 0, panY: 0, sliceReady: false,
      invert: !!header.invert });
    for (const k of Object.keys(this.planeState)) this.planeState[k] = { zoom: 1, panX: 0, panY: 0 };
    this.crossPt = apply(header.affine_lps, [(nx - 1) / 2, (ny - 1) / 2, this.s.slice]);
    this.measurements = [];
    this.pending = null;
    this.panels.setHistogram(null);
    this.panels.reportFor = '';
    this.panels.header = null;
    this.updateMeasurements();
    this.canvas.dataset.slices = String(nz);
    this.canvas.dataset.ready = '0';
    this.invalidate3d();
    this.updateOverlay();
    this.updateLabels();
    this.panelRefresh();
    const vol = this.vol;
    const start = () => this.startVolume(seq, vol, ctrl.signal);
    const firstSlice = firstReq.then((sl) => {
      if (seq !== this.seq || vol.ready[first]) return;
      this.canvas.dataset.tSlice = String(performance.now());
      vol.firstData = sl.data;
      vol.ready[first] = 1;
      this.view.setPreview(first, sl.data);
      // drawn now, not in the next animation frame: the compositor may be
      // a frame or two behind (the view switch), which cost 30-50 ms here
      this.s.sliceReady = true;
      this.render();
      // once that frame is drawn (and presented), set up the rest
      requestRedraw(() => requestAnimationFrame(() => setTimeout(start, 0)));
    }, (e) => { start(); throw e; });
    await firstSlice.catch((e) => { if (e.name !== 'AbortError') throw e; });
  }

  /** The whole-volume array (allocated on first need, holding the first slice). */
  ensureData(vol = this.vol) {
    if (!vol || vol.data) return vol && vol.data;
    const h = vol.header, [nz, ny, nx] = h.shape;
    const T = api.arrayType(h.dtype);
    vol.data = new T(new ArrayBuffer(nz * h.slice_bytes));
    if (vol.firstData) vol.data.set(vol.firstData, vol.first * nx * ny);
    return vol.data;
  }

  /** After the first frame: full 2D texture, MPR/3D texture, and the progressive stream. */
  async startVolume(seq, vol, signal) {
    if (seq !== this.seq || vol.started) return;
    vol.started = true;
    const { header, vid } = vol;
    const [nz] = header.shape;
    const data = this.ensureData(vol);
    // the stream starts now and fills `data` while the textures are allocated
    // (hundreds of ms for a large volume); uploads begin once they exist
    let glSet = false;
    this.uploadPending = () => {
      if (seq !== this.seq || !glSet) return;
      const v = this.vol;
      if (v.complete > v.uploaded) {
        this.view.upload(v.uploaded, v.complete);
        this.rv.upload(v.uploaded, v.complete);
        for (let z = v.uploaded; z < v.complete; z++) this.view.invalidate(z);
        v.uploaded = v.complete;
        this.invalidate3d(false);
      }
      this.canvas.dataset.ready = String(v.complete);
      $('load-progress').textContent = v.complete < nz ? `loading ${v.complete}/${nz}` : '';
      this.refresh(false);
    };
    const stream = api.streamVolume(vid, data.buffer, (complete) => {
      if (seq !== this.seq) return;
      this.vol.ready.fill(1, this.vol.complete, complete);
      this.vol.complete = complete;
      requestRedraw(this.uploadPending);
    }, signal);
    const glDone = this.glReady.then(() => {
      if (seq !== this.seq) return;
      this.view.setData(data, vol.uploaded, vol.firstData ? [vol.first] : []);
      if (this.rv) this.rv.dispose();
      this.rv = new RenderVolume(this.gl, header, data);
      $('notice-3d').textContent = this.rv.notice;
      this.canvas.dataset.notice3d = this.rv.notice;
      this.canvas.dataset.tex3d = this.rv.dims.join('x');
      glSet = true;
      this.invalidate3d();
      this.uploadPending();
    });
    const loaded = Promise.all([stream, glDone]).then(() => {
      if (seq !== this.seq) return;
      this.uploadPending();
      const r = header.rescale;
      this.panels.setHistogram(histogram(data, r.slope, r.intercept));
      this.panelRefresh();
      this.canvas.dataset.tLoaded = String(performance.now());
    });
    loaded.catch((e) => {
      if (e.name !== 'AbortError' && seq === this.seq) $('load-progress').textContent = e.message;
    });
  }

  setupPresets(header) {
    const own = header.windows || [];
    const ct = header.modality === 'CT' && header.units === 'HU';
    this.presets = ct ? [...own.filter((w) => !CT_PRESETS.some((p) => p.name === w.name)), ...CT_PRESETS] : own.slice();
    if (!this.presets.length) {
      const r = header.rescale;
      const lo = header.value_range[0] * r.slope + r.intercept;
      const hi = header.value_range[1] * r.slope + r.intercept;
      this.presets.push({ name: 'Full range', center: (lo + hi) / 2, width: Math.max(1, hi - lo) });
    }
    const sel = $('preset');
    sel.replaceChildren(...this.presets.map((p, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = `${p.name} (${Math.round(p.center)}/${Math.round(p.width)})`;
      return o;
    }));
    const first = own.length ? this.presets.find((p) => p.name === own[0].name) || this.presets[0] : this.presets[0];
    sel.value = String(this.presets.indexOf(first));
    this.s.center = first.center; this.s.width = first.width;
  }

  setup3d(header) {
    this.r3.preset = defaultPreset(header);
    this.r3.clipLo = [0, 0, 0]; this.r3.clipHi = [1, 1, 1];
    for (const id of ['x0', 'y0', 'z0']) $(`clip-${id}`).value = '0';
    for (const id of ['x1', 'y1', 'z1']) $(`clip-${id}`).value = '100';
    $('tf-preset').value = this.r3.preset;
    this.ray.resetCamera();
    // label the clip sliders with the volume axes' patient directions
    const A = header.affine_lps;
    for (const s of document.querySelectorAll('#tools-3d [data-axis]')) {
      const i = Number(s.dataset.axis);
      const d = [A[0][i], A[1][i], A[2][i]];
      s.textContent = `${letters(d.map((x) => -x))}–${letters(d)}`;
    }
  }

  realRange() {
    const h = this.vol.header, r = h.rescale;
    const a = h.value_range[0] * r.slope + r.intercept, b = h.value_range[1] * r.slope + r.intercept;
    const hist = this.panels.hist;
    return hist ? [hist.lo, hist.hi] : [Math.min(a, b), Math.max(a, b)];
  }

  // ------------------------------------------------------------ layout
  /** Viewport list for the current layout: [{kind, rect (device px), el}]. */
  layoutViewports() {
    const W = this.canvas.width, H = this.canvas.height;
    const els = [0, 1, 2, 3].map((i) => $(`vp${i}`));
    let vps;
    if (this.layout === '2x2') {
      const w2 = Math.floor(W / 2), h2 = Math.floor(H / 2);
      const rects = [[0, 0, w2, h2], [w2, 0, W - w2, h2], [0, h2, w2, H - h2], [w2, h2, W - w2, H - h2]];
      vps = GRID.map((kind, i) => ({ kind, rect: rects[i], el: els[i] }));
    } else {
      vps = [{ kind: this.single, rect: [0, 0, W, H], el: els[0] }];
    }
    const dpr = window.devicePixelRatio || 1;
    els.forEach((e, i) => {
      const vp = vps[i];
      e.hidden = !vp;
      if (!vp) return;
      const [x, y, w, h] = vp.rect;
      Object.assign(e.style, { left: `${x / dpr}px`, top: `${y / dpr}px`, width: `${w / dpr}px`, height: `${h / dpr}px` });
      e.dataset.kind = vp.kind;
      e.dataset.rect = vp.rect.join(',');
    });
    this.vps = vps;
    return vps;
  }

  setLayout(layout, single = this.single) {
    this.layout = layout;
    this.single = single;
    $('layout').value = layout;
    $('single').value = single;
    $('single-wrap').hidden = layout !== '1';
    $('tools-3d').hidden = !(layout === '2x2' || single === '3d');
    this.active = layout === '2x2' ? 'axial' : single;
    this.invalidate3d();
  }

  /** Mark the 3D view for re-rendering (and everything else for redraw). */
  invalidate3d(redraw = true) {
    this.dirty3d = true;
    if (redraw !== false) requestRedraw(this.draw);
  }

  has3d() { return this.vps.some((v) => v.kind === '3d'); }

  // ------------------------------------------------------------ mappings
  /** Canvas px <-> LPS mapping of a 2D viewport, or null. */
  mapping(vp) {
    if (!this.vol || this.view.header !== this.vol.header) return null;
    const h = this.vol.header;
    if (vp.kind === 'native') {
      const xf = this.view.transform(this.s, vp.rect);
      const A = h.affine_lps;
      const col = [A[0][0], A[1][0], A[2][0]], row = [A[0][1], A[1][1], A[2][1]];
      const O = apply(A, [-xf[2] / xf[0] - 0.5, -xf[3] / xf[1] - 0.5, this.s.slice]);
      return { O, U: scale(col, 1 / xf[0]), V: scale(row, 1 / xf[1]), xf };
    }
    const pl = PLANES[vp.kind];
    if (!pl) return null;
    const st = this.planeState[vp.kind];
    const dpr = window.devicePixelRatio || 1;
    const [nz, ny, nx] = h.shape;
    return planeMapping({ A: h.affine_lps, dims: [nx, ny, nz], u: pl.u, v: pl.v, cross: this.crossPt, rect: vp.rect,
      zoom: st.zoom, panX: st.panX * dpr, panY: st.panY * dpr });
  }

  /** Key of the plane a 2D viewport shows (measurements belong to one plane). */
  planeKey(vp) {
    if (vp.kind === 'native') return `native:${this.s.slice}`;
    const pl = PLANES[vp.kind];
    const n = [0, 1, 2].map((i) => (i === pl.axis ? 1 : 0));
    return `${vp.kind}:${dot(this.crossPt, n).toFixed(2)}`;
  }

  planeInfo(vp) {
    if (vp.kind === 'native') return { native: true, slice: this.s.slice };
    const pl = PLANES[vp.kind];
    return { native: false, u: pl.u, v: pl.v };
  }

  vpAt(px, py) {
    return this.vps.find((v) => px >= v.rect[0] && py >= v.rect[1] && px < v.rect[0] + v.rect[2] && py < v.rect[1] + v.rect[3]);
  }

  // ------------------------------------------------------------ drawing
  refresh(sliceChanged) {
    if (!this.vol) return;
    const was = this.s.sliceReady;
    this.s.sliceReady = !!this.vol.ready[this.s.slice];
    if (sliceChanged || was !== this.s.sliceReady) requestRedraw(this.draw);
  }

  render() {
    if (this.lost) return;
    const W0 = this.canvas.width, H0 = this.canvas.height;
    this.view.resize();
    const resized = W0 !== this.canvas.width || H0 !== this.canvas.height;
    if (resized) this.dirty3d = true;
    const vps = this.layoutViewports();
    const d = this.canvas.dataset;
    d.layout = this.layout === '2x2' ? '2x2' : this.single;
    if (!this.vol || this.view.header !== this.vol.header) {
      const gl = this.gl;
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.clearColor(0, 0, 0, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      return;
    }
    this.s.sliceReady = !!this.vol.ready[this.s.slice];
    const win = { center: this.s.center, width: this.s.width, invert: this.s.invert };
    for (const vp of vps) {
      if (vp.kind === 'native') {
        const xf = this.view.draw(this.s, vp.rect);
        d.slice = String(this.s.slice);
        // "drawn" means the volume named by data-vid: open() announces the new id
        // before its header arrives, while the old volume may still be redrawn
        if (xf && this.vol.vid === d.vid) {
          d.xform = xf.map((v) => v.toFixed(4)).join(',');
          if (!d.tFirst) d.tFirst = String(performance.now());
          d.drawn = String(this.s.slice);
        } else {
          d.drawn = '';
        }
      } else if (vp.kind === '3d') {
        if (this.dirty3d) this.render3d(vp);
      } else {
        const m = this.mapping(vp);
        this.mpr.draw(this.rv && this.rv.uploadedTo > 0 ? this.rv : null, m, vp.rect, win);
        vp.el.dataset.map = [...m.O, ...m.U, ...m.V].map((v) => v.toPrecision(9)).join(',');
        vp.el.dataset.rendered = String(this.rv ? this.rv.uploadedTo : 0);
      }
    }
    if (!this.has3d()) this.dirty3d = true;     // redraw when it comes back
    d.wc = String(this.s.center); d.ww = String(this.s.width);
    d.zoom = String(this.s.zoom); d.invert = this.s.invert ? '1' : '0';
    d.cross = fmt3(this.crossPt);
    d.tool = this.tool;
    this.drawOverlay();
    this.updateOverlay();
    this.updateLabels();
    if (this.panels.visible && this.panels.tab === 'assembly') {
      this.panels.drawHistogram(this.s.center, this.s.width, this.vol.header.units);
    }
  }

  render3d(vp) {
    const ok = this.ray.p && this.rv && this.rv.uploadedTo > 0;
    if (ok) this.ray.setPreset(this.r3.preset, this.realRange());
    const drawn = this.ray.draw(ok ? this.rv : null, vp.rect, {
      mode: this.r3.mode, shade: this.r3.shade, clipLo: this.r3.clipLo, clipHi: this.r3.clipHi,
      center: this.s.center, width: this.s.width, interactive: this.interacting,
    });
    this.dirty3d = false;
    const e = vp.el.dataset;
    e.quality = this.interacting ? 'interactive' : 'still';
    if (drawn && this.rv.ready && !this.interacting) {
      this.renders3d += 1;
      e.renders = String(this.renders3d);
      e.state = [this.r3.mode, this.r3.preset, this.r3.shade ? 1 : 0, ...this.r3.clipLo, ...this.r3.clipHi,
        ...this.ray.cam.R.flat().map((v) => v.toFixed(4)), this.ray.cam.zoom, this.ray.cam.panX, this.ray.cam.panY].join(',');
    }
  }

  /** Crosshair, measurements and the measurement being drawn, on the 2D overlay canvas. */
  drawOverlay() {
    const o = this.overlay;
    if (o.width !== this.canvas.width || o.height !== this.canvas.height) { o.width = this.canvas.width; o.height = this.canvas.height; }
    const ctx = o.getContext('2d');
    ctx.clearRect(0, 0, o.width, o.height);
    if (!this.vol || this.view.header !== this.vol.header) return;
    const dpr = window.devicePixelRatio || 1;
    const units = this.vol.header.units;
    for (const vp of this.vps) {
      const m = vp.kind === '3d' ? null : this.mapping(vp);
      if (!m) continue;
      const [x, y, w, h] = vp.rect;
      ctx.save();
      ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip();
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
      for (const meas of this.measurements) if (meas.view === key) M.draw(ctx, meas, toPx, M.describe(meas, units).split(':')[0].replace(/^(Distance|Angle) /, ''));
      if (this.pending && this.pending.view === key) M.draw(ctx, this.pending, toPx, '');
      ctx.restore();
    }
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
      for (const k of ['top', 'bottom', 'left', 'right']) vp.el.querySelector(`.orient.${k}`).textContent = e[k];
    }
  }

  /** Position text of a viewport (mm along its axis). */
  positionText(vp) {
    if (vp.kind === '3d') {
      return `3D ${{ dvr: 'volume rendering', mip: 'MIP', minip: 'MinIP' }[this.r3.mode]}`
        + (this.r3.mode === 'dvr' ? ` · ${PRESETS[this.r3.preset].label}` : '');
    }
    const pl = PLANES[vp.kind];
    const axisName = ['x (R→L)', 'y (A→P)', 'z (I→S)'][pl.axis];
    const pos = this.crossPt[pl.axis];
    vp.el.dataset.pos = String(pos);
    return `${pl.label}  ${axisName} ${pos.toFixed(1)} mm`;
  }

  updateOverlay() {
    if (!this.vol) return;
    const h = this.vol.header, L = h.labels || {};
    const [nz, ny, nx] = h.shape;
    const lines = (...xs) => xs.filter((x) => x).join('\n');
    const first = this.vps[0];
    // textContent only: every label is attacker-controlled DICOM text.
    $('corner-tl').textContent = lines(L.patient_name, L.patient_id, L.birth_date);
    $('corner-tr').textContent = lines(L.study_description, L.study_date, L.series_description, L.modality || h.modality);
    if (!first || first.kind === 'native') {
      const pos = slicePosition(h.affine_lps, this.s.slice, nx, ny);
      $('corner-bl').textContent = lines(`Slice ${this.s.slice + 1} / ${nz}`, `Pos ${pos.along.toFixed(1)} mm`,
        `${nx}×${ny}  ${h.spacing[0].toFixed(2)}×${h.spacing[1].toFixed(2)}×${h.spacing[2].toFixed(2)} mm`,
        h.kind === 'sequence' ? 'sequence (not a regular volume)' : '');
    } else {
      $('corner-bl').textContent = this.positionText(first);
    }
    for (const vp of this.vps.slice(1)) vp.el.querySelector('.vp-info').textContent = this.positionText(vp);
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
      this.panels.loadReport(this.vol.vid);
      this.panels.drawHistogram(this.s.center, this.s.width, this.vol.header.units);
    }
  }

  updateMeasurements() {
    const units = this.vol ? this.vol.header.units : '';
    this.panels.setMeasurements(this.measurements, (m) => M.describe(m, units), (id) => {
      this.measurements = this.measurements.filter((m) => m.id !== id);
      this.updateMeasurements();
      requestRedraw(this.draw);
    });
    this.canvas.dataset.measurements = String(this.measurements.length);
    $('btn-panel').textContent = this.measurements.length ? `Panel (${this.measurements.length})` : 'Panel';
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
    requestRedraw(this.draw);
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

  reset3d() { this.ray.resetCamera(); this.invalidate3d(); }

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
    const stored = this.ensureData()[(z * ny + y) * nx + x];
    const r = this.vol.header.rescale;
    return { x, y, z, stored, real: stored * r.slope + r.intercept, units: this.vol.header.units };
  }

  // ------------------------------------------------------------ input
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
        R: this.ray.cam.R, cam: { ...this.ray.cam } };
      this.stage.focus();
      if (!vp || !this.vol || e.button !== 0) return;
      const m = vp.kind === '3d' ? null : this.mapping(vp);
      if (!m) return;
      const p = toWorld(m, px, py);
      if (this.tool === 'cross') { this.setCross(p); drag.mode = 'cross'; return; }
      if (['distance', 'rect', 'ellipse'].includes(this.tool)) {
        this.pending = M.make(this.tool, this.planeKey(vp), [p, p.slice()], this.planeInfo(vp));
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
        this.pending = M.make('angle', this.planeKey(vp), [p, p.slice()], this.planeInfo(vp));
        this.pending.stage = 1;
        drag.mode = 'measure';
        requestRedraw(this.draw);
      }
    });
    c.addEventListener('pointermove', (e) => {
      const [px, py] = local(e);
      const r = c.getBoundingClientRect();
      const p = this.probe(e.clientX - r.left, e.clientY - r.top);
      const real = p && (Number.isInteger(p.real) ? String(p.real) : p.real.toFixed(2));
      $('probe').textContent = p ? `(${p.x}, ${p.y}${this.vps.length > 1 || this.single !== 'native' ? `, ${p.z}` : ''})  stored ${p.stored}  value ${real} ${p.units || ''}`.trim() : '';
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
        } else if (drag.button === 2) {
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
    M.evaluate(this.vol, m);
    this.measurements.push(m);
    this.updateMeasurements();
    requestRedraw(this.draw);
  }

  key(e) {
    const nz = this.vol ? this.vol.header.shape[0] : 0;
    const k = e.key;
    const acts = {
      ArrowUp: () => this.scroll(-1), ArrowDown: () => this.scroll(1),
      PageUp: () => this.scroll(-10), PageDown: () => this.scroll(10),
      Home: () => this.setSlice(0), End: () => this.setSlice(nz - 1),
      i: () => this.toggleInvert(), f: () => this.fit(), ' ': () => this.toggleCine(),
      '+': () => this.zoomBy(1.25), '=': () => this.zoomBy(1.25), '-': () => this.zoomBy(0.8),
      s: () => this.screenshot().catch(() => {}),
      n: () => this.setTool('navigate'), c: () => this.setTool('cross'), d: () => this.setTool('distance'),
      a: () => this.setTool('angle'), r: () => this.setTool('rect'), e: () => this.setTool('ellipse'),
      p: () => this.togglePanel(),
      Delete: () => { this.measurements.pop(); this.updateMeasurements(); requestRedraw(this.draw); },
    };
    if (k >= '1' && k <= '9') { this.applyPreset(Number(k) - 1); e.preventDefault(); return; }
    if (acts[k]) { acts[k](); e.preventDefault(); }
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
    this.glReady = Promise.all([this.mpr.init(), this.ray.init()]);
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
        this.rv = new RenderVolume(this.gl, v.header, v.data);
        if (upto > 0) this.rv.upload(0, upto);
      }
    }
    $('gl-notice').hidden = true;
    this.canvas.dataset.contextLost = '0';
    this.canvas.dataset.restored = String(Number(this.canvas.dataset.restored || 0) + 1);
    this.invalidate3d();
  }

  close() {
    this.seq++;
    if (this.abort) this.abort.abort();
    this.stopCine();
  }
}

