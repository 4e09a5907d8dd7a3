// gl/limits.js -- GPU limits the viewer plans with, and the test-only override.
//
// WebGL does not report GPU memory, so the viewer keeps volume textures
// within a byte budget and also reacts to OUT_OF_MEMORY.  Tests can lower
// the limits before the page's scripts run (Playwright add_init_script):
//   window.POCKETPACS_TEST_LIMITS = { max3d: 32, budget: 1 << 20 }

/** Bytes a render texture may take by default. */
export const RENDER_BUDGET = 512 * 1024 * 1024;

/** {max3d, budget}: MAX_3D_TEXTURE_SIZE and the byte budget, with any test override applied. */
export function limits(gl) {
  const o = (typeof window !== 'undefined' && window.POCKETPACS_TEST_LIMITS) || {};
  const real = gl.getParameter(gl.MAX_3D_TEXTURE_SIZE);
  const max3d = Number.isFinite(o.max3d) ? Math.min(real, o.max3d) : real;
  const budget = Number.isFinite(o.budget) ? o.budget : RENDER_BUDGET;
  return { max3d, budget, reported: real };
}
