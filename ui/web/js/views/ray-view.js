// views/ray-view.js -- the 3D view: an orthographic raycaster over the render volume.
//
// Camera: rotation R (rows: screen right, screen up, forward, in LPS),
// zoom and pan, orbiting the volume centre.  Modes: DVR (transfer function,
// optional gradient shading), MIP, MinIP.  The caller decides when to draw
// (render on demand) and passes `interactive` while the user drags, which
// makes the step coarser; a still frame is drawn at full quality afterwards.
// At zoom 1 the volume's bounding box, seen from the front (the reset
// camera), fills the viewport (FIT of it), whatever the viewport's shape;
// MIP / MinIP use the window passed in (the 3D view's own).

import { link } from '../gl/program.js';
import { source, volumeShader } from '../gl/shaders.js';
import { ANTERIOR, add, boxCenter, boxCorners, dot, invertAffine, mul3, scale, sub, unit } from '../mpr.js';
import { buildLut, REF_STEP_MM } from '../tf.js';

export const MODES = { dvr: 0, mip: 1, minip: 2 };

/** Share of the viewport the bounding box fills at zoom 1 (a margin for the corners' letters). */
export const FIT = 0.92;

/**
 * Pixels per mm that fit a box (its corners, centre c) into a w x h viewport
 * seen along the reference camera axes R (rows: right, up).
 */
export function fitScale(corners, c, R, w, h) {
  let hw = 1e-6, hh = 1e-6;
  for (const p of corners) {
    const d = sub(p, c);
    hw = Math.max(hw, Math.abs(dot(d, R[0])));
    hh = Math.max(hh, Math.abs(dot(d, R[1])));
  }
  return FIT * Math.min(w / (2 * hw), h / (2 * hh));
}

export class RayView {
  /** @param {WebGL2RenderingContext} gl */
  constructor(gl) {
    this.gl = gl;
    this.programs = {};         // per voxel type (the series texture as stored)
    this.p = null;              // the int16 program, once compiled (the most common type)
    this.vao = gl.createVertexArray();
    this.tf = null;
    this.tfKey = '';
    this.resetCamera();
  }

  resetCamera() { this.cam = { R: ANTERIOR.map((r) => r.slice()), zoom: 1, panX: 0, panY: 0 }; }

  /** Compile the program for a voxel type (int16 by default), once. */
  async init(dtype = 'int16') {
    if (!this.programs[dtype]) {
      const [vs, fs] = await Promise.all([source('fullscreen.vert.glsl'), volumeShader('ray.frag.glsl', dtype)]);
      this.programs[dtype] = link(this.gl, vs, fs, ['fullscreen.vert.glsl', 'ray.frag.glsl']);
    }
    if (dtype === 'int16') this.p = this.programs[dtype];
  }

  /** Whether the program for a voxel type is compiled. */
  has(dtype) { return !!this.programs[dtype]; }

  reset() { this.programs = {}; this.p = null; this.tf = null; this.tfKey = ''; this.vao = this.gl.createVertexArray(); }

  /** Upload the transfer function `name` for a volume value range (cached). */
  setPreset(name, realRange) {
    const key = `${name}:${realRange.join(',')}`;
    if (key === this.tfKey && this.tf) return;
    const gl = this.gl;
    const { lut, lo, hi } = buildLut(name, realRange);
    if (!this.tf) this.tf = { tex: gl.createTexture() };
    gl.bindTexture(gl.TEXTURE_2D, this.tf.tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, lut);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    Object.assign(this.tf, { lo, hi });
    this.tfKey = key;
  }

  /**
   * Draw the volume.
   * @param {RenderVolume} rv
   * @param {number[]} rect [x, y, w, h] canvas px, top-left origin
   * @param {object} o {mode, shade, clipLo, clipHi, center, width, interactive}
   */
  draw(rv, rect, o) {
    const gl = this.gl;
    const H = gl.canvas.height;
    const [x, y, w, h] = rect;
    gl.viewport(x, H - y - h, w, h);
    gl.enable(gl.SCISSOR_TEST);
    gl.scissor(x, H - y - h, w, h);
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    const p = rv && this.programs[rv.dtype];
    if (!p || !rv.tex || !this.tf) { gl.disable(gl.SCISSOR_TEST); return false; }
    const A = rv.affine, Tinv = invertAffine(A);
    const [right, up, fwd] = this.cam.R;
    const corners = boxCorners(A, rv.dims);
    const c = boxCenter(A, rv.dims);
    const radius = Math.max(...corners.map((p) => Math.hypot(p[0] - c[0], p[1] - c[1], p[2] - c[2])));
    const k = fitScale(corners, c, ANTERIOR, w, h) * this.cam.zoom;     // px per mm
    // ray start for window pixel (fx, fy): c + ((fx - cx)/k) right + ((fy - cy)/k) up - radius fwd
    const cx = x + w / 2 + this.cam.panX, cy = (H - y - h) + h / 2 - this.cam.panY;
    const start0 = add(add(c, scale(fwd, -radius * 1.01)), add(scale(right, -cx / k), scale(up, -cy / k)));
    // where the box lands on the canvas (px, top-left origin): [x0, y0, x1, y1]
    const sx = corners.map((p) => cx + k * dot(sub(p, c), right));
    const sy = corners.map((p) => H - (cy + k * dot(sub(p, c), up)));
    this.lastBox = [Math.min(...sx), Math.min(...sy), Math.max(...sx), Math.max(...sy)];
    const G0 = [0, 1, 2].map((r) => Tinv[r][0] * start0[0] + Tinv[r][1] * start0[1] + Tinv[r][2] * start0[2] + Tinv[r][3]);
    const Gx = mul3(Tinv, scale(right, 1 / k));
    const Gy = mul3(Tinv, scale(up, 1 / k));
    const dir = mul3(Tinv, fwd).map((v) => (Math.abs(v) < 1e-9 ? 1e-9 : v));
    // spacing of the texture grid along its axes (mm)
    const sp = [0, 1, 2].map((i) => Math.hypot(A[0][i], A[1][i], A[2][i]));
    const base = 0.6 * Math.min(...sp);
    const step = o.interactive ? base * 3 : base;
    const maxSteps = Math.min(4096, Math.ceil((2.05 * radius) / step) + 2);
    // gradient (per voxel index) -> patient space: inverse-transpose of the 3x3
    // (gradient_world = Tinv3^T gradient_index; column j of Tinv3^T is row j of Tinv3,
    // and uniformMatrix3fv takes columns)
    const g2w = [...Tinv[0].slice(0, 3), ...Tinv[1].slice(0, 3), ...Tinv[2].slice(0, 3)];
    const u = p.u;
    gl.useProgram(p.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_3D, rv.tex);
    gl.uniform1i(u.uVol, 0);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.tf.tex);
    gl.uniform1i(u.uTF, 1);
    gl.uniform3f(u.uG0, ...G0);
    gl.uniform3f(u.uGx, ...Gx);
    gl.uniform3f(u.uGy, ...Gy);
    gl.uniform3f(u.uDir, ...dir);
    gl.uniform3f(u.uDims, ...rv.dims);
    gl.uniform1f(u.uSlope, rv.slope);
    gl.uniform1f(u.uIntercept, rv.intercept);
    gl.uniform3f(u.uClipLo, ...o.clipLo);
    gl.uniform3f(u.uClipHi, ...o.clipHi);
    gl.uniformMatrix3fv(u.uGradToWorld, false, new Float32Array(g2w));
    const light = unit(scale(fwd, -1));
    gl.uniform3f(u.uLight, ...light);
    gl.uniform1f(u.uStep, step);
    gl.uniform1f(u.uRefStep, REF_STEP_MM);
    gl.uniform1f(u.uTfLo, this.tf.lo);
    gl.uniform1f(u.uTfHi, this.tf.hi);
    gl.uniform1i(u.uMode, MODES[o.mode] ?? 0);
    gl.uniform1i(u.uShade, o.shade ? 1 : 0);
    gl.uniform1f(u.uCenter, o.center);
    gl.uniform1f(u.uWidth, o.width);
    gl.uniform1i(u.uMaxSteps, maxSteps);
    if (u.uCanvasSize) gl.uniform2f(u.uCanvasSize, w, h);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.activeTexture(gl.TEXTURE0);
    gl.disable(gl.SCISSOR_TEST);
    this.lastStep = step;
    return true;
  }

  /** Screen axes of the camera (for orientation letters): {right, up}. */
  axes() { return { right: this.cam.R[0], up: this.cam.R[1] }; }
}

