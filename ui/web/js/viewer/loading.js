// viewer/loading.js -- the viewer's loading: opening a volume progressively.
//
// open() asks for the header and the middle slice at once and draws that slice
// as soon as it arrives; startVolume() then allocates the whole-volume array
// and the series texture (one, shared by the slice view, MPR and 3D) and
// streams the rest, uploading slices as they come.  The stream is read by a
// worker (api.js, stream-worker.js) into the whole-volume array, shared with
// it, so this thread does little more than the uploads (texSubImage3D, which
// blocks it while the GPU process copies): the bytes keep arriving meanwhile.
// Also the per-volume set-up: window presets (only those of the volume header
// the server sends), 3D defaults and clip-slider labels, and the value range;
// and clear(): every open starts from, and every failed open ends in, a viewer
// that shows nothing of any series (no image, overlay text, probe or marks).
// The volumes of a 4D stack, once whole, stay in a cache of up to
// VOLUME_CACHE_BYTES (cachedVolume / cacheVolume), emptied by clear().
// Slices whose pixel data could not be decoded (sent as zeros) are collected
// in vol.unreadable from the header, the slice answers' X-PocketPACS-Unreadable
// header and volume_status while the volume streams (noteUnreadable); the
// overlay draws them as placeholders, MPR/3D say how many are missing.

import * as api from '../api.js';
import { requestRedraw } from '../scheduler.js';
import { hasPatientAxes, letters } from '../orientation.js';
import { calibrationOf } from '../measure.js';
import { RenderVolume } from '../gl/volume3d.js';
import { textureMemory } from '../gl/textures.js';
import { apply, invertAffine } from '../mpr.js';
import { defaultPreset } from '../tf.js';
import { histogram } from '../panels.js';

const $ = (id) => document.getElementById(id);

/**
 * The most bytes of whole volumes of a 4D stack the page keeps (its volume
 * cache): a volume seen once is not fetched again while they fit, so cine
 * over time replays from memory.  The least recently shown go first.
 */
export const VOLUME_CACHE_BYTES = 512 * 1024 * 1024;

/**
 * Bytes of arrived slices that are uploaded from the stream at once, without
 * waiting for the next frame (one texSubImage3D each; the rest at the redraw).
 */
export const UPLOAD_CHUNK_BYTES = 8 << 20;

/**
 * Least ms between two updates of the "loading k/n" count while a volume
 * streams (the count itself is in data-ready at every upload).
 */
export const PROGRESS_MS = 500;

/**
 * Most ms from the first slice drawn to the start of the whole-volume stream:
 * it starts once that frame is presented (an animation frame), or after this.
 */
export const START_LATEST_MS = 1000;

/** What MPR and 3D show of a colour volume (their shaders read its luminance). */
export const COLOUR_NOTICE = 'colour shown as grey in MPR/3D';
const h3Colour = (header) => ((header.samples || 1) > 1 ? COLOUR_NOTICE : '');

/** Methods of {@link Viewer} (mixed into its prototype by viewer.js). */
export class ViewerLoading {
  /**
   * Open a volume by id; resolves when the first slice is drawable.  What was
   * on screen goes first (image, overlay, probe, measurements); a failure of
   * this open rejects (the caller says what failed), one of a superseded open
   * does not.
   */
  async open(vid, t0 = performance.now(), knownHeader = null, tReply = null) {
    this.clear(true);
    const seq = ++this.seq;
    try {
      await this.openSteps(seq, vid, t0, knownHeader, tReply);
    } catch (e) {
      if (seq !== this.seq || e.name === 'AbortError') return;
      // not an image (SR, PDF, RT, ...): its text in the viewport, not an error
      if (e.code === 'not_a_volume' && e.details) { this.showNonImage(e); return; }
      throw e;
    }
  }

  /** Why a volume has no header: the job's own error (code, message, details) when it has one. */
  async whyFailed(vid, e) {
    if (e.name === 'AbortError') return e;
    try {
      const st = await api.call('volume_status', { volume_id: vid });
      if (st && st.error) return new api.ApiError(st.error.code, st.error.message, st.error.details || null);
    } catch (e2) { /* the header's error it is */ }
    return e;
  }

  async openSteps(seq, vid, t0, knownHeader, tReply) {
    const ctrl = new AbortController();
    this.abort = ctrl;
    Object.assign(this.canvas.dataset, { vid, tOpen: String(t0), tFirst: '', tLoaded: '', tStreamed: '', tUploaded: '', ready: '0', drawn: '',
      tReply: tReply === null ? '' : String(tReply) });
    this.canvas.dataset.tCall = String(performance.now());
    // open_series answers with the header when the server has it at once
    let header = knownHeader;
    if (!header) {
      try { header = await api.volumeHeader(vid, ctrl.signal); } catch (e) { throw await this.whyFailed(vid, e); }
    }
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
    this.vol = { vid, header, data: null, ready: new Uint8Array(nz), uploaded: 0, complete: 0, first, firstData: null, started: false,
      unreadable: new Map() };
    this.noteUnreadable(header.unreadable);
    this.Ainv = invertAffine(header.affine_lps);
    await this.view.setHeader(header);
    this.noteGpuMemory();
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
    this.loadMeasurements(seq, vid);   // the ones kept with the series (viewer/annotations.js)
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
      if (sl.unreadable) this.noteUnreadable(sl.header.unreadable, vol);
      this.view.setPreview(first, sl.data);
      // drawn now, not in the next animation frame: the compositor may be
      // a frame or two behind (the view switch), which cost 30-50 ms here
      this.s.sliceReady = true;
      this.render();
      // once that frame is drawn (and presented), set up the rest; at the latest
      // after START_LATEST_MS (a page whose frames stall must still load)
      requestRedraw(() => requestAnimationFrame(() => setTimeout(start, 0)));
      setTimeout(start, START_LATEST_MS);
    }, (e) => { start(); throw e; });
    await firstSlice.catch((e) => { if (e.name !== 'AbortError') throw e; });
  }

  /** The whole-volume array (allocated on first need, holding the first slice). */
  ensureData(vol = this.vol) {
    if (!vol || vol.data) return vol && vol.data;
    const h = vol.header, [nz, ny, nx] = h.shape;
    const T = api.arrayType(h.dtype);
    vol.data = new T(api.volumeBuffer(nz * h.slice_bytes));
    if (vol.firstData) vol.data.set(vol.firstData, vol.first * nx * ny * (h.samples || 1));
    return vol.data;
  }

  /** The cached whole data of volume t of the 4D volume vid (refreshed as most recent), or null. */
  cachedVolume(vid, t) {
    const c = this.volumeCache;
    const key = `${vid}:${t}`;
    if (!c || !c.has(key)) return null;
    const data = c.get(key);
    c.delete(key); c.set(key, data);
    return data;
  }

  /** Keep a whole volume of a 4D stack, dropping the least recent past VOLUME_CACHE_BYTES. */
  cacheVolume(vol) {
    if (!vol.data || (vol.header.volumes || {}).count <= 1 || vol.data.byteLength > VOLUME_CACHE_BYTES) return;
    if (!this.volumeCache) this.volumeCache = new Map();
    const c = this.volumeCache;
    c.delete(`${vol.vid}:${vol.t || 0}`);
    c.set(`${vol.vid}:${vol.t || 0}`, vol.data);
    let bytes = 0;
    for (const d of c.values()) bytes += d.byteLength;
    for (const [k, d] of c) {
      if (bytes <= VOLUME_CACHE_BYTES) break;
      c.delete(k); bytes -= d.byteLength;
    }
    this.canvas.dataset.cachedVolumes = String(c.size);
  }

  /**
   * After the first frame: full 2D texture, MPR/3D texture, and the progressive
   * stream (nothing to stream for a volume from the cache: vol.cached).  Resolves
   * when the volume is whole on the GPU.
   */
  async startVolume(seq, vol, signal) {
    if (seq !== this.seq || vol.started) return;
    vol.started = true;
    const { header, vid } = vol;
    const [nz] = header.shape;
    const data = this.ensureData(vol);
    // the stream starts now and fills `data` while the textures are allocated
    // (hundreds of ms for a large volume); uploads begin once they exist
    let glSet = false;
    // slices that have arrived go to the series texture: at each redraw, and at
    // once from the stream when UPLOAD_CHUNK_BYTES have gathered, so the GPU
    // takes them while the next ones download (no waiting for a frame)
    const flush = () => {
      const v = this.vol;
      if (seq !== this.seq || !glSet || v.complete <= v.uploaded) return;
      this.view.upload(v.uploaded, v.complete);
      this.rv.upload(v.uploaded, v.complete);
      for (let z = v.uploaded; z < v.complete; z++) this.view.invalidate(z);
      v.uploaded = v.complete;
      this.invalidate3d(false);
    };
    this.uploadPending = () => {
      if (seq !== this.seq || !glSet) return;
      const v = this.vol;
      flush();
      this.canvas.dataset.ready = String(v.complete);
      // the count on screen at most every PROGRESS_MS: each change of the page is
      // a frame to paint and composite (on SwiftShader ~30 ms of the GPU process,
      // which the uploads wait for)
      const now = performance.now();
      if (v.complete >= nz || !(now - v.shownAt < PROGRESS_MS)) {
        v.shownAt = now;
        $('load-progress').textContent = v.complete < nz ? `loading ${v.complete}/${nz}` : '';
      }
      this.refresh(false);
    };
    // read by the stream worker into the shared array when the page is cross-origin
    // isolated (data-stream-in "worker"), else on this thread ("page"): api.streamVolume
    const readBy = (kind) => { if (seq === this.seq) this.canvas.dataset.streamIn = kind; };
    const stream = vol.cached ? Promise.resolve(header) : api.streamVolume(vid, data.buffer, (complete) => {
      if (seq !== this.seq) return;
      this.vol.ready.fill(1, this.vol.complete, complete);
      this.vol.complete = complete;
      if ((complete - this.vol.uploaded) * header.slice_bytes >= UPLOAD_CHUNK_BYTES) flush();
      requestRedraw(this.uploadPending);
      this.pollUnreadable(seq, vol);
    }, signal, vol.t || 0, readBy);
    // the MPR / 3D programs of this voxel type (int16 compiled at start-up)
    const programs = this.glReady.then(() => Promise.all([this.mpr.init(header.dtype), this.ray.init(header.dtype)]))
      .catch((e) => this.glError(e));
    const glDone = programs.then(() => {
      if (seq !== this.seq) return;
      this.view.setData(data, vol.uploaded, vol.firstData ? [vol.first] : []);
      if (this.rv && this.rv.header === header && this.rv.data && this.rv.data.length === data.length) {
        // another volume of the same 4D stack: its 3D texture is refilled, not made anew
        Object.assign(this.rv, { data, uploadedTo: 0, ready: false });
      } else {
        if (this.rv) this.rv.dispose();
        // MPR and 3D share the slice view's series texture (a reduced copy only when it holds one layer)
        this.rv = new RenderVolume(this.gl, header, data, this.view);
      }
      this.updateNotice3d();
      this.canvas.dataset.tex3d = this.rv.dims.join('x');
      this.noteGpuMemory();
      glSet = true;
      this.invalidate3d();
      this.uploadPending();
    });
    // the last byte in (tStreamed) against the last slice handed to the GPU (tUploaded): what the page adds
    stream.then(() => { if (seq === this.seq) this.canvas.dataset.tStreamed = String(performance.now()); }, () => {});
    const loaded = Promise.all([stream, glDone]).then(() => {
      if (seq !== this.seq) return;
      this.pollUnreadable(seq, vol, true);       // every slice read: the server knows them all
      this.cacheVolume(vol);
      this.uploadPending();
      this.canvas.dataset.tUploaded = String(performance.now());   // the last slice handed to the GPU
      const r = header.rescale;
      this.panels.setHistogram(histogram(data, r.slope, r.intercept));
      this.panelRefresh();
      this.canvas.dataset.tLoaded = String(performance.now());
    });
    loaded.catch((e) => {
      if (e.name === 'AbortError' || seq !== this.seq) return;
      // a volume that cannot be read whole is not shown in part
      this.clear();
      if (this.onFail) this.onFail(e);
      else $('load-progress').textContent = e.message;
    });
    return loaded.catch(() => {});
  }

  /**
   * Count the volume textures alive in the viewer's context (gl/textures.js)
   * into the canvas's data-gpu-bytes and data-gpu-textures ("64x64x48 R16I
   * series; ..."), for tests and benchmarks.
   */
  noteGpuMemory() {
    const m = textureMemory(this.gl);
    Object.assign(this.canvas.dataset, { gpuBytes: String(m.bytes),
      gpuTextures: m.textures.map((t) => `${t.dims.join('x')} ${t.format} ${t.role}`).join('; ') });
  }

  /**
   * Note slices that could not be decoded ({slice, volume, reason} each, from the header,
   * a slice answer or volume_status); the views and texts follow.
   */
  noteUnreadable(list, vol = this.vol) {
    if (!vol || !vol.unreadable || !list || !list.length) return;
    const nz = vol.header.shape[0];
    let added = false;
    for (const f of list) {
      const k = (f.volume || 0) * nz + f.slice;
      if (!vol.unreadable.has(k)) { vol.unreadable.set(k, String(f.reason || 'unknown reason')); added = true; }
    }
    if (!added || !this.vol || this.vol.unreadable !== vol.unreadable) return;
    this.updateNotice3d();
    requestRedraw(this.draw);
  }

  /** Why slice z of the volume shown could not be decoded, or null (read, or not yet known). */
  unreadableReason(z = this.s.slice) {
    const v = this.vol;
    if (!v || !v.unreadable || !v.unreadable.size) return null;
    const r = v.unreadable.get((v.t || 0) * v.header.shape[0] + z);
    return r === undefined ? null : r;
  }

  /**
   * Ask the server which slices it found unreadable so far (at most once a second
   * while streaming; `force`: now, once the volume is whole).
   */
  async pollUnreadable(seq, vol, force = false) {
    const now = performance.now();
    if (!force && (vol.polling || now - (vol.polled || 0) < 1000)) return;
    vol.polling = true;
    vol.polled = now;
    try {
      const st = await api.call('volume_status', { volume_id: vol.vid });
      if (seq === this.seq && st) this.noteUnreadable(st.unreadable, vol);
    } catch (e) {
      // a superseded or evicted volume: nothing left to note
    } finally {
      vol.polling = false;
    }
  }

  /** "K slices missing (shown as 0)" when slices of the volume could not be decoded, else ''. */
  missingNotice() {
    const k = this.vol && this.vol.unreadable ? this.vol.unreadable.size : 0;
    return k ? `${k} slice${k === 1 ? '' : 's'} missing (shown as 0)` : '';
  }

  /** The MPR/3D notice: colour shown as grey, the 3D texture's own notice, missing slices. */
  updateNotice3d() {
    const h = this.vol && this.vol.header;
    const missing = this.missingNotice();
    const notice = [h ? h3Colour(h) : '', this.rv ? this.rv.notice : '', missing].filter((x) => x).join('; ');
    $('notice-3d').textContent = notice;
    Object.assign(this.canvas.dataset, { notice3d: notice, unreadableNotice: missing,
      unreadable: String(this.vol && this.vol.unreadable ? this.vol.unreadable.size : 0) });
  }

  setupPresets(header) {
    // the header's presets only: the server adds the modality's (CT: soft tissue, brain, lung, bone)
    const own = header.windows || [];
    this.presets = own.slice();
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
    const first = this.presets[0];
    sel.value = String(this.presets.indexOf(first));
    this.s.center = first.center; this.s.width = first.width;
  }

  /**
   * The 3D window from the volume's robust range: the header's "auto" window
   * (0.5-99.5 percentiles without the background, core/images/windows.py),
   * else (none, or one narrower than 1% of the values' span: a subsample that
   * saw only the background) its whole value range.
   */
  setup3dWindow(header) {
    const r = header.rescale;
    const a = header.value_range[0] * r.slope + r.intercept, b = header.value_range[1] * r.slope + r.intercept;
    const span = Math.abs(b - a);
    const auto = (header.windows || []).find((w) => w.name === 'auto');
    if (auto && auto.width >= 0.01 * span) { this.r3.center = auto.center; this.r3.width = Math.max(1, auto.width); return; }
    this.r3.center = (a + b) / 2; this.r3.width = Math.max(1, span);
  }

  setup3d(header) {
    this.r3.preset = defaultPreset(header);
    this.setup3dWindow(header);
    this.resetClip();
    $('tf-preset').value = this.r3.preset;
    this.ray.resetCamera();
    // label the clip sliders with the volume axes' patient directions; volumes not
    // calibrated in the patient have none: their axes by name (px when uncalibrated)
    const A = header.affine_lps;
    const patient = hasPatientAxes(header), px = calibrationOf(header).unit === 'px';
    for (const s of document.querySelectorAll('#tools-3d [data-axis]')) {
      const i = Number(s.dataset.axis);
      const d = [A[0][i], A[1][i], A[2][i]];
      s.textContent = patient ? `${letters(d.map((x) => -x))}–${letters(d)}`
        : `${['columns', 'rows', 'slices'][i]}${px && i < 2 ? ' (px)' : ''}`;
      const ax = 'xyz'[i];
      $(`clip-${ax}0`).setAttribute('aria-label', `${s.textContent} from`);
      $(`clip-${ax}1`).setAttribute('aria-label', `${s.textContent} to`);
    }
  }

  /** The whole volume inside the 3D clip box (state and sliders). */
  resetClip() {
    this.r3.clipLo = [0, 0, 0]; this.r3.clipHi = [1, 1, 1];
    for (const id of ['x0', 'y0', 'z0']) $(`clip-${id}`).value = '0';
    for (const id of ['x1', 'y1', 'z1']) $(`clip-${id}`).value = '100';
  }

  /**
   * Show nothing: forget the volume (its textures, whole-volume array and
   * stream), and every text, mark and setting that belonged to it -- corner
   * texts, orientation letters, probe, window presets, measurements, panels,
   * 3D notice -- then draw the empty canvas.  Work of an open in flight is
   * superseded (its results are dropped, its requests aborted).  `keep` (a
   * series is being opened): the series texture is kept aside, drawn by
   * nothing, and refilled with zeros for the next series if it has the same
   * size and type (views/slice-view.js); without it, it goes too.  So does
   * the whole-volume array's buffer, zeroed before it is given again (api.js
   * keepVolumeBuffer): the stream into it is stopped first.
   */
  clear(keep = false) {
    this.seq++;
    if (this.abort) { this.abort.abort(); this.abort = null; }
    if (!keep) api.keepVolumeBuffer(null);
    else if (this.vol && this.vol.data) api.keepVolumeBuffer(this.vol.data.buffer);
    this.stopCine();
    clearTimeout(this.settleTimer);
    this.interacting = false;
    if (this.rv) { this.rv.dispose(); this.rv = null; }
    this.volumeCache = new Map();          // the cached volumes belong to what was shown
    this.view.clear(keep);
    this.noteGpuMemory();
    this.hideNonImage();
    this.vol = null;
    this.updateTimeline();
    this.uploadPending = () => {};
    this.measurements = [];
    this.pending = null;
    this.selected = null;
    this.otherStacks = [];
    this.showKept('');
    this.presets = [];
    $('preset').replaceChildren();
    for (const id of ['probe', 'load-progress', 'notice-3d', 'corner-tl', 'corner-tr', 'corner-bl', 'corner-br']) $(id).textContent = '';
    for (const e of this.stage.querySelectorAll('.orient, .vp-info')) e.textContent = '';
    for (const e of document.querySelectorAll('#tools-3d [data-axis]')) e.textContent = '';
    for (const e of this.stage.querySelectorAll('.vp')) {
      for (const k of ['map', 'pos', 'rendered', 'renders', 'state', 'quality']) delete e.dataset[k];
    }
    this.panels.setHistogram(null);
    this.panels.clear();
    this.updateMeasurements();
    Object.assign(this.canvas.dataset, { vid: '', drawn: '', tFirst: '', tLoaded: '', ready: '0', slices: '0',
      measurementsLoaded: '', selected: '',
      xform: '', notice3d: '', tex3d: '', streamIn: '', cachedVolumes: '0', unreadable: '0', unreadableNotice: '' });
    this.resetClip();
    this.ray.resetCamera();
    this.dirty3d = true;
    this.render();
    this.drawOverlay();
  }

  realRange() {
    const h = this.vol.header, r = h.rescale;
    const a = h.value_range[0] * r.slope + r.intercept, b = h.value_range[1] * r.slope + r.intercept;
    const hist = this.panels.hist;
    return hist ? [hist.lo, hist.hi] : [Math.min(a, b), Math.max(a, b)];
  }
}
