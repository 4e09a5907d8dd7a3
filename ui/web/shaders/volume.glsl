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

// Real-world value at texture-grid voxel index g (voxel centres at integers).
float sampleVolume(vec3 g) {
  vec3 b = floor(g);
  vec3 f = g - b;
  ivec3 hi = ivec3(uDims) - 1;
  ivec3 i0 = clamp(ivec3(b), ivec3(0), hi);
  ivec3 i1 = clamp(ivec3(b) + 1, ivec3(0), hi);
  float c000 = texelStored(i0);
  float c100 = texelStored(ivec3(i1.x, i0.y, i0.z));
  float c010 = texelStored(ivec3(i0.x, i1.y, i0.z));
  float c110 = texelStored(ivec3(i1.x, i1.y, i0.z));
  float c001 = texelStored(ivec3(i0.x, i0.y, i1.z));
  float c101 = texelStored(ivec3(i1.x, i0.y, i1.z));
  float c011 = texelStored(ivec3(i0.x, i1.y, i1.z));
  float c111 = texelStored(i1);
  float v = mix(mix(mix(c000, c100, f.x), mix(c010, c110, f.x), f.y),
                mix(mix(c001, c101, f.x), mix(c011, c111, f.x), f.y), f.z);
  return v * uSlope + uIntercept;
}
