// actions.js -- Import, Open Other, Load from CD/USB: dialogs, progress and reports.

import * as api from './api.js';
import { visible } from './text.js';

const $ = (id) => document.getElementById(id);

/** Ask for a path in a modal (serve mode: the browser cannot show native pickers). */
export function askPath(prompt) {
  return new Promise((resolve) => {
    const dlg = $('path-dialog');
    $('path-prompt').textContent = prompt;
    const input = $('path-input');
    input.value = '';
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok' && input.value.trim() ? input.value.trim() : null), { once: true });
    dlg.showModal();
    input.focus();
  });
}

/** Ask for confirmation; resolves true on OK. */
export function confirmBox(text) {
  return new Promise((resolve) => {
    const dlg = $('confirm-dialog');
    $('confirm-text').textContent = text;
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
  });
}

/**
 * Run `name` with a native dialog (desktop) or a typed path (browser).
 * Returns the command's data, or null when the user cancelled.
 */
export async function withPath(name, prompt, extra = {}) {
  if (api.transport() === 'bridge') {
    return api.call(name, extra);            // Python shows the native picker
  }
  const path = await askPath(prompt);
  if (!path) return null;
  return api.call(name, { ...extra, path });
}

function fmtTime(s) {
  if (!isFinite(s) || s < 0) return '–';
  if (s < 60) return `${Math.ceil(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
}

/**
 * Start an import and follow it: progress bar with files/s and ETA, cancel,
 * `onSeries` called whenever new series appear, then the report.  With
 * `path` (a folder dropped onto the desktop window) no folder is asked for.
 */
export async function runImport(onSeries, path = null) {
  const job = path ? await api.call('import_start', { path })
    : await withPath('import_start', 'Folder to import (DICOM files, searched recursively):');
  if (!job) return null;
  return followJob(job, onSeries);
}

/** Follow an import job (or a copy job, which ends with an import) in the import dialog. */
export async function followJob(job, onSeries, title = 'Import') {
  const dlg = $('import-dialog');
  const bar = $('import-bar'), text = $('import-text'), report = $('import-report');
  dlg.querySelector('h2').textContent = title;
  delete dlg.dataset.done;
  report.replaceChildren();
  $('import-cancel').hidden = false; $('import-close').hidden = true;
  $('import-cancel').onclick = () => api.call('import_cancel', { job_id: job.job_id }).catch(() => {});
  $('import-close').onclick = () => dlg.close();
  dlg.showModal();
  let seen = 0;
  for (;;) {
    let st;
    try { st = await api.call('import_status', { job_id: job.job_id }); } catch (e) { text.textContent = e.message; break; }
    bar.max = Math.max(1, st.files_total || 1);
    bar.value = st.files_done;
    text.textContent = `${st.phase}: ${st.files_done} / ${st.files_total || '?'} files · ${st.rate.toFixed(0)} files/s · ETA ${fmtTime(st.eta_s)} · ${st.series_added} new series`;
    dlg.dataset.filesDone = String(st.files_done);
    dlg.dataset.seriesAdded = String(st.series_added);
    if (st.series_added !== seen) { seen = st.series_added; onSeries(); }
    if (st.done) { showReport(report, st); break; }
    await new Promise((r) => setTimeout(r, 250));
  }
  $('import-cancel').hidden = true; $('import-close').hidden = false;
  dlg.dataset.done = '1';
  onSeries();
  return job;
}

function showReport(el, st) {
  if (st.copy) {
    const c = st.copy, q = document.createElement('p');
    q.textContent = `Copied ${c.copied} of ${c.files} files from the disc`
      + (c.existing ? `; ${c.existing} already in the folder were left as they were` : '')
      + (c.failed ? `; ${c.failed} could not be copied` : '') + '.';
    el.appendChild(q);
    if (!st.report && !st.error) return;
  }
  const r = st.report || {};
  const p = document.createElement('p');
  // every file looked at is in exactly one of these counts: they add up to `seen`
  const parts = [`added ${r.added ?? 0}`, `already present ${r.unchanged ?? 0}`];
  if (r.relinked) parts.push(`moved ${r.relinked}`);
  if (r.duplicates) parts.push(`duplicate copies ${r.duplicates}`);
  if (r.conflicts) parts.push(`in conflict ${r.conflicts}`);
  parts.push(`skipped ${r.skipped ?? 0}`);
  p.textContent = `${st.cancelled ? 'Cancelled. ' : ''}${st.error ? st.error.message + ' ' : ''}`
    + `${r.seen ?? 0} files: ${parts.join(', ')}; ${st.series_added} new series.`;
  el.appendChild(p);
  const reasons = r.reasons || {};
  if (Object.keys(reasons).length) {
    const ul = document.createElement('ul');
    for (const [why, n] of Object.entries(reasons)) {
      const li = document.createElement('li');
      li.textContent = `${n} × ${why}`;
      ul.appendChild(li);
    }
    el.appendChild(ul);
  }
  if ((r.skipped_files || []).length) {
    const det = document.createElement('details');
    const sum = document.createElement('summary');
    sum.textContent = 'Skipped files';
    det.appendChild(sum);
    const ul = document.createElement('ul');
    for (const f of r.skipped_files) {
      const li = document.createElement('li');
      li.textContent = `${visible(f.name)}: ${f.reason}`;
      ul.appendChild(li);
    }
    det.appendChild(ul);
    el.appendChild(det);
  }
}

/**
 * "Copy this disc into the archive…": ask for a folder, copy the medium there
 * and import it, in the import dialog.  Returns the job, or null when cancelled.
 */
export async function runCopyMedia(onSeries) {
  const job = await withPath('copy_media', 'Folder to copy the disc into (made if missing; nothing in it is overwritten), then imported:');
  if (!job) return null;
  return followJob(job, onSeries, 'Copy the disc into the archive');
}
