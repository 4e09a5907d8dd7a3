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
};

/** Replace the `// @SAMPLER@` line with the declaration for `dtype`. */
export function specialise(src, dtype) {
  const decl = SAMPLERS[dtype];
  if (!decl) throw new Error(`unsupported voxel type ${dtype}`);
  return src.replace('// @SAMPLER@', decl);
}
