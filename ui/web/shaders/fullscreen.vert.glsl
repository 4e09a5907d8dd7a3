#version 300 es
#line 2
// fullscreen.vert.glsl -- one triangle covering the viewport; no vertex buffers.
// vCanvas is the fragment's position in canvas pixels, origin at the top-left.
precision highp float;
uniform vec2 uCanvasSize;
out vec2 vCanvas;
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));  // (0,0) (2,0) (0,2)
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
  vCanvas = vec2(p.x, 1.0 - p.y) * uCanvasSize;
}
