// gl/textures.js -- the series texture: one 3D texture of the stored values.
//
// int16 -> R16I, uint16 -> R16UI, float32 -> R32F, uint8 with samples 3
// (colour) -> RGB8 (three bytes per voxel, interleaved).  The bytes of the
// stream are uploaded as they are (no conversion in JS), and stored values
// stay exact: the slice, MPR and 3D shaders read it with texelFetch and filter
// by hand, applying the rescale as uniforms.  This one texture serves the 2D
// slice view, MPR and 3D (gl/volume3d.js shares it).  When the volume exceeds
// MAX_3D_TEXTURE_SIZE or the byte budget (gl/limits.js), or the GPU is out of
// memory, the texture holds one layer (the current slice, uploaded on demand)
// and MPR/3D get a reduced copy in the same format.
//
// Every volume texture is counted (textureMemory): width * height * depth *
// bytes per texel of each one alive, per context, for tests and benchmarks.

import { limits } from './limits.js';

const FORMATS = {
  int16: (gl) => [gl.R16I, gl.RED_INTEGER, gl.SHORT],
  uint16: (gl) => [gl.R16UI, gl.RED_INTEGER, gl.UNSIGNED_SHORT],
  float32: (gl) => [gl.R32F, gl.RED, gl.FLOAT],
  uint8: (gl) => [gl.RGB8, gl.RGB, gl.UNSIGNED_BYTE],
};

/** Name and bytes per texel of the internal formats used for volumes. */
const TEXEL = { 0x8233: ['R16I', 2], 0x8234: ['R16UI', 2], 0x822E: ['R32F', 4], 0x8051: ['RGB8', 3] };

/** The [internalFormat, format, type] of a wire dtype. */
export function formatOf(gl, dtype) {
  const f = FORMATS[dtype];
  if (!f) throw new Error(`unsupported voxel type ${dtype}`);
  return f(gl);
}

/** Volume textures alive, per context: Map(texture -> {dims, format, bytes, role}). */
const alive = new WeakMap();

function registry(gl) {
  if (!alive.has(gl)) alive.set(gl, new Map());
  return alive.get(gl);
}

/**
 * Allocate an immutable 3D texture (texStorage3D) with NEAREST sampling and
 * clamped edges; null when the GPU is out of memory (nothing is left allocated).
 * @param {WebGL2RenderingContext} gl
 * @param {number} internalFormat gl.R16I, gl.R16UI, gl.R32F or gl.RGB8
 * @param {number[]} dims [width, height, depth] in texels
 * @param {string} role what the texture is for ('series', 'layer', 'reduced'), for the count
 * @returns {WebGLTexture|null}
 */
export function allocate3d(gl, internalFormat, dims, role) {
  while (gl.getError() !== gl.NO_ERROR) { /* drain earlier errors */ }
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_3D, tex);
  gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  for (const w of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T, gl.TEXTURE_WRAP_R]) {
    gl.texParameteri(gl.TEXTURE_3D, w, gl.CLAMP_TO_EDGE);
  }
  gl.texStorage3D(gl.TEXTURE_3D, 1, internalFormat, dims[0], dims[1], dims[2]);
  if (gl.getError() !== gl.NO_ERROR) { gl.deleteTexture(tex); return null; }
  const [format, bpt] = TEXEL[internalFormat] || ['?', 0];
  if (dims[2] > 1) zeroFill(gl, internalFormat, dims, bpt);
  registry(gl).set(tex, { dims: dims.slice(), format, bytes: dims[0] * dims[1] * dims[2] * bpt, role });
  return tex;
}

/**
 * Bytes of the zeroed pixel-unpack buffer a new volume texture is filled from,
 * a run of whole layers at a time (at least one layer).
 */
export const ZERO_CHUNK_BYTES = 16 << 20;

/**
 * Fill the 3D texture bound to TEXTURE_3D (just allocated: [width, height,
 * depth] texels of `bpt` bytes) with zeros by GPU-side copies from one small
 * zeroed pixel-unpack buffer, before any slice is uploaded.  WebGL shows zeros
 * where nothing was uploaded: left to the browser, the first upload that
 * covers part of the texture clears all of it first, which SwiftShader does
 * texel by texel for these formats (1.1-1.9 s for 512x512x1000 R16I,
 * measured, against 0.1-0.2 s for the upload of every slice after it).  The
 * buffer holds `chunkBytes` (whole layers) and is copied again and again down
 * the texture: a buffer of the whole texture's size cost 440-460 ms for
 * 512x512x1000 R16I (the GPU process allocating and zeroing 524 MB before the
 * copy), a 16 MB one 90-100 ms (measured on SwiftShader).  The buffer is
 * deleted at once (the GPU frees it after the copies).  Without the memory for
 * it the texture is left to the browser's clear (same zeros, slower).
 * @param {WebGL2RenderingContext} gl
 * @param {number} internalFormat gl.R16I, gl.R16UI, gl.R32F or gl.RGB8
 * @param {number[]} dims [width, height, depth] in texels
 * @param {number} bpt bytes per texel
 * @param {number} [chunkBytes] the buffer's bytes (rounded down to whole layers, at least one)
 */
export function zeroFill(gl, internalFormat, dims, bpt, chunkBytes = ZERO_CHUNK_BYTES) {
  const [, format, type] = Object.values(FORMATS).map((f) => f(gl)).find((f) => f[0] === internalFormat) || [];
  if (!format || !bpt) return;
  const [nx, ny, nz] = dims;
  const layers = Math.max(1, Math.min(nz, Math.floor(chunkBytes / (nx * ny * bpt))));
  // no getError here: it would wait for the GPU process to finish the fill, which
  // goes on while this thread handles the stream (a failed fill leaves an error
  // that the next allocate3d drains, and the texture to the browser's clear)
  const buf = gl.createBuffer();
  gl.bindBuffer(gl.PIXEL_UNPACK_BUFFER, buf);
  gl.bufferData(gl.PIXEL_UNPACK_BUFFER, nx * ny * layers * bpt, gl.STREAM_DRAW);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, unpackAlignment(nx * bpt));
  for (let z = 0; z < nz; z += layers) {
    gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, z, nx, ny, Math.min(layers, nz - z), format, type, 0);
  }
  gl.bindBuffer(gl.PIXEL_UNPACK_BUFFER, null);
  gl.deleteBuffer(buf);
}

/**
 * Count a texture made by allocate3d under another role ('spare': kept for the
 * next series of its size; 'series': in use again).
 */
export function relabel(gl, tex, role) {
  const t = registry(gl).get(tex);
  if (t) t.role = role;
}

/** Delete a texture made by allocate3d (and stop counting it). */
export function release(gl, tex) {
  if (!tex) return;
  registry(gl).delete(tex);
  gl.deleteTexture(tex);
}

/**
 * The volume textures alive in a context and their bytes.
 * @param {WebGL2RenderingContext} gl
 * @returns {{bytes: number, textures: Array<{dims: number[], format: string, bytes: number, role: string}>}}
 */
export function textureMemory(gl) {
  const textures = [...registry(gl).values()].map((t) => ({ ...t, dims: t.dims.slice() }));
  return { bytes: textures.reduce((a, t) => a + t.bytes, 0), textures };
}

/** Forget every count of a context (its textures went with a lost context). */
export function forgetAll(gl) { alive.delete(gl); }

/**
 * Allocate a volume texture: the whole series when it fits, else one layer.
 * @param {WebGL2RenderingContext} gl
 * @param {{shape: number[], dtype: string, samples: number, slice_bytes: number}} header
 * @param {boolean} [single] one layer only (the first-slice preview texture)
 * @returns {{tex: WebGLTexture, layers: number, whole: boolean, fmt: number[], nx: number, ny: number, samples: number, dtype: string}}
 */
export function createVolumeTexture(gl, header, single = false) {
  const [nz, ny, nx] = header.shape;
  const fmt = formatOf(gl, header.dtype);
  const { max3d, budget } = limits(gl);
  const bytes = nz * header.slice_bytes;
  let whole = !single && nz <= max3d && ny <= max3d && nx <= max3d && bytes <= budget;
  let tex = whole ? allocate3d(gl, fmt[0], [nx, ny, nz], 'series') : null;
  if (!tex) {
    whole = false;      // too large, or out of GPU memory: one layer, the slice shown
    tex = allocate3d(gl, fmt[0], [nx, ny, 1], 'layer');
  }
  return { tex, layers: whole ? nz : 1, whole, fmt, nx, ny, samples: header.samples || 1, dtype: header.dtype };
}

/** Largest unpack alignment (8, 4, 2 or 1) that the rows of `rowBytes` bytes keep. */
export function unpackAlignment(rowBytes) {
  for (const a of [8, 4, 2]) if (rowBytes % a === 0) return a;
  return 1;
}

/**
 * Upload slices [z0, z1) of `data` (the whole volume's typed array) to layer
 * `layer0`, in one texSubImage3D straight from the array (no copy in JS).
 */
export function uploadSlices(gl, vt, data, z0, z1, layer0 = z0) {
  const n = vt.nx * vt.ny * vt.samples;
  gl.bindTexture(gl.TEXTURE_3D, vt.tex);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, unpackAlignment(vt.nx * vt.samples * data.BYTES_PER_ELEMENT));
  gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, layer0, vt.nx, vt.ny, z1 - z0,
    vt.fmt[1], vt.fmt[2], data, z0 * n);
}
