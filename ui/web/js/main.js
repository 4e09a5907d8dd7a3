// main.js -- entry point: connect to Python, build the browser and viewer, wire actions.

import * as api from './api.js';
import { store } from './state.js';
import { Browser } from './browser.js';
import { Viewer } from './viewer.js';
import { confirmBox, runCopyMedia, runImport, withPath } from './actions.js';
import { SeriesStrip } from './browse_strip.js';
import { renderHelp, shortcutFor } from './shortcuts.js';
import { dropAction, dropActionForPaths } from './dropfiles.js';
import { openShare } from './share.js';
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

/** The series row the share dialog starts from, with `scope`: a table row is its series; a
 * tree node ({level, data, children}) gives its first series and its level. */
function shareTarget(x) {
  if (!x) return null;
  if (!x.level) return x.series_id ? x : null;
  let s = x;
  while (s.level !== 'series' && s.children && s.children.length) s = s.children[0];
  return s.level === 'series' ? { ...s.data, scope: x.level } : null;
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
  // a Compare viewport that failed is empty already (the others stay): the banner says why
  if (viewer) viewer.compare.onFail = (err) => showError(err, true);
  if (viewer) viewer.compare.onShow = () => store.set({ view: 'viewer' });

  const strip = new SeriesStrip(browser);
  // the strip is for reading 2D slices: MPR and 3D layouts keep the whole height
  const twoD = () => $('layout').value === '1' && $('single').value !== '3d';
  const showStrip = () => {
    $('series-strip').hidden = store.get('view') !== 'viewer' || $('series-strip').dataset.count === '0' || !strip.sid || !twoD();
  };
  for (const id of ['layout', 'single']) $(id).addEventListener('change', showStrip);
  store.on(['view'], (s) => {
    $('browser').hidden = s.view !== 'archive';
    $('viewer').hidden = s.view !== 'viewer';
    showStrip();
    if (s.view === 'archive') { if (viewer) viewer.stopCine(); browser.focusTable(); } else $('stage').focus();
  });
  store.on(['media'], (s) => {
    $('media-banner').hidden = !s.media;
    document.body.dataset.media = s.media ? '1' : '0';
    $('btn-import').disabled = s.media;
    $('btn-import').setAttribute('aria-disabled', s.media ? 'true' : 'false');
    $('btn-import').title = s.media ? 'Close the CD/USB to import into the archive (or copy the disc into it)' : '';
    $('btn-copy-media').hidden = !s.media;
    $('btn-share').disabled = s.media;
    browser.readonly = s.media;
  });
  store.on(['status'], (s) => { $('status').textContent = s.status; });

  const applyHello = (h) => {
    store.set({ media: !!h.media, status: h.media ? 'removable media (not saved)' : (h.archive_notice || (h.readonly ? 'archive (read-only)' : 'archive')) });
  };
  applyHello(hello);

  const openVolume = async (data, t0, sid = null) => {
    if (strip.sid !== sid) { strip.show(sid); showStrip(); }
    if (!viewer) return;
    const tReply = performance.now();
    viewer.compare.setOn(false);        // the main viewer shows it
    store.set({ view: 'viewer' });
    await viewer.open(data.volume_id, t0, data.header || null, tReply);
  };

  browser.addEventListener('open', async (e) => {
    // Compare on: the series goes to the active viewport, the others stay
    if (viewer && viewer.compare.on) { viewer.openInViewport(e.detail.series_id); return; }
    const t0 = performance.now();
    // the page lays the viewer out while the server plans the series; what
    // was on screen goes now (its patient must not label the new series)
    // the strip comes with the viewer, so the stage has its final size before the first frame
    if (viewer) { viewer.clear(true); strip.show(e.detail.series_id); store.set({ view: 'viewer' }); showStrip(); }
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
    try { await openVolume(data, t0, e.detail.series_id); } catch (err) { openFailed(err); }
  });
  browser.addEventListener('remove', async (e) => {
    if (store.get('media')) return;
    const { level, data, text } = e.detail;
    if (!(await confirmBox(text))) { browser.focusTable(); return; }
    const [name, args] = {
      series: ['remove_series', { series_id: data.series_id }],
      study: ['remove_study', { study_key: data.study_key }],
      patient: ['remove_patient', { patient_key: data.patient_key }],
    }[level];
    try { await api.call(name, args); } catch (err) { showError(err); }
    await browser.refresh();
    browser.focusTable();
  });
  browser.addEventListener('error', (e) => showError(e.detail));
  // Export / Share…: the toolbar button acts on the selected row (a series of the table, or a
  // patient / study / series node of the tree); a menu of the browser may dispatch a 'share'
  // event with the row or node instead
  browser.addEventListener('share', (e) => { const r = shareTarget(e.detail); if (r) openShare(r, showError); });
  $('btn-share').addEventListener('click', () => {
    const r = shareTarget(browser.cur || (browser.rows ? browser.rows[browser.selected] : null));
    if (r) openShare(r, showError); else showError(new Error('Select a series in the archive first.'));
  });
  // the Network view: "Send to…" sends the series selected in the archive tree (or its study)
  const network = new Network(() => shareTarget(browser.cur || (browser.rows ? browser.rows[browser.selected] : null)),
    () => browser.refresh());
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
      if (data && viewer) viewer.seriesId = null;   // not an archived series (Compare, stack picker)
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
  $('btn-copy-media').addEventListener('click', async () => {
    try {
      const job = await runCopyMedia(() => {});
      if (!job) return;
      // the copy is in the archive now: leave the disc, show the archive with it
      applyHello(await api.call('close_media'));
      if (viewer) viewer.close();
      store.set({ view: 'archive' });
      await browser.refresh();
    } catch (err) { showError(err); }
  });
  $('btn-media-close').addEventListener('click', async () => {
    try { applyHello(await api.call('close_media')); } catch (err) { showError(err); }
    if (viewer) viewer.close();
    store.set({ view: 'archive' });
    browser.refresh();
  });
  const help = $('help-dialog');
  const toggleHelp = () => {
    if (help.open) { help.close(); return; }
    if (document.querySelector('dialog[open]')) return;
    renderHelp($('help-body'));
    help.showModal();
    $('help-close').focus();
  };
  $('btn-help').addEventListener('click', toggleHelp);
  $('help-close').addEventListener('click', () => help.close());
  const typing = () => ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName);
  const globalKeys = {
    help: (e) => { if (!typing() || help.open) { e.preventDefault(); toggleHelp(); } },
    escape: () => {
      if (!$('row-menu').hidden) { browser.closeMenu(true); return; }
      if (store.get('view') === 'viewer' && !document.querySelector('dialog[open]')) store.set({ view: 'archive' });
    },
    search: (e) => {
      if (store.get('view') === 'archive' && !typing() && !document.querySelector('dialog[open]')) {
        e.preventDefault(); browser.form.elements.name.focus();
      }
    },
  };
  document.addEventListener('keydown', (e) => {
    const sc = shortcutFor('global', e.key) || (e.key === '/' ? shortcutFor('archive', e.key) : null);
    if (sc && globalKeys[sc.action]) globalKeys[sc.action](e);
  });
  // drag-and-drop of a folder or files onto the window
  let dragDepth = 0;
  const dragging = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  window.addEventListener('dragenter', (e) => { if (dragging(e)) { dragDepth += 1; $('drop-zone').hidden = false; } });
  window.addEventListener('dragleave', () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) $('drop-zone').hidden = true; });
  window.addEventListener('dragover', (e) => { if (dragging(e)) e.preventDefault(); });
  const doDrop = async (what) => {
    document.body.dataset.dropped = what.action;
    try {
      if (what.action === 'import') await runImport(() => browser.refresh(), what.path);
      else if (what.action === 'open') {
        const t0 = performance.now();
        try { await openVolume(await api.call('open_other', { path: what.path }), t0); } catch (err) { openFailed(err); }
      } else if (what.message) showError(new Error(what.message));
    } catch (err) { showError(err); }
  };
  window.addEventListener('drop', async (e) => {
    e.preventDefault();
    dragDepth = 0; $('drop-zone').hidden = true;
    if (document.querySelector('dialog[open]')) return;
    const what = dropAction(e.dataTransfer);
    // the desktop app hands the paths over itself (pocketpacsDropped below)
    if (what.action === 'none' && hello.mode === 'app') return;
    await doDrop(what);
  });
  // called by the desktop app (ui/app.py) with the dropped paths
  window.pocketpacsDropped = (items) => {
    dragDepth = 0; $('drop-zone').hidden = true;
    if (document.querySelector('dialog[open]')) return;
    doDrop(dropActionForPaths(items));
  };
  for (const b of document.querySelectorAll('#empty-archive button[data-do]')) {
    b.addEventListener('click', () => $(b.dataset.do === 'import' ? 'btn-import' : 'btn-other').click());
  }
  await browser.refresh();
  document.body.dataset.ready = '1';
}

main().catch((e) => { showError(e); document.body.dataset.ready = 'error'; });
