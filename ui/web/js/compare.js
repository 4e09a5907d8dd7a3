// compare.js -- the Compare view: two (1x2) or four (2x2) viewports side by side, each
// showing its own series (the current study and its priors) with its own window,
// slice, zoom and pan; scroll, zoom/pan and window linked on demand.
//
// Each viewport is a Pane (compare-pane.js): a small viewer with its own canvas,
// WebGL2 context, volume and server slot.  Scroll linking goes by world position
// when two series share a Frame of Reference (the other viewport shows the slice
// nearest the same patient point along its own normal), and by slice index
// otherwise, which the overlay says.  "Open prior" asks the server for the same
// patient's other studies of the modality and opens the best-matching series of
// the most recent earlier one.  The layout and link choices are remembered per
// modality (localStorage: no patient data).  A viewport whose open fails shows
// nothing of any series, only why; the other viewports stay as they were.

import * as api from './api.js';
import { requestRedraw } from './scheduler.js';
import { hasPatientAxes } from './orientation.js';
import { visible } from './text.js';
import { Pane } from './compare-pane.js';
import { shortcutFor } from './shortcuts.js';

export { NOTICE_INDEX, NOTICE_WORLD, SERIES_DRAG } from './compare-pane.js';

const $ = (id) => document.getElementById(id);

const STORE_KEY = 'pocketpacs.compare.';
const LAYOUTS = { '1x2': 2, '2x2': 4 };

/** The localStorage key of a modality's hanging layout (a DICOM code string, nothing else). */
function hangingKey(modality) {
  const m = String(modality || '').toUpperCase();
  return STORE_KEY + (/^[A-Z0-9]{1,16}$/.test(m) ? m : 'OT');
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
    const sc = shortcutFor('viewer', e.key);   // the viewer's keys (shortcuts.js), the user's own if set
    if (!p || !sc) return;
    const nz = p.vol ? p.vol.header.shape[0] : 0;
    const acts = {
      sliceUp: () => p.scroll(-1), sliceDown: () => p.scroll(1), pageUp: () => p.scroll(-10), pageDown: () => p.scroll(10),
      firstSlice: () => p.setSlice(0), lastSlice: () => p.setSlice(nz - 1), fit: () => this.fit(),
      invert: () => $('cmp-invert').click(),
      preset: () => this.applyPreset(Number(e.key) - 1),   // 1 … 9: the preset of that number
      zoomIn: () => p.setZoomPan(p.s.zoom * 1.25, p.s.panX, p.s.panY), zoomOut: () => p.setZoomPan(p.s.zoom * 0.8, p.s.panX, p.s.panY),
    };
    if (acts[sc.action]) { acts[sc.action](); e.preventDefault(); }
  }
}
