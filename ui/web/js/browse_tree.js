// browse_tree.js -- the patient -> study -> series tree of the archive browser:
// nodes built from the `browse` command's answer, sorting by a column, and the
// list of rows a keyboard walks (the rows whose ancestors are all expanded).

/** Sortable columns: the field each level sorts by (a level without one
 * sorts by its first child's value, after the children are sorted). */
export const SORTS = {
  name: { patient: 'patient_name' },
  patient_id: { patient: 'patient_id' },
  birth_date: { patient: 'birth_date' },
  study_date: { study: 'study_date' },
  modality: { series: 'modality' },
  description: { study: 'study_description', series: 'series_description' },
};

/** Modalities of objects without image pixels: shown with an icon, not a thumbnail. */
export const NON_IMAGE = new Set(['SR', 'PR', 'KO', 'RTSTRUCT', 'RTPLAN', 'RTRECORD', 'DOC', 'REG',
  'FID', 'AU', 'ECG', 'HD', 'PLAN', 'RWV']);

/**
 * Nodes of an answer of `browse`: [{level, key, data, parent, children}].
 * Keys are 'p:<patient_key>', 's:<study_key>', 'x:<series_id>'.
 */
export function buildTree(res) {
  return res.patients.map((p) => {
    const pn = { level: 'patient', key: `p:${p.patient_key}`, data: p, parent: null, children: [] };
    pn.children = p.studies.map((st) => {
      const sn = { level: 'study', key: `s:${st.study_key}`, data: st, parent: pn, children: [] };
      sn.children = st.series.map((se) => ({ level: 'series', key: `x:${se.series_id}`, data: se, parent: sn, children: [] }));
      return sn;
    });
    return pn;
  });
}

function sortValue(node, col) {
  const f = SORTS[col][node.level];
  if (f) return node.data[f] == null ? '' : String(node.data[f]);
  return node.children.length ? sortValue(node.children[0], col) : '';
}

const collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });

/** Sort `nodes` (and their children, recursively) in place by column `col`; dir 1 or -1. */
export function sortTree(nodes, col, dir) {
  if (!col || !SORTS[col]) return nodes;
  for (const n of nodes) sortTree(n.children, col, dir);
  // stable: equal values keep the server's order (study date, newest first)
  nodes.sort((a, b) => {
    const va = sortValue(a, col), vb = sortValue(b, col);
    if (!va !== !vb) return va ? -1 : 1;                 // empty values last, either direction
    return dir * collator.compare(va, vb);
  });
  return nodes;
}

/** Depth-first list of every node. */
export function flatten(nodes, out = []) {
  for (const n of nodes) { out.push(n); flatten(n.children, out); }
  return out;
}
