#version 300 es
#line 2
// ray.frag.glsl -- orthographic raycaster: direct volume rendering (transfer
// function + gradient shading), maximum and minimum intensity projection.
//
// Rays are marched in texture-grid voxel space (the affine maps lines to
// lines), with t in millimetres so the step and the opacity correction do not
// depend on the voxel size.  The clip box is six planes given as fractions of
// the volume's index box.
// The series texture is sampled by volume.glsl (included below): stored
// values filtered trilinearly by hand, rescaled to real-world values.
precision highp float;
precision highp int;

// @VOLUME@

uniform sampler2D uTF;          // 256x1 RGBA transfer function over [uTfLo, uTfHi]
uniform vec3 uG0;               // voxel index of the ray start at gl_FragCoord (0, 0)
uniform vec3 uGx;               // ... per window pixel in x
uniform vec3 uGy;               // ... per window pixel in y
uniform vec3 uDir;              // voxel index per mm along the ray
uniform vec3 uClipLo;           // clip box, fractions of the index box
uniform vec3 uClipHi;
uniform mat3 uGradToWorld;      // transpose(inverse(voxel->world 3x3)): gradient to patient space
uniform vec3 uLight;            // direction towards the light (patient space, unit)
uniform float uStep;            // mm between samples
uniform float uRefStep;         // mm the transfer function's opacities are given for
uniform float uTfLo;
uniform float uTfHi;
uniform int uMode;              // 0 DVR, 1 MIP, 2 MinIP
uniform bool uShade;
uniform float uCenter;          // window for MIP / MinIP
uniform float uWidth;
uniform int uMaxSteps;

out vec4 outColor;

void main() {
  vec3 o = uG0 + gl_FragCoord.x * uGx + gl_FragCoord.y * uGy;
  vec3 lo = -0.5 + uClipLo * uDims;
  vec3 hi = -0.5 + uClipHi * uDims;
  // slab intersection (t in mm)
  vec3 inv = 1.0 / uDir;
  vec3 ta = (lo - o) * inv, tb = (hi - o) * inv;
  vec3 tmin = min(ta, tb), tmax = max(ta, tb);
  float t0 = max(max(tmin.x, tmin.y), max(tmin.z, 0.0));
  float t1 = min(min(tmax.x, tmax.y), tmax.z);
  if (!(t1 > t0) || any(greaterThan(lo, hi))) {
    outColor = vec4(0.0, 0.0, 0.0, 1.0);
    return;
  }
  float range = max(uTfHi - uTfLo, 1e-6);
  vec4 acc = vec4(0.0);
  float extreme = uMode == 2 ? 1e30 : -1e30;
  float t = t0 + 0.5 * uStep;
  for (int i = 0; i < 4096; i++) {
    if (t > t1 || i >= uMaxSteps) break;
    vec3 g = o + t * uDir;
    Cell cell = cellAt(g);          // 8 texels; the shading's gradient reuses them
    float v = cellValue(cell);
    if (uMode == 1) {
      extreme = max(extreme, v);
    } else if (uMode == 2) {
      extreme = min(extreme, v);
    } else {
      vec4 c = texture(uTF, vec2((v - uTfLo) / range, 0.5));
      if (c.a > 0.002) {
        float a = 1.0 - pow(1.0 - c.a, uStep / uRefStep);
        vec3 rgb = c.rgb;
        if (uShade) {
          vec3 gr = uGradToWorld * cellGradient(cell);
          float len = length(gr);
          if (len > 1e-3) {
            vec3 n = gr / len;
            float d = abs(dot(n, uLight));
            float s = pow(d, 24.0);
            rgb = rgb * (0.25 + 0.75 * d) + vec3(0.25 * s);
          }
        }
        acc.rgb += (1.0 - acc.a) * a * rgb;
        acc.a += (1.0 - acc.a) * a;
        if (acc.a > 0.97) break;
      }
    }
    t += uStep;
  }
  if (uMode == 0) {
    outColor = vec4(acc.rgb, 1.0);
  } else {
    float y = clamp((extreme - (uCenter - 0.5)) / max(uWidth - 1.0, 1e-6) + 0.5, 0.0, 1.0);
    outColor = vec4(vec3(y), 1.0);
  }
}
