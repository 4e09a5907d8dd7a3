// viewer/layout.js -- the viewer's layout and drawing: viewports (one, or the
// 2x2 grid of axial / coronal / sagittal / 3D), the canvas px <-> patient
// (LPS) mapping of each 2D viewport, and render(), which draws every viewport
// into the one WebGL2 canvas (the 3D view only when it is marked dirty).

import { requestRedraw } from '../scheduler.js';
import { PLANES, apply, dot, planeMapping, scale } from '../mpr.js';

const $ = (id) => document.getElementById(id);

const GRID = ['axial', 'coronal', 'sagittal', '3d'];
const fmt3 = (p) => p.map((v) => v.toFixed(3)).join(',');

/** Methods of {@link Viewer} (mixed into its prototype by viewer.js). */
export class ViewerLayout {
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
    const ok = this.rv && this.ray.has(this.rv.dtype) && this.rv.uploadedTo > 0;
    if (ok) this.ray.setPreset(this.r3.preset, this.realRange());
    const drawn = this.ray.draw(ok ? this.rv : null, vp.rect, {
      mode: this.r3.mode, shade: this.r3.shade, clipLo: this.r3.clipLo, clipHi: this.r3.clipHi,
      center: this.r3.center, width: this.r3.width, interactive: this.interacting,
    });
    if (drawn && this.ray.lastBox) vp.el.dataset.bbox = this.ray.lastBox.map((v) => v.toFixed(1)).join(',');
    this.dirty3d = false;
    const e = vp.el.dataset;
    e.quality = this.interacting ? 'interactive' : 'still';
    if (drawn && this.rv.ready && !this.interacting) {
      this.renders3d += 1;
      e.renders = String(this.renders3d);
      e.state = [this.r3.mode, this.r3.preset, this.r3.shade ? 1 : 0, ...this.r3.clipLo, ...this.r3.clipHi,
        ...this.ray.cam.R.flat().map((v) => v.toFixed(4)), this.ray.cam.zoom, this.ray.cam.panX, this.ray.cam.panY,
        this.r3.center, this.r3.width].join(',');
    }
  }
}
