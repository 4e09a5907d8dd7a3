// PocketPACS portable viewer: the series of a CD/USB medium in a browser, from file://,
// with no server and no network.  Browsers refuse fetch() of file:// URLs, so the data
// come as <script> files next to this page: index.js calls PPV.index({series: [...]})
// (one header per series: shape, dtype, LPS affine, spacing, rescale, windows) and
// series-N.js calls PPV.data(N, base64 of the little-endian values).  The slice is drawn
// on a 2D canvas at its own resolution with the DICOM linear window (PS3.3 C.11.2.1.2),
// the formula of PocketPACS's viewer.  Text is set with textContent only.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const TYPES = { int16: Int16Array, uint16: Uint16Array, float32: Float32Array };
  const state = { series: [], cur: null, z: 0, center: 0, width: 1, values: {}, waiting: {} };

  function load(src) {
    const s = document.createElement('script');
    s.src = src;
    s.onerror = () => { $('status').textContent = `${src} could not be loaded`; };
    document.head.appendChild(s);
  }

  function fromBase64(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  const PPV = {
    /** index.js: the series of the medium. */
    index(doc) {
      state.series = doc.series || [];
      const ul = $('series-list');
      ul.replaceChildren(...state.series.map((h, i) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.dataset.n = String(i + 1);
        b.textContent = `${h.label} (${h.shape[2]}×${h.shape[1]}×${h.shape[0]})`;
        b.addEventListener('click', () => open(i + 1));
        li.appendChild(b);
        return li;
      }));
      document.body.dataset.series = String(state.series.length);
      $('status').textContent = state.series.length ? 'Pick a series.' : 'No series on this medium.';
    },
    /** series-N.js: the values of series N. */
    data(n, b64) {
      const h = state.series[n - 1];
      const T = TYPES[h.dtype];
      state.values[n] = new T(fromBase64(b64));
      const cb = state.waiting[n];
      delete state.waiting[n];
      if (cb) cb();
    },
  };
  window.PPV = PPV;

  function open(n) {
    const h = state.series[n - 1];
    for (const b of document.querySelectorAll('#series-list button')) b.setAttribute('aria-pressed', String(b.dataset.n === String(n)));
    const show = () => {
      state.cur = n;
      const [nz] = h.shape;
      state.z = Math.floor(nz / 2);
      state.center = h.windows[0].center; state.width = h.windows[0].width;
      const sel = $('window');
      sel.replaceChildren(...h.windows.map((w, i) => {
        const o = document.createElement('option');
        o.value = String(i); o.textContent = `${w.name} (${w.center}/${w.width})`;
        return o;
      }));
      const zs = $('z');
      zs.max = String(nz - 1); zs.value = String(state.z);
      draw();
    };
    if (state.values[n]) { show(); return; }
    $('status').textContent = 'Loading…';
    state.waiting[n] = show;
    load(h.script);
  }

  function draw() {
    const n = state.cur;
    if (!n) return;
    const h = state.series[n - 1];
    const [nz, ny, nx] = h.shape;
    const v = state.values[n];
    const cv = $('slice');
    cv.width = nx; cv.height = ny;
    const ctx = cv.getContext('2d');
    const img = ctx.createImageData(nx, ny);
    const slope = h.rescale.slope, icpt = h.rescale.intercept;
    const lo = state.center - 0.5, den = Math.max(state.width - 1, 1e-6);
    const off = state.z * ny * nx;
    for (let i = 0; i < nx * ny; i++) {
      let y = ((v[off + i] * slope + icpt) - lo) / den + 0.5;
      y = y < 0 ? 0 : (y > 1 ? 1 : y);
      let g = Math.round(y * 255);
      if (h.invert) g = 255 - g;
      const k = 4 * i;
      img.data[k] = g; img.data[k + 1] = g; img.data[k + 2] = g; img.data[k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    fit();
    $('status').textContent = `slice ${state.z + 1} / ${nz} · window ${state.center.toFixed(0)}/${state.width.toFixed(0)}`;
    cv.dataset.drawn = `${n}:${state.z}:${state.center}:${state.width}`;
  }

  function fit() {
    const n = state.cur;
    if (!n) return;
    const h = state.series[n - 1];
    const [, ny, nx] = h.shape;
    const w = nx * h.spacing[0], hh = ny * h.spacing[1];
    const st = $('stage');
    const k = Math.min(st.clientWidth / w, st.clientHeight / hh) || 1;
    const cv = $('slice');
    cv.style.width = `${Math.floor(w * k)}px`; cv.style.height = `${Math.floor(hh * k)}px`;
  }

  function step(d) {
    const n = state.cur;
    if (!n) return;
    const nz = state.series[n - 1].shape[0];
    state.z = Math.max(0, Math.min(nz - 1, state.z + d));
    $('z').value = String(state.z);
    draw();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('z').addEventListener('input', (e) => { state.z = +e.target.value; draw(); });
    $('window').addEventListener('change', (e) => {
      const w = state.series[state.cur - 1].windows[+e.target.value];
      state.center = w.center; state.width = w.width; draw();
    });
    const stage = $('stage');
    stage.addEventListener('wheel', (e) => { e.preventDefault(); step(e.deltaY > 0 ? 1 : -1); }, { passive: false });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowUp' || e.key === 'PageUp') step(-1);
      if (e.key === 'ArrowDown' || e.key === 'PageDown') step(1);
    });
    let drag = null;   // right-drag: window (horizontal: width, vertical: level)
    stage.addEventListener('contextmenu', (e) => e.preventDefault());
    stage.addEventListener('pointerdown', (e) => { if (e.button === 2) drag = { x: e.clientX, y: e.clientY, c: state.center, w: state.width }; });
    window.addEventListener('pointerup', () => { drag = null; });
    window.addEventListener('pointermove', (e) => {
      if (!drag) return;
      state.width = Math.max(1, drag.w + (e.clientX - drag.x) * 2);
      state.center = drag.c + (e.clientY - drag.y) * 2;
      draw();
    });
    window.addEventListener('resize', fit);
    load('index.js');
  });
}());
