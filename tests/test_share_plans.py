"""Rewrite plans (issue 15): the planned rewrite gives the bytes of the element-by-element walk.

Every file of ``../shared/corpus`` and pydicom's bundled data sets goes through
two :class:`~pocketpacs.share.rewrite.ByteRewriter` of the same key and
options, one working out a plan per file structure (the default) and one
walking every file's elements (``plans=False``): the same output bytes,
warnings, refusals and reasons, for the Basic Profile and with options.
"""
from __future__ import annotations

import os

import pytest

from pocketpacs.share.deidentify import BurnedInRefused, Deidentifier
from pocketpacs.share.rewrite import ByteRewriter, NotRewritable
from pydicom_data import bundled_files

OPTION_SETS = [[], ["modified-dates", "patient-characteristics", "device-identity"], ["safe-private"],
               ["modified-dates", "clean-descriptors", "patient-characteristics", "device-identity", "safe-private"]]


def _outcome(rw: ByteRewriter, data: bytes, identity: str | None):
    try:
        return ("written",) + rw.rewrite(data, identity)
    except NotRewritable as e:
        return ("pydicom path", str(e))
    except BurnedInRefused as e:
        return ("refused", str(e))


@pytest.fixture(scope="module")
def files(corpus) -> list[bytes]:
    paths = sorted(os.path.join(d, f) for d, _, names in os.walk(corpus) for f in names)
    paths += bundled_files("**/*.dcm")
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


@pytest.mark.parametrize("options", OPTION_SETS, ids=["basic", "dates-characteristics-device", "safe-private",
                                                      "all-options"])
def test_planned_rewrite_equals_the_walk(files, options):
    key = b"\x07" * 32
    planned = ByteRewriter(Deidentifier(key, options, allow_burned_in=True))
    walked = ByteRewriter(Deidentifier(key, options, allow_burned_in=True), plans=False)
    kinds: dict[str, int] = {}
    for data in files:
        for identity in (None, "archive-patient:1"):
            a, b = _outcome(planned, data, identity), _outcome(walked, data, identity)
            assert a == b
            kinds[a[0]] = kinds.get(a[0], 0) + 1
    assert kinds["written"] > 800 and kinds["pydicom path"] > 0, kinds
    used = [p for p in planned._plans.values() if p is not None]
    assert used and all(p is None for p in walked._plans.values())
    if not options:  # the Basic Profile plans most structures
        assert len(used) > len(planned._plans) // 2


def test_refusals_come_first_as_in_the_walk(files):
    """Without allow_burned_in, images that may carry burned-in text are refused alike."""
    key = b"\x08" * 32
    planned = ByteRewriter(Deidentifier(key))
    walked = ByteRewriter(Deidentifier(key), plans=False)
    refused = 0
    for data in files:
        a, b = _outcome(planned, data, "p"), _outcome(walked, data, "p")
        assert a == b
        refused += a[0] == "refused"
    assert refused > 10


def test_files_of_one_structure_share_a_plan(files):
    """A second file of the same structure reuses the plan (same bytes again); the
    rewriter's output, a new structure, gets its own."""
    rw = ByteRewriter(Deidentifier(b"\x09" * 32, allow_burned_in=True))
    data = next(d for d in files if _outcome(rw, d, "p")[0] == "written")
    rw._plans.clear()
    first = rw.rewrite(data, "p")
    assert len(rw._plans) == 1
    assert rw.rewrite(data, "p") == first and len(rw._plans) == 1
    rw.rewrite(first[0], "p")
    assert len(rw._plans) == 2
