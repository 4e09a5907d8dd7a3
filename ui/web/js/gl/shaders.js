// gl/shaders.js -- load GLSL sources from web/shaders/ once and specialise them.

const cache = new Map();

/** Fetch a shader source by file name (cached). */
export async function source(name) {
  if (!cache.has(name)) {
    cache.set(name, fetch(`/shaders/${name}`, { credentials: 'same-origin' }).then((r) => {
      if (!r.ok) throw new Error(`shader ${name}: HTTP ${r.status}`);
      return r.text();
    }));
  }
  return cache.get(name);
}

const SAMPLERS = {
  int16: 'precision highp isampler3D;\nuniform highp isampler3D uVol;',
  uint16: 'precision highp usampler3D;\nuniform highp usampler3D uVol;',
  float32: 'precision highp sampler3D;\nuniform highp sampler3D uVol;',
  uint8: 'precision highp sampler3D;\nuniform highp sampler3D uVol;\n#define COLOUR 1',   // RGB8 (MPR/3D: luminance)
};

/** Replace the `// @SAMPLER@` line with the declaration for `dtype`. */
export function specialise(src, dtype) {
  const decl = SAMPLERS[dtype];
  if (!decl) throw new Error(`unsupported voxel type ${dtype}`);
  return src.replace('// @SAMPLER@', decl);
}

/**
 * The source of an MPR / 3D fragment shader for the series texture of `dtype`:
 * its `// @VOLUME@` line replaced by volume.glsl (the by-hand trilinear
 * sampling of the stored values) with the sampler declared for `dtype`.
 */
export async function volumeShader(name, dtype) {
  const [src, vol] = await Promise.all([source(name), source('volume.glsl')]);
  if (!src.includes('// @VOLUME@')) throw new Error(`shader ${name} has no // @VOLUME@ line`);
  return src.replace('// @VOLUME@', specialise(vol, dtype));
}
