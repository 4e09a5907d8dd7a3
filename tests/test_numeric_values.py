"""``records.numeric_values`` (on the hot path of ``series_files`` and the export) against
a plain NumPy reading of the same head rows: missing values (NaN) become None, one value a
float, several a list with None where missing."""
from __future__ import annotations

import numpy as np
import pytest

from pocketpacs.archive import records
from pocketpacs.dicom import tags


def reference(row) -> dict:
    out = {}
    for kw in records.NUMERIC_KEYWORDS:
        k = tags.INDEX[kw]
        c, n = int(tags.NUM_START[k]), int(tags.NUM_COUNT[k])
        vals = row["nums"][c:c + n]
        if np.isnan(vals).all():
            out[kw] = None
        elif n == 1:
            out[kw] = float(vals[0])
        else:
            out[kw] = [None if np.isnan(v) else float(v) for v in vals]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numeric_values_equal_the_numpy_reading(dtype):
    width = max(int(tags.NUM_START[tags.INDEX[k]] + tags.NUM_COUNT[tags.INDEX[k]]) for k in records.NUMERIC_KEYWORDS)
    rows = np.zeros(200, dtype=[("nums", dtype, (width,))])
    rng = np.random.default_rng(7)
    v = rng.normal(scale=1e3, size=(200, width))
    v[rng.random((200, width)) < 0.4] = np.nan
    v[0] = np.nan                      # nothing known
    v[1] = -0.0                        # every value known, some zero
    rows["nums"] = v
    multi = [kw for kw in records.NUMERIC_KEYWORDS if tags.NUM_COUNT[tags.INDEX[kw]] > 1]
    assert multi, "a keyword with several values (e.g. ImagePositionPatient) is read"
    for row in rows:
        got = records.numeric_values(row)
        assert got == reference(row)
        assert all(type(x) is float for x in got.values() if x is not None and not isinstance(x, list))
    assert all(x is None for x in records.numeric_values(rows[0]).values())
