// viewer.js -- the 2D viewer: loading (progressive), interaction, overlay, cine, probe.

import * as api from './api.js';
import { requestRedraw } from './scheduler.js';
import { edgeLabels, slicePosition } from './orientation.js';
import { SliceView } from './views/slice-view.js';

const $ = (id) => document.getElementById(id);

/** Default presets for CT (HU). */
const CT_PRESETS = [
  { name: 'Brain', center: 40, width: 80 },
  { name: 'Soft tissue', center: 50, width: 400 },
  { name: 'Abdomen', center: 60, width: 360 },
  { name: 'Lung', center: -600, width: 1500 },
  { name: 'Bone', center: 400, width: 1800 },
];

export class Viewer {
  constructor() {
    this.canvas = $('view');
    this.stage = $('stage');
    this.view = new SliceView(this.canvas);
    this.vol = null;          // {vid, header, data, ready: Uint8Array, uploaded, complete}
    this.seq = 0;             // newer opens supersede older ones
    this.abort = null;
    this.s = { slice: 0, center: 40, width: 400, invert: false, zoom: 1, panX: 0, panY: 0, smooth: true, sliceReady: false };
    this.presets = [];
    this.cine = null;
    this.draw = () => this.render();
    this.uploadPending = () => {};
    this.bind();
    new ResizeObserver(() => requestRedraw(this.draw)).observe(this.stage);
  }

  // ------------------------------------------------------------ loading
  /** Open a volume by id; resolves when the first slice is drawable. */
  async open(vid, t0 = performance.now()) {
    const seq = ++this.seq;
    if (this.abort) this.abort.abort();
    const ctrl = new AbortController();
    this.abort = ctrl;
    this.stopCine();
    Object.assign(this.canvas.dataset, { vid, tOpen: String(t0), tFirst: '', tLoaded: '', ready: '0', drawn: '' });
    const header = await api.volumeHeader(vid, ctrl.signal);
    if (seq !== this.seq) return;
    const [nz, ny, nx] = header.shape;
    const T = api.arrayType(header.dtype);
    const buffer = new ArrayBuffer(nz * header.slice_bytes);
    const data = new T(buffer);
    this.vol = { vid, header, data, ready: new Uint8Array(nz), uploaded: 0, complete: 0 };
    await this.view.setVolume(header, data);
    if (seq !== this.seq) return;
    this.setupPresets(header);
    Object.assign(this.s, { slice: Math.floor(nz / 2), zoom: 1, panX: 0, panY: 0, sliceReady: false,
      invert: !!header.invert });
    this.canvas.dataset.slices = String(nz);
    this.updateOverlay();
    this.updateLabels();
    const first = this.s.slice;
    const firstSlice = api.volumeSlice(vid, first, ctrl.signal).then((sl) => {
      if (seq !== this.seq || this.vol.ready[first]) return;
      data.set(sl.data, first * nx * ny);
      this.vol.ready[first] = 1;
      this.view.upload(first, first + 1);
      this.view.invalidate(first);
      this.refresh(true);
    });
    this.uploadPending = () => {
      if (seq !== this.seq) return;
      const v = this.vol;
      if (v.complete > v.uploaded) {
        this.view.upload(v.uploaded, v.complete);
        for (let z = v.uploaded; z < v.complete; z++) this.view.invalidate(z);
        v.uploaded = v.complete;
      }
      this.canvas.dataset.ready = String(v.complete);
      $('load-progress').textContent = v.complete < nz ? `loading ${v.complete}/${nz}` : '';
      this.refresh(false);
    };
    const stream = api.streamVolume(vid, buffer, (complete) => {
      if (seq !== this.seq) return;
      this.vol.ready.fill(1, this.vol.complete, complete);
      this.vol.complete = complete;
      requestRedraw(this.uploadPending);
    }, ctrl.signal).then(() => {
      if (seq !== this.seq) return;
      this.uploadPending();
      this.canvas.dataset.tLoaded = String(performance.now());
    });
    stream.catch((e) => {
      if (e.name !== 'AbortError' && seq === this.seq) $('load-progress').textContent = e.message;
    });
    await firstSlice.catch((e) => { if (e.name !== 'AbortError') throw e; });
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

  // ------------------------------------------------------------ drawing
  refresh(sliceChanged) {
    if (!this.vol) return;
    const was = this.s.sliceReady;
    this.s.sliceReady = !!this.vol.ready[this.s.slice];
    if (sliceChanged || was !== this.s.sliceReady) requestRedraw(this.draw);
  }

  render() {
    if (!this.vol) { this.view.resize(); return; }
    this.s.sliceReady = !!this.vol.ready[this.s.slice];
    const xf = this.view.draw(this.s);
    const d = this.canvas.dataset;
    d.slice = String(this.s.slice);
    d.wc = String(this.s.center); d.ww = String(this.s.width);
    d.zoom = String(this.s.zoom); d.invert = this.s.invert ? '1' : '0';
    if (xf) {
      d.xform = xf.map((v) => v.toFixed(4)).join(',');
      if (!d.tFirst) d.tFirst = String(performance.now());
      d.drawn = String(this.s.slice);
    } else {
      d.drawn = '';
    }
    this.updateOverlay();
  }

  updateLabels() {
    const e = edgeLabels(this.vol.header.affine_lps);
    for (const k of ['top', 'bottom', 'left', 'right']) $(`orient-${k}`).textContent = e[k];
  }

  updateOverlay() {
    if (!this.vol) return;
    const h = this.vol.header, L = h.labels || {};
    const [nz, ny, nx] = h.shape;
    const pos = slicePosition(h.affine_lps, this.s.slice, nx, ny);
    const lines = (...xs) => xs.filter((x) => x).join('\n');
    // textContent only: every label is attacker-controlled DICOM text.
    $('corner-tl').textContent = lines(L.patient_name, L.patient_id, L.birth_date);
    $('corner-tr').textContent = lines(L.study_description, L.study_date, L.series_description, L.modality || h.modality);
    $('corner-bl').textContent = lines(`Slice ${this.s.slice + 1} / ${nz}`, `Pos ${pos.along.toFixed(1)} mm`,
      `${nx}×${ny}  ${h.spacing[0].toFixed(2)}×${h.spacing[1].toFixed(2)}×${h.spacing[2].toFixed(2)} mm`,
      h.kind === 'sequence' ? 'sequence (not a regular volume)' : '');
    $('corner-br').textContent = lines(`W ${Math.round(this.s.width)}  L ${Math.round(this.s.center)}`,
      `Zoom ${(this.s.zoom * 100).toFixed(0)}%`, this.s.invert ? 'Inverted' : '');
  }

  // ------------------------------------------------------------ actions
  setSlice(z) {
    if (!this.vol) return;
    const nz = this.vol.header.shape[0];
    z = Math.max(0, Math.min(nz - 1, z));
    if (z === this.s.slice) return;
    this.s.slice = z;
    this.refresh(true);
  }

  scroll(dz) { if (this.vol) this.setSlice(this.s.slice + dz); }

  setWindow(center, width) {
    this.s.center = center; this.s.width = Math.max(1, width);
    requestRedraw(this.draw);
  }

  applyPreset(i) {
    const p = this.presets[i];
    if (!p) return;
    $('preset').value = String(i);
    this.setWindow(p.center, p.width);
  }

  toggleInvert() { this.s.invert = !this.s.invert; requestRedraw(this.draw); }

  fit() { Object.assign(this.s, { zoom: 1, panX: 0, panY: 0 }); requestRedraw(this.draw); }

  zoomBy(f) { this.s.zoom = Math.max(0.1, Math.min(40, this.s.zoom * f)); requestRedraw(this.draw); }

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
    this.render();
    const out = document.createElement('canvas');
    out.width = this.canvas.width; out.height = this.canvas.height;
    out.getContext('2d').drawImage(this.canvas, 0, 0);
    return api.savePng(out, `pocketpacs-slice-${this.s.slice + 1}.png`);
  }

  /** Probe: image pixel under a canvas (CSS px) point, stored and rescaled value. */
  probe(cx, cy) {
    if (!this.vol) return null;
    const xf = this.view.transform(this.s);
    const dpr = window.devicePixelRatio || 1;
    const x = Math.floor((cx * dpr - xf[2]) / xf[0]);
    const y = Math.floor((cy * dpr - xf[3]) / xf[1]);
    const [, ny, nx] = this.vol.header.shape;
    if (x < 0 || y < 0 || x >= nx || y >= ny || !this.vol.ready[this.s.slice]) return null;
    const stored = this.vol.data[(this.s.slice * ny + y) * nx + x];
    const r = this.vol.header.rescale;
    return { x, y, stored, real: stored * r.slope + r.intercept, units: this.vol.header.units };
  }

  // ------------------------------------------------------------ input
  bind() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('pointerdown', (e) => {
      c.setPointerCapture(e.pointerId);
      drag = { button: e.button, x: e.clientX, y: e.clientY, center: this.s.center, width: this.s.width,
        panX: this.s.panX, panY: this.s.panY, zoom: this.s.zoom };
      this.stage.focus();
    });
    c.addEventListener('pointermove', (e) => {
      const r = c.getBoundingClientRect();
      const p = this.probe(e.clientX - r.left, e.clientY - r.top);
      const real = p && (Number.isInteger(p.real) ? String(p.real) : p.real.toFixed(2));
      $('probe').textContent = p ? `(${p.x}, ${p.y})  stored ${p.stored}  value ${real} ${p.units || ''}`.trim() : '';
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.button === 2) {
        // right-drag: horizontal = width, vertical = level; step scales with the width
        const k = Math.max(drag.width, 10) / 256;
        this.setWindow(drag.center + dy * k, drag.width + dx * k);
      } else if (drag.button === 1) {
        this.s.zoom = Math.max(0.1, Math.min(40, drag.zoom * Math.exp(-dy / 200)));
        requestRedraw(this.draw);
      } else {
        this.s.panX = drag.panX + dx; this.s.panY = drag.panY + dy;
        requestRedraw(this.draw);
      }
    });
    const end = () => { drag = null; };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      if (e.ctrlKey) this.zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1);
      else this.scroll(e.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    this.stage.addEventListener('keydown', (e) => this.key(e));
    $('preset').addEventListener('change', (e) => this.applyPreset(Number(e.target.value)));
    $('btn-invert').addEventListener('click', () => this.toggleInvert());
    $('btn-fit').addEventListener('click', () => this.fit());
    $('btn-cine').addEventListener('click', () => this.toggleCine());
    $('btn-shot').addEventListener('click', () => this.screenshot().catch(() => {}));
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
    };
    if (k >= '1' && k <= '9') { this.applyPreset(Number(k) - 1); e.preventDefault(); return; }
    if (acts[k]) { acts[k](); e.preventDefault(); }
  }

  close() {
    this.seq++;
    if (this.abort) this.abort.abort();
    this.stopCine();
  }
}
