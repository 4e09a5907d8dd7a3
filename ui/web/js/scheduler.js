// scheduler.js -- render on demand: requests are coalesced into one animation frame.

const pending = new Set();
let scheduled = false;

/** Ask for `fn` to run in the next animation frame (once, however often asked). */
export function requestRedraw(fn) {
  pending.add(fn);
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    const fns = [...pending];
    pending.clear();
    // one failing drawer must not starve the others (e.g. an upload queued behind it)
    for (const f of fns) {
      try { f(); } catch (e) { setTimeout(() => { throw e; }, 0); }
    }
  });
}
