// dropfiles.js -- what a folder or files dropped onto the window should do.
//
// A page is never told where a dropped file lives; in the desktop app
// pywebview gives dropped files their full path as `pywebviewFullPath`
// (pywebview 5.x / 6.x).  A dropped item with a path is imported when it is a
// folder (or a DICOM file: its name has none of Open Other's extensions) and
// opened with Open Other when it is a NIfTI, Analyze, MGH, JPEG 2000 or
// PNG/JPEG file.  Without a path (a browser, `pocketpacs serve`) the page can
// only say to use Import… or Open Other….

/** File names Open Other takes (pocketpacs.images.openother). */
export const OPEN_OTHER = /\.(nii|nii\.gz|hdr|img|mgh|mgz|jp2|j2k|j2c|jpx|png|jpe?g)$/i;

export const NO_PATH_MESSAGE = 'Dropping files works in the desktop app; here use Import DICOM… (or Open Other… for an image file).';

/**
 * What to do with a drop: {action: 'import' | 'open', path} for the first
 * item with a path, {action: 'none', message} when no item has one.
 * @param {DataTransfer} dt
 */
export function dropAction(dt) {
  const files = dt && dt.files ? [...dt.files] : [];
  const items = dt && dt.items ? [...dt.items] : [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const path = typeof f.pywebviewFullPath === 'string' ? f.pywebviewFullPath : '';
    if (!path) continue;
    const entry = items[i] && items[i].webkitGetAsEntry ? items[i].webkitGetAsEntry() : null;
    if (entry && entry.isDirectory) return { action: 'import', path };
    return { action: OPEN_OTHER.test(f.name) ? 'open' : 'import', path };
  }
  return { action: 'none', message: files.length ? NO_PATH_MESSAGE : '' };
}

/**
 * What to do with paths the desktop app hands over after a drop (ui/app.py
 * reads them from pywebview's drop event, which the page's own File objects
 * never carry): {action: 'import' | 'open', path} for the first item, or
 * {action: 'none'}.
 * @param {{path: string, dir: boolean}[]} items
 */
export function dropActionForPaths(items) {
  const it = (items || []).find((x) => x && typeof x.path === 'string' && x.path);
  if (!it) return { action: 'none', message: '' };
  if (it.dir) return { action: 'import', path: it.path };
  return { action: OPEN_OTHER.test(it.path) ? 'open' : 'import', path: it.path };
}
