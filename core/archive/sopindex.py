"""The SOP index: SOP key -> series key of every archived instance.

An import asks it whether each new file's SOP Instance UID is archived
already (and under which series), and lookups by SOP Instance UID alone use
it.  Its keys are hashes, so the instances of one commit land on random
pages: once the index has more pages than a commit has new instances, every
commit rewrites nearly all of them, and a large import writes the whole
index again at every commit (at a million instances, 9,000 pages at each of
the last commits, held in memory until written: splitting the index took
50 MB off the import's peak RSS; its time did not change measurably).

So the index lives in two databases (schema 7):

- ``sop_recent`` takes the entries of new instances.  It is small, so a
  commit rewrites few pages of it.
- ``sop`` holds the rest.  When ``sop_recent`` reaches half of it (and at
  least :data:`MERGE_MIN` entries), :func:`merge_if_due` moves them over in
  one sorted pass, at the end of a commit: each page of ``sop`` is then
  rewritten once for many entries, not once per commit.

An entry is in one of the two, never both: :func:`remove` deletes it from
both, and :func:`add` is only called for SOPs that :func:`known` did not
find.  Lookups read ``sop_recent`` first.

An import into an empty archive keeps the SOP keys it archives in memory
(:class:`ImportSops`, two sorted arrays) and asks :func:`known` only about
the new files' keys that may be among them.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

MAIN = "sop"
RECENT = "sop_recent"
#: Fewest entries ``sop_recent`` must hold before a merge.
MERGE_MIN = 32_000
#: A merge happens when ``sop_recent`` holds at least ``sop``'s entries divided by this.
MERGE_RATIO = 2
#: Entries moved per ``putmulti`` call of a merge (bounds the memory it holds).
MERGE_BATCH = 50_000


def series_key(txn: Any, sopk: bytes) -> bytes | None:
    """The series key of the instance whose SOP key is ``sopk``, or None."""
    return txn.get(RECENT, sopk) or txn.get(MAIN, sopk)


class ImportSops:
    """The SOP keys an import has archived, kept across its transactions
    when the archive was empty at its first one: then no other SOP key is in
    the index, and :meth:`maybe` spares looking up in LMDB the new files'
    keys, which are almost all new (1.4 s of a million-file import's writer
    thread went to those lookups).

    Holds a superset of what the import archived (a rolled-back
    transaction's keys stay, which costs lookups, never a miss).  Valid only
    while the importer is the archive's only writer: ``begin`` (called by
    :class:`~pocketpacs.archive.record_changes.SeriesOwners` with whether
    the generation is the one its last commit left) turns it off for good
    otherwise.
    """

    def __init__(self) -> None:
        self.active: bool | None = None   # None: not decided (no transaction yet)
        self._drop()

    def _drop(self) -> None:
        import numpy as np

        # two sorted uint64 arrays: the keys kept, and those added since they were
        # merged (merged once the recent ones number a quarter of the others)
        self._kept = self._recent = np.zeros(0, dtype=np.uint64)

    def begin(self, txn: Any, same_writer: bool) -> None:
        """Start a write transaction (*same_writer*: nothing else wrote since
        the import's last one): the first decides, on an empty index, to keep
        the keys; a write by another turns it off."""
        if self.active is None:
            self.active = txn.count(MAIN) == 0 and txn.count(RECENT) == 0
        elif self.active and not same_writer:
            self.active = False
        if not self.active:
            self._drop()

    def maybe(self, hashes: Any) -> Any:
        """Which of the SOP hashes (uint64) may be archived (boolean array)."""
        import numpy as np

        out = np.zeros(hashes.size, dtype=bool)
        for arr in (self._kept, self._recent):
            if arr.size:
                out |= arr[np.minimum(np.searchsorted(arr, hashes), arr.size - 1)] == hashes
        return out

    def add(self, hashes: Any) -> None:
        """Keep the SOP hashes (uint64) a transaction archives."""
        import numpy as np

        # (sorted runs: the stable sort, a timsort, merges them in linear time)
        self._recent = np.sort(np.concatenate([self._recent, np.sort(hashes.astype(np.uint64))]), kind="stable")
        if self._recent.size > self._kept.size // 4:
            self._kept = np.sort(np.concatenate([self._kept, self._recent]), kind="stable")
            self._recent = self._recent[:0]


def known(txn: Any, sopks: list[bytes]) -> set[bytes]:
    """The SOP keys of ``sopks`` that the index holds."""
    found = txn.found(RECENT, sopks)
    rest = [k for k in sopks if k not in found] if found else sopks
    return found | txn.found(MAIN, rest) if rest else found


def add(txn: Any, items: Iterable[tuple[bytes, bytes]]) -> None:
    """Index new instances: ``(sop key, series key)`` pairs, sorted by SOP key,
    none of them in the index (see :func:`known`)."""
    txn.putmulti(RECENT, items)


def remove(txn: Any, sopk: bytes, sek: bytes | None = None) -> None:
    """Drop the entry of ``sopk`` (only where it names series ``sek``, when given)."""
    for db in (RECENT, MAIN):
        if sek is None or txn.get(db, sopk) == sek:
            txn.delete(db, sopk)


def entries(txn: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every ``(sop key, series key)`` entry (``sop_recent``'s, then ``sop``'s)."""
    yield from txn.range(RECENT)
    yield from txn.range(MAIN)


def merge_if_due(txn: Any) -> int:
    """Move ``sop_recent`` into ``sop`` when it has grown to half its size (and
    :data:`MERGE_MIN`); returns the number of entries moved (0: not due)."""
    n = txn.count(RECENT)
    if n < max(MERGE_MIN, txn.count(MAIN) // MERGE_RATIO):
        return 0
    items = txn.range(RECENT)
    while batch := list(itertools.islice(items, MERGE_BATCH)):
        txn.putmulti(MAIN, batch)
    txn.drop(RECENT)
    return n
