#version 300 es
#line 2
// slice.frag.glsl -- one slice of a 16-bit volume with window/level as uniforms.
//
// The volume is an *integer* 3D texture (R16I for int16, R16UI for uint16;
// R32F for float data), read with texelFetch.  Integer textures cannot be
// filtered by the GPU in WebGL2, so bilinear filtering is done here with four
// fetches.  That keeps stored values exact (R16F would round values above
// 2048) and uploads the DICOM bytes as they are, with no conversion in JS.
//
// A header injected by gl/shaders.js declares `uVol` with the right sampler
// type (isampler3D / usampler3D / sampler3D).
precision highp float;
precision highp int;
// @SAMPLER@

in vec2 vCanvas;
out vec4 outColor;

uniform vec4 uXform;      // (sx, sy, ox, oy): canvas px = image px * s + o
uniform ivec3 uDims;      // columns, rows, slices of the volume
uniform int uLayer;       // texture layer holding the current slice
uniform float uSlope;     // real = stored * slope + intercept
uniform float uIntercept;
uniform float uCenter;    // window centre, real-world units
uniform float uWidth;     // window width, real-world units
uniform bool uInvert;
uniform bool uSmooth;

float texel(ivec2 p) {
  p = clamp(p, ivec2(0), uDims.xy - 1);
  return float(texelFetch(uVol, ivec3(p, uLayer), 0).r);
}

void main() {
  vec2 img = (vCanvas - uXform.zw) / uXform.xy;      // image pixel coordinates
  if (img.x < 0.0 || img.y < 0.0 || img.x >= float(uDims.x) || img.y >= float(uDims.y)) {
    outColor = vec4(0.0, 0.0, 0.0, 1.0);
    return;
  }
  float v;
  if (uSmooth) {
    vec2 t = img - 0.5;
    ivec2 i0 = ivec2(floor(t));
    vec2 f = t - floor(t);
    v = mix(mix(texel(i0), texel(i0 + ivec2(1, 0)), f.x),
            mix(texel(i0 + ivec2(0, 1)), texel(i0 + ivec2(1, 1)), f.x), f.y);
  } else {
    v = texel(ivec2(floor(img)));
  }
  float real = v * uSlope + uIntercept;
  // Linear VOI LUT of DICOM PS3.3 C.11.2.1.2.1.
  float y = clamp((real - (uCenter - 0.5)) / max(uWidth - 1.0, 1e-6) + 0.5, 0.0, 1.0);
  if (uInvert) y = 1.0 - y;
  outColor = vec4(vec3(y), 1.0);
}
