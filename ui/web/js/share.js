// share.js -- the "Export / Share…" dialog: what (series, study, patient), how (plain copy
// or de-identified with options), medium (DICOMDIR, zip), a preview of the changes on one
// sample image, the destination folder, progress (with Cancel: the export stops between two files
// and removes what it wrote), and the warnings at the end.  Named profiles of the archive's
// share-profiles.json are offered in a list; choosing one selects de-identification.  Options
// that exclude each other (dates kept as they are / shifted) uncheck each other.
// Every text from Python is set with textContent.

import * as api from './api.js';
import { withPath } from './actions.js';
import { visible } from './text.js';

const $ = (id) => document.getElementById(id);

function choices() {
  const dlg = $('share-dialog');
  const scope = dlg.querySelector('input[name=share-scope]:checked').value;
  const deidentify = dlg.querySelector('input[name=share-mode]:checked').value === 'deidentify';
  const options = deidentify
    ? [...$('share-options').querySelectorAll('input[type=checkbox][value]:checked')].map((el) => el.value) : [];
  const profile = deidentify && $('share-profile').value ? { profile: $('share-profile').value } : {};
  return { scope, deidentify, options, ...profile, allow_burned_in: deidentify && $('share-burned').checked,
    dicomdir: $('share-dicomdir').checked, viewer: $('share-dicomdir').checked && $('share-viewer').checked,
    zip: $('share-zip').checked };
}

/** Options that exclude each other (pocketpacs.share.profile_table.EXCLUSIVE): checking one unchecks the other. */
const EXCLUSIVE = [['full-dates', 'modified-dates']];

function exclusive(ev) {
  const el = ev.target;
  if (!el.checked) return;
  for (const pair of EXCLUSIVE) {
    if (!pair.includes(el.value)) continue;
    for (const other of pair) {
      const box = other === el.value ? null : $('share-options').querySelector(`input[value="${other}"]`);
      if (box) box.checked = false;
    }
  }
}

function syncOptions() {
  const on = choices().deidentify;
  const box = $('share-options');
  if (!on) $('share-profile').value = '';
  box.setAttribute('aria-disabled', on ? 'false' : 'true');
  for (const el of box.querySelectorAll('input')) el.disabled = !on;
  $('share-preview-btn').disabled = !on;
  $('share-viewer').disabled = !$('share-dicomdir').checked;
  if (!on) $('share-preview-wrap').hidden = true;
}

function list(el, items) {
  el.replaceChildren(...items.map((t) => { const li = document.createElement('li'); li.textContent = visible(t); return li; }));
}

async function preview(row) {
  const c = choices();
  const dlg = $('share-dialog');
  delete dlg.dataset.previewed;
  $('share-text').textContent = 'Preparing the preview…';
  const res = await api.call('share_preview', { series_id: row.series_id, scope: c.scope, options: c.options,
    allow_burned_in: c.allow_burned_in, ...(c.profile ? { profile: c.profile } : {}) });
  $('share-preview-wrap').hidden = false;
  list($('share-preview'), res.changes.map((ch) => ch.text));
  $('share-preview-count').textContent = `(${res.changes.length + res.more} changes${res.more ? `, first ${res.changes.length} shown` : ''}; `
    + `${res.instances} images to export)`;
  $('share-text').textContent = res.refused ? `This image would not be exported: ${res.refused}` : '';
  list($('share-warnings'), res.warnings || []);
  dlg.dataset.previewed = String(res.changes.length);
}

async function run(row) {
  const c = choices();
  const dlg = $('share-dialog');
  const job = await withPath('share_start', 'Folder to export into (a new folder is made inside it when it is not empty):',
    { series_id: row.series_id, ...c });
  if (!job) return;
  $('share-go').disabled = true; $('share-preview-btn').disabled = true;
  const bar = $('share-bar'), text = $('share-text');
  const cancel = $('share-cancel');
  let cancelling = false;
  cancel.hidden = false; cancel.disabled = false;
  cancel.onclick = async () => {
    cancelling = true; cancel.disabled = true;
    text.textContent = 'Cancelling: the files written so far are being removed…';
    try { await api.call('share_cancel', { job_id: job.job_id }); } catch (e) { text.textContent = e.message; }
  };
  bar.hidden = false;
  list($('share-warnings'), []);
  for (;;) {
    let st;
    try { st = await api.call('share_status', { job_id: job.job_id }); } catch (e) { text.textContent = e.message; break; }
    bar.max = Math.max(1, st.files_total || 1);
    bar.value = st.files_done;
    if (!cancelling) text.textContent = `Exporting: ${st.files_done} / ${st.files_total || '?'} files · ${st.rate.toFixed(0)} files/s`;
    if (st.done) {
      if (st.cancelled) {
        text.textContent = 'Export cancelled: the files it had written were removed.';
        dlg.dataset.cancelled = '1';
      } else if (st.error) {
        text.textContent = `Not exported: ${st.error.message}`;
      } else {
        const r = st.result;
        text.textContent = `${r.instances} images of ${r.series} series in ${r.studies} studies exported to “${visible(r.folder)}”`
          + (r.refused ? `; ${r.refused} not exported (see below)` : '') + '.';
        list($('share-warnings'), [...r.warnings, ...(r.more_warnings ? [`… and ${r.more_warnings} more`] : []), ...r.notes]);
        dlg.dataset.instances = String(r.instances);
        dlg.dataset.warnings = String(r.warnings.length);
      }
      break;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  cancel.hidden = true; cancel.onclick = null;
  dlg.dataset.done = '1';
  $('share-go').disabled = false;
  syncOptions();
}

/** Fill the profile list from the archive's share-profiles.json (names and descriptions as text). */
async function loadProfiles() {
  const sel = $('share-profile');
  sel.replaceChildren(sel.options[0]);
  sel.value = '';
  let res;
  try { res = await api.call('share_profiles', {}); } catch (e) { return; }
  for (const p of res.profiles) {
    const opt = document.createElement('option');
    opt.value = p.name;
    opt.textContent = visible(p.description ? `${p.name} — ${p.description}` : p.name);
    opt.dataset.options = JSON.stringify(p.options);
    sel.append(opt);
  }
  // (the dialog's CSS makes its labels blocks, which `hidden` alone would not override)
  $('share-profile-wrap').style.display = res.profiles.length || res.error ? '' : 'none';
  if (res.error) $('share-text').textContent = `Sharing profiles not read: ${res.error}`;
}

function chooseProfile() {
  const opt = $('share-profile').selectedOptions[0];
  if (!opt || !opt.value) return;
  $('share-dialog').querySelector('input[name=share-mode][value=deidentify]').checked = true;
  const wanted = new Set(JSON.parse(opt.dataset.options || '[]'));
  for (const el of $('share-options').querySelectorAll('input[type=checkbox][value]')) el.checked = wanted.has(el.value);
  syncOptions();
}

/**
 * Open the share dialog for a browser row (its series; the dialog offers its study and patient).
 * @param {object} row  a row of the archive browser ({series_id, patient_name, ...}); `scope`
 *   ('series', 'study' or 'patient') preselects what is exported
 * @param {function} onError  shows an error
 */
export function openShare(row, onError) {
  const dlg = $('share-dialog');
  for (const k of ['previewed', 'done', 'instances', 'warnings', 'cancelled', 'profiles']) delete dlg.dataset[k];
  $('share-what').textContent = visible(`${row.patient_name || ''} · ${row.study_description || ''} · `
    + `${row.series_description || ''} (${row.images} images)`);
  const scope = dlg.querySelector(`input[name=share-scope][value=${row.scope || 'series'}]`);
  if (scope) scope.checked = true;
  $('share-preview-wrap').hidden = true;
  $('share-bar').hidden = true;
  $('share-text').textContent = '';
  list($('share-warnings'), []);
  $('share-go').disabled = false;
  $('share-cancel').hidden = true;
  $('share-profile').onchange = chooseProfile;
  loadProfiles().then(() => { dlg.dataset.profiles = String($('share-profile').options.length - 1); });
  const guard = (fn) => async () => {
    try { await fn(row); } catch (e) { $('share-text').textContent = e.message; onError(e); }
  };
  for (const el of dlg.querySelectorAll('input[name=share-mode]')) el.onchange = syncOptions;
  for (const el of $('share-options').querySelectorAll('input[type=checkbox][value]')) el.onchange = exclusive;
  $('share-dicomdir').onchange = syncOptions;
  $('share-preview-btn').onclick = guard(preview);
  $('share-go').onclick = guard(run);
  $('share-close').onclick = () => dlg.close();
  syncOptions();
  dlg.showModal();
}
