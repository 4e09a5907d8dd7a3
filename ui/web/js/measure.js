// measure.js -- measurements on 2D views: distance, angle, rectangle and ellipse ROIs.
//
// Points are kept in patient space (LPS mm) with the key of the plane they
// were drawn on, so a measurement shows again whenever that plane is shown,
// whatever the zoom, pan or layout.  Lengths and areas are in mm / mm² only
// when the volume is calibrated (header.calibration, see calibrationOf):
// "at detector" for Imager Pixel Spacing, each ultrasound region with its own
// spacing, px "(uncalibrated)" otherwise.  ROI statistics are over real-world
// values (stored * slope + intercept).

import { apply, dot, invertAffine, norm, sub } from './mpr.js';

const KINDS = ['patient', 'detector', 'detector_corrected', 'us_region', 'none'];
const SUFFIX = {
  patient: '', detector: ' at detector', detector_corrected: ' at isocenter (estimated)',
  us_region: '', none: ' (uncalibrated)',
};

/**
 * What a volume's pixels measure, from its header's calibration.
 * @param {object} h volume header
 * @returns {{kind: string, unit: string, suffix: string, regions: object[]}}
 *   unit 'mm' or 'px'; suffix e.g. ' at detector' or ' (uncalibrated)'.
 */
export function calibrationOf(h) {
  const c = (h && h.calibration) || {};
  const kind = KINDS.includes(c.kind) ? c.kind : 'none';
  return { kind, unit: kind === 'none' ? 'px' : 'mm', suffix: SUFFIX[kind], regions: c.regions || [] };
}

/** The overlay's pixel-size text: "0.50×0.50×2.00 mm", "0.14×0.14 mm at detector", "uncalibrated". */
export function spacingText(h) {
  const cal = calibrationOf(h);
  if (cal.unit === 'px') return 'uncalibrated';
  const f = (v) => (+v).toFixed(2);
  if (cal.kind === 'patient') return `${f(h.spacing[0])}×${f(h.spacing[1])}×${f(h.spacing[2])} mm`;
  return `${f(h.spacing[0])}×${f(h.spacing[1])} mm${cal.kind === 'us_region' ? ' (US region)' : cal.suffix}`;
}

/** The ultrasound region holding every voxel point g ([col, row, ...]), or null. */
function regionOf(regions, g) {
  return regions.find((r) => g.every((p) => p[0] >= r.bbox[0] - 0.5 && p[0] <= r.bbox[2] + 0.5
    && p[1] >= r.bbox[1] - 0.5 && p[1] <= r.bbox[3] + 0.5)) || null;
}

/**
 * Scale of a measurement in column/row voxel steps: [mm per col, mm per row, unit, suffix],
 * for ultrasound the spacing of the region holding its points (px outside any).
 */
function scaleOf(cal, g) {
  if (cal.kind !== 'us_region') return null;
  const r = regionOf(cal.regions, g);
  if (!r) return [1, 1, 'px', ' (outside the calibrated region)'];
  return [r.spacing_mm[1], r.spacing_mm[0], 'mm', ''];
}

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
  const d = vol.data;
  // colour (RGB8): ROI statistics over the luminance, as MPR/3D show it
  const at = (h.samples || 1) === 3
    ? (i, j, k) => { const o = 3 * ((k * ny + j) * nx + i); return 0.299 * d[o] + 0.587 * d[o + 1] + 0.114 * d[o + 2]; }
    : (i, j, k) => d[(k * ny + j) * nx + i] * slope + intercept;
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

/**
 * Compute m.result for a finished measurement: a distance is `{mm}` (calibrated)
 * or `{px}`, with its `unit` and `suffix`; a ROI's `area` is in `unit`².
 */
export function evaluate(vol, m) {
  const h = vol.header, cal = calibrationOf(h);
  const g = m.type === 'angle' ? null : m.pts.map((p) => apply(invertAffine(h.affine_lps), p));
  const sc = g ? scaleOf(cal, g) : null;
  const unit = sc ? sc[2] : cal.unit, suffix = sc ? sc[3] : cal.suffix;
  if (m.type === 'distance') {
    const len = sc ? Math.hypot((g[1][0] - g[0][0]) * sc[0], (g[1][1] - g[0][1]) * sc[1])
      : distance(m.pts[0], m.pts[1]);
    m.result = { [unit]: len, unit, suffix };
  } else if (m.type === 'angle') m.result = { deg: angle(m.pts[0], m.pts[1], m.pts[2]) };
  else {
    const { values, area } = roiValues(vol, m);
    let a = area;
    if (sc) {
      const w = Math.abs(g[1][0] - g[0][0]) * sc[0], hh = Math.abs(g[1][1] - g[0][1]) * sc[1];
      a = m.type === 'ellipse' ? (Math.PI * w * hh) / 4 : w * hh;
    }
    m.result = { ...stats(values), area: a, unit, suffix };
  }
  return m.result;
}

const fmt = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '–');

/** One-line text of a measurement's result. */
export function describe(m, units) {
  const r = m.result || {};
  const du = r.unit || 'mm', sfx = r.suffix || '';
  if (m.type === 'distance') return `Distance ${fmt(r[du], 1)} ${du}${sfx}`;
  if (m.type === 'angle') return `Angle ${fmt(r.deg, 1)}°`;
  const u = units ? ` ${units}` : '';
  const name = m.type === 'rect' ? 'Rectangle' : 'Ellipse';
  return `${name}: mean ${fmt(r.mean, 1)}${u}, SD ${fmt(r.sd, 1)}, min ${fmt(r.min, 0)}, max ${fmt(r.max, 0)}, `
    + `area ${fmt(r.area, 1)} ${du}²${sfx} (${r.n || 0} px)`;
}

/**
 * The text drawn at a measurement on the image: one line for a distance or an
 * angle, mean / SD / area lines for a ROI (units: the volume's value units).
 * @returns {string[]}
 */
export function labelLines(m, units) {
  const r = m.result || {};
  const du = r.unit || 'mm', sfx = r.suffix || '';
  if (m.type === 'distance') return [`${fmt(r[du], 1)} ${du}${sfx}`];
  if (m.type === 'angle') return [`${fmt(r.deg, 1)}°`];
  const u = units ? ` ${units}` : '';
  return [`mean ${fmt(r.mean, 1)}${u}`, `SD ${fmt(r.sd, 1)}`, `area ${fmt(r.area, 1)} ${du}²${sfx}`];
}

const COLOUR = '#ffb300', SELECTED = '#4fc3f7';

/**
 * Draw a measurement on the overlay context, given a world->canvas function;
 * its text in a dark box beside it (a ROI: right of its box; a distance: at
 * its end; an angle: at its vertex).
 * @param {CanvasRenderingContext2D} ctx
 * @param {object} m
 * @param {function} toPx world point -> [x, y] canvas px
 * @param {string[]|string} lines label text (none while drawing)
 * @param {boolean} selected drawn highlighted, with larger handles
 * @returns {{x: number, y: number, w: number, h: number}|null} the label's box (canvas px)
 */
export function draw(ctx, m, toPx, lines, selected = false) {
  const p = m.pts.map(toPx);
  const dpr = window.devicePixelRatio || 1;
  ctx.save();
  ctx.strokeStyle = selected ? SELECTED : COLOUR;
  ctx.fillStyle = ctx.strokeStyle;
  ctx.lineWidth = Math.max(1, dpr) * (selected ? 2 : 1);
  ctx.beginPath();
  let x0, x1, y0, y1;
  if (m.type === 'distance' || m.type === 'angle') {
    ctx.moveTo(p[0][0], p[0][1]);
    for (const q of p.slice(1)) ctx.lineTo(q[0], q[1]);
  } else {
    // the ROI's corners are on the plane; draw its box in the view's own axes
    x0 = Math.min(p[0][0], p[1][0]); x1 = Math.max(p[0][0], p[1][0]);
    y0 = Math.min(p[0][1], p[1][1]); y1 = Math.max(p[0][1], p[1][1]);
    if (m.type === 'rect') ctx.rect(x0, y0, x1 - x0, y1 - y0);
    else ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, 0, 0, 2 * Math.PI);
  }
  ctx.stroke();
  const hs = (selected ? 3 : 2) * dpr;
  for (const q of p) ctx.fillRect(q[0] - hs, q[1] - hs, 2 * hs, 2 * hs);
  const text = typeof lines === 'string' ? (lines ? [lines] : []) : (lines || []);
  let box = null;
  if (text.length) {
    const size = 12 * dpr, lh = Math.round(size * 1.25), pad = 3 * dpr;
    ctx.font = `${size}px sans-serif`;
    const w = Math.max(...text.map((t) => ctx.measureText(t).width)) + 2 * pad;
    const h = text.length * lh + 2 * pad;
    let lx, ly;
    if (x0 !== undefined) { lx = x1 + 6 * dpr; ly = y0; }
    else {
      const at = m.type === 'angle' ? p[1] : p[p.length - 1];
      lx = at[0] + 6 * dpr; ly = at[1] - h - 4 * dpr;
    }
    // keep it on the canvas
    lx = Math.max(0, Math.min(ctx.canvas.width - w, lx));
    ly = Math.max(0, Math.min(ctx.canvas.height - h, ly));
    ctx.fillStyle = 'rgba(0, 0, 0, 0.6)';
    ctx.fillRect(lx, ly, w, h);
    ctx.fillStyle = selected ? SELECTED : COLOUR;
    ctx.textBaseline = 'top';
    text.forEach((t, i) => ctx.fillText(t, lx + pad, ly + pad + i * lh));
    box = { x: lx, y: ly, w, h };
  }
  ctx.restore();
  return box;
}

/** Distance from point (x, y) to segment a-b (canvas px). */
function segDist(a, b, x, y) {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const l2 = dx * dx + dy * dy;
  const t = l2 ? Math.max(0, Math.min(1, ((x - a[0]) * dx + (y - a[1]) * dy) / l2)) : 0;
  return Math.hypot(a[0] + t * dx - x, a[1] + t * dy - y);
}

/**
 * What of a measurement lies under canvas point (x, y): one of its handles
 * ({handle: i}), its outline or inside of a ROI ({body: true}), or null.
 * @param {object} m
 * @param {function} toPx world point -> [x, y] canvas px
 * @param {number} tol tolerance (canvas px)
 */
export function hit(m, toPx, x, y, tol) {
  const p = m.pts.map(toPx);
  for (let i = 0; i < p.length; i++) if (Math.hypot(p[i][0] - x, p[i][1] - y) <= tol) return { handle: i };
  if (m.type === 'distance' || m.type === 'angle') {
    for (let i = 0; i + 1 < p.length; i++) if (segDist(p[i], p[i + 1], x, y) <= tol) return { body: true };
    return null;
  }
  const x0 = Math.min(p[0][0], p[1][0]) - tol, x1 = Math.max(p[0][0], p[1][0]) + tol;
  const y0 = Math.min(p[0][1], p[1][1]) - tol, y1 = Math.max(p[0][1], p[1][1]) + tol;
  return x >= x0 && x <= x1 && y >= y0 && y <= y1 ? { body: true } : null;
}

/** A measurement as the archive keeps it (pocketpacs.archive.annotations). */
export function toRecord(m, stack, unit) {
  const rec = { type: m.type, points: m.pts.map((q) => q.map(Number)), unit, view: m.view, stack,
    slice: m.plane && m.plane.native ? m.plane.slice : null };
  if (m.plane) rec.plane = m.plane.native ? { native: true, slice: m.plane.slice } : { native: false, u: m.plane.u, v: m.plane.v };
  if (m.result) {
    const r = {};
    for (const [k, v] of Object.entries(m.result)) {
      if (typeof v === 'string') r[k] = v;
      else if (Number.isFinite(v)) r[k] = v;
    }
    rec.result = r;
  }
  return rec;
}

/** A measurement of the viewer from an archive record. */
export function fromRecord(rec) {
  const m = make(rec.type, rec.view, rec.points.map((q) => q.slice()), rec.plane || { native: true, slice: rec.slice || 0 });
  m.result = rec.result || null;
  return m;
}
