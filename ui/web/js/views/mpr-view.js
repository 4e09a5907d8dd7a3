// views/mpr-view.js -- draws a plane of the render volume into one viewport.
//
// The render volume's texture is the series texture itself (stored values);
// the program is specialised per voxel type (gl/shaders.js volumeShader).

import { link } from '../gl/program.js';
import { source, volumeShader } from '../gl/shaders.js';
import { fragUniforms, invertAffine } from '../mpr.js';

export class MprView {
  /** @param {WebGL2RenderingContext} gl */
  constructor(gl) {
    this.gl = gl;
    this.programs = {};         // per voxel type
    this.p = null;              // the int16 program, once compiled (the most common type)
    this.vao = gl.createVertexArray();
  }

  /** Compile the program for a voxel type (int16 by default), once. */
  async init(dtype = 'int16') {
    if (!this.programs[dtype]) {
      const [vs, fs] = await Promise.all([source('fullscreen.vert.glsl'), volumeShader('mpr.frag.glsl', dtype)]);
      this.programs[dtype] = link(this.gl, vs, fs, ['fullscreen.vert.glsl', 'mpr.frag.glsl']);
    }
    if (dtype === 'int16') this.p = this.programs[dtype];
  }

  /** Forget GL objects (context lost). */
  reset() { this.programs = {}; this.p = null; this.vao = this.gl.createVertexArray(); }

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
    const p = rv && this.programs[rv.dtype];
    if (!p || !rv.tex) { gl.disable(gl.SCISSOR_TEST); return false; }
    const u = p.u;
    const f = fragUniforms(m, invertAffine(rv.affine), H);
    gl.useProgram(p.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_3D, rv.tex);
    gl.uniform1i(u.uVol, 0);
    gl.uniform3f(u.uG0, ...f.G0);
    gl.uniform3f(u.uGx, ...f.Gx);
    gl.uniform3f(u.uGy, ...f.Gy);
    gl.uniform3f(u.uDims, ...rv.dims);
    gl.uniform1f(u.uSlope, rv.slope);
    gl.uniform1f(u.uIntercept, rv.intercept);
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
