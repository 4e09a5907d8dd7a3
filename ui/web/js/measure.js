// measure.js -- measurements on 2D views: distance, angle, rectangle and ellipse ROIs.
//
// Points are kept in patient space (LPS mm) with the key of the plane they
// were drawn on, so a measurement shows again whenever that plane is shown,
// whatever the zoom, pan or layout.  Lengths and areas are in mm / mm²;
// ROI statistics are over real-world values (stored * slope + intercept).

import { apply, dot, invertAffine, norm, sub } from './mpr.js';

let nextId = 1;

/** A new measurement record. */
export function make(type, viewKey, pts, plane) {
  return { id: nextId++, type, view: viewKey, pts, plane, result: null };
}

/** Length of p1-p2 in mm. */
export function distance(a, b) { return norm(sub(b, a)); }

/** Angle at vertex b between a and c, degrees. */
export function angle(a, b, c) {
  const u = sub(a, b), v = sub(c, b);
  const d = dot(u, v) / ((norm(u) * norm(v)) || 1);
  return (Math.acos(Math.max(-1, Math.min(1, d))) * 180) / Math.PI;
}

/** Mean, SD (population, ddof = 0), min, max of an array of numbers. */
export function stats(values) {
  const n = values.length;
  if (!n) return { n: 0, mean: NaN, sd: NaN, min: NaN, max: NaN };
  let s = 0, mn = Infinity, mx = -Infinity;
  for (const v of values) { s += v; if (v < mn) mn = v; if (v > mx) mx = v; }
  const mean = s / n;
  let q = 0;
  for (const v of values) q += (v - mean) * (v - mean);
  return { n, mean, sd: Math.sqrt(q / n), min: mn, max: mx };
}

/**
 * Values inside a ROI.
 *
 * On the acquired-slice view (`plane.native`), the voxels of slice z whose
 * centres lie inside the shape (in voxel index space).  On a reformatted
 * plane, the shape is sampled on a grid of the volume's finest spacing in
 * the plane's (u, v) axes, each sample taking its nearest voxel.
 *
 * @param {object} vol {header, data}
 * @param {object} m   measurement (type rect/ellipse, pts [p1, p2] opposite corners)
 * @returns {{values: number[], area: number}}
 */
export function roiValues(vol, m) {
  const h = vol.header;
  const A = h.affine_lps, Ai = invertAffine(A);
  const [nz, ny, nx] = h.shape;
  const { slope, intercept } = h.rescale;
  const ell = m.type === 'ellipse';
  const values = [];
  const at = (i, j, k) => vol.data[(k * ny + j) * nx + i] * slope + intercept;
  if (m.plane.native) {
    const g1 = apply(Ai, m.pts[0]), g2 = apply(Ai, m.pts[1]);
    const k = m.plane.slice;
    const i0 = Math.min(g1[0], g2[0]), i1 = Math.max(g1[0], g2[0]);
    const j0 = Math.min(g1[1], g2[1]), j1 = Math.max(g1[1], g2[1]);
    const ic = (i0 + i1) / 2, jc = (j0 + j1) / 2, a = (i1 - i0) / 2, b = (j1 - j0) / 2;
    for (let j = Math.max(0, Math.ceil(j0)); j <= Math.min(ny - 1, Math.floor(j1)); j++) {
      for (let i = Math.max(0, Math.ceil(i0)); i <= Math.min(nx - 1, Math.floor(i1)); i++) {
        if (ell && ((i - ic) / (a || 1e-9)) ** 2 + ((j - jc) / (b || 1e-9)) ** 2 > 1) continue;
        values.push(at(i, j, k));
      }
    }
    const w = (i1 - i0) * h.spacing[0], hh = (j1 - j0) * h.spacing[1];
    return { values, area: ell ? (Math.PI * w * hh) / 4 : w * hh };
  }
  const { u, v } = m.plane;
  const u1 = dot(m.pts[0], u), u2 = dot(m.pts[1], u), v1 = dot(m.pts[0], v), v2 = dot(m.pts[1], v);
  const ua = Math.min(u1, u2), ub = Math.max(u1, u2), va = Math.min(v1, v2), vb = Math.max(v1, v2);
  const step = Math.min(...h.spacing);
  const base = sub(m.pts[0], [u[0] * u1 + v[0] * v1, u[1] * u1 + v[1] * v1, u[2] * u1 + v[2] * v1]);
  const uc = (ua + ub) / 2, vc = (va + vb) / 2, a = (ub - ua) / 2, b = (vb - va) / 2;
  for (let s = va + step / 2; s < vb; s += step) {
    for (let r = ua + step / 2; r < ub; r += step) {
      if (ell && ((r - uc) / (a || 1e-9)) ** 2 + ((s - vc) / (b || 1e-9)) ** 2 > 1) continue;
      const p = [0, 1, 2].map((q) => base[q] + u[q] * r + v[q] * s);
      const g = apply(Ai, p).map(Math.round);
      if (g[0] < 0 || g[1] < 0 || g[2] < 0 || g[0] >= nx || g[1] >= ny || g[2] >= nz) continue;
      values.push(at(g[0], g[1], g[2]));
    }
  }
  const w = ub - ua, hh = vb - va;
  return { values, area: ell ? (Math.PI * w * hh) / 4 : w * hh };
}

/** Compute m.result for a finished measurement. */
export function evaluate(vol, m) {
  if (m.type === 'distance') m.result = { mm: distance(m.pts[0], m.pts[1]) };
  else if (m.type === 'angle') m.result = { deg: angle(m.pts[0], m.pts[1], m.pts[2]) };
  else {
    const { values, area } = roiValues(vol, m);
    m.result = { ...stats(values), area };
  }
  return m.result;
}

const fmt = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '–');

/** One-line text of a measurement's result. */
export function describe(m, units) {
  const r = m.result || {};
  if (m.type === 'distance') return `Distance ${fmt(r.mm, 1)} mm`;
  if (m.type === 'angle') return `Angle ${fmt(r.deg, 1)}°`;
  const u = units ? ` ${units}` : '';
  const name = m.type === 'rect' ? 'Rectangle' : 'Ellipse';
  return `${name}: mean ${fmt(r.mean, 1)}${u}, SD ${fmt(r.sd, 1)}, min ${fmt(r.min, 0)}, max ${fmt(r.max, 0)}, `
    + `area ${fmt(r.area, 1)} mm² (${r.n || 0} px)`;
}

/**
 * Draw a measurement on the overlay context, given a world->canvas function.
 * @param {CanvasRenderingContext2D} ctx
 * @param {object} m
 * @param {function} toPx world point -> [x, y] canvas px
 * @param {string} text label
 */
export function draw(ctx, m, toPx, text) {
  const p = m.pts.map(toPx);
  ctx.save();
  ctx.strokeStyle = '#ffb300';
  ctx.fillStyle = '#ffb300';
  ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1);
  ctx.beginPath();
  if (m.type === 'distance' || m.type === 'angle') {
    ctx.moveTo(p[0][0], p[0][1]);
    for (const q of p.slice(1)) ctx.lineTo(q[0], q[1]);
  } else {
    // the ROI's corners are on the plane; draw its box in the view's own axes
    const x0 = Math.min(p[0][0], p[1][0]), x1 = Math.max(p[0][0], p[1][0]);
    const y0 = Math.min(p[0][1], p[1][1]), y1 = Math.max(p[0][1], p[1][1]);
    if (m.type === 'rect') ctx.rect(x0, y0, x1 - x0, y1 - y0);
    else ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, 0, 0, 2 * Math.PI);
  }
  ctx.stroke();
  for (const q of p) ctx.fillRect(q[0] - 2, q[1] - 2, 4, 4);
  if (text) {
    ctx.font = `${12 * (window.devicePixelRatio || 1)}px sans-serif`;
    ctx.shadowColor = '#000'; ctx.shadowBlur = 2;
    const last = p[p.length - 1];
    ctx.fillText(text, last[0] + 6, last[1] - 6);
  }
  ctx.restore();
}
