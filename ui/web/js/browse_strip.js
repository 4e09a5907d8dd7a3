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
    const items = rows.map((r) => this.item(r));
    if (items.length) {
      const study = this.browser.studyOf(sid).data;
      const h = document.createElement('h3');
      h.textContent = visible([study.study_date, study.study_description].filter(Boolean).join(' ') || 'This study');
      h.title = h.textContent;
      this.el.replaceChildren(h, ...items);
    } else {
      this.el.replaceChildren();
    }
    this.el.dataset.count = String(items.length);
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
      drawThumb(cv);
    }
    const t = document.createElement('span');
    t.className = 'strip-text';
    t.textContent = visible(`${r.modality} ${r.series_description || '(no description)'} · ${r.images}`);
    b.title = t.textContent;
    b.appendChild(t);
    b.addEventListener('click', () => {
      if (r.series_id !== this.sid) this.browser.dispatchEvent(new CustomEvent('open', { detail: r }));
    });
    return b;
  }
}
