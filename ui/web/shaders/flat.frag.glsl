#version 300 es
#line 2
// flat.frag.glsl -- a trivial full-viewport pass (the benchmarks' reference draw).
precision highp float;
uniform vec4 uColor;
out vec4 outColor;
void main() { outColor = uColor + vec4(gl_FragCoord.xy * 1e-6, 0.0, 0.0); }
