"""``pocketpacs export`` / ``pocketpacs report`` and ``Archive.volume`` on a
synthetic archive: geometry and voxel values checked against the generator's
phantom, not against our own code."""
from __future__ import annotations

import json
import os
import stat

import nibabel as nib
import numpy as np
import pytest

from pocketpacs import cli, open_archive, synth


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("cliv")
    data = root / "data"
    man = synth.generate(data, patients=1, studies=1, series=2, slices=12, rows=40, cols=40,
                         seed=5, compressed_fraction=0.0, enhanced=0, junk=0)
    arch = root / "archive"
    # exit 1: manifest.json is reported as not DICOM; every image is indexed
    assert cli.main(["--archive", str(arch), "import", "--no-progress", str(data)]) == 1
    return arch, data, man


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _axial(man):
    return next(s for s in man["series"] if s["orientation"] == "axial")


def test_archive_volume_matches_phantom(archive):
    arch, _data, man = archive
    s = _axial(man)
    with open_archive(arch, readonly=True) as a:
        sv = a.volume(s["series_instance_uid"])
    vol = sv.volumes[0]
    assert vol.array.shape == (12, 40, 40)
    # voxel (col, row, k) -> LPS through the affine; the phantom gives the HU there
    k, r, c = np.meshgrid(np.arange(12), np.arange(40), np.arange(40), indexing="ij")
    ijk1 = np.stack([c.ravel(), r.ravel(), k.ravel(), np.ones(c.size)])
    lps = (vol.affine_lps @ ijk1)[:3].T.reshape(12, 40, 40, 3)
    np.testing.assert_array_equal(vol.array, synth.phantom_hu(lps))


def test_report_json_by_uid_and_by_path(archive, capsys):
    arch, data, man = archive
    s = _axial(man)
    rc, out, _ = run(capsys, "--archive", arch, "report", s["series_instance_uid"], "--json")
    assert rc == 0
    rep = json.loads(out)
    assert len(rep["stacks"]) == 1
    st = rep["stacks"][0]
    assert st["kind"] == "volume"
    folder = data / s["files"][0]
    rc, out, _ = run(capsys, "report", folder, "--json")  # a single file: no archive needed
    assert rc == 0 and json.loads(out)["stacks"][0]["kind"] in ("volume", "sequence")


def test_export_nifti_geometry(archive, tmp_path, capsys):
    arch, _data, man = archive
    s = _axial(man)
    out = tmp_path / "ax.nii.gz"
    rc, text, _ = run(capsys, "--archive", arch, "export", s["series_instance_uid"], out, "--json")
    assert rc == 0 and json.loads(text)["written"] == [str(out)]
    img = nib.load(str(out))
    data = np.asarray(img.dataobj)
    assert sorted(data.shape) == sorted((40, 40, 12))
    # every voxel centre in RAS world space holds the phantom's HU at that point
    ijk = np.indices(data.shape).reshape(3, -1)
    ras = (img.affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3].T
    lps = ras * np.array([-1, -1, 1])
    np.testing.assert_array_equal(data.reshape(-1), synth.phantom_hu(lps))


def test_export_png_window_and_errors(archive, tmp_path, capsys):
    arch, _data, man = archive
    s = _axial(man)
    out = tmp_path / "slice.png"
    rc, _, _ = run(capsys, "--archive", arch, "export", s["series_instance_uid"], out,
                   "--slice", 3, "--window", "40/400")
    assert rc == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, _, err = run(capsys, "--archive", arch, "export", s["series_instance_uid"], tmp_path / "x.txt")
    assert rc == 2 and "OUT must end" in err
    rc, _, err = run(capsys, "--archive", arch, "report", "1.2.3.999")
    assert rc == 2 and "neither an existing path nor a series" in err


def test_export_to_a_full_disk_says_which_file(archive, tmp_path, capsys):
    """``export`` to a full disk exited 4 without a word (issue 13): it names the file and the reason."""
    from conftest import require_system

    require_system(os.path.exists("/dev/full"), "/dev/full (a device whose writes fail with ENOSPC)")
    arch, _data, man = archive
    uid = _axial(man)["series_instance_uid"]
    for ext in ("nii", "nii.gz", "png"):
        out = tmp_path / f"full.{ext}"
        out.symlink_to("/dev/full")
        rc, text, err = run(capsys, "--archive", arch, "export", uid, out)
        assert rc == 4 and text == "", ext
        assert err == f"pocketpacs: {out}: no space left on device\n", ext


def test_export_creates_private_folders_and_files(archive, tmp_path, capsys):
    """Missing folders 0700, new files 0600, whatever the umask (issue 13; the README's promise)."""
    arch, _data, man = archive
    uid = _axial(man)["series_instance_uid"]
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    old = os.umask(0o022)
    try:
        nii = shared / "new" / "deeper" / "ax.nii.gz"
        rc, _, err = run(capsys, "--archive", arch, "export", uid, nii, "--report")
        assert rc == 0, err
        assert [stat.S_IMODE(p.stat().st_mode) for p in (shared / "new", nii.parent, nii)] == [0o700, 0o700, 0o600]
        png = shared / "other" / "slice.png"
        rc, _, err = run(capsys, "--archive", arch, "export", uid, png)
        assert rc == 0, err
        rc, _, err = run(capsys, "--archive", arch, "export", uid, shared / "here.nii")
        assert rc == 0, err
    finally:
        os.umask(old)
    mode = {p.relative_to(shared).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in shared.rglob("*")}
    assert mode == {"new": 0o700, "new/deeper": 0o700, "new/deeper/ax.nii.gz": 0o600,
                    "new/deeper/ax.json": 0o600, "other": 0o700, "other/slice.png": 0o600,
                    "here.nii": 0o600}
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # a folder that existed is left as it was
    assert nib.load(str(nii)).shape == (40, 40, 12) and png.read_bytes()[:4] == b"\x89PNG"
