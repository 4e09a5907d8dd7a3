// gl/volume3d.js -- the render texture of MPR and 3D: real-world values as R16F.
//
// R16F is filterable in WebGL2, so the MPR and raycast shaders get trilinear
// interpolation from one texture() call.  Values are rescaled (stored * slope
// + intercept) while converting.  When the volume exceeds MAX_3D_TEXTURE_SIZE
// or the byte budget (gl/limits.js), the texture holds every f-th voxel per
// axis and `notice` says so; an OUT_OF_MEMORY on allocation doubles the
// factors and tries again, so a big volume never costs the context.
// Colour volumes (samples 3, RGB8) are converted to their luminance
// (0.299 R + 0.587 G + 0.114 B): MPR and 3D show colour as grey.

import { limits } from './limits.js';

/** Downsampling factors [fx, fy, fz] that fit dims within max3d and budget bytes (2 per voxel). */
export function planFactors(dims, max3d, budget) {
  const f = dims.map((n) => Math.max(1, Math.ceil(n / max3d)));
  const bytes = () => dims.reduce((acc, n, i) => acc * Math.ceil(n / f[i]), 2);
  while (bytes() > budget) {
    // reduce the finest axis first (the one with the most texels)
    const sizes = dims.map((n, i) => Math.ceil(n / f[i]));
    const i = sizes.indexOf(Math.max(...sizes));
    f[i] += 1;
  }
  return f;
}

export class RenderVolume {
  /**
   * @param {WebGL2RenderingContext} gl
   * @param {object} header wire header (shape, affine_lps, rescale)
   * @param {TypedArray} data all voxels (filled as they arrive)
   */
  constructor(gl, header, data) {
    this.gl = gl;
    this.header = header;
    this.data = data;
    const [nz, ny, nx] = header.shape;
    this.src = [nx, ny, nz];
    const lim = limits(gl);
    this.limits = lim;
    let f = planFactors(this.src, lim.max3d, lim.budget);
    for (let attempt = 0; attempt < 6; attempt++) {
      this.factors = f;
      this.dims = this.src.map((n, i) => Math.ceil(n / f[i]));
      if (this.allocate()) break;
      f = f.map((v) => v * 2);
    }
    this.reduced = this.factors.some((v) => v > 1);
    const A = header.affine_lps;
    // texture grid index g -> source index g * f
    this.affine = A.map((row, r) => (r < 3 ? [row[0] * f[0], row[1] * f[1], row[2] * f[2], row[3]] : row.slice()));
    this.notice = this.reduced
      ? `3D/MPR show a reduced copy (every ${f.join('×')} voxel${f.some((v) => v > 1) ? 's' : ''}: `
        + `${this.dims.join('×')} of ${this.src.join('×')}; GPU 3D texture limit ${lim.max3d}, budget ${Math.round(lim.budget / 1048576)} MB)`
      : '';
    this.uploadedTo = 0;     // source slices [0, uploadedTo) converted
    this.ready = false;      // every layer uploaded
  }

  allocate() {
    const gl = this.gl;
    while (gl.getError() !== gl.NO_ERROR) { /* drain */ }
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_3D, tex);
    gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    for (const w of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T, gl.TEXTURE_WRAP_R]) gl.texParameteri(gl.TEXTURE_3D, w, gl.CLAMP_TO_EDGE);
    gl.texStorage3D(gl.TEXTURE_3D, 1, gl.R16F, ...this.dims);
    const err = gl.getError();
    if (err !== gl.NO_ERROR) { gl.deleteTexture(tex); return false; }
    if (this.tex) gl.deleteTexture(this.tex);
    this.tex = tex;
    return true;
  }

  /** Convert and upload source slices [z0, z1) (those on the texture grid). */
  upload(z0, z1) {
    const gl = this.gl;
    const [fx, fy, fz] = this.factors;
    const [nx, ny] = this.src;
    const [tx, ty, tz] = this.dims;
    const { slope, intercept } = this.header.rescale;
    const rgb = (this.header.samples || 1) === 3;
    const d = this.data;
    const lum = (v) => 0.299 * d[3 * v] + 0.587 * d[3 * v + 1] + 0.114 * d[3 * v + 2];
    let k0 = Math.ceil(z0 / fz), k1 = Math.ceil(z1 / fz);
    k1 = Math.min(k1, tz);
    if (k1 <= k0) { this.uploadedTo = Math.max(this.uploadedTo, z1); return; }
    const chunk = Math.max(1, Math.floor((8 << 20) / (tx * ty)));   // ~32 MB of float32 at a time
    gl.bindTexture(gl.TEXTURE_3D, this.tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
    for (let a = k0; a < k1; a += chunk) {
      const b = Math.min(k1, a + chunk);
      const out = new Float32Array((b - a) * tx * ty);
      let o = 0;
      for (let k = a; k < b; k++) {
        const base = k * fz * nx * ny;
        for (let j = 0; j < ty; j++) {
          const row = base + j * fy * nx;
          if (rgb) {
            for (let i = 0; i < tx; i++) out[o++] = lum(row + i * fx);
          } else if (fx === 1) {
            for (let i = 0; i < tx; i++) out[o++] = this.data[row + i] * slope + intercept;
          } else {
            for (let i = 0; i < tx; i++) out[o++] = this.data[row + i * fx] * slope + intercept;
          }
        }
      }
      gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, a, tx, ty, b - a, gl.RED, gl.FLOAT, out);
    }
    this.uploadedTo = Math.max(this.uploadedTo, z1);
    if (this.uploadedTo >= this.src[2]) this.ready = true;
  }

  dispose() { if (this.tex) this.gl.deleteTexture(this.tex); this.tex = null; }
}
