#version 300 es
#line 2
// mpr.frag.glsl -- a plane through the volume (multiplanar reformat) with window/level.
//
// The series texture (gl/textures.js, shared with the slice view) holds the
// stored values; volume.glsl, included below, samples it trilinearly by hand
// and applies the rescale.  The plane is given as an affine map from the
// fragment's window position to texture-grid voxel indices, computed in JS
// from the volume's affine: any acquisition (axial, sagittal, oblique,
// anisotropic) comes out in patient space with true aspect.
precision highp float;
precision highp int;

// @VOLUME@

uniform vec3 uG0;        // voxel index at gl_FragCoord (0, 0)
uniform vec3 uGx;        // voxel index per window pixel in x
uniform vec3 uGy;        // voxel index per window pixel in y
uniform float uCenter;   // window, real-world units
uniform float uWidth;
uniform bool uInvert;

out vec4 outColor;

void main() {
  vec3 g = uG0 + gl_FragCoord.x * uGx + gl_FragCoord.y * uGy;
  vec3 tc = (g + 0.5) / uDims;
  if (any(lessThan(tc, vec3(0.0))) || any(greaterThan(tc, vec3(1.0)))) {
    outColor = vec4(0.0, 0.0, 0.0, 1.0);
    return;
  }
  float real = sampleVolume(g);
  // Linear VOI LUT of DICOM PS3.3 C.11.2.1.2.1 (as slice.frag.glsl).
  float y = clamp((real - (uCenter - 0.5)) / max(uWidth - 1.0, 1e-6) + 0.5, 0.0, 1.0);
  if (uInvert) y = 1.0 - y;
  outColor = vec4(vec3(y), 1.0);
}
