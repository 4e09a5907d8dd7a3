"""Cine over time replays from the page's volume cache (issue 12, "4D"), headless Chromium.

A small 4D NIfTI (4 volumes, each with its own values) is opened with Open
Other on the served page and played over time twice through: every volume's
data is fetched from the server once (``/v1/volume/<id>/data?t=``, counted
from the page's requests), the second pass comes from the page's cache
(``viewer/loading.js`` ``VOLUME_CACHE_BYTES``), and the slice on screen after
each switch holds that volume's values.  Before, each time step fetched its
volume again.
"""
from __future__ import annotations

import collections
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

N_VOLUMES = 4


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import nibabel as nib

    import pocketpacs

    root = tmp_path_factory.mktemp("ui_volume_cache")
    pocketpacs.open_archive(root / "archive").close()
    data = np.zeros((12, 10, 6, N_VOLUMES), np.int16)         # (i, j, k, t)
    for t in range(N_VOLUMES):
        data[..., t] = (np.arange(12 * 10 * 6).reshape(12, 10, 6) % 50) + 100 * (t + 1)
    path = root / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    return {"archive": root / "archive", "nifti": path, "data": data}


@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 900, 640) as pg:
        yield pg


def test_cine_over_time_fetches_each_volume_once(page, built):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.click("#btn-other")
    page.fill("#path-input", os.fspath(built["nifti"]))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    d = S.dataset(page)
    vid, z = d["vid"], int(d["slice"])
    assert int(d["volumes"]) == N_VOLUMES
    page.evaluate("""() => {            // every volume switch, as the time slider shows it
      window.tSeen = [];
      const v = document.getElementById('view');
      new MutationObserver(() => {
        if (v.dataset.t !== window.tSeen[window.tSeen.length - 1]) window.tSeen.push(v.dataset.t);
      }).observe(v, { attributes: true, attributeFilter: ['data-t'] });
    }""")
    page.fill("#cine-fps", "20")
    page.click("#btn-time-play")
    # twice through: t = 1, 2, 3, 0, 1, 2, 3, 0
    S.wait_js(page, f"window.tSeen.length >= {2 * N_VOLUMES}")
    page.click("#btn-time-play")
    assert page.text_content("#btn-time-play") == "Play"
    fetched = collections.Counter()
    slices = collections.Counter()
    for url in requests:
        m = re.search(rf"/v1/volume/{re.escape(vid)}/(data|slice/\d+)(?:\?t=(\d+))?$", url)
        if m:
            (fetched if m.group(1) == "data" else slices)[int(m.group(2) or 0)] += 1
    assert fetched == {t: 1 for t in range(N_VOLUMES)}, (fetched, requests)
    assert all(n <= 1 for n in slices.values()), slices
    assert int(S.dataset(page)["cachedVolumes"]) == N_VOLUMES
    # the volume on screen (from the cache) is the one the overlay names, with its values
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    t = int(S.dataset(page)["tDrawn"])
    assert float(S.dataset(page)["tSum"]) == float(built["data"][:, :, z, t].sum())
    assert f"volume {t + 1} of {N_VOLUMES}" in page.text_content("#corner-bl")

