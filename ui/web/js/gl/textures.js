// gl/textures.js -- 16-bit volume textures uploaded slice by slice.
//
// int16 -> R16I, uint16 -> R16UI (exact, unfiltered: the shader filters),
// float32 -> R32F (read with texelFetch, so no OES_texture_float_linear needed),
// uint8 with samples 3 (colour) -> RGB8 (three bytes per voxel, interleaved).
// When the volume exceeds MAX_3D_TEXTURE_SIZE (or the byte budget), the texture
// holds one layer and the current slice is uploaded on demand.

import { limits } from './limits.js';

const FORMATS = {
  int16: (gl) => [gl.R16I, gl.RED_INTEGER, gl.SHORT],
  uint16: (gl) => [gl.R16UI, gl.RED_INTEGER, gl.UNSIGNED_SHORT],
  float32: (gl) => [gl.R32F, gl.RED, gl.FLOAT],
  uint8: (gl) => [gl.RGB8, gl.RGB, gl.UNSIGNED_BYTE],
};

/** Largest volume (bytes) kept whole on the GPU. */
export const GPU_BUDGET = 1 << 30;

/**
 * Allocate a volume texture.
 * @param {WebGL2RenderingContext} gl
 * @param {{shape: number[], dtype: string, samples: number}} header
 * @param {boolean} [single] one layer only (the first-slice preview texture)
 * @returns {{tex: WebGLTexture, layers: number, whole: boolean, fmt: number[], samples: number}}
 */
export function createVolumeTexture(gl, header, single = false) {
  const [nz, ny, nx] = header.shape;
  const fmt = FORMATS[header.dtype](gl);
  const { max3d } = limits(gl);
  const bytes = nz * header.slice_bytes;
  const whole = !single && nz <= max3d && ny <= max3d && nx <= max3d && bytes <= GPU_BUDGET;
  const layers = whole ? nz : 1;
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_3D, tex);
  gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  for (const w of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T, gl.TEXTURE_WRAP_R]) {
    gl.texParameteri(gl.TEXTURE_3D, w, gl.CLAMP_TO_EDGE);
  }
  gl.texStorage3D(gl.TEXTURE_3D, 1, fmt[0], nx, ny, layers);
  return { tex, layers, whole, fmt, nx, ny, samples: header.samples || 1 };
}

/**
 * Upload slices [z0, z1) of `data` (the whole volume's typed array) to layer `layer0`.
 */
export function uploadSlices(gl, vt, data, z0, z1, layer0 = z0) {
  const n = vt.nx * vt.ny * vt.samples;
  gl.bindTexture(gl.TEXTURE_3D, vt.tex);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, layer0, vt.nx, vt.ny, z1 - z0,
    vt.fmt[1], vt.fmt[2], data.subarray(z0 * n, z1 * n));
}
