// gl/limits.js -- GPU limits the viewer plans with, and the test-only override.
//
// WebGL does not report GPU memory, so the viewer keeps the series texture
// (gl/textures.js; the 2D, MPR and 3D views share it) within a byte budget
// and also reacts to OUT_OF_MEMORY.  Tests can lower the limits before the
// page's scripts run (Playwright add_init_script):
//   window.POCKETPACS_TEST_LIMITS = { max3d: 32, budget: 1 << 20 }

/** Bytes the series texture may take by default (beyond it: one layer, and a reduced copy for MPR/3D). */
export const SERIES_BUDGET = 1 << 30;

/** {max3d, budget}: MAX_3D_TEXTURE_SIZE and the byte budget, with any test override applied. */
export function limits(gl) {
  const o = (typeof window !== 'undefined' && window.POCKETPACS_TEST_LIMITS) || {};
  const real = gl.getParameter(gl.MAX_3D_TEXTURE_SIZE);
  const max3d = Number.isFinite(o.max3d) ? Math.min(real, o.max3d) : real;
  const budget = Number.isFinite(o.budget) ? o.budget : SERIES_BUDGET;
  return { max3d, budget, reported: real };
}
