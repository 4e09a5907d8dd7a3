// main.js -- entry point: connect to Python, build the browser and viewer, wire actions.

import * as api from './api.js';
import { store } from './state.js';
import { Browser } from './browser.js';
import { Viewer } from './viewer.js';
import { confirmBox, runImport, withPath } from './actions.js';
import { Network } from './network.js';

const $ = (id) => document.getElementById(id);

/**
 * Show an error in the banner (or hide it: e null).  A sticky one (a failed
 * open: the viewport was cleared because of it) stays until dismissed; others
 * go after 8 s unless a sticky one replaced them.
 */
function showError(e, sticky = false) {
  const b = $('error-banner'), t = $('error-text');
  const msg = e ? e.message || String(e) : '';
  t.textContent = msg;
  b.hidden = !e;
  b.dataset.sticky = sticky ? '1' : '0';
  if (e && !sticky) setTimeout(() => { if (t.textContent === msg && b.dataset.sticky !== '1') b.hidden = true; }, 8000);
}

async function main() {
  await api.connect();
  const hello = await api.call('hello');
  document.body.dataset.transport = api.transport();
  const browser = new Browser();
  let viewer = null;
  try {
    viewer = new Viewer();
    // tests and benchmarks only: their init script sets POCKETPACS_TEST_LIMITS before the page loads
    if (window.POCKETPACS_TEST_LIMITS) window.POCKETPACS_TEST_HOOK = { viewer };
  } catch (e) {
    showError(new Error('WebGL2 is not available: the viewer cannot draw images.'));
  }

  $('error-dismiss').addEventListener('click', () => showError(null));

  /** An open failed: nothing of any series stays on screen; the message stays until dismissed. */
  const openFailed = (err) => {
    if (viewer) viewer.clear();
    store.set({ view: 'archive' });
    showError(err, true);
  };
  if (viewer) viewer.onFail = openFailed;

  store.on(['view'], (s) => {
    $('browser').hidden = s.view !== 'archive';
    $('viewer').hidden = s.view !== 'viewer';
    if (s.view === 'archive') { if (viewer) viewer.stopCine(); browser.focusTable(); } else $('stage').focus();
  });
  store.on(['media'], (s) => {
    $('media-banner').hidden = !s.media;
    document.body.dataset.media = s.media ? '1' : '0';
    $('btn-import').disabled = s.media;
    browser.readonly = s.media;
  });
  store.on(['status'], (s) => { $('status').textContent = s.status; });

  const applyHello = (h) => {
    store.set({ media: !!h.media, status: h.media ? 'removable media (not saved)' : (h.archive_notice || (h.readonly ? 'archive (read-only)' : 'archive')) });
  };
  applyHello(hello);

  const openVolume = async (data, t0) => {
    if (!viewer) return;
    const tReply = performance.now();
    store.set({ view: 'viewer' });
    await viewer.open(data.volume_id, t0, data.header || null, tReply);
  };

  browser.addEventListener('open', async (e) => {
    const t0 = performance.now();
    // the page lays the viewer out while the server plans the series; what
    // was on screen goes now (its patient must not label the new series)
    if (viewer) { viewer.clear(); store.set({ view: 'viewer' }); }
    const seq = viewer ? viewer.seq : 0;
    let data;
    try {
      data = await api.call('open_series', { series_id: e.detail.series_id });
      if (viewer) viewer.seriesId = e.detail.series_id;   // the stack picker reopens it
    } catch (err) {
      if (err.code !== 'superseded' && !(viewer && viewer.seq !== seq)) openFailed(err);
      return;
    }
    if (viewer && viewer.seq !== seq) return;            // another open started meanwhile
    try { await openVolume(data, t0); } catch (err) { openFailed(err); }
  });
  browser.addEventListener('remove', async (e) => {
    if (store.get('media')) return;
    const r = e.detail;
    if (!(await confirmBox(`Remove this series (${r.images} images) from the archive? The files on disk are not deleted.`))) return;
    try { await api.call('remove_series', { series_id: r.series_id }); } catch (err) { showError(err); }
    browser.refresh();
  });
  browser.addEventListener('error', (e) => showError(e.detail));
  // the Network view: "Send to…" sends the series selected in the archive list
  const network = new Network(() => browser.rows[browser.selected] || null, () => browser.refresh());
  network.addEventListener('error', (e) => showError(e.detail));
  $('btn-network').addEventListener('click', () => store.set({ view: 'network' }));

  $('btn-archive').addEventListener('click', () => store.set({ view: 'archive' }));
  $('btn-import').addEventListener('click', async () => {
    try { await runImport(() => browser.refresh()); } catch (err) { showError(err); }
  });
  $('btn-other').addEventListener('click', async () => {
    const t0 = performance.now();
    try {
      const data = await withPath('open_other', 'File to open (NIfTI, JPEG 2000, PNG…):');
      if (data) await openVolume(data, t0);
    } catch (err) { openFailed(err); }
  });
  $('btn-media').addEventListener('click', async () => {
    try {
      const data = await withPath('load_media', 'Folder or DICOMDIR of the CD / USB drive:');
      if (!data) return;
      applyHello(data);
      store.set({ view: 'archive' });
      browser.refresh();
    } catch (err) { showError(err); }
  });
  $('btn-media-close').addEventListener('click', async () => {
    try { applyHello(await api.call('close_media')); } catch (err) { showError(err); }
    if (viewer) viewer.close();
    store.set({ view: 'archive' });
    browser.refresh();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && store.get('view') === 'viewer' && !document.querySelector('dialog[open]')) {
      store.set({ view: 'archive' });
    }
    if (e.key === '/' && store.get('view') === 'archive' && document.activeElement.tagName !== 'INPUT') {
      e.preventDefault(); browser.form.elements.name.focus();
    }
  });
  await browser.refresh();
  document.body.dataset.ready = '1';
}

main().catch((e) => { showError(e); document.body.dataset.ready = 'error'; });
