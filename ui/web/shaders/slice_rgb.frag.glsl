#version 300 es
#line 2
// slice_rgb.frag.glsl -- one slice of a colour (RGB8) volume.
//
// The volume is an RGB8 3D texture (wire dtype uint8, samples 3), read with
// texelFetch and filtered here with four fetches like slice.frag.glsl.
// Window/level is applied to each channel alike, in stored units 0..255: the
// header's window 128/256 shows the colours as stored; a right-drag changes
// contrast and brightness of all three channels.  No rescale for colour.
precision highp float;
precision highp int;
precision highp sampler3D;
uniform highp sampler3D uVol;

in vec2 vCanvas;
out vec4 outColor;

uniform vec4 uXform;      // (sx, sy, ox, oy): canvas px = image px * s + o
uniform ivec3 uDims;      // columns, rows, slices of the volume
uniform int uLayer;       // texture layer holding the current slice
uniform float uCenter;    // window centre, 0..255 units
uniform float uWidth;     // window width
uniform bool uInvert;
uniform bool uSmooth;

vec3 texel(ivec2 p) {
  p = clamp(p, ivec2(0), uDims.xy - 1);
  return texelFetch(uVol, ivec3(p, uLayer), 0).rgb * 255.0;
}

void main() {
  vec2 img = (vCanvas - uXform.zw) / uXform.xy;      // image pixel coordinates
  if (img.x < 0.0 || img.y < 0.0 || img.x >= float(uDims.x) || img.y >= float(uDims.y)) {
    outColor = vec4(0.0, 0.0, 0.0, 1.0);
    return;
  }
  vec3 v;
  if (uSmooth) {
    vec2 t = img - 0.5;
    ivec2 i0 = ivec2(floor(t));
    vec2 f = t - floor(t);
    v = mix(mix(texel(i0), texel(i0 + ivec2(1, 0)), f.x),
            mix(texel(i0 + ivec2(0, 1)), texel(i0 + ivec2(1, 1)), f.x), f.y);
  } else {
    v = texel(ivec2(floor(img)));
  }
  // The linear VOI LUT of PS3.3 C.11.2.1.2.1, per channel.
  vec3 y = clamp((v - (uCenter - 0.5)) / max(uWidth - 1.0, 1e-6) + 0.5, 0.0, 1.0);
  if (uInvert) y = 1.0 - y;
  outColor = vec4(y, 1.0);
}
