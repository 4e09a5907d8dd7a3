// viewer/timeline.js -- the stack picker and the time (4D) slider of the viewer.
//
// A series of several stacks (orientations, sizes, echoes...) shows a picker,
// "stack 1 of 3: axial, 40 slices", that reopens the series with the stack
// chosen (open_series with `stack`); the overlay says which stack is shown.
// A 4D stack (header.volumes.count > 1) shows a slider over its volumes and a
// play/pause button (cine over time); each volume is fetched with ?t= (the
// slice on screen first, then the rest of that volume streamed) the first time
// it is shown, and from the page's volume cache after that (viewer/loading.js,
// VOLUME_CACHE_BYTES), and the overlay says "volume t of N".  The controls are made here and put in the
// viewer's toolbar; every label is set with textContent.

import * as api from '../api.js';

const $ = (id) => document.getElementById(id);

/** The header's volumes ({count, axis, values}), one volume when absent. */
export function volumesOf(header) {
  const v = (header && header.volumes) || {};
  return { count: Math.max(1, Number(v.count) || 1), axis: v.axis || null, values: v.values || null };
}

/** The header's stack ({index, count, labels}). */
export function stackOf(header) {
  const s = (header && header.stack) || {};
  return { index: Number(s.index) || 0, count: Math.max(1, Number(s.count) || 1), labels: s.labels || [] };
}

/** "volume 3 of 20" (with the axis value where the header gives one, e.g. "time 3"). */
export function volumeText(header, t) {
  const v = volumesOf(header);
  if (v.count <= 1) return '';
  const name = v.axis && v.axis !== 'volume' ? ` (${v.axis}${v.values ? ` ${v.values[t]}` : ''})` : '';
  return `volume ${t + 1} of ${v.count}${name}`;
}

/** "stack 1 of 3: axial, 40 slices". */
export function stackText(header, i = stackOf(header).index) {
  const s = stackOf(header);
  const label = s.labels[i] ? `: ${s.labels[i]}` : '';
  return `stack ${i + 1} of ${s.count}${label}`;
}

export class ViewerTimeline {
  /** Make the picker and the slider (hidden until a volume needs them). */
  bindTimeline() {
    const tools = $('viewer-tools');
    const wrap = document.createElement('span');
    wrap.id = 'timeline';
    const stackLabel = document.createElement('label');
    stackLabel.id = 'stack-wrap';
    stackLabel.append('Stack ');
    const pick = document.createElement('select');
    pick.id = 'stack-pick';
    stackLabel.append(pick);
    const timeLabel = document.createElement('label');
    timeLabel.id = 'time-wrap';
    timeLabel.append('Time ');
    const slider = document.createElement('input');
    Object.assign(slider, { id: 'time-slider', type: 'range', min: '0', max: '0', value: '0', step: '1' });
    const play = document.createElement('button');
    Object.assign(play, { id: 'btn-time-play', type: 'button', title: 'Play over time', textContent: 'Play' });
    const text = document.createElement('span');
    text.id = 'time-text';
    timeLabel.append(slider, play, text);
    wrap.append(stackLabel, timeLabel);
    stackLabel.hidden = true;
    timeLabel.hidden = true;
    tools.insertBefore(wrap, $('load-progress'));
    this.timeCine = null;
    this.seriesId = this.seriesId || null;
    pick.addEventListener('change', () => this.openStack(Number(pick.value)));
    slider.addEventListener('input', () => { this.stopTimeCine(); this.setVolume(Number(slider.value)); });
    play.addEventListener('click', () => (this.timeCine ? this.stopTimeCine() : this.startTimeCine()));
  }

  /** Show / fill the controls for the volume on screen (none: hide them). */
  updateTimeline() {
    const h = this.vol && this.vol.header;
    const s = stackOf(h), v = volumesOf(h);
    const pick = $('stack-pick'), slider = $('time-slider');
    if (!pick) return;
    const showStacks = !!h && s.count > 1;
    $('stack-wrap').hidden = !showStacks;
    if (showStacks && pick.dataset.vid !== this.vol.vid) {
      pick.replaceChildren(...Array.from({ length: s.count }, (_, i) => {
        const o = document.createElement('option');
        o.value = String(i);
        o.textContent = stackText(h, i);
        return o;
      }));
      pick.value = String(s.index);
      pick.dataset.vid = this.vol.vid;
    }
    const showTime = !!h && v.count > 1;
    $('time-wrap').hidden = !showTime;
    if (showTime) {
      slider.max = String(v.count - 1);
      slider.value = String(this.vol.t || 0);
      $('time-text').textContent = volumeText(h, this.vol.t || 0);
    }
    if (!h) {
      this.stopTimeCine();
      pick.dataset.vid = '';
    }
    this.canvas.dataset.t = String((this.vol && this.vol.t) || 0);
    this.canvas.dataset.volumes = String(v.count);
    this.canvas.dataset.stack = h ? String(s.index) : '';
    this.canvas.dataset.stacks = h ? String(s.count) : '';
  }

  /** Overlay lines: which stack of several, which volume of a 4D one. */
  timelineText() {
    const h = this.vol && this.vol.header;
    if (!h) return [];
    const out = [];
    const s = stackOf(h);
    if (s.count > 1) out.push(`${stackText(h)}${s.index === 0 ? ' (first of several stacks)' : ''}`);
    const vt = volumeText(h, this.vol.t || 0);
    if (vt) out.push(vt);
    return out;
  }

  /** Reopen the series with another of its stacks. */
  async openStack(i) {
    if (!this.vol || !this.seriesId) return;
    const sid = this.seriesId;
    try {
      const data = await api.call('open_series', { series_id: sid, stack: i });
      await this.open(data.volume_id, performance.now(), data.header || null);
      this.seriesId = sid;
    } catch (e) {
      if (e.code === 'superseded' || e.name === 'AbortError') return;
      this.clear();
      if (this.onFail) this.onFail(e);
    }
  }

  /**
   * Show volume t of a 4D stack: from the page's volume cache when it was seen
   * whole before (nothing fetched), else the slice on screen first, then the
   * rest of that volume.  Resolves once that slice is drawn; with `whole`
   * (cine over time), once the whole volume is (so each is fetched only once).
   */
  async setVolume(t, whole = false) {
    const vol = this.vol;
    if (!vol) return;
    const n = volumesOf(vol.header).count;
    t = Math.max(0, Math.min(n - 1, Math.round(t)));
    if (t === (vol.t || 0)) return;
    const seq = ++this.seq;
    if (this.abort) this.abort.abort();
    const ctrl = new AbortController();
    this.abort = ctrl;
    const nz = vol.header.shape[0];
    const z = this.s.slice;
    const cached = this.cachedVolume(vol.vid, t);
    const next = cached
      ? { ...vol, t, data: cached, ready: new Uint8Array(nz).fill(1), uploaded: 0, complete: nz, first: z, firstData: null, started: false, cached: true }
      : { ...vol, t, data: null, ready: new Uint8Array(nz), uploaded: 0, complete: 0, first: z, firstData: null, started: false };
    this.vol = next;
    this.uploadPending = () => {};
    this.updateTimeline();
    this.updateOverlay();
    const shown = (data) => {
      let sum = 0;
      for (let i = 0; i < data.length; i++) sum += data[i];
      this.canvas.dataset.tSum = String(sum);        // which values are on screen (tests)
      this.canvas.dataset.tDrawn = String(t);
    };
    if (cached) {
      const per = cached.length / nz;
      const done = this.startVolume(seq, next, ctrl.signal);
      this.s.sliceReady = true;
      shown(cached.subarray(z * per, (z + 1) * per));
      await done;
      if (seq === this.seq) this.render();
      return;
    }
    try {
      const sl = await api.volumeSlice(vol.vid, z, ctrl.signal, t);
      if (seq !== this.seq) return;
      next.firstData = sl.data;
      next.ready[z] = 1;
      this.view.setPreview(z, sl.data);
      this.s.sliceReady = true;
      this.render();
      shown(sl.data);
      const done = this.startVolume(seq, next, ctrl.signal);
      if (whole) await done;
    } catch (e) {
      if (e.name === 'AbortError' || seq !== this.seq) return;
      this.clear();
      if (this.onFail) this.onFail(e);
    }
  }

  startTimeCine() {
    if (!this.vol || volumesOf(this.vol.header).count < 2) return;
    const fps = Math.max(1, Math.min(30, Number($('cine-fps').value) || 4));
    $('btn-time-play').textContent = 'Pause';
    $('btn-time-play').setAttribute('aria-pressed', 'true');
    const step = async () => {
      if (!this.timeCine || !this.vol) return;
      const n = volumesOf(this.vol.header).count;
      await this.setVolume(((this.vol.t || 0) + 1) % n, true);
      if (this.timeCine) this.timeCine = setTimeout(step, 1000 / fps);
    };
    this.timeCine = setTimeout(step, 0);
  }

  stopTimeCine() {
    if (this.timeCine) clearTimeout(this.timeCine);
    this.timeCine = null;
    const b = $('btn-time-play');
    if (b) { b.textContent = 'Play'; b.setAttribute('aria-pressed', 'false'); }
  }
}
