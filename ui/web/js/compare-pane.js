// compare-pane.js -- one viewport of the Compare view (compare.js): a small viewer of
// its own with one canvas and WebGL2 context (a SliceView), its own volume loaded
// progressively through its own server slot (`cmp<index>`: opening a series here
// never cancels another viewport's volume), its own window, slice, zoom and pan,
// corner texts and orientation letters, and its own input (wheel scroll, drag to
// pan, right-drag window, middle-drag or ctrl-wheel zoom, a series dropped on it).
// Links to the other viewports go through the Compare object; an open that fails
// leaves this viewport showing nothing of any series, only why.  A slice whose pixel
// data could not be decoded is never drawn as an image: the viewport is blanked and
// says "slice N could not be decoded: <reason>", and its corner counts such slices
// (as the main viewer does; the server reports them in the header, the slice answers
// and volume_status).

import * as api from './api.js';
import { requestRedraw } from './scheduler.js';
import { SliceView } from './views/slice-view.js';
import { apply, invertAffine } from './mpr.js';
import { NO_LABELS, edgeLabels, hasPatientAxes, slicePosition } from './orientation.js';
import { spacingText } from './measure.js';
import { visible } from './text.js';

export const NOTICE_WORLD = 'linked by world position';
export const NOTICE_INDEX = 'linked by slice index (no common frame of reference)';
/** The drag-and-drop data type of a series id (dropped on a viewport, it opens there). */
export const SERIES_DRAG = 'application/x-pocketpacs-series';

/** One viewport of the Compare view: a canvas, its volume and its view state. */
export class Pane {
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

  /** Show a volume already loaded whole elsewhere (the main viewer's: volume `vol.t` of a 4D series): no new request. */
  async adopt(vol, seriesId) {
    api.shareVolumeBuffer(vol.data.buffer);    // shown here too: the viewer never reuses it
    this.clear();
    const seq = this.seq;
    this.seriesId = seriesId || null;
    try {
      await this.show(seq, vol.vid, vol.header, vol.data, null, vol.t || 0, vol.unreadable);
    } catch (e) {
      if (seq === this.seq) this.fail(e);
    }
  }

  /**
   * Set up the view for a header, then draw the middle slice and stream the rest (or use
   * `whole`: volume `t` of the series, with the slices known to be unreadable in `known`).
   */
  async show(seq, vid, header, whole, signal, t = 0, known = null) {
    const [nz, ny, nx] = header.shape;
    await this.view.setHeader(header);
    if (seq !== this.seq) return;
    const T = api.arrayType(header.dtype);
    const data = whole || new T(api.volumeBuffer(nz * header.slice_bytes));
    this.vol = { vid, header, data, ready: new Uint8Array(nz), uploaded: 0, complete: 0, t, unreadable: new Map(known || []) };
    this.noteUnreadable(header.unreadable);
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
    if (sl.unreadable) this.noteUnreadable(sl.header.unreadable);
    this.vol.ready[first] = 1;
    this.view.setPreview(first, sl.data);
    this.render();
    this.view.setData(data, 0, [first]);
    const upload = () => {
      if (seq !== this.seq) return;
      const v = this.vol;
      // drawn again only when the slice shown has just come: a frame per upload
      // costs the GPU process a paint and composite the uploads wait for
      const shown = this.s.slice >= v.uploaded && this.s.slice < v.complete;
      if (v.complete > v.uploaded) {
        this.view.upload(v.uploaded, v.complete);
        for (let z = v.uploaded; z < v.complete; z++) this.view.invalidate(z);
        v.uploaded = v.complete;
      }
      this.el.dataset.ready = String(v.complete);
      if (shown) this.render();
    };
    await api.streamVolume(vid, data.buffer, (complete) => {
      if (seq !== this.seq) return;
      this.vol.ready.fill(1, this.vol.complete, complete);
      this.vol.complete = complete;
      requestRedraw(upload);
      this.pollUnreadable(seq);
    }, signal);
    if (seq !== this.seq) return;
    upload();
    await this.pollUnreadable(seq, true);      // every slice read: the server knows them all
    if (seq !== this.seq) return;
    this.finished();
  }

  /** Note slices that could not be decoded ({slice, volume, reason} each); the drawing follows. */
  noteUnreadable(list) {
    const v = this.vol;
    if (!v || !list || !list.length) return;
    const nz = v.header.shape[0];
    let added = false;
    for (const f of list) {
      const k = (f.volume || 0) * nz + f.slice;
      if (!v.unreadable.has(k)) { v.unreadable.set(k, String(f.reason || 'unknown reason')); added = true; }
    }
    if (added) requestRedraw(this.draw);
  }

  /** Ask the server which slices it found unreadable (at most once a second while streaming; `force`: now). */
  async pollUnreadable(seq, force = false) {
    const v = this.vol, now = performance.now();
    if (!v || (!force && (v.polling || now - (v.polled || 0) < 1000))) return;
    v.polling = true;
    v.polled = now;
    try {
      const st = await api.call('volume_status', { volume_id: v.vid });
      if (seq === this.seq && st) this.noteUnreadable(st.unreadable);
    } catch (e) {
      // a superseded or evicted volume: nothing left to note
    } finally {
      v.polling = false;
    }
  }

  /** Why slice z could not be decoded, or null (read, or not known to be unreadable). */
  unreadableReason(z = this.s.slice) {
    const v = this.vol;
    if (!v || !v.unreadable.size) return null;
    const r = v.unreadable.get(v.t * v.header.shape[0] + z);
    return r === undefined ? null : r;
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
    for (const k of ['vid', 'slices', 'slice', 'drawn', 'pos', 'wc', 'ww', 'zoom', 'link', 'ready', 'tLoaded', 'frame', 'unreadable']) delete this.el.dataset[k];
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
    const why = this.unreadableReason();
    let xf = null;
    if (why === null) {
      xf = this.view.draw(this.s);
    } else {                           // its zeros are no image: a blank placeholder and why
      const gl = this.view.gl;
      this.view.resize();
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.clearColor(0, 0, 0, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
    }
    if (why !== null || this.msg.classList.contains('unreadable')) {
      this.msg.classList.toggle('unreadable', why !== null);
      this.msg.textContent = why === null ? '' : `slice ${this.s.slice + 1} could not be decoded: ${visible(why)}`;
    }
    d.slice = String(this.s.slice);
    d.drawn = xf ? String(this.s.slice) : '';
    d.unreadable = String(this.vol.unreadable.size);
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
    const bad = this.vol.unreadable.size;
    this.text.tl.textContent = lines(L.patient_name, L.patient_id, L.birth_date);
    this.text.tr.textContent = lines(L.study_description, L.study_date, L.series_description, L.modality || h.modality);
    this.text.bl.textContent = lines(`Slice ${this.s.slice + 1} / ${nz}`, patient ? `Pos ${pos.along.toFixed(1)} mm` : '',
      `${nx}×${ny}  ${spacingText(h)}`, nv > 1 ? `volume ${this.vol.t + 1} of ${nv}` : '',
      bad ? `${bad} of ${nz * nv} slices could not be decoded` : '',
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
