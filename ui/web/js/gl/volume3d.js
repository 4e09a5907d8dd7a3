// gl/volume3d.js -- what MPR and 3D sample: the series texture itself.
//
// The series is on the GPU once: when the slice view holds the whole volume
// (gl/textures.js: R16I / R16UI / R32F / RGB8, stored values, exact), MPR and
// the raycaster read that same texture; their shaders filter it by hand
// (trilinear, 8 texelFetch) and apply the rescale, so there is no second
// texture and no conversion in JS.  Only when the volume exceeds
// MAX_3D_TEXTURE_SIZE or the byte budget (gl/limits.js), and the slice view
// holds one layer, does this class keep a reduced copy (every f-th voxel per
// axis, in the same format) and `notice` says so; an OUT_OF_MEMORY on
// allocation doubles the factors and tries again, so a big volume never costs
// the context.  Colour volumes (RGB8) are shown as their luminance
// (0.299 R + 0.587 G + 0.114 B, in the shaders): MPR and 3D show colour as grey.

import { allocate3d, formatOf, release, unpackAlignment } from './textures.js';
import { limits } from './limits.js';

/** Downsampling factors [fx, fy, fz] that fit dims within max3d and budget bytes (`bpt` per voxel). */
export function planFactors(dims, max3d, budget, bpt = 2) {
  const f = dims.map((n) => Math.max(1, Math.ceil(n / max3d)));
  const bytes = () => dims.reduce((acc, n, i) => acc * Math.ceil(n / f[i]), bpt);
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
   * @param {object} header wire header (shape, affine_lps, rescale, dtype, samples)
   * @param {TypedArray} data all voxels (filled as they arrive)
   * @param {{vt: object}} [slices] the slice view, whose whole-series texture is shared
   */
  constructor(gl, header, data, slices = null) {
    this.gl = gl;
    this.header = header;
    this.data = data;
    this.slices = slices;
    this.dtype = header.dtype;
    this.samples = header.samples || 1;
    // real = stored * slope + intercept in the shaders (colour: its luminance, no rescale)
    const r = header.rescale || { slope: 1, intercept: 0 };
    this.slope = this.samples === 1 ? r.slope : 1;
    this.intercept = this.samples === 1 ? r.intercept : 0;
    const [nz, ny, nx] = header.shape;
    this.src = [nx, ny, nz];
    const lim = limits(gl);
    this.limits = lim;
    this.own = null;                     // the reduced copy's texture, when there is one
    this.shared = !!(slices && slices.vt && slices.vt.whole);
    let f = [1, 1, 1];
    if (!this.shared) {
      this.fmt = formatOf(gl, header.dtype);
      const bpt = data.BYTES_PER_ELEMENT * this.samples;
      f = planFactors(this.src, lim.max3d, lim.budget, bpt);
      for (let attempt = 0; attempt < 6; attempt++) {
        this.factors = f;
        this.dims = this.src.map((n, i) => Math.ceil(n / f[i]));
        this.own = allocate3d(gl, this.fmt[0], this.dims, 'reduced');
        if (this.own) break;
        f = f.map((v) => v * 2);
      }
    }
    this.factors = f;
    this.dims = this.src.map((n, i) => Math.ceil(n / f[i]));
    this.reduced = f.some((v) => v > 1);
    const A = header.affine_lps;
    // texture grid index g -> source index g * f
    this.affine = A.map((row, r) => (r < 3 ? [row[0] * f[0], row[1] * f[1], row[2] * f[2], row[3]] : row.slice()));
    this.notice = this.reduced
      ? `3D/MPR show a reduced copy (every ${f.join('×')} voxel${f.some((v) => v > 1) ? 's' : ''}: `
        + `${this.dims.join('×')} of ${this.src.join('×')}; GPU 3D texture limit ${lim.max3d}, budget ${Math.round(lim.budget / 1048576)} MB)`
      : '';
    this.uploadedTo = 0;     // source slices [0, uploadedTo) on the texture
    this.ready = false;      // every layer uploaded
  }

  /** The texture MPR and 3D sample: the series texture, or the reduced copy. */
  get tex() {
    if (!this.shared) return this.own;
    const vt = this.slices && this.slices.vt;
    return vt && vt.whole ? vt.tex : null;
  }

  /**
   * Source slices [z0, z1) have arrived.  Shared texture: the slice view
   * uploaded them already; reduced copy: gather those on its grid and upload.
   */
  upload(z0, z1) {
    if (!this.shared && this.own) this.uploadReduced(z0, z1);
    this.uploadedTo = Math.max(this.uploadedTo, z1);
    if (this.uploadedTo >= this.src[2]) this.ready = true;
  }

  uploadReduced(z0, z1) {
    const gl = this.gl;
    const [fx, fy, fz] = this.factors;
    const [nx, ny] = this.src;
    const [tx, ty, tz] = this.dims;
    const s = this.samples;
    const d = this.data;
    const k0 = Math.ceil(z0 / fz), k1 = Math.min(Math.ceil(z1 / fz), tz);
    if (k1 <= k0) return;
    const chunk = Math.max(1, Math.floor((16 << 20) / (tx * ty * s * d.BYTES_PER_ELEMENT)));   // ~16 MB at a time
    gl.bindTexture(gl.TEXTURE_3D, this.own);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, unpackAlignment(tx * s * d.BYTES_PER_ELEMENT));
    const T = d.constructor;
    for (let a = k0; a < k1; a += chunk) {
      const b = Math.min(k1, a + chunk);
      const out = new T((b - a) * tx * ty * s);
      let o = 0;
      for (let k = a; k < b; k++) {
        const base = k * fz * nx * ny;
        for (let j = 0; j < ty; j++) {
          const row = base + j * fy * nx;
          if (s === 1) {
            for (let i = 0; i < tx; i++) out[o++] = d[row + i * fx];
          } else {
            for (let i = 0; i < tx; i++) {
              const v = (row + i * fx) * s;
              for (let c = 0; c < s; c++) out[o++] = d[v + c];
            }
          }
        }
      }
      gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, a, tx, ty, b - a, this.fmt[1], this.fmt[2], out);
    }
  }

  /** Drop the reduced copy (the shared series texture belongs to the slice view). */
  dispose() { release(this.gl, this.own); this.own = null; this.slices = null; this.shared = false; }
}
