// browse_strip.js -- the series strip: the open study's series beside the viewer
// (thumbnail or icon, description, images), the open one marked; a click opens
// another through the archive browser's own 'open' event.

import { NON_IMAGE } from './browse_tree.js';
import { drawThumb, nonImageIcon } from './browser.js';
import { visible } from './text.js';

const $ = (id) => document.getElementById(id);

export class SeriesStrip {
  /** @param {import('./browser.js').Browser} browser  whose 'open' event opens a series */
  constructor(browser) {
    this.browser = browser;
    this.el = $('series-strip');
    this.sid = null;
  }

  /** Show the series of the study holding `sid` (none: an Open Other file, an unknown series). */
  show(sid) {
    this.sid = sid;
    const rows = sid ? this.browser.studySeries(sid) : [];
    // one series alone: nothing to switch to, no strip
    const items = rows.length > 1 ? rows.map((r) => this.item(r)) : [];
    if (items.length) {
      const study = this.browser.studyOf(sid).data;
      const h = document.createElement('p');
      h.className = 'strip-title';
      h.textContent = visible([study.study_date, study.study_description].filter(Boolean).join(' ') || 'This study');
      this.el.replaceChildren(h, ...items);
    } else {
      this.el.replaceChildren();
    }
    this.el.dataset.count = String(items.length);
  }

  /** Copy the list's thumbnail of the series when it has one; otherwise fetch
   * it once the open series has loaded (its first slices come first). */
  fill(cv) {
    const drawn = document.querySelector(`#series-table canvas.thumb[data-series-id="${cv.dataset.seriesId}"][data-drawn]`);
    if (drawn) {
      cv.width = drawn.width; cv.height = drawn.height;
      cv.getContext('2d').drawImage(drawn, 0, 0);
      return;
    }
    const view = $('view');
    let tries = 0;
    const later = () => {
      if (!cv.isConnected) return;
      if (view.dataset.tLoaded || ++tries > 60) drawThumb(cv); else setTimeout(later, 500);
    };
    setTimeout(later, 500);
  }

  item(r) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'strip-item';
    b.dataset.seriesId = r.series_id;
    if (r.series_id === this.sid) { b.classList.add('current'); b.setAttribute('aria-current', 'true'); }
    if (NON_IMAGE.has(String(r.modality).toUpperCase())) {
      b.appendChild(nonImageIcon(r.modality, r.modality));
    } else {
      const cv = document.createElement('canvas');
      cv.className = 'thumb'; cv.width = 64; cv.height = 64; cv.dataset.seriesId = r.series_id;
      b.appendChild(cv);
      this.fill(cv);
    }
    const t = document.createElement('span');
    t.className = 'strip-text';
    t.textContent = visible(`${r.modality} ${r.series_description || '(no description)'}`);
    const n = document.createElement('span');
    n.className = 'strip-count';
    n.textContent = `${r.images} img`;
    const words = document.createElement('span');
    words.className = 'strip-words';
    words.append(t, n);
    b.append(words);
    b.addEventListener('click', () => {
      if (r.series_id !== this.sid) this.browser.dispatchEvent(new CustomEvent('open', { detail: r }));
    });
    return b;
  }
}
