// api.js -- the only module that talks to Python.
//
// Commands go through the pywebview bridge when the page runs in the desktop
// window, and through POST /v1/call/<name> when it is served to a browser
// (`pocketpacs serve`); both answer the same envelope {ok, data} |
// {ok: false, error: {code, message}}.  Voxels always come over HTTP as binary
// frames: uint32 LE header length, JSON header, voxels (8-byte aligned).  A
// whole-volume stream is read by the stream worker (stream-worker.js) into a
// SharedArrayBuffer when the page is cross-origin isolated (the server sends
// COOP same-origin and COEP require-corp), else on this thread.

const TOKEN = (document.querySelector('meta[name="pocketpacs-token"]') || {}).content || '';
const HEADERS = { 'X-PocketPACS-Token': TOKEN };

/** Error carrying the envelope's code; message is safe to show. */
export class ApiError extends Error {
  constructor(code, message, details = null) { super(message); this.code = code; this.details = details; }
}

let bridge = null;          // window.pywebview.api when in the desktop window
let ready = null;

/** Resolve once the transport is known (bridge or HTTP). */
export function connect() {
  if (ready) return ready;
  ready = new Promise((resolve) => {
    const useBridge = () => { bridge = window.pywebview && window.pywebview.api; resolve(bridge ? 'bridge' : 'http'); };
    if (window.pywebview && window.pywebview.api && window.pywebview.api.hello) { useBridge(); return; }
    if (!navigator.userAgent.includes('QtWebEngine')) { resolve('http'); return; }
    window.addEventListener('pywebviewready', useBridge, { once: true });
    setTimeout(() => { if (!bridge) resolve('http'); }, 8000);
  });
  return ready;
}

/** The transport in use: 'bridge' or 'http'. */
export function transport() { return bridge ? 'bridge' : 'http'; }

function unwrap(env) {
  if (env && env.ok === true) return env.data;
  const e = (env && env.error) || { code: 'internal', message: 'No answer.' };
  throw new ApiError(e.code, e.message, e.details || null);
}

/**
 * Run one command.
 * @param {string} name  command name (see ui/bridge.py ALLOWED)
 * @param {object} [args]
 * @returns {Promise<any>} the envelope's data; throws ApiError on failure
 */
export async function call(name, args = {}) {
  await connect();
  if (bridge) {
    let env;
    try { env = await bridge[name](args); } catch (e) { throw new ApiError('internal', 'The bridge failed.'); }
    return unwrap(env);
  }
  const r = await fetch(`/v1/call/${name}`, {
    method: 'POST', headers: { ...HEADERS, 'Content-Type': 'application/json' },
    body: JSON.stringify(args), credentials: 'same-origin', cache: 'no-store',
  });
  let env = null;
  try { env = await r.json(); } catch (e) { /* fallthrough */ }
  return unwrap(env);
}

/** Split a binary frame into {header, offset}. */
export function parseFrame(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  return { header, offset: 4 + n };
}

/** Typed-array constructor for a wire dtype. */
export function arrayType(dtype) {
  return { int16: Int16Array, uint16: Uint16Array, float32: Float32Array, uint8: Uint8Array }[dtype];
}

async function getBinary(url, signal) {
  const r = await fetch(url, { headers: HEADERS, credentials: 'same-origin', signal, cache: 'no-store' });
  if (!r.ok) {
    let env = null; try { env = await r.json(); } catch (e) { /* */ }
    unwrap(env || { ok: false, error: { code: 'not_found', message: `HTTP ${r.status}` } });
  }
  return r;
}

/** Fetch a volume's JSON header (waits until the server knows it). */
export async function volumeHeader(vid, signal) {
  const r = await getBinary(`/v1/volume/${vid}/header`, signal);
  return r.json();
}

/**
 * Fetch one slice (of volume t of a 4D series): {header, z, data: TypedArray, unreadable}.
 * `unreadable` is true when the server answered X-PocketPACS-Unreadable: 1 (its pixel data
 * could not be decoded: the data are zeros; header.unreadable says why).
 */
export async function volumeSlice(vid, z, signal, t = 0) {
  const r = await getBinary(`/v1/volume/${vid}/slice/${z}${t ? `?t=${t}` : ''}`, signal);
  const unreadable = r.headers.get('X-PocketPACS-Unreadable') === '1';
  const buf = await r.arrayBuffer();
  const { header, offset } = parseFrame(buf);
  const T = arrayType(header.dtype);
  return { header, z: header.slice, unreadable,
    data: new T(buf, offset, header.shape[1] * header.shape[2] * (header.samples || 1)) };
}

/**
 * A buffer for a whole volume's voxels: a SharedArrayBuffer when the page is
 * cross-origin isolated (the server's COOP/COEP headers), so the stream
 * worker writes into it while the page uploads; an ArrayBuffer otherwise.
 * The buffer kept by keepVolumeBuffer is given again, zeroed here first, when
 * it has this size and kind and no stream of the worker may still write into
 * it; any other request drops it.  A new buffer's memory is faulted in by its
 * first writes, which cost the stream 0.3-1.1 s per 524 MB here (measured in
 * Chromium; zeroing a buffer used before took 31-39 ms), so the next series of
 * a size reuses the last one's.
 * @param {number} bytes
 * @returns {ArrayBuffer|SharedArrayBuffer}
 */
export function volumeBuffer(bytes) {
  const sab = streamsInWorker();
  const buf = spare;
  spare = null;
  if (buf && buf.byteLength === bytes && isShared(buf) === sab && !writing.has(buf)) {
    zeroBuffer(buf);          // nothing of the last series shows through slices still to come
    return buf;
  }
  return sab ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
}

let spare = null;                      // the buffer kept for the next volume of its size
const sharedBuffers = new WeakSet();   // buffers shown by more than one view: never kept
const writing = new Map();             // buffer -> worker streams into it not yet ended
const inFlight = new Map();            // worker stream id -> its buffer

function isShared(buf) { return typeof SharedArrayBuffer === 'function' && buf instanceof SharedArrayBuffer; }

/** Count a worker stream into `buf` until the worker says it has ended (writeEnded). */
function writeStarted(id, buf) {
  inFlight.set(id, buf);
  writing.set(buf, (writing.get(buf) || 0) + 1);
}

function writeEnded(id) {
  const buf = inFlight.get(id);
  if (buf === undefined) return;
  inFlight.delete(id);
  const n = writing.get(buf) - 1;
  if (n > 0) writing.set(buf, n); else writing.delete(buf);
}

/**
 * Say that `buf` (a volume buffer) is shown by another view too (a Compare
 * viewport adopting the viewer's volume): keepVolumeBuffer never keeps it.
 */
export function shareVolumeBuffer(buf) { if (buf) sharedBuffers.add(buf); }

/**
 * Keep `buf`, the buffer of a volume no longer shown (its stream stopped), for
 * the next volume of its size (volumeBuffer); the one kept before goes, and
 * `null` only drops it.  A buffer shown by another view (shareVolumeBuffer) is
 * not kept.  It is zeroed when it is given again, not now: that would take the
 * CPU from the next series' first slice.
 * @param {ArrayBuffer|SharedArrayBuffer|null} buf
 */
export function keepVolumeBuffer(buf) {
  spare = buf && !sharedBuffers.has(buf) ? buf : null;
}

/** Zero a buffer in 2 MB copies (a fill of a SharedArrayBuffer took 3x as long, measured). */
export function zeroBuffer(buf) {
  const dst = new Uint8Array(buf);
  const zeros = new Uint8Array(Math.min(dst.length, 2 << 20));
  for (let p = 0; p < dst.length; p += zeros.length) dst.set(zeros.subarray(0, Math.min(zeros.length, dst.length - p)), p);
}

let worker = null;          // the stream worker (stream-worker.js), made on first use
let workerBroken = false;   // it could not start: streams are read on this thread
let nextStream = 0;
/** The worker's last message of a stream: 'done', 'error' or 'failed' (an abort ends in 'failed'). */
const ENDED = new Set(['done', 'error', 'failed']);
const streams = new Map();  // stream id -> message handler

/** Whether whole-volume streams are read by the worker (tests may ask for this thread: POCKETPACS_TEST_LIMITS.stream = 'page'). */
export function streamsInWorker() {
  const o = (typeof window !== 'undefined' && window.POCKETPACS_TEST_LIMITS) || {};
  return o.stream !== 'page' && !workerBroken && typeof Worker === 'function'
    && typeof SharedArrayBuffer === 'function' && self.crossOriginIsolated === true;
}

function streamWorker() {
  if (!worker) {
    const w = new Worker('/js/stream-worker.js');
    // the script did not load or threw, or a message could not be passed (either
    // way: the worker says 'lost', or the page sees a messageerror): every stream
    // of it is read again here, none is left waiting for an answer that never comes
    const lose = () => {
      if (worker !== w) return;
      workerBroken = true;
      worker = null;
      w.terminate();
      inFlight.clear();       // a terminated worker writes nothing more
      writing.clear();
      for (const f of [...streams.values()]) f({ type: 'unavailable' });
    };
    w.onmessage = (ev) => {
      if (ev.data && ev.data.type === 'lost') { lose(); return; }
      // a stream's last message (after an abort too): it writes nothing more
      if (ENDED.has(ev.data.type)) writeEnded(ev.data.id);
      const f = streams.get(ev.data.id); if (f) f(ev.data);
    };
    w.onmessageerror = lose;
    w.onerror = (ev) => { ev.preventDefault(); lose(); };
    worker = w;
  }
  return worker;
}

class WorkerUnavailable extends Error {}

const endedEarly = () => new ApiError('cancelled', 'The volume stream ended early.');

/** The stream read by the worker straight into `target` (a SharedArrayBuffer). */
function streamByWorker(url, target, onSlices, signal) {
  return new Promise((resolve, reject) => {
    const w = streamWorker();
    const id = ++nextStream;
    let header = null;
    const onAbort = () => { w.postMessage({ id, abort: true }); end(reject, new DOMException('The stream was stopped.', 'AbortError')); };
    const end = (fn, v) => {
      streams.delete(id);
      if (signal) signal.removeEventListener('abort', onAbort);
      fn(v);
    };
    if (signal && signal.aborted) { reject(new DOMException('The stream was stopped.', 'AbortError')); return; }
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    streams.set(id, (m) => {
      if (m.type === 'header') header = m.header;
      else if (m.type === 'progress') onSlices(m.complete);
      else if (m.type === 'done') {
        if (!header || m.short) end(reject, endedEarly()); else end(resolve, header);
      } else if (m.type === 'error') {
        try { unwrap(m.envelope || { ok: false, error: { code: 'not_found', message: `HTTP ${m.status}` } }); } catch (e) { end(reject, e); }
      } else if (m.type === 'failed') {
        end(reject, m.name === 'AbortError' ? new DOMException(m.message, 'AbortError') : endedEarly());
      } else if (m.type === 'unavailable') {
        end(reject, new WorkerUnavailable());
      }
    });
    try {
      w.postMessage({ id, url, token: TOKEN, target });
      writeStarted(id, target);
    } catch (e) {
      // the shared buffer cannot be passed (DataCloneError): read here
      end(reject, new WorkerUnavailable());
    }
  });
}

/** The stream read on this thread, copied into `target`. */
async function streamHere(url, target, onSlices, signal) {
  const r = await getBinary(url, signal);
  const reader = r.body.getReader();
  const dst = new Uint8Array(target);
  let pending = new Uint8Array(0);
  let header = null, pos = 0, sliceBytes = 1;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    let chunk = value;
    if (!header) {
      const merged = new Uint8Array(pending.length + chunk.length);
      merged.set(pending); merged.set(chunk, pending.length); pending = merged;
      if (pending.length < 4) continue;
      const n = new DataView(pending.buffer).getUint32(0, true);
      if (pending.length < 4 + n) continue;
      header = JSON.parse(new TextDecoder().decode(pending.subarray(4, 4 + n)));
      sliceBytes = header.slice_bytes;
      chunk = pending.subarray(4 + n);
    }
    if (pos + chunk.length > dst.length) throw endedEarly();
    dst.set(chunk, pos);
    const before = Math.floor(pos / sliceBytes);
    pos += chunk.length;
    const after = Math.floor(pos / sliceBytes);
    if (after > before) onSlices(after);
  }
  if (!header || pos !== dst.length) throw endedEarly();
  return header;
}

/**
 * Stream a whole volume (volume t of a 4D series) into `target` (a buffer of
 * its voxel size, from volumeBuffer), calling onSlices(complete) whenever
 * slices [0, complete) are whole.  A SharedArrayBuffer is filled by the
 * stream worker (off this thread), an ArrayBuffer here.
 * `onReader(kind)`, when given, is told who reads it: 'worker', or 'page' (this
 * thread: no isolation, or the worker could not start or pass the buffer).
 * @returns {Promise<object>} the stream's header; rejects with ApiError
 *   ('cancelled': the stream ended early) or an AbortError
 */
export async function streamVolume(vid, target, onSlices, signal, t = 0, onReader = null) {
  const url = `/v1/volume/${vid}/data${t ? `?t=${t}` : ''}`;
  const shared = typeof SharedArrayBuffer === 'function' && target instanceof SharedArrayBuffer;
  if (shared && streamsInWorker()) {
    try {
      if (onReader) onReader('worker');
      return await streamByWorker(url, target, onSlices, signal);
    } catch (e) {
      if (!(e instanceof WorkerUnavailable)) throw e;
    }
  }
  if (onReader) onReader('page');
  return streamHere(url, target, onSlices, signal);
}

/** Fetch a series thumbnail: {header, data: Uint8Array} or null (shape [h, w] grey, [h, w, 3] RGB). */
export async function thumbnail(sid, signal) {
  try {
    const buf = await (await getBinary(`/v1/thumb/${sid}`, signal)).arrayBuffer();
    const { header, offset } = parseFrame(buf);
    return { header, data: new Uint8Array(buf, offset, header.shape[0] * header.shape[1] * (header.shape[2] || 1)) };
  } catch (e) { return null; }
}

/** Save a canvas as PNG: a save dialog in the desktop app, a download in a browser. */
export async function savePng(canvas, name) {
  if (bridge) {
    return call('save_png', { data: canvas.toDataURL('image/png') });
  }
  const blob = await new Promise((res) => canvas.toBlob(res, 'image/png'));
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return { saved: true };
}
