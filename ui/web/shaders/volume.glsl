// volume.glsl -- the series texture read by hand; included by mpr.frag.glsl and
// ray.frag.glsl (gl/shaders.js puts it, specialised for the voxel type, in place
// of their `// @VOLUME@` line; no #version: it is not a shader of its own).
//
// The series is on the GPU once, as stored (R16I / R16UI / R32F / RGB8: exact),
// and integer and R32F textures cannot be filtered by the GPU in WebGL2 (no
// OES_texture_float_linear needed either): trilinear interpolation is done here
// with 8 texelFetch, edges clamped -- what texture() of a filterable texture
// with CLAMP_TO_EDGE gives -- and the rescale applied after it (it is linear).
// Colour (RGB8, COLOUR defined) is read as its luminance 0.299 R + 0.587 G +
// 0.114 B in 0..255, without rescale (uSlope 1, uIntercept 0).
// @SAMPLER@
uniform vec3 uDims;       // texture size (columns, rows, slices)
uniform float uSlope;     // real = stored * slope + intercept
uniform float uIntercept;

float texelStored(ivec3 p) {
#ifdef COLOUR
  return dot(texelFetch(uVol, p, 0).rgb, vec3(0.299, 0.587, 0.114)) * 255.0;
#else
  return float(texelFetch(uVol, p, 0).r);
#endif
}

// The trilinear cell around a texture-grid voxel index g (voxel centres at
// integers): its 8 stored values, corners and weights.
struct Cell {
  ivec3 b;        // floor(g), unclamped
  ivec3 i0;       // lower corner, clamped to the texture
  ivec3 i1;       // upper corner, clamped
  vec3 f;         // weights of the upper corner
  float c000, c100, c010, c110, c001, c101, c011, c111;   // c<x><y><z>
};

Cell cellAt(vec3 g) {
  Cell c;
  vec3 fb = floor(g);
  c.f = g - fb;
  c.b = ivec3(fb);
  ivec3 hi = ivec3(uDims) - 1;
  c.i0 = clamp(c.b, ivec3(0), hi);
  c.i1 = clamp(c.b + 1, ivec3(0), hi);
  c.c000 = texelStored(c.i0);
  c.c100 = texelStored(ivec3(c.i1.x, c.i0.y, c.i0.z));
  c.c010 = texelStored(ivec3(c.i0.x, c.i1.y, c.i0.z));
  c.c110 = texelStored(ivec3(c.i1.x, c.i1.y, c.i0.z));
  c.c001 = texelStored(ivec3(c.i0.x, c.i0.y, c.i1.z));
  c.c101 = texelStored(ivec3(c.i1.x, c.i0.y, c.i1.z));
  c.c011 = texelStored(ivec3(c.i0.x, c.i1.y, c.i1.z));
  c.c111 = texelStored(c.i1);
  return c;
}

float bilerp(float a00, float a10, float a01, float a11, vec2 t) {
  return mix(mix(a00, a10, t.x), mix(a01, a11, t.x), t.y);
}

// Real-world value of the cell at its point (trilinear, then rescaled).
float cellValue(Cell c) {
  float v = mix(bilerp(c.c000, c.c100, c.c010, c.c110, c.f.xy),
                bilerp(c.c001, c.c101, c.c011, c.c111, c.f.xy), c.f.z);
  return v * uSlope + uIntercept;
}

// Real-world value at texture-grid voxel index g.
float sampleVolume(vec3 g) { return cellValue(cellAt(g)); }

// Central differences of the trilinear field, (value(g + e) - value(g - e)) / 2
// along each axis in real-world units per voxel index, from the cell's 8
// values and the 24 texels around it (32 fetches in all, not 6 x 8).
vec3 cellGradient(Cell c) {
  ivec3 hi = ivec3(uDims) - 1;
  ivec3 m = clamp(c.b - 1, ivec3(0), hi);
  ivec3 p = clamp(c.b + 2, ivec3(0), hi);
  vec3 f = c.f;
  // x: the planes x = b - 1 and x = b + 2, over (y, z) of the cell
  float xm00 = texelStored(ivec3(m.x, c.i0.y, c.i0.z)), xm10 = texelStored(ivec3(m.x, c.i1.y, c.i0.z));
  float xm01 = texelStored(ivec3(m.x, c.i0.y, c.i1.z)), xm11 = texelStored(ivec3(m.x, c.i1.y, c.i1.z));
  float xp00 = texelStored(ivec3(p.x, c.i0.y, c.i0.z)), xp10 = texelStored(ivec3(p.x, c.i1.y, c.i0.z));
  float xp01 = texelStored(ivec3(p.x, c.i0.y, c.i1.z)), xp11 = texelStored(ivec3(p.x, c.i1.y, c.i1.z));
  float gx = bilerp(mix(c.c100, xp00, f.x), mix(c.c110, xp10, f.x), mix(c.c101, xp01, f.x), mix(c.c111, xp11, f.x), f.yz)
           - bilerp(mix(xm00, c.c000, f.x), mix(xm10, c.c010, f.x), mix(xm01, c.c001, f.x), mix(xm11, c.c011, f.x), f.yz);
  // y: the planes y = b - 1 and y = b + 2, over (x, z)
  float ym00 = texelStored(ivec3(c.i0.x, m.y, c.i0.z)), ym10 = texelStored(ivec3(c.i1.x, m.y, c.i0.z));
  float ym01 = texelStored(ivec3(c.i0.x, m.y, c.i1.z)), ym11 = texelStored(ivec3(c.i1.x, m.y, c.i1.z));
  float yp00 = texelStored(ivec3(c.i0.x, p.y, c.i0.z)), yp10 = texelStored(ivec3(c.i1.x, p.y, c.i0.z));
  float yp01 = texelStored(ivec3(c.i0.x, p.y, c.i1.z)), yp11 = texelStored(ivec3(c.i1.x, p.y, c.i1.z));
  float gy = bilerp(mix(c.c010, yp00, f.y), mix(c.c110, yp10, f.y), mix(c.c011, yp01, f.y), mix(c.c111, yp11, f.y), f.xz)
           - bilerp(mix(ym00, c.c000, f.y), mix(ym10, c.c100, f.y), mix(ym01, c.c001, f.y), mix(ym11, c.c101, f.y), f.xz);
  // z: the planes z = b - 1 and z = b + 2, over (x, y)
  float zm00 = texelStored(ivec3(c.i0.x, c.i0.y, m.z)), zm10 = texelStored(ivec3(c.i1.x, c.i0.y, m.z));
  float zm01 = texelStored(ivec3(c.i0.x, c.i1.y, m.z)), zm11 = texelStored(ivec3(c.i1.x, c.i1.y, m.z));
  float zp00 = texelStored(ivec3(c.i0.x, c.i0.y, p.z)), zp10 = texelStored(ivec3(c.i1.x, c.i0.y, p.z));
  float zp01 = texelStored(ivec3(c.i0.x, c.i1.y, p.z)), zp11 = texelStored(ivec3(c.i1.x, c.i1.y, p.z));
  float gz = bilerp(mix(c.c001, zp00, f.z), mix(c.c101, zp10, f.z), mix(c.c011, zp01, f.z), mix(c.c111, zp11, f.z), f.xy)
           - bilerp(mix(zm00, c.c000, f.z), mix(zm10, c.c100, f.z), mix(zm01, c.c010, f.z), mix(zm11, c.c110, f.z), f.xy);
  return vec3(gx, gy, gz) * (0.5 * uSlope);
}
