// stream-worker.js -- reads a whole-volume stream off the page's main thread.
//
// The main thread uploads slices to the GPU, and texSubImage3D blocks it while
// the GPU process takes them: a stream read on that thread stood still during
// every upload (measured: the two took turns, their times added up).  This
// worker reads the body of GET /v1/volume/<id>/data (api.js's binary frame:
// uint32 LE header length, JSON header, voxels) straight into the page's
// whole-volume SharedArrayBuffer and says how many whole slices are there, so
// bytes keep arriving while the page uploads the ones before.  The page only
// reads slices the worker has reported whole (a postMessage orders the writes
// before the read); it never writes to the part still to come.
//
// In:  {id, url, token, target: SharedArrayBuffer}  stream `id` into target
//      {id, abort: true}                            stop it
// Out: {id, type: 'header', header}                 the frame's JSON header
//      {id, type: 'progress', complete}             slices [0, complete) are whole
//      {id, type: 'done', short}                    the body ended (short: before the last
//                                                   slice, or with bytes to spare)
//      {id, type: 'error', status, envelope}        an HTTP error (its JSON envelope, or null)
//      {id, type: 'failed', name, message}          the read failed (name AbortError: stopped)
//      {type: 'lost'}                               a message could not be received: the page
//                                                   reads its streams itself

const streams = new Map();   // id -> AbortController

self.onmessage = (ev) => {
  const m = ev.data;
  if (m.abort) {
    const c = streams.get(m.id);
    if (c) c.abort();
    streams.delete(m.id);
    return;
  }
  const ctrl = new AbortController();
  streams.set(m.id, ctrl);
  // run() is async: whatever fails in it (the target included) is a 'failed' answer
  run(m, ctrl.signal).catch((e) => {
    self.postMessage({ id: m.id, type: 'failed', name: e.name || 'Error', message: String(e.message || e) });
  }).finally(() => { if (streams.get(m.id) === ctrl) streams.delete(m.id); });
};

// a message from the page that could not be received (its buffer) names no stream:
// the page is told the worker is lost, and reads its streams itself
self.onmessageerror = () => { self.postMessage({ type: 'lost' }); };

/** Read the body: BYOB into one reused buffer where the browser has it (no chunk allocated per read). */
function bodyReader(body) {
  let byob = null;
  try { byob = body.getReader({ mode: 'byob' }); } catch (e) { /* a default stream: chunks as given */ }
  if (!byob) {
    const r = body.getReader();
    return () => r.read();
  }
  let scratch = new ArrayBuffer(2 << 20);
  return async () => {
    const got = await byob.read(new Uint8Array(scratch));
    if (got.value) scratch = got.value.buffer;       // the read hands the buffer back
    return got;
  };
}

async function run(m, signal) {
  const r = await fetch(m.url, { headers: { 'X-PocketPACS-Token': m.token }, credentials: 'same-origin', signal, cache: 'no-store' });
  if (!r.ok) {
    let env = null;
    try { env = await r.json(); } catch (e) { /* not JSON: the status says it */ }
    self.postMessage({ id: m.id, type: 'error', status: r.status, envelope: env });
    return;
  }
  const read = bodyReader(r.body);
  // the frame's header (small), then the voxels
  let prefix = new Uint8Array(0);
  let header = null, rest = null;
  while (!header) {
    const { done, value } = await read();
    if (done) { self.postMessage({ id: m.id, type: 'done', short: true }); return; }
    const merged = new Uint8Array(prefix.length + value.length);
    merged.set(prefix); merged.set(value, prefix.length); prefix = merged;
    if (prefix.length < 4) continue;
    const n = new DataView(prefix.buffer).getUint32(0, true);
    if (prefix.length < 4 + n) continue;
    header = JSON.parse(new TextDecoder().decode(prefix.subarray(4, 4 + n)));
    rest = prefix.slice(4 + n);
  }
  self.postMessage({ id: m.id, type: 'header', header });
  const dst = new Uint8Array(m.target);
  const sliceBytes = header.slice_bytes;
  const total = Math.min(dst.length, header.shape[0] * sliceBytes);
  let pos = 0, told = 0, extra = false;
  const put = (bytes) => {
    const n = Math.min(bytes.length, total - pos);
    if (n < bytes.length) extra = true;
    dst.set(n < bytes.length ? bytes.subarray(0, n) : bytes, pos);
    pos += n;
    const complete = Math.floor(pos / sliceBytes);
    if (complete > told) {
      told = complete;
      self.postMessage({ id: m.id, type: 'progress', complete });
    }
  };
  put(rest);
  for (;;) {
    const { done, value } = await read();
    if (done) break;
    put(value);
  }
  self.postMessage({ id: m.id, type: 'done', short: pos < total || extra || total !== header.shape[0] * sliceBytes });
}
