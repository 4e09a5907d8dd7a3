// tf.js -- transfer-function presets of the 3D view and their 256-entry lookup tables.
//
// CT presets are in HU; the MR preset is in fractions of the volume's value
// range.  Each control point is [value, r, g, b, alpha]; alpha is the opacity
// per REF_STEP_MM of ray (the shader corrects it for its own step).

export const REF_STEP_MM = 1.0;

export const PRESETS = {
  'ct-bone': { label: 'CT bone', units: 'HU', points: [
    [-1024, 0, 0, 0, 0], [140, 0.55, 0.35, 0.25, 0], [250, 0.85, 0.65, 0.45, 0.18],
    [500, 0.95, 0.9, 0.8, 0.55], [1200, 1, 1, 0.97, 0.85], [3071, 1, 1, 1, 0.9]] },
  'ct-soft': { label: 'CT soft tissue', units: 'HU', points: [
    [-1024, 0, 0, 0, 0], [-400, 0.6, 0.3, 0.25, 0], [-100, 0.8, 0.5, 0.4, 0.02],
    [40, 0.85, 0.45, 0.38, 0.08], [120, 0.9, 0.6, 0.5, 0.15], [300, 0.95, 0.9, 0.85, 0.5],
    [3071, 1, 1, 1, 0.85]] },
  'ct-lung': { label: 'CT lung', units: 'HU', points: [
    [-1024, 0, 0, 0, 0], [-960, 0.9, 0.6, 0.55, 0], [-880, 0.95, 0.7, 0.65, 0.05],
    [-700, 1, 0.8, 0.75, 0.09], [-450, 0.9, 0.6, 0.55, 0.0], [3071, 0, 0, 0, 0]] },
  'ct-angio': { label: 'CT angio (contrast vessels)', units: 'HU', points: [
    [-1024, 0, 0, 0, 0], [120, 0.7, 0.05, 0.05, 0], [200, 0.85, 0.15, 0.1, 0.25],
    [350, 0.95, 0.4, 0.3, 0.6], [700, 1, 0.95, 0.9, 0.85], [3071, 1, 1, 1, 0.9]] },
  'mr-default': { label: 'MR default', units: 'fraction', points: [
    [0, 0, 0, 0, 0], [0.12, 0.5, 0.4, 0.35, 0], [0.3, 0.8, 0.7, 0.6, 0.08],
    [0.6, 0.95, 0.9, 0.85, 0.3], [1, 1, 1, 1, 0.7]] },
};

/** The preset a volume opens with. */
export function defaultPreset(header) {
  return header.modality === 'CT' && header.units === 'HU' ? 'ct-bone' : 'mr-default';
}

/**
 * Lookup table of a preset: {lut: Uint8Array(256*4), lo, hi} over real-world values.
 * @param {string} name preset key
 * @param {number[]} realRange [min, max] real-world values of the volume
 */
export function buildLut(name, realRange) {
  const p = PRESETS[name] || PRESETS['mr-default'];
  let pts = p.points;
  let lo, hi;
  if (p.units === 'fraction') {
    const [a, b] = realRange;
    const span = Math.max(b - a, 1e-6);
    pts = pts.map(([x, ...rest]) => [a + x * span, ...rest]);
    lo = a; hi = b;
  } else {
    lo = pts[0][0]; hi = pts[pts.length - 1][0];
  }
  const lut = new Uint8Array(256 * 4);
  for (let i = 0; i < 256; i++) {
    const x = lo + (hi - lo) * (i / 255);
    let j = 0;
    while (j < pts.length - 2 && x > pts[j + 1][0]) j++;
    const [x0, ...c0] = pts[j], [x1, ...c1] = pts[j + 1];
    const f = Math.min(1, Math.max(0, (x - x0) / Math.max(x1 - x0, 1e-9)));
    for (let c = 0; c < 4; c++) lut[i * 4 + c] = Math.round(255 * (c0[c] + (c1[c] - c0[c]) * f));
  }
  return { lut, lo, hi };
}
