// compare.js -- the Compare view: two (1x2) or four (2x2) viewports side by side, each
// showing its own series (the current study and its priors) with its own window,
// slice, zoom and pan; scroll, zoom/pan and window linked on demand.
//
// Each viewport (Pane) is a small viewer of its own: one canvas and WebGL2
// context (a SliceView), its own volume loaded progressively through its own
// server slot (`cmp0`..`cmp3`: opening a series in one viewport never cancels
// another's), its own corner texts.  Scroll linking goes by world position when
// two series share a Frame of Reference (the other viewport shows the slice
// nearest the same patient point along its own normal), and by slice index
// otherwise, which the overlay says.  "Open prior" asks the server for the same
// patient's other studies of the modality and opens the best-matching series of
// the most recent earlier one.  The layout and link choices are remembered per
// modality (localStorage: no patient data).  A viewport whose open fails shows
// nothing of any series, only why; the other viewports stay as they were.

import * as api from './api.js';
import { requestRedraw } from './scheduler.js';
import { SliceView } from './views/slice-view.js';
import { apply, invertAffine } from './mpr.js';
import { NO_LABELS, edgeLabels, hasPatientAxes, slicePosition } from './orientation.js';
import { spacingText } from './measure.js';
import { visible } from './text.js';

const $ = (id) => document.getElementById(id);

export const NOTICE_WORLD = 'linked by world position';
export const NOTICE_INDEX = 'linked by slice index (no common frame of reference)';
/** The drag-and-drop data type of a series id (dropped on a viewport, it opens there). */
export const SERIES_DRAG = 'application/x-pocketpacs-series';
const STORE_KEY = 'pocketpacs.compare.';
const LAYOUTS = { '1x2': 2, '2x2': 4 };

/** The localStorage key of a modality's hanging layout (a DICOM code string, nothing else). */
function hangingKey(modality) {
  const m = String(modality || '').toUpperCase();
  return STORE_KEY + (/^[A-Z0-9]{1,16}$/.test(m) ? m : 'OT');
}

/** One viewport of the Compare view: a canvas, its volume and its view state. */
class Pane {
  constructor(compare, index) {
    this.compare = compare;
    this.index = index;
    const el = document.createElement('div');
    el.className = 'cmp-vp';
    el.id = `cmp-vp${index}`;
    el.dataset.index = String(index);
    this.canvas = document.createElement('canvas');
    el.append(this.canvas);
    this.text = {};
    for (const k of ['tl', 'tr', 'bl', 'br']) {
      const d = document.createElement('div');
      d.className = `corner ${k}`;
      el.append(d);
      this.text[k] = d;
    }
    this.orient = {};
    for (const k of ['top', 'bottom', 'left', 'right']) {
      const d = document.createElement('div');
      d.className = `orient ${k}`;
      el.append(d);
      this.orient[k] = d;
    }
    this.msg = document.createElement('div');
    this.msg.className = 'cmp-msg';
    el.append(this.msg);
    this.el = el;
    this.view = new SliceView(this.canvas);
    this.vol = null;           // {vid, header, data, ready, uploaded, complete}
    this.seriesId = null;
    this.seq = 0;
    this.abort = null;
    this.presets = [];
    this.s = { slice: 0, center: 40, width: 400, invert: false, zoom: 1, panX: 0, panY: 0, smooth: true, sliceReady: false };
    this.linkBase = 0;
    this.draw = () => this.render();
    this.uploadPending = () => {};
    this.bind();
    this.clear();
  }

  get shown() { return !this.el.hidden; }

  // ------------------------------------------------------------ loading
  /**
   * Open an archived series here; resolves when its first slice is drawable.
   * What this viewport showed goes first; a failure leaves it empty with the reason.
   */
  async open(seriesId, stack = 0) {
    this.clear();
    const seq = this.seq;
    const ctrl = new AbortController();
    this.abort = ctrl;
    this.el.dataset.state = 'loading';
    this.msg.textContent = 'Loading…';
    try {
      const data = await api.call('open_series', { series_id: seriesId, stack, slot: `cmp${this.index}` });
      if (seq !== this.seq) return;
      let header = data.header || null;
      if (!header) {
        try { header = await api.volumeHeader(data.volume_id, ctrl.signal); } catch (e) { throw await this.whyFailed(data.volume_id, e); }
      }
      if (seq !== this.seq) return;
      this.seriesId = seriesId;
      await this.show(seq, data.volume_id, header, null, ctrl.signal);
    } catch (e) {
      if (seq !== this.seq || e.name === 'AbortError' || e.code === 'superseded') return;
      this.fail(e);
    }
  }

  /** Why a volume has no header: its job's own error when it has one. */
  async whyFailed(vid, e) {
    if (e.name === 'AbortError') return e;
    try {
      const st = await api.call('volume_status', { volume_id: vid });
      if (st && st.error) return new api.ApiError(st.error.code, st.error.message);
    } catch (e2) { /* the header's error it is */ }
    return e;
  }

  /** Show a volume already loaded whole elsewhere (the main viewer's): no new request. */
  async adopt(vol, seriesId) {
    this.clear();
    const seq = this.seq;
    this.seriesId = seriesId || null;
    try {
      await this.show(seq, vol.vid, vol.header, vol.data, null);
    } catch (e) {
      if (seq === this.seq) this.fail(e);
    }
  }

  /** Set up the view for a header, then draw the middle slice and stream the rest (or use `whole`). */
  async show(seq, vid, header, whole, signal) {
    const [nz, ny, nx] = header.shape;
    await this.view.setHeader(header);
    if (seq !== this.seq) return;
    const T = api.arrayType(header.dtype);
    const data = whole || new T(new ArrayBuffer(nz * header.slice_bytes));
    this.vol = { vid, header, data, ready: new Uint8Array(nz), uploaded: 0, complete: 0 };
    this.Ainv = invertAffine(header.affine_lps);
    this.setupPresets(header);
    Object.assign(this.s, { slice: Math.floor(nz / 2), zoom: 1, panX: 0, panY: 0, invert: !!header.invert, sliceReady: false });
    this.linkBase = this.s.slice;
    Object.assign(this.el.dataset, { vid, slices: String(nz), state: 'loading', ready: '0', tLoaded: '',
      frame: header.frame_of_reference ? '1' : '0' });
    this.msg.textContent = '';
    this.compare.loaded(this);
    if (whole) {
      this.vol.ready.fill(1);
      this.vol.complete = this.vol.uploaded = nz;
      this.view.setData(data, nz);
      this.finished();
      return;
    }
    // the middle slice first (drawn at once), then the whole volume
    const first = Math.floor(nz / 2);
    const sl = await api.volumeSlice(vid, first, signal);
    if (seq !== this.seq) return;
    data.set(sl.data, first * nx * ny * (header.samples || 1));
    this.vol.ready[first] = 1;
    this.view.setPreview(first, sl.data);
    this.render();
    this.view.setData(data, 0, [first]);
    const upload = () => {
      if (seq !== this.seq) return;
      const v = this.vol;
      if (v.complete > v.uploaded) {
        this.view.upload(v.uploaded, v.complete);
        for (let z = v.uploaded; z < v.complete; z++) this.view.invalidate(z);
        v.uploaded = v.complete;
      }
      this.el.dataset.ready = String(v.complete);
      this.render();
    };
    await api.streamVolume(vid, data.buffer, (complete) => {
      if (seq !== this.seq) return;
      this.vol.ready.fill(1, this.vol.complete, complete);
      this.vol.complete = complete;
      requestRedraw(upload);
    }, signal);
    if (seq !== this.seq) return;
    upload();
    this.finished();
  }

  finished() {
    this.el.dataset.ready = String(this.vol.complete);
    this.el.dataset.state = 'ready';
    this.el.dataset.tLoaded = String(performance.now());
    this.render();
  }

  /** The open failed: nothing of any series here, only why (and the app's banner). */
  fail(e) {
    this.clear();
    this.el.dataset.state = 'failed';
    this.msg.textContent = `Could not open this series: ${e.message || e}`;
    this.compare.failed(this, e);
  }

  setupPresets(header) {
    this.presets = (header.windows || []).slice();
    if (!this.presets.length) {
      const r = header.rescale;
      const lo = header.value_range[0] * r.slope + r.intercept, hi = header.value_range[1] * r.slope + r.intercept;
      this.presets.push({ name: 'Full range', center: (lo + hi) / 2, width: Math.max(1, hi - lo) });
    }
    this.s.center = this.presets[0].center;
    this.s.width = Math.max(1, this.presets[0].width);
  }

  /** Show nothing: forget the volume, its texts and state; work in flight is dropped. */
  clear() {
    this.seq++;
    if (this.abort) { this.abort.abort(); this.abort = null; }
    this.view.clear();
    this.vol = null;
    this.seriesId = null;
    this.presets = [];
    for (const d of Object.values(this.text)) d.textContent = '';
    for (const d of Object.values(this.orient)) d.textContent = '';
    this.msg.textContent = '';
    for (const k of ['vid', 'slices', 'slice', 'drawn', 'pos', 'wc', 'ww', 'zoom', 'link', 'ready', 'tLoaded', 'frame']) delete this.el.dataset[k];
    this.el.dataset.state = 'empty';
    this.render();
  }

  // ------------------------------------------------------------ actions
  /** Go to slice z; `linked`: tell the linked viewports (a user's scroll). */
  setSlice(z, linked = true) {
    if (!this.vol) return;
    z = Math.max(0, Math.min(this.vol.header.shape[0] - 1, Math.round(z)));
    if (z !== this.s.slice) {
      this.s.slice = z;
      requestRedraw(this.draw);
    }
    if (linked) this.compare.scrolled(this);
  }

  scroll(dz) { if (this.vol) this.setSlice(this.s.slice + dz); }

  setWindow(center, width, linked = true) {
    this.s.center = center;
    this.s.width = Math.max(1, width);
    requestRedraw(this.draw);
    if (linked) this.compare.windowed(this);
  }

  setZoomPan(zoom, panX, panY, linked = true) {
    Object.assign(this.s, { zoom: Math.max(0.1, Math.min(40, zoom)), panX, panY });
    requestRedraw(this.draw);
    if (linked) this.compare.zoomed(this);
  }

  /** The patient-space centre of the slice shown (LPS mm). */
  worldPoint() {
    const h = this.vol.header, [, ny, nx] = h.shape;
    return apply(h.affine_lps, [(nx - 1) / 2, (ny - 1) / 2, this.s.slice]);
  }

  /** The slice nearest a patient-space point, along this volume's own slice axis. */
  sliceAt(p) { return apply(this.Ainv, p)[2]; }

  // ------------------------------------------------------------ drawing
  render() {
    const d = this.el.dataset;
    if (!this.vol || this.view.header !== this.vol.header) {
      const gl = this.view.gl;
      this.view.resize();
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.clearColor(0, 0, 0, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      return;
    }
    this.s.sliceReady = !!this.vol.ready[this.s.slice];
    const xf = this.view.draw(this.s);
    d.slice = String(this.s.slice);
    d.drawn = xf ? String(this.s.slice) : '';
    if (xf) d.xform = xf.map((v) => v.toFixed(4)).join(',');
    d.wc = String(this.s.center); d.ww = String(this.s.width);
    d.zoom = String(this.s.zoom); d.panx = String(this.s.panX); d.pany = String(this.s.panY);
    this.updateOverlay();
  }

  /** Corner texts (textContent only: every label is DICOM text) and orientation letters. */
  updateOverlay() {
    const h = this.vol.header, L = h.labels || {};
    const [nz, ny, nx] = h.shape;
    const lines = (...xs) => xs.filter((x) => x).map(visible).join('\n');
    const patient = hasPatientAxes(h);
    const pos = slicePosition(h.affine_lps, this.s.slice, nx, ny);
    this.el.dataset.pos = pos.along.toFixed(3);
    const link = this.compare.linkMode(this);
    this.el.dataset.link = link;
    const nv = (h.volumes && h.volumes.count) || 1;
    this.text.tl.textContent = lines(L.patient_name, L.patient_id, L.birth_date);
    this.text.tr.textContent = lines(L.study_description, L.study_date, L.series_description, L.modality || h.modality);
    this.text.bl.textContent = lines(`Slice ${this.s.slice + 1} / ${nz}`, patient ? `Pos ${pos.along.toFixed(1)} mm` : '',
      `${nx}×${ny}  ${spacingText(h)}`, nv > 1 ? `volume 1 of ${nv}` : '',
      link === 'world' ? NOTICE_WORLD : link === 'index' ? NOTICE_INDEX : '');
    this.text.br.textContent = lines(`W ${Math.round(this.s.width)}  L ${Math.round(this.s.center)}`,
      `Zoom ${(this.s.zoom * 100).toFixed(0)}%`, this.s.invert ? 'Inverted' : '');
    const e = patient ? edgeLabels(h.affine_lps) : NO_LABELS;
    for (const k of ['top', 'bottom', 'left', 'right']) this.orient[k].textContent = e[k];
  }

  // ------------------------------------------------------------ input
  bind() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('pointerdown', (e) => {
      c.setPointerCapture(e.pointerId);
      this.compare.setActive(this.index);
      drag = { button: e.button, x: e.clientX, y: e.clientY, ...this.s };
    });
    c.addEventListener('pointermove', (e) => {
      if (!drag || !this.vol) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.button === 2) {
        const k = Math.max(drag.width, 10) / 256;
        this.setWindow(drag.center + dy * k, drag.width + dx * k);
      } else if (drag.button === 1) {
        this.setZoomPan(drag.zoom * Math.exp(-dy / 200), this.s.panX, this.s.panY);
      } else if (drag.button === 0) {
        this.setZoomPan(this.s.zoom, drag.panX + dx, drag.panY + dy);
      }
    });
    const end = () => { drag = null; };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      this.compare.setActive(this.index);
      if (e.ctrlKey) this.setZoomPan(this.s.zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1), this.s.panX, this.s.panY);
      else this.scroll(e.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    // a series dragged here (the series strip sets its id as SERIES_DRAG data) opens here
    this.el.addEventListener('dragover', (e) => {
      if (e.dataTransfer && [...e.dataTransfer.types].includes(SERIES_DRAG)) { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; }
    });
    this.el.addEventListener('drop', (e) => {
      const sid = e.dataTransfer ? e.dataTransfer.getData(SERIES_DRAG) : '';
      if (!/^[0-9a-f]{16,64}$/.test(sid)) return;
      e.preventDefault();
      this.compare.openInViewport(sid, this.index);
    });
    c.addEventListener('webglcontextlost', (e) => { e.preventDefault(); });
    c.addEventListener('webglcontextrestored', () => {
      // the textures are gone: reload what this viewport showed (nothing stale is drawn meanwhile)
      const sid = this.seriesId, vol = this.vol;
      this.view.reset();
      if (vol && vol.complete === vol.header.shape[0]) this.adopt(vol, sid);
      else if (sid) this.open(sid);
      else this.clear();
    });
  }
}

/** The Compare view: its viewports, the link toggles, priors and hanging layouts. */
export class Compare {
  /** @param {object} viewer the main Viewer (its volume opens in the first viewport) */
  constructor(viewer) {
    this.viewer = viewer;
    this.on = false;
    this.layout = '1x2';
    this.active = 0;
    this.panes = [];
    this.link = { scroll: false, zoom: false, window: false };
    this.onFail = null;       // (error, index) => void: the app's banner
    this.onShow = null;       // () => void: the app shows the viewer (a series was opened into a viewport)
    this.root = $('compare');
    this.grid = $('compare-grid');
    this.bindTools();
  }

  /** The viewports, created on first use (one WebGL2 context each). */
  ensurePanes() {
    if (this.panes.length) return;
    for (let i = 0; i < 4; i++) {
      const p = new Pane(this, i);
      this.panes.push(p);
      this.grid.append(p.el);
    }
    new ResizeObserver(() => { for (const p of this.panes) if (p.shown) requestRedraw(p.draw); }).observe(this.grid);
  }

  shownPanes() { return this.panes.slice(0, LAYOUTS[this.layout]); }

  // ------------------------------------------------------------ on / off
  /**
   * Turn the Compare view on (the main viewer's series in the first viewport) or off
   * (back to the single viewer, which kept its series).
   */
  setOn(on) {
    on = !!on;
    if (on === this.on) return;
    this.on = on;
    const v = this.viewer;
    if (on) {
      this.ensurePanes();
      this.tools3dHidden = $('tools-3d').hidden;
      if (v.cine) v.stopCine();
      if (v.panels.visible) v.togglePanel(false);
      const p0 = this.panes[0];
      if (!p0.vol && v.vol) {
        const h = v.vol.header;
        if (v.vol.complete === h.shape[0] && v.vol.data) p0.adopt(v.vol, v.seriesId);
        else if (v.seriesId) p0.open(v.seriesId, (h.stack && h.stack.index) || 0);
      }
    }
    $('stage').hidden = on;
    $('viewer-tools').hidden = on;
    $('tools-3d').hidden = on ? true : this.tools3dHidden;
    this.root.hidden = !on;
    document.body.dataset.compare = on ? '1' : '0';
    $('btn-compare').setAttribute('aria-pressed', String(on));
    if (on) {
      this.applyLayout(this.layout);
      this.grid.focus();
    } else {
      v.invalidate3d();
      $('stage').focus();
    }
  }

  applyLayout(layout) {
    if (!LAYOUTS[layout]) layout = '1x2';
    this.layout = layout;
    $('cmp-layout').value = layout;
    this.grid.dataset.layout = layout;
    this.panes.forEach((p, i) => { p.el.hidden = i >= LAYOUTS[layout]; });
    if (this.active >= LAYOUTS[layout]) this.setActive(0);
    else this.setActive(this.active);
    for (const p of this.panes) if (p.shown) requestRedraw(p.draw);
  }

  setActive(i) {
    this.active = i;
    this.panes.forEach((p, j) => p.el.classList.toggle('active', i === j));
    this.grid.dataset.active = String(i);
    this.showPresets();
  }

  /** The active viewport's window presets in the toolbar's box. */
  showPresets() {
    const p = this.panes[this.active], sel = $('cmp-preset');
    if (!p) return;
    sel.replaceChildren(...p.presets.map((w, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = `${w.name} (${Math.round(w.center)}/${Math.round(w.width)})`;
      return o;
    }));
    const i = p.presets.findIndex((w) => w.center === p.s.center && Math.max(1, w.width) === p.s.width);
    if (i >= 0) sel.value = String(i);
    else if (p.presets.length) {
      const o = document.createElement('option');
      o.value = 'custom';
      o.textContent = `Custom (${Math.round(p.s.center)}/${Math.round(p.s.width)})`;
      sel.append(o);
      sel.value = 'custom';
    }
  }

  /**
   * Open an archived series in viewport `index` (the active one by default),
   * turning Compare on (and to 2x2 for the third and fourth viewports).
   */
  openInViewport(seriesId, index = this.active) {
    index = Math.max(0, Math.min(3, Number(index) || 0));
    if (this.onShow) this.onShow();
    if (!this.on) this.setOn(true);
    if (index >= LAYOUTS[this.layout]) this.applyLayout('2x2');
    this.setActive(index);
    return this.panes[index].open(seriesId);
  }

  /** Show nothing in any viewport (the media they came from was closed). */
  clearAll() { for (const p of this.panes) p.clear(); this.status(''); }

  status(text) { $('cmp-status').textContent = text; }

  // ------------------------------------------------------------ linking
  /** Whether two viewports' series share patient coordinates (one Frame of Reference). */
  sameFrame(a, b) {
    const fa = a.vol && a.vol.header.frame_of_reference, fb = b.vol && b.vol.header.frame_of_reference;
    return !!(fa && fa === fb && hasPatientAxes(a.vol.header) && hasPatientAxes(b.vol.header));
  }

  /** How a viewport's scrolling is linked: 'world', 'index', or '' (not linked). */
  linkMode(p) {
    if (!this.link.scroll || !p.shown) return '';
    const others = this.shownPanes().filter((o) => o !== p && o.vol);
    if (!others.length) return '';
    return others.every((o) => this.sameFrame(p, o)) ? 'world' : 'index';
  }

  /** The slice `dst` goes to when `src` shows its slice. */
  linkedSlice(src, dst) {
    if (this.sameFrame(src, dst)) return dst.sliceAt(src.worldPoint());
    return dst.linkBase + (src.s.slice - src.linkBase);
  }

  /** Index links count from here: every viewport's current slice. */
  rebase() { for (const p of this.panes) p.linkBase = p.s.slice; }

  scrolled(src) {
    if (!this.link.scroll) return;
    for (const p of this.shownPanes()) if (p !== src && p.vol) p.setSlice(this.linkedSlice(src, p), false);
    for (const p of this.shownPanes()) if (p.vol) requestRedraw(p.draw);
  }

  windowed(src) {
    if (src === this.panes[this.active]) this.showPresets();
    if (!this.link.window) return;
    for (const p of this.shownPanes()) if (p !== src && p.vol) p.setWindow(src.s.center, src.s.width, false);
  }

  zoomed(src) {
    if (!this.link.zoom) return;
    for (const p of this.shownPanes()) if (p !== src && p.vol) p.setZoomPan(src.s.zoom, src.s.panX, src.s.panY, false);
  }

  setLink(kind, on) {
    this.link[kind] = !!on;
    $(`cmp-link-${kind}`).checked = !!on;
    const src = this.panes[this.active];
    if (kind === 'scroll') {
      this.rebase();
      // world-linked viewports go to the active one's position at once
      if (on && src && src.vol) for (const p of this.shownPanes()) if (p !== src && p.vol && this.sameFrame(src, p)) p.setSlice(this.linkedSlice(src, p), false);
    }
    if (on && src && src.vol && kind === 'window') this.windowed(src);
    if (on && src && src.vol && kind === 'zoom') this.zoomed(src);
    for (const p of this.panes) if (p.vol) requestRedraw(p.draw);
  }

  /** A viewport has a new volume: its hanging layout, and its place in the links. */
  loaded(p) {
    if (p.index === 0) this.applyHanging(p.vol.header.modality);
    if (p.index === this.active) this.showPresets();
    if (!this.link.scroll) return;
    // follow a viewport of the same Frame of Reference; index links start from here
    const src = this.shownPanes().find((o) => o !== p && o.vol && this.sameFrame(o, p));
    if (src) p.s.slice = Math.max(0, Math.min(p.vol.header.shape[0] - 1, Math.round(this.linkedSlice(src, p))));
    this.rebase();
    for (const o of this.panes) if (o.vol) requestRedraw(o.draw);
  }

  failed(p, e) {
    if (this.onFail) this.onFail(e, p.index);
    for (const o of this.panes) if (o.vol) requestRedraw(o.draw);
  }

  // ------------------------------------------------------------ hanging layouts
  /** The layout and links remembered for a modality, applied when its series comes to the first viewport. */
  applyHanging(modality) {
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(hangingKey(modality)) || 'null'); } catch (e) { saved = null; }
    if (!saved || typeof saved !== 'object') return;
    if (LAYOUTS[saved.layout]) this.applyLayout(saved.layout);
    for (const kind of Object.keys(this.link)) if (saved.link && typeof saved.link[kind] === 'boolean') this.setLink(kind, saved.link[kind]);
  }

  /** Remember the layout and links for the first viewport's modality. */
  saveHanging() {
    const p0 = this.panes[0];
    if (!p0 || !p0.vol) return;
    const k = hangingKey(p0.vol.header.modality);
    try { localStorage.setItem(k, JSON.stringify({ layout: this.layout, link: { ...this.link } })); } catch (e) { /* storage off */ }
  }

  // ------------------------------------------------------------ priors
  /** Open the most recent earlier study's closest series (same modality) in another viewport. */
  async openPrior() {
    const cur = this.panes[0];
    if (!cur || !cur.seriesId) { this.status('Open prior: the first viewport needs a series from the archive.'); return; }
    let res;
    try { res = await api.call('priors', { series_id: cur.seriesId }); } catch (e) { this.status(`Open prior: ${e.message}`); return; }
    const prior = res.studies.find((s) => s.prior);
    const mod = visible(res.modality || '');
    if (!prior) { this.status(`No earlier ${mod} study of this patient.`); return; }
    this.status(`Prior: ${visible(prior.study_date || 'undated')} ${visible(prior.study_description || '')}`.trim());
    const target = this.active !== 0 ? this.active : 1;
    await this.openInViewport(prior.best, target);
  }

  // ------------------------------------------------------------ toolbar and keys
  bindTools() {
    $('btn-compare').addEventListener('click', () => this.setOn(true));
    $('cmp-exit').addEventListener('click', () => this.setOn(false));
    $('cmp-layout').addEventListener('change', (e) => { this.applyLayout(e.target.value); this.saveHanging(); });
    for (const kind of Object.keys(this.link)) {
      $(`cmp-link-${kind}`).addEventListener('change', (e) => { this.setLink(kind, e.target.checked); this.saveHanging(); });
    }
    $('cmp-prior').addEventListener('click', () => { this.openPrior(); });
    $('cmp-preset').addEventListener('change', (e) => this.applyPreset(Number(e.target.value)));
    $('cmp-invert').addEventListener('click', () => {
      const p = this.panes[this.active];
      if (p && p.vol) { p.s.invert = !p.s.invert; requestRedraw(p.draw); }
    });
    $('cmp-fit').addEventListener('click', () => this.fit());
    this.grid.addEventListener('keydown', (e) => this.key(e));
  }

  applyPreset(i) {
    const p = this.panes[this.active], w = p && p.presets[i];
    if (w) p.setWindow(w.center, w.width);
  }

  fit() {
    const p = this.panes[this.active];
    if (p && p.vol) p.setZoomPan(1, 0, 0);
  }

  key(e) {
    const p = this.panes[this.active];
    if (!p) return;
    const nz = p.vol ? p.vol.header.shape[0] : 0;
    const acts = {
      ArrowUp: () => p.scroll(-1), ArrowDown: () => p.scroll(1), PageUp: () => p.scroll(-10), PageDown: () => p.scroll(10),
      Home: () => p.setSlice(0), End: () => p.setSlice(nz - 1), f: () => this.fit(),
      i: () => $('cmp-invert').click(),
      '+': () => p.setZoomPan(p.s.zoom * 1.25, p.s.panX, p.s.panY), '-': () => p.setZoomPan(p.s.zoom * 0.8, p.s.panX, p.s.panY),
    };
    if (e.key >= '1' && e.key <= '9') { this.applyPreset(Number(e.key) - 1); e.preventDefault(); return; }
    if (acts[e.key]) { acts[e.key](); e.preventDefault(); }
  }
}
