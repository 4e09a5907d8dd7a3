"""Stack planning on plain per-frame arrays."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketpacs.images.affine import (GeometryError, affine_from, corner_distance,
                                      corner_voxels_world, lps_to_ras, normal_from_orientation)
from pocketpacs.images.resample import resample_z, shift_slices
from pocketpacs.images.stackplan import FrameTable
from pocketpacs.images.stacksplit import plan_series

AX = [1, 0, 0, 0, 1, 0]
COR = [1, 0, 0, 0, 0, -1]
SAG = [0, 1, 0, 0, 0, -1]


def table(positions, iop=AX, ps=(0.5, 0.7), rows=8, cols=6, **kw):
    n = len(positions)
    return FrameTable(file=np.arange(n), frame=np.zeros(n), position=np.array(positions, float),
                      orientation=np.tile(np.array(iop, float), (n, 1)) if np.ndim(iop) == 1
                      else np.array(iop, float),
                      pixel_spacing=np.tile(ps, (n, 1)), rows=np.full(n, rows),
                      cols=np.full(n, cols), **kw)


def stack_positions(iop, n=10, step=2.5, origin=(10.0, -20.0, 30.0)):
    nrm = normal_from_orientation(iop)
    return [np.array(origin) + k * step * nrm for k in range(n)]


@pytest.mark.parametrize("iop", [AX, COR, SAG, [0.9848, 0.1736, 0, -0.1736, 0.9848, 0]])
def test_shuffled_stack_sorted_along_normal(iop):
    pos = stack_positions(iop)
    perm = np.random.default_rng(0).permutation(len(pos))
    ft = table([pos[i] for i in perm], iop=iop, instance=perm[::-1].astype(float))
    plans, rep = plan_series(ft)
    assert len(plans) == 1
    p = plans[0]
    assert p.kind == "volume" and p.shape == (10, 8, 6)
    # slice k is the frame at position k
    np.testing.assert_array_equal(perm[p.frames[0]], np.arange(10))
    # the affine puts voxel (0, 0, k) at position k and column steps along the row cosines
    for k in (0, 9):
        np.testing.assert_allclose(p.affine_lps @ [0, 0, k, 1], np.r_[pos[k], 1], atol=1e-9)
    np.testing.assert_allclose(p.affine_lps[:3, 0], np.array(iop[:3]) * 0.7, atol=1e-9)
    np.testing.assert_allclose(p.affine_lps[:3, 1], np.array(iop[3:]) * 0.5, atol=1e-9)
    assert p.spacing == pytest.approx((0.7, 0.5, 2.5))
    s = rep.stacks[0].slice_spacing_mm
    assert s["uniform"] and s["median"] == pytest.approx(2.5)
    json.loads(rep.to_json())


def test_localizer_is_split_off_and_explained():
    pos = stack_positions(AX, 6)
    loc = [np.array([0.0, 0.0, 0.0])]
    n = 7
    iops = np.array([AX] * 6 + [COR], float)
    ft = table(pos + loc, iop=iops, image_type=["ORIGINAL\\PRIMARY\\AXIAL"] * 6
               + ["ORIGINAL\\PRIMARY\\LOCALIZER"])
    assert ft.n == n
    plans, rep = plan_series(ft)
    assert [p.shape[0] for p in plans] == [6, 1]
    assert "localizer" in rep.split_by and "orientation" in rep.split_by
    assert rep.stacks[1].key["localizer"] is True
    assert any("split into 2 stacks" in x for x in rep.notes)


def test_missing_slice_is_reported_and_resampled():
    pos = stack_positions(AX, 10)
    del pos[4]
    plans, rep = plan_series(table(pos))
    st_ = rep.stacks[0]
    assert st_.gaps == [{"after_slice": 3, "step_mm": 5.0, "missing_slices": 1}]
    assert plans[0].shape[0] == 10 and "resampled" in st_.spacing_action
    kept, _ = plan_series(table(pos), spacing="keep")
    assert kept[0].shape[0] == 9 and kept[0].report.spacing_action.startswith("kept")
    # resampled grid: linear interpolation fills the missing slice
    arr = np.arange(9, dtype=np.float32)[:, None, None] * np.ones((9, 8, 6), np.float32)
    out = resample_z(arr, plans[0].z_source, plans[0].z_target)
    assert out.shape[0] == 10 and out[4, 0, 0] == pytest.approx(3.5)


def test_duplicates_keep_first_by_instance():
    pos = stack_positions(AX, 5)
    ft = table(pos + [pos[2]], instance=np.array([1, 2, 3, 4, 5, 0], float))
    plans, rep = plan_series(ft)
    assert plans[0].shape[0] == 5
    d = rep.stacks[0].duplicates
    assert d == [{"slice": 2, "kept_frame": 5, "dropped_frames": [2]}]
    assert rep.stacks[0].dropped_frames == 1


def test_repeated_positions_make_4d():
    pos = stack_positions(AX, 4)
    allpos = pos * 3
    tpos = np.repeat([1.0, 2.0, 3.0], 4)
    perm = np.random.default_rng(1).permutation(12)
    ft = table([allpos[i] for i in perm], temporal=tpos[perm])
    plans, rep = plan_series(ft)
    p = plans[0]
    assert p.shape == (3, 4, 8, 6)
    assert rep.stacks[0].n_volumes == 3 and rep.stacks[0].fourth_axis == "temporal position"
    np.testing.assert_array_equal(tpos[perm][p.frames], np.repeat([[1.0], [2.0], [3.0]], 4, 1))


def test_echoes_are_separate_stacks():
    pos = stack_positions(AX, 4)
    ft = table(pos * 2, echo=np.repeat([1.0, 2.0], 4))
    plans, rep = plan_series(ft)
    assert [p.shape for p in plans] == [(4, 8, 6), (4, 8, 6)]
    assert rep.split_by == ["echo"]


def test_acquisitions_with_unequal_repeats_are_split():
    a = stack_positions(AX, 5)
    b = stack_positions(AX, 3)
    ft = table(a + b, acquisition=np.array([1.0] * 5 + [2.0] * 3))
    plans, rep = plan_series(ft)
    assert sorted(p.shape[0] for p in plans) == [3, 5]
    assert all("acquisition" in s.split_by for s in rep.stacks)


@pytest.mark.parametrize("tilt_deg", [15.0, -20.0])
def test_gantry_tilt_resampled_or_sheared(tilt_deg):
    n, step = 6, 3.0
    t = np.tan(np.radians(tilt_deg))
    pos = [np.array([0.0, k * step * t, k * step]) for k in range(n)]  # y shifts along the stack
    plans, rep = plan_series(table(pos, ps=(1.0, 1.0)))
    p = plans[0]
    s = rep.stacks[0]
    assert s.tilt_deg == pytest.approx(abs(tilt_deg), abs=1e-3)
    assert s.tilt_action == "resampled"
    np.testing.assert_allclose(p.affine_lps[:3, 2], [0, 0, step], atol=1e-9)
    # out[r, c] = src[r - d_row, c - d_col]: row shift cancels the y offset
    np.testing.assert_allclose(p.in_plane_shift[:, 1], -np.arange(n) * step * t, atol=1e-9)
    sh, rep2 = plan_series(table(pos, ps=(1.0, 1.0)), tilt="shear")
    assert rep2.stacks[0].tilt_action == "sheared" and sh[0].in_plane_shift is None
    np.testing.assert_allclose(sh[0].affine_lps[:3, 2], [0, step * t, step], atol=1e-9)


def test_shift_slices_moves_content():
    arr = np.zeros((2, 5, 5), np.int16)
    arr[:, 2, 2] = 100
    shift_slices(arr, np.array([[0.0, 0.0], [1.0, -1.0]]), fill=0)
    assert arr[0, 2, 2] == 100 and arr[1, 1, 3] == 100 and arr[1, 2, 2] == 0


def test_frames_without_geometry_are_a_sequence():
    n = 5
    ft = FrameTable(file=np.zeros(n), frame=np.arange(n)[::-1], position=np.full((n, 3), np.nan),
                    orientation=np.full((n, 6), np.nan), pixel_spacing=np.full((n, 2), np.nan),
                    rows=np.full(n, 4), cols=np.full(n, 4))
    plans, rep = plan_series(ft)
    assert plans[0].kind == "sequence" and plans[0].frames[0].tolist() == [4, 3, 2, 1, 0]
    assert "Image Position" in rep.stacks[0].why_sequence
    assert any("uncalibrated (measured in px)" in x for x in rep.stacks[0].notes)


def test_policy_names_checked():
    with pytest.raises(GeometryError):
        plan_series(table(stack_positions(AX, 2)), tilt="bogus")


def test_ras_affine_and_corners():
    a = affine_from(AX, [1, 2, 3], [0.5, 0.25], [0, 0, 2])
    np.testing.assert_allclose(lps_to_ras(a)[:3, 3], [-1, -2, 3])
    c = corner_voxels_world(a, (4, 2, 3))
    assert corner_distance(c, c[::-1]) == 0.0
    assert corner_distance(c, c + [0, 0, 0.05]) == pytest.approx(0.05)


@settings(max_examples=30, deadline=None)
@given(st.floats(-np.pi, np.pi), st.floats(-np.pi / 2, np.pi / 2), st.floats(-np.pi, np.pi),
       st.floats(0.3, 5.0), st.integers(2, 12))
def test_random_rotations_give_consistent_grid(a, b, c, step, n):
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    Rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    Ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    Rx = np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    Rm = Rz @ Ry @ Rx
    iop = np.r_[Rm[:, 0], Rm[:, 1]]
    pos = stack_positions(iop, n, step)
    perm = np.random.default_rng(n).permutation(n)
    plans, rep = plan_series(table([pos[i] for i in perm], iop=iop))
    p = plans[0]
    assert p.shape[0] == n and rep.stacks[0].tilt_action == "none"
    for k in range(n):
        np.testing.assert_allclose((p.affine_lps @ [0, 0, k, 1])[:3], pos[k], atol=1e-6)
