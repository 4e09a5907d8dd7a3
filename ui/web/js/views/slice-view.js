// views/slice-view.js -- draws one slice of a volume with window/level on the GPU.
//
// Pure rendering: the caller owns the view state (slice, window, zoom, pan,
// invert) and calls draw(state) -- through scheduler.requestRedraw -- only
// when something changed.  No continuous loop.

import { link } from '../gl/program.js';
import { source, specialise } from '../gl/shaders.js';
import { createVolumeTexture, forgetAll, relabel, release, uploadSlices, zeroFill } from '../gl/textures.js';

/** Bytes per texel of a volume header's texture. */
const texelBytes = (h) => ({ int16: 2, uint16: 2, float32: 4, uint8: 1 }[h.dtype] || 1) * (h.samples || 1);

export class SliceView {
  /** @param {HTMLCanvasElement} canvas */
  constructor(canvas) {
    this.canvas = canvas;
    // preserveDrawingBuffer: screenshots and pixel probes read the last frame.
    this.gl = canvas.getContext('webgl2', { preserveDrawingBuffer: true, antialias: false, alpha: false });
    if (!this.gl) throw new Error('WebGL2 is not available');
    this.programs = {};
    this.vt = null;
    this.header = null;
    this.data = null;
    this.preview = null;         // {z, data}: the first slice, before the whole array exists
    this.layerSlice = -1;        // which slice the single layer holds (when not whole)
    this.spare = null;           // the last series texture, kept by clear(true) for the next one
    this.vao = this.gl.createVertexArray();
  }

  /** Forget every GL object (after a lost context); setVolume rebuilds them. */
  reset() {
    forgetAll(this.gl);          // the lost context's textures are gone
    this.programs = {};
    this.vt = null;
    this.spare = null;
    this.layerSlice = -1;
    this.vao = this.gl.createVertexArray();
  }

  /**
   * Show nothing: drop the texture and the volume (setHeader starts the next
   * one).  `keep` (a new series is being opened): a whole-series texture is
   * kept aside, drawn by nothing, for setData to refill when the next series
   * has its size and type (a new texture of 512x512x1000 cost 240-260 ms of
   * the GPU process on SwiftShader, measured); else it goes.
   */
  clear(keep = false) {
    if (this.vt && keep && this.vt.whole) {
      this.dropSpare();
      this.spare = this.vt;
      relabel(this.gl, this.spare.tex, 'spare');
    } else {
      if (this.vt) release(this.gl, this.vt.tex);
      if (!keep) this.dropSpare();
    }
    this.vt = null;
    this.header = null;
    this.data = null;
    this.preview = null;
    this.layerSlice = -1;
  }

  /** The slice program of a wire dtype ('uint8': colour, its own shader source). */
  async program(dtype) {
    if (!this.programs[dtype]) {
      const frag = dtype === 'uint8' ? 'slice_rgb.frag.glsl' : 'slice.frag.glsl';
      const [vs, fs] = await Promise.all([source('fullscreen.vert.glsl'), source(frag)]);
      this.programs[dtype] = link(this.gl, vs, dtype === 'uint8' ? fs : specialise(fs, dtype), ['fullscreen.vert.glsl', frag]);
    }
    return this.programs[dtype];
  }

  /**
   * Show a new volume's header at once, with a one-layer texture: cheap, so the
   * first slice can be drawn (setPreview) before the whole volume is set up.
   */
  async setHeader(header) {
    await this.program(header.dtype);
    const gl = this.gl;
    if (this.vt) release(gl, this.vt.tex);
    this.header = header;
    this.data = null;
    this.preview = null;
    this.vt = createVolumeTexture(gl, header, true);
    this.layerSlice = -1;
  }

  /** One slice's voxels to draw while there is no whole-volume array yet. */
  setPreview(z, data) {
    this.preview = { z, data };
    if (this.layerSlice === z) this.layerSlice = -1;
  }

  /**
   * Attach the (filling) typed array of all voxels and move to the full
   * texture; slices [0, upto) and `extra` are uploaded to it.  A whole
   * texture of the same size and type (another volume of a 4D stack) is
   * refilled, not made anew.
   */
  setData(data, upto = 0, extra = []) {
    const gl = this.gl;
    this.data = data;
    this.preview = null;
    const [nz, ny, nx] = this.header.shape;
    const fits = (t) => t && t.whole && t.layers === nz && t.ny === ny && t.nx === nx && t.dtype === this.header.dtype
      && t.samples === (this.header.samples || 1);
    const old = this.vt;
    if (!fits(old)) {
      // the one-layer texture goes first: the series is never on the GPU twice
      if (old) release(gl, old.tex);
      this.vt = null;
      if (fits(this.spare)) {
        // the last series' texture, of this size and type: its values go (zeros
        // until this series' slices come), no new texture is made
        const vt = this.spare;
        this.spare = null;
        gl.bindTexture(gl.TEXTURE_3D, vt.tex);
        zeroFill(gl, vt.fmt[0], [nx, ny, nz], texelBytes(this.header));
        relabel(gl, vt.tex, 'series');
        this.vt = vt;
      } else {
        this.dropSpare();
        this.vt = createVolumeTexture(gl, this.header);
      }
    }
    const vt = this.vt;
    if (!vt.whole) {
      this.layerSlice = -1;
      return;
    }
    this.layerSlice = -1;
    if (upto > 0) uploadSlices(gl, vt, data, 0, upto);
    for (const z of extra) if (z >= upto) uploadSlices(gl, vt, data, z, z + 1);
  }

  /** Delete the texture kept by clear(true), if any. */
  dropSpare() {
    if (this.spare) release(this.gl, this.spare.tex);
    this.spare = null;
  }

  /** Replace the volume; `data` is the (filling) typed array of all voxels. */
  async setVolume(header, data) {
    await this.setHeader(header);
    this.setData(data);
  }

  /** Upload slices [z0, z1) that have arrived (whole-volume textures only). */
  upload(z0, z1) {
    if (!this.vt || !this.data || z1 <= z0) return;
    if (this.vt.whole) uploadSlices(this.gl, this.vt, this.data, z0, z1);
  }

  /** Make sure the single layer holds slice z (large volumes); false when its voxels are not here. */
  ensureLayer(z) {
    if (this.vt.whole || this.layerSlice === z) return true;
    if (this.data) uploadSlices(this.gl, this.vt, this.data, z, z + 1, 0);
    else if (this.preview && this.preview.z === z) uploadSlices(this.gl, this.vt, this.preview.data, 0, 1, 0);
    else return false;
    this.layerSlice = z;
    return true;
  }

  /** Forget the single-layer cache (slice data changed). */
  invalidate(z) { if (this.layerSlice === z) this.layerSlice = -1; }

  /** The whole canvas as a viewport rectangle [x, y, w, h] (top-left origin). */
  fullRect() { return [0, 0, this.canvas.width, this.canvas.height]; }

  /** Fit transform: canvas px per image px, honouring pixel spacing. */
  transform(state, rect = this.fullRect()) {
    const [, ny, nx] = this.header.shape;
    const [sx, sy] = this.header.spacing;
    const [rx, ry, cw, ch] = rect;
    const fit = Math.min(cw / (nx * sx), ch / (ny * sy));
    const kx = fit * sx * state.zoom, ky = fit * sy * state.zoom;
    const dpr = window.devicePixelRatio || 1;
    const ox = rx + cw / 2 - (nx * kx) / 2 + state.panX * dpr;
    const oy = ry + ch / 2 - (ny * ky) / 2 + state.panY * dpr;
    return [kx, ky, ox, oy];
  }

  /** Resize the drawing buffer to the element's size (device pixels). */
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w; this.canvas.height = h;
    }
  }

  /**
   * Draw slice state.slice.  state: {slice, center, width, invert, zoom, panX, panY, smooth, sliceReady}
   * @returns {number[]|null} the transform used, or null when nothing was drawn.
   */
  draw(state, rect = null) {
    const gl = this.gl;
    if (!rect) { this.resize(); rect = this.fullRect(); }
    const H = this.canvas.height;
    gl.viewport(rect[0], H - rect[1] - rect[3], rect[2], rect[3]);
    gl.enable(gl.SCISSOR_TEST);
    gl.scissor(rect[0], H - rect[1] - rect[3], rect[2], rect[3]);
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.disable(gl.SCISSOR_TEST);
    const h = this.header;
    const p = h && this.programs[h.dtype];
    if (!this.vt || !state.sliceReady || !p) return null;
    if (!this.ensureLayer(state.slice)) return null;
    const xf = this.transform(state, rect);
    gl.useProgram(p.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_3D, this.vt.tex);
    gl.uniform1i(p.u.uVol, 0);
    gl.uniform2f(p.u.uCanvasSize, rect[2], rect[3]);
    gl.uniform4f(p.u.uXform, xf[0], xf[1], xf[2] - rect[0], xf[3] - rect[1]);   // vCanvas is viewport-relative
    gl.uniform3i(p.u.uDims, h.shape[2], h.shape[1], h.shape[0]);
    gl.uniform1i(p.u.uLayer, this.vt.whole ? state.slice : 0);
    if (p.u.uSlope) gl.uniform1f(p.u.uSlope, h.rescale.slope);   // colour: no rescale
    if (p.u.uIntercept) gl.uniform1f(p.u.uIntercept, h.rescale.intercept);
    gl.uniform1f(p.u.uCenter, state.center);
    gl.uniform1f(p.u.uWidth, state.width);
    gl.uniform1i(p.u.uInvert, state.invert ? 1 : 0);
    gl.uniform1i(p.u.uSmooth, state.smooth ? 1 : 0);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    return xf;
  }
}
