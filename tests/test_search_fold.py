"""The search's shortcuts at scale (issue 16): folding ASCII text takes a fast path
that must equal the full Unicode fold, and the folded patient names a search keeps
between queries give the same order as folding afresh."""
from __future__ import annotations

import string
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

import pocketpacs
from pocketpacs import synth
from pocketpacs.archive import query


def full_fold(s: str) -> str:
    d = unicodedata.normalize("NFKD", s)
    return "".join(c for c in d if not unicodedata.combining(c)).translate(query._BASE_LETTERS).casefold()


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_equals_the_full_fold(s):
    assert query.fold(s) == full_fold(s)


def test_every_ascii_character():
    s = "".join(map(chr, range(128))) + string.ascii_letters
    assert query.fold(s) == full_fold(s)
    assert query.fold("Ødegård MÜLLER") == "odegard muller"


def test_kept_folded_names_sort_as_afresh(tmp_path):
    synth.generate(tmp_path / "src", patients=6, studies=2, series=1, slices=2, rows=8, cols=8, enhanced=0, junk=0)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        ar.import_folder(tmp_path / "src")
        for sort in query.SORTS:
            first = [h.study.key for h in ar.search(sort=sort)]
            again = ar.search(sort=sort)          # with the names folded by the first search
            assert [h.study.key for h in again] == first
            hits = list(again.hits)
            query.sort_hits(hits, sort)           # folded afresh
            assert [h.study.key for h in hits] == first
            assert len(first) == 12


def test_kept_hits_are_reused_until_the_archive_changes(tmp_path):
    synth.generate(tmp_path / "a", patients=2, studies=2, series=1, slices=2, rows=8, cols=8, enhanced=0, junk=0)
    synth.generate(tmp_path / "b", patients=1, studies=1, series=1, slices=2, rows=8, cols=8, enhanced=0, junk=0,
                   seed=7)
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        ar.import_folder(tmp_path / "a")
        first, again = ar.search(), ar.search(sort="name")
        assert len(first) == 4
        assert {id(h) for h in first} == {id(h) for h in again}   # no Hit built twice
        ar.import_folder(tmp_path / "b")                           # a new generation: records read afresh
        after = ar.search()
        assert len(after) == 5
        assert not {id(h) for h in after} & {id(h) for h in first}
        assert [h.study.key for h in ar.search(level="series")] == [h.study.key for h in after]
