"""The archive's tag table (``core/dicom/tags.py``) checked against pydicom's
data dictionary, so a keyword, tag or VR typed into the table cannot drift
from the standard."""
from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_keyword, dictionary_VR

from pocketpacs.dicom import tags


@pytest.mark.parametrize("spec", tags.TAGS, ids=[t.keyword for t in tags.TAGS])
def test_tag_keyword_and_vr_match_pydicom_dictionary(spec):
    assert dictionary_keyword(spec.tag) == spec.keyword
    assert dictionary_VR(spec.tag) == spec.vr


def test_numeric_tags_have_numeric_vrs_and_text_tags_none():
    for spec in tags.TAGS:
        if spec.nvals:
            assert spec.vr in tags.NUMERIC_VRS, spec.keyword
        else:
            assert spec.vr not in tags.NUMERIC_VRS, spec.keyword


def test_pixel_data_tag_is_pixel_data():
    assert dictionary_keyword(tags.PIXEL_DATA_TAG) == "PixelData"
