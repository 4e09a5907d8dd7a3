// views/mpr-view.js -- draws a plane of the render volume into one viewport.

import { link } from '../gl/program.js';
import { source } from '../gl/shaders.js';
import { fragUniforms, invertAffine } from '../mpr.js';

export class MprView {
  /** @param {WebGL2RenderingContext} gl */
  constructor(gl) {
    this.gl = gl;
    this.p = null;
    this.vao = gl.createVertexArray();
  }

  async init() {
    if (this.p) return;
    const [vs, fs] = await Promise.all([source('fullscreen.vert.glsl'), source('mpr.frag.glsl')]);
    this.p = link(this.gl, vs, fs, ['fullscreen.vert.glsl', 'mpr.frag.glsl']);
  }

  /** Forget GL objects (context lost). */
  reset() { this.p = null; this.vao = this.gl.createVertexArray(); }

  /**
   * Draw a plane.
   * @param {RenderVolume} rv
   * @param {object} m planeMapping (canvas px -> LPS)
   * @param {number[]} rect [x, y, w, h] canvas px, top-left origin
   * @param {{center, width, invert}} win
   */
  draw(rv, m, rect, win) {
    const gl = this.gl;
    const H = gl.canvas.height;
    const [x, y, w, h] = rect;
    gl.viewport(x, H - y - h, w, h);
    gl.enable(gl.SCISSOR_TEST);
    gl.scissor(x, H - y - h, w, h);
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!this.p || !rv || !rv.tex) { gl.disable(gl.SCISSOR_TEST); return false; }
    const u = this.p.u;
    const f = fragUniforms(m, invertAffine(rv.affine), H);
    gl.useProgram(this.p.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_3D, rv.tex);
    gl.uniform1i(u.uVol, 0);
    gl.uniform3f(u.uG0, ...f.G0);
    gl.uniform3f(u.uGx, ...f.Gx);
    gl.uniform3f(u.uGy, ...f.Gy);
    gl.uniform3f(u.uDims, ...rv.dims);
    gl.uniform1f(u.uCenter, win.center);
    gl.uniform1f(u.uWidth, win.width);
    gl.uniform1i(u.uInvert, win.invert ? 1 : 0);
    if (u.uCanvasSize) gl.uniform2f(u.uCanvasSize, w, h);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.disable(gl.SCISSOR_TEST);
    return true;
  }
}
