// state.js -- the app store: a plain object plus change events.
// Views read it and subscribe; actions call set(); views never write to each other.

export class Store extends EventTarget {
  constructor(initial) { super(); this.state = { ...initial }; }

  get(key) { return this.state[key]; }

  /** Merge `patch` and emit one 'change' event listing the changed keys. */
  set(patch) {
    const changed = Object.keys(patch).filter((k) => this.state[k] !== patch[k]);
    if (!changed.length) return;
    Object.assign(this.state, patch);
    this.dispatchEvent(new CustomEvent('change', { detail: changed }));
  }

  /** Call fn(state) whenever one of `keys` changes. */
  on(keys, fn) {
    this.addEventListener('change', (e) => { if (e.detail.some((k) => keys.includes(k))) fn(this.state); });
  }
}

export const store = new Store({ view: 'archive', media: false, status: '', error: '' });
