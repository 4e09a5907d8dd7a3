// text.js -- untrusted text (DICOM strings, file names) made safe to show.
//
// The page sets such text with textContent (never markup).  Bidirectional
// controls (U+202A-U+202E embeddings and overrides, U+2066-U+2069 isolates,
// U+200E/U+200F/U+061C marks) would still reorder what is shown -- a name
// with U+202E reads backwards and can pass for another -- so they are shown
// visibly escaped (`\u202e`), and the elements holding such text isolate it
// from its neighbours (`unicode-bidi: isolate`, app.css).

const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` as a string with every bidi control shown as its `\uXXXX` escape. */
export function visible(s) {
  return String(s).replace(BIDI, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
