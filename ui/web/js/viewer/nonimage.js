// viewer/nonimage.js -- the text of an object that is not an image (SR, PDF,
// RT structure set, presentation state, Siemens report), shown in the viewport.
//
// open_series answers such objects with a `not_a_volume` error whose `details`
// ({kind, title, lines, truncated}, pocketpacs.images.nonimage.describe) say
// what they hold.  The viewer is cleared first (no image, overlay or panel of
// any earlier series stays), then a scrolling text panel over the empty stage
// shows "Not an image: <kind>", the title and the lines.  Every string is
// DICOM text: set with textContent only.

const $ = (id) => document.getElementById(id);

/** Methods of {@link Viewer} (mixed into its prototype by viewer.js). */
export class ViewerNonImage {
  /** Show what a non-image object says (err: ApiError with code not_a_volume and details). */
  showNonImage(err) {
    this.clear();
    const d = err.details || {};
    let box = $('nonimage');
    if (!box) {
      box = document.createElement('section');
      box.id = 'nonimage';
      box.className = 'nonimage';
      box.setAttribute('role', 'document');
      this.stage.append(box);
    }
    const head = document.createElement('h2');
    head.textContent = err.message || `Not an image: ${d.kind || 'unknown object'}`;
    const title = document.createElement('h3');
    title.textContent = d.title || '';
    const pre = document.createElement('pre');
    const lines = Array.isArray(d.lines) ? d.lines.map(String) : [];
    pre.textContent = lines.join('\n') + (d.truncated ? '\n… (cut: too long to show)' : '');
    box.replaceChildren(head, ...(d.title ? [title] : []), pre);
    box.hidden = false;
    this.canvas.dataset.nonimage = d.kind || '1';
  }

  /** Remove the text panel (every open and clear starts without it). */
  hideNonImage() {
    const box = $('nonimage');
    if (box) { box.hidden = true; box.replaceChildren(); }
    delete this.canvas.dataset.nonimage;
  }
}
