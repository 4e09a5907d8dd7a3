// network.js -- the Network view: remote nodes (add, remove, echo), a remote
// search with the archive search's fields, retrieve with progress and cancel,
// "Send to…" of the series selected in the archive (or its study), and the
// listener on/off with its address, allowed callers and counters (a warning on
// screen while it listens on an address other computers can reach).  Every call goes through api.js
// (ui/network_commands.py); DICOM strings are set with textContent, their
// bidi controls shown escaped (text.js).  A password is typed into a field,
// sent once with the node and cleared; no reply ever carries it.

import * as api from './api.js';
import { store } from './state.js';
import { visible } from './text.js';
import { dateSpecComplete } from './browser.js';

const $ = (id) => document.getElementById(id);
const COLS = ['patient_name', 'patient_id', 'birth_date', 'study_date', 'description', 'accession',
  'modalities', 'n_series', 'n_instances'];

function fmtDate(d) {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : (d || '');
}

function fmtName(pn) {
  const parts = (pn || '').split('=')[0].split('^');
  const family = (parts[0] || '').trim();
  const given = parts.slice(1, 3).map((p) => p.trim()).filter(Boolean).join(' ');
  return family && given ? `${family}, ${given}` : (family || given);
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : visible(text);
  return td;
}

function button(text, cls, fn) {
  const b = document.createElement('button');
  b.type = 'button'; b.textContent = text; b.className = cls;
  b.addEventListener('click', (e) => { e.stopPropagation(); fn(b); });
  return b;
}

export class Network extends EventTarget {
  /**
   * @param {() => object|null} selected  the archive row selected in the browser (or null)
   * @param {() => void} onArchiveChanged  called while a retrieve adds series, and after it
   */
  constructor(selected, onArchiveChanged) {
    super();
    this.selected = selected;
    this.onArchiveChanged = onArchiveChanged;
    this.nodes = [];
    this.results = [];
    this.job = null;
    this.listenTimer = null;
    const add = $('net-add');
    add.elements.kind.addEventListener('change', () => this.showKind());
    add.addEventListener('submit', (e) => { e.preventDefault(); this.addNode(); });
    $('net-search').addEventListener('submit', (e) => { e.preventDefault(); this.search(); });
    $('net-search').addEventListener('reset', () => setTimeout(() => { $('net-results').tBodies[0].replaceChildren(); $('net-counts').textContent = ''; }, 0));
    $('net-listen').addEventListener('submit', (e) => { e.preventDefault(); this.toggleListener(); });
    $('net-send').addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    $('net-job-cancel').addEventListener('click', () => {
      if (this.job) api.call('net_cancel', { job_id: this.job }).catch((err) => this.fail(err));
    });
    this.showKind();
    store.on(['view'], (s) => {
      $('network').hidden = s.view !== 'network';
      if (s.view === 'network') this.show();
    });
  }

  fail(err) { this.dispatchEvent(new CustomEvent('error', { detail: err })); }

  showKind() {
    const kind = $('net-add').elements.kind.value;
    for (const el of $('net-add').querySelectorAll('[data-kind]')) el.hidden = el.dataset.kind !== kind;
  }

  /** The view was opened: nodes, listener, what "Send to…" would send. */
  async show() {
    const r = this.selected();
    $('net-send-what').textContent = r
      ? visible(`${r.patient_name} · ${r.study_date} ${r.study_description || ''} · series: ${r.series_description || r.modality} (${r.images} images)`)
      : 'Select a series in the archive list first.';
    $('net-send').querySelector('button[type=submit]').disabled = !r;
    try {
      await this.loadNodes();
      this.listenerStatus(await api.call('net_listener'));
    } catch (err) { this.fail(err); }
  }

  async loadNodes(data) {
    const res = data || await api.call('net_nodes');
    this.nodes = res.nodes;
    const tbody = $('net-nodes').tBodies[0];
    tbody.replaceChildren(...this.nodes.map((n) => this.nodeRow(n)));
    for (const sel of [$('net-node'), $('net-send').elements.node]) {
      const keep = sel.value;
      sel.replaceChildren(...this.nodes.map((n) => { const o = document.createElement('option'); o.value = n.name; o.textContent = n.name; return o; }));
      if (this.nodes.some((n) => n.name === keep)) sel.value = keep;
    }
    $('net-empty').hidden = this.nodes.length > 0;
  }

  nodeRow(n) {
    const tr = document.createElement('tr');
    tr.dataset.name = n.name;
    tr.appendChild(cell(n.name));
    const addr = n.kind === 'dimse'
      ? `DIMSE ${n.aet}@${n.host}:${n.port} (we are ${n.calling_aet}; ${n.retrieve === 'move' ? `C-MOVE to port ${n.move_port}` : 'C-GET'})`
      : `DICOMweb ${n.url}${n.user ? ` (user ${n.user}${n.has_password ? ', password stored' : ''})` : ''}`;
    tr.appendChild(cell(addr));
    const res = cell('');
    res.className = 'echo-result';
    tr.appendChild(res);
    const act = document.createElement('td');
    act.appendChild(button('Echo', 'echo', (b) => this.echo(n.name, tr, res, b)));
    act.appendChild(button('Remove', 'remove', () => this.removeNode(n.name)));
    tr.appendChild(act);
    return tr;
  }

  async echo(name, tr, res, b) {
    b.disabled = true;
    res.textContent = '…';
    delete tr.dataset.echo;
    try {
      const r = await api.call('net_echo', { name });
      res.textContent = `answers (${Math.round(r.ms)} ms)`;
      tr.dataset.echo = 'ok';
    } catch (err) {
      res.textContent = err.message;
      tr.dataset.echo = 'failed';
    } finally { b.disabled = false; }
  }

  async addNode() {
    const f = $('net-add').elements;
    const kind = f.kind.value;
    const args = { name: f.name.value.trim(), kind };
    if (kind === 'dimse') {
      Object.assign(args, { aet: f.aet.value.trim(), host: f.host.value.trim(), port: Number(f.port.value) || undefined,
        calling_aet: f.calling_aet.value.trim() || undefined, retrieve: f.retrieve.value,
        move_port: Number(f.move_port.value) || undefined });
    } else {
      Object.assign(args, { url: f.url.value.trim(), user: f.user.value.trim() || undefined,
        password: f.password.value || undefined, verify: f.verify.checked });
    }
    f.password.value = '';          // sent once; never kept in the page
    try {
      await this.loadNodes(await api.call('net_add', args));
      $('net-add').reset();
      this.showKind();
    } catch (err) { this.fail(err); }
  }

  async removeNode(name) {
    try { await this.loadNodes(await api.call('net_remove', { name })); } catch (err) { this.fail(err); }
  }

  // ------------------------------------------------------------ search
  filters() {
    const f = {};
    for (const el of $('net-search').elements) {
      if (el.name && el.value.trim()) f[el.name] = el.value.trim();
    }
    return f;
  }

  async search() {
    const node = $('net-node').value;
    if (!node) { this.fail(new Error('Add a node first.')); return; }
    const partial = [...$('net-search').querySelectorAll('input[data-date]')].filter((el) => !dateSpecComplete(el.value));
    if (partial.length) {
      $('net-counts').textContent = 'Finish the date (YYYY, YYYY-MM or YYYY-MM-DD) or range (FROM-TO).';
      return;
    }
    $('net-counts').textContent = 'Searching…';
    const tbody = $('net-results').tBodies[0];
    try {
      const res = await api.call('net_find', { node, ...this.filters() });
      this.results = res.results;
      this.resultsNode = node;
      $('net-counts').textContent = `${this.results.length} studies on ${node}` + (res.truncated ? ' (first shown; refine the search)' : '');
      tbody.replaceChildren(...this.results.map((r) => this.resultRow(r)));
    } catch (err) {
      $('net-counts').textContent = err.message;
      tbody.replaceChildren();
    }
  }

  resultRow(r) {
    const tr = document.createElement('tr');
    tr.dataset.inArchive = r.in_archive ? '1' : '0';
    const vals = { ...r, patient_name: fmtName(r.patient_name), birth_date: fmtDate(r.birth_date),
      study_date: fmtDate(r.study_date), modalities: (r.modalities || []).join(', ') };
    for (const k of COLS) tr.appendChild(cell(vals[k]));
    tr.appendChild(cell(r.in_archive ? 'in archive' : ''));
    const act = document.createElement('td');
    act.appendChild(button(r.in_archive ? 'Retrieve missing' : 'Retrieve', 'get', () => this.retrieve(r)));
    tr.appendChild(act);
    return tr;
  }

  // ------------------------------------------------------------ jobs
  async retrieve(r) {
    if (this.job) { this.fail(new Error('A transfer is running; wait for it or cancel it.')); return; }
    try {
      const j = await api.call('net_get', { node: this.resultsNode, study_uid: r.study_instance_uid });
      await this.follow(j.job_id, `Retrieving from ${this.resultsNode}`, true);
    } catch (err) { this.fail(err); }
    this.search();
  }

  async send() {
    const r = this.selected();
    if (!r) return;
    if (this.job) { this.fail(new Error('A transfer is running; wait for it or cancel it.')); return; }
    const f = $('net-send').elements;
    try {
      const j = await api.call('net_send', { node: f.node.value, series_id: r.series_id, scope: f.scope.value });
      await this.follow(j.job_id, `Sending to ${f.node.value}`, false);
    } catch (err) { this.fail(err); }
  }

  /** Poll a job until it finishes: a progress bar, instances/s, cancel; the archive list refreshed while series arrive. */
  async follow(id, title, retrieving) {
    this.job = id;
    const box = $('net-job'), bar = $('net-job-bar'), text = $('net-job-text');
    box.hidden = false;
    box.dataset.finished = '0';
    $('net-job-title').textContent = title;
    $('net-job-cancel').hidden = false;
    let lastDone = -1, lastRefresh = 0;
    try {
      for (;;) {
        const st = await api.call('net_job', { job_id: id });
        bar.max = Math.max(1, st.total || 1);
        bar.value = st.done;
        $('btn-network').textContent = st.finished ? 'Network' : `Network (${st.done}/${st.total || '?'})`;
        if (st.finished) {
          text.textContent = this.summary(st, retrieving);
          break;
        }
        text.textContent = `${st.done} / ${st.total || '?'} instances · ${st.rate.toFixed(0)}/s${st.cancelled ? ' · cancelling…' : ''}`;
        const now = performance.now();
        if (retrieving && st.done !== lastDone && now - lastRefresh > 1000) {
          lastDone = st.done; lastRefresh = now; this.onArchiveChanged();
        }
        await new Promise((res) => setTimeout(res, 250));
      }
    } finally {
      this.job = null;
      $('net-job-cancel').hidden = true;
      box.dataset.finished = '1';
      $('btn-network').textContent = 'Network';
      if (retrieving) this.onArchiveChanged();
    }
  }

  summary(st, retrieving) {
    if (st.error) return st.error.message;
    const r = st.result || {};
    const failed = (r.failed || []).length;
    const head = st.cancelled ? 'Cancelled: ' : (st.problem ? `${st.problem}: ` : 'Done: ');
    if (retrieving) {
      const conflicts = (r.conflicts || []).length;
      return `${head}${r.received} received, ${r.indexed} added to the archive, ${r.already} already there`
        + (failed ? `, ${failed} missing (retrieve again to fetch them)` : '')
        + (conflicts ? `, ${conflicts} with the UID of an archived instance but other content (the archived files are kept)` : '');
    }
    return `${head}${r.sent} sent` + (failed ? `, ${failed} failed` : '');
  }

  // ------------------------------------------------------------ listener
  listenerStatus(st) {
    const f = $('net-listen').elements;
    $('net-listen-btn').textContent = st.running ? 'Stop' : 'Start';
    f.aet.disabled = f.port.disabled = f.bind.disabled = f.allow.disabled = st.running;
    $('net-listen').dataset.running = st.running ? '1' : '0';
    $('net-listen-status').textContent = st.running
      ? `${st.aet} listening on ${st.bind}:${st.port} · ${st.received} received · ${st.indexed} indexed`
        + (st.failed ? ` · ${st.failed} refused instances` : '') + (st.refused ? ` · ${st.refused} refused callers` : '')
        + (st.conflicts ? ` · ${st.conflicts} kept apart (same UID, other content)` : '')
      : 'off';
    // off loopback the listener takes associations from the network: said on screen while it runs
    const warn = $('net-listen-warning');
    warn.textContent = st.running && st.warning ? `Warning: ${st.warning}.` : '';
    warn.hidden = !(st.running && st.warning);
    clearTimeout(this.listenTimer);
    if (st.running) {
      this.listenTimer = setTimeout(async () => {
        if ($('network').hidden) { this.listenTimer = null; return; }
        try { this.listenerStatus(await api.call('net_listener')); } catch (err) { /* shown next time */ }
      }, 1000);
    }
  }

  async toggleListener() {
    const f = $('net-listen').elements;
    const on = $('net-listen').dataset.running !== '1';
    try {
      this.listenerStatus(await api.call('net_listen', on
        ? { on, aet: f.aet.value.trim() || 'POCKETPACS', port: Number(f.port.value) || 11112,
          bind: f.bind.value.trim() || '127.0.0.1', allow: f.allow.value.trim() } : { on }));
      if (!on) this.onArchiveChanged();
    } catch (err) { this.fail(err); }
  }
}
