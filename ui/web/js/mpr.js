// mpr.js -- plane and camera geometry in patient space (LPS mm); no DOM, no GL.
//
// A volume's affine maps (column, row, slice) voxel indices to LPS mm.  2D
// views are planes through the crosshair point with screen axes u (right) and
// v (down) in patient space; the 3D view is an orthographic camera.  Both are
// turned into affine maps from canvas pixels to voxel indices for the shaders.

/** Radiological screen axes (u = screen right, v = screen down) of the standard planes. */
export const PLANES = {
  axial: { u: [1, 0, 0], v: [0, 1, 0], axis: 2, label: 'Axial' },       // right = L, down = P
  coronal: { u: [1, 0, 0], v: [0, 0, -1], axis: 1, label: 'Coronal' },  // right = L, down = I
  sagittal: { u: [0, 1, 0], v: [0, 0, -1], axis: 0, label: 'Sagittal' }, // right = P, down = I
};

export const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
export const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
export const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
export const scale = (a, k) => [a[0] * k, a[1] * k, a[2] * k];
export const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
export const norm = (a) => Math.hypot(a[0], a[1], a[2]);
export const unit = (a) => scale(a, 1 / (norm(a) || 1));

/** 3x3 part of a 4x4 affine times a vector. */
export function mul3(A, x) {
  return [0, 1, 2].map((r) => A[r][0] * x[0] + A[r][1] * x[1] + A[r][2] * x[2]);
}

/** 4x4 affine times a point. */
export function apply(A, p) {
  return [0, 1, 2].map((r) => A[r][0] * p[0] + A[r][1] * p[1] + A[r][2] * p[2] + A[r][3]);
}

/** Inverse of a 4x4 affine (last row 0 0 0 1). */
export function invertAffine(A) {
  const [a, b, c] = [A[0], A[1], A[2]];
  const m = [[a[0], a[1], a[2]], [b[0], b[1], b[2]], [c[0], c[1], c[2]]];
  const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
    - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const inv = [
    [(m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det, (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det, (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det],
    [(m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det, (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det, (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det],
    [(m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det, (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det, (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det],
  ];
  const t = [A[0][3], A[1][3], A[2][3]];
  const it = [0, 1, 2].map((r) => -(inv[r][0] * t[0] + inv[r][1] * t[1] + inv[r][2] * t[2]));
  return [[...inv[0], it[0]], [...inv[1], it[1]], [...inv[2], it[2]], [0, 0, 0, 1]];
}

/** The 8 corners (LPS) of the volume's voxel box (voxel edges, not centres). */
export function boxCorners(A, dims) {
  const out = [];
  for (const i of [-0.5, dims[0] - 0.5]) for (const j of [-0.5, dims[1] - 0.5]) for (const k of [-0.5, dims[2] - 0.5]) {
    out.push(apply(A, [i, j, k]));
  }
  return out;
}

/** Centre (LPS) of the volume. */
export function boxCenter(A, dims) {
  return apply(A, [(dims[0] - 1) / 2, (dims[1] - 1) / 2, (dims[2] - 1) / 2]);
}

/**
 * Screen mapping of a plane view.
 * @param {object} o  {A, dims, u, v, cross, rect: [x, y, w, h] canvas px (top-left origin), zoom, panX, panY (device px)}
 * @returns {{O: number[], U: number[], V: number[], k: number, n: number[]}}
 *   world = O + px * U + py * V for canvas pixel coordinates (px, py), top-left origin.
 */
export function planeMapping(o) {
  const { A, dims, u, v, cross: c, rect, zoom, panX, panY } = o;
  const n = cross(u, v);
  const corners = boxCorners(A, dims);
  const us = corners.map((p) => dot(p, u)), vs = corners.map((p) => dot(p, v));
  const u0 = Math.min(...us), u1 = Math.max(...us), v0 = Math.min(...vs), v1 = Math.max(...vs);
  const [x, y, w, h] = rect;
  const k = Math.min(w / (u1 - u0), h / (v1 - v0)) * zoom;        // canvas px per mm
  const C = add(add(scale(u, (u0 + u1) / 2), scale(v, (v0 + v1) / 2)), scale(n, dot(c, n)));
  const cx = x + w / 2 + panX, cy = y + h / 2 + panY;
  const O = sub(C, add(scale(u, cx / k), scale(v, cy / k)));
  return { O, U: scale(u, 1 / k), V: scale(v, 1 / k), k, n };
}

/** World point of canvas pixel coordinates under a mapping. */
export function toWorld(m, px, py) { return add(m.O, add(scale(m.U, px), scale(m.V, py))); }

/** Canvas pixel coordinates of a world point (projected onto the plane). */
export function toCanvas(m, p) {
  const d = sub(p, m.O);
  return [dot(d, m.U) / dot(m.U, m.U), dot(d, m.V) / dot(m.V, m.V)];
}

/**
 * Shader uniforms mapping gl_FragCoord to voxel indices for a mapping.
 * @param {object} m  planeMapping result
 * @param {number[][]} Tinv  inverse affine of the texture grid
 * @param {number} H  canvas height (window y is bottom-up)
 */
export function fragUniforms(m, Tinv, H) {
  // canvas (px, py) = (fx, H - fy)
  const G0 = apply(Tinv, add(m.O, scale(m.V, H)));
  const Gx = mul3(Tinv, m.U);
  const Gy = mul3(Tinv, scale(m.V, -1));
  return { G0, Gx, Gy };
}

/** Step (mm) along `n` that moves at most one voxel index in any axis. */
export function stepAlong(Ainv, n) {
  const d = mul3(Ainv, n).map(Math.abs);
  return 1 / Math.max(...d, 1e-9);
}

/** Rotation matrix (rows: right, up, forward) rotated by yaw about `up` and pitch about `right`. */
export function orbit(R, yaw, pitch) {
  const rot = (vec, axis, ang) => {
    const c = Math.cos(ang), s = Math.sin(ang);
    const k = unit(axis);
    const kv = cross(k, vec), kd = dot(k, vec);
    return [0, 1, 2].map((i) => vec[i] * c + kv[i] * s + k[i] * kd * (1 - c));
  };
  let [r, u, f] = R;
  r = rot(r, u, yaw); f = rot(f, u, yaw);
  u = rot(u, r, pitch); f = rot(f, r, pitch);
  // re-orthonormalise
  f = unit(f); r = unit(cross(f, u)); u = unit(cross(r, f));
  return [r, u, f];
}

/** Anterior view: screen right = patient left, up = superior, looking posterior. */
export const ANTERIOR = [[1, 0, 0], [0, 0, 1], [0, 1, 0]];
