// orientation.js -- patient-orientation letters from an LPS affine (no DOM).
// Letters are shown only for volumes calibrated in the patient (hasPatientAxes):
// a detector, ultrasound or uncalibrated image has no patient directions.

const AXES = [['L', 'R'], ['P', 'A'], ['S', 'I']];   // +x, -x / +y, -y / +z, -z in LPS

/**
 * Letters for a direction in LPS, strongest component first (e.g. "L", "LP").
 * Components below 30% of the strongest are left out.
 * @param {number[]} d direction (x, y, z) in LPS
 */
export function letters(d) {
  const mags = d.map(Math.abs);
  const top = Math.max(...mags);
  if (!(top > 0)) return '';
  return [0, 1, 2]
    .filter((i) => mags[i] >= 0.3 * top)
    .sort((a, b) => mags[b] - mags[a])
    .map((i) => AXES[i][d[i] > 0 ? 0 : 1])
    .join('');
}

/**
 * Whether a volume's axes are patient directions (Pixel Spacing or a NIfTI
 * affine: header.calibration.kind "patient"); otherwise no letters are shown.
 * @param {object} header volume header
 */
export function hasPatientAxes(header) {
  return !!(header && header.calibration && header.calibration.kind === 'patient');
}

/** Edge labels with no letters (images without patient directions). */
export const NO_LABELS = Object.freeze({ right: '', left: '', bottom: '', top: '' });

/**
 * Labels for the four screen edges of an in-plane view where screen-right is
 * increasing column and screen-down is increasing row.
 * @param {number[][]} affine 4x4, (column, row, slice, 1) -> LPS mm
 */
export function edgeLabels(affine) {
  const col = [affine[0][0], affine[1][0], affine[2][0]];
  const row = [affine[0][1], affine[1][1], affine[2][1]];
  const neg = (v) => v.map((x) => -x);
  return { right: letters(col), left: letters(neg(col)), bottom: letters(row), top: letters(neg(row)) };
}

/** Position (mm) of slice z along the slice normal, and its LPS centre. */
export function slicePosition(affine, z, nx, ny) {
  const p = [0, 1, 2].map((r) => affine[r][0] * (nx - 1) / 2 + affine[r][1] * (ny - 1) / 2 + affine[r][2] * z + affine[r][3]);
  const col = [affine[0][0], affine[1][0], affine[2][0]];
  const row = [affine[0][1], affine[1][1], affine[2][1]];
  const n = [col[1] * row[2] - col[2] * row[1], col[2] * row[0] - col[0] * row[2], col[0] * row[1] - col[1] * row[0]];
  const len = Math.hypot(...n) || 1;
  return { along: (p[0] * n[0] + p[1] * n[1] + p[2] * n[2]) / len, lps: p };
}
