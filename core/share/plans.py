"""Rewrite plans: the byte-level de-identification worked out once per file structure.

The files of a series mostly share one structure: the same elements (tag and
VR) in the same sequences and items, only their values differ.  What the
profile does to each element depends on its tag and VR alone, so
:func:`make_plan` decides once for a structure (the rows of an element table,
:mod:`.elements`) and lists the operations that build the output: copy a run
of consecutive unchanged elements as one slice, put a constant (an emptied or
dummy element, the de-identification records), replace the UIDs or shift the
dates of one element, rebuild a sequence from its items' operations, and the
slots of the pseudonymous patient name and ID.  :func:`run_plan` applies them
to a file of that structure.  Structures whose outcome depends on values
(private elements kept by the Retain Safe Private option, text cleaned by the
Clean Descriptors option) or that the profile refuses get no plan (None): the
rewriter's general walk handles them.  Both give the same bytes
(``tests/test_share_plans.py``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .elements import NotRewritable, children, sequence, vr_of

COPY, CONST, UID, SHIFT, SEQ, SLOT = range(6)
#: What the profile does to an element, by tag and VR (:meth:`.rewrite.ByteRewriter._decide`)
KEEP, DROP, EMPTY, DUMMY, NEW_UID, SHIFT_DATES, ITEMS, CLEAN_ITEMS, SCRUB, CREATOR, PRIVATE = range(11)
_CHARSET, _SOP_CLASS, _SOP_INSTANCE = 0x00080005, 0x00080016, 0x00080018
_PATIENT_NAME, _PATIENT_ID = 0x00100010, 0x00100020
_START, _END = 0, 3   # in the (start, value start, value end, end) rows run_plan is given


class _NoPlan(Exception):
    """The outcome depends on values: no plan for this structure."""


@dataclass(frozen=True)
class Plan:
    """What to do to a file of one structure.

    Attributes
    ----------
    ops : tuple
        The operations that give the data set, in the order of the output.
    lookups : tuple of (int, int, str)
        (tag, row, VR) of the top-level elements the rewriter reads values of (character
        set, burned-in text, identity, patient name and ID).
    name_at, id_at, sop_class_at, sop_instance_at : int
        Where in the output the patient name and ID go, and the pieces holding the SOP
        Class and SOP Instance UIDs.
    rows : ndarray of intp
        The rows of the element table the plan reads (the rows in ``ops`` and ``lookups``
        are positions in this array).
    """
    ops: tuple
    lookups: tuple
    name_at: int
    id_at: int
    sop_class_at: int
    sop_instance_at: int
    rows: Any = None


def make_plan(rw: Any, table: Any, n: int, implicit: bool, wanted: frozenset[int]) -> Plan | None:
    """The plan of a structure, or None when the general walk must handle it.

    Parameters
    ----------
    rw : pocketpacs.share.rewrite.ByteRewriter
        Its decisions, constants and records are used.
    table : ndarray
        The element table of a file (:func:`.elements.index_table`).
    n : int
        Its rows in use.
    implicit : bool
    wanted : frozenset of int
        Top-level tags whose rows the rewriter reads values of.

    Returns
    -------
    Plan or None
    """
    rows = table[:n].tolist()
    kids = children(table, n)
    try:
        top = _level(rw, rows, kids, kids[-1], implicit)
    except (_NoPlan, NotRewritable):
        return None
    extra = [(_PATIENT_NAME, (SLOT,)), (_PATIENT_ID, (SLOT,))] + [(t, (CONST, b)) for t, b in rw._record(implicit)]
    replaced = {t for t, _ in extra}
    out = sorted([p for p in top if p[0] not in replaced] + extra, key=lambda p: p[0])
    ops, tags = _merged(out, rows)
    if _SOP_CLASS not in tags or _SOP_INSTANCE not in tags:
        return None
    lookups = [(rows[r][0], r, vr_of(rows[r][0], rows[r][1], implicit)) for r in kids[-1] if rows[r][0] in wanted]
    # the rows the plan reads, renumbered: a file's offsets are then taken for those rows only
    used = sorted(set(_rows_of(ops)) | {r for _t, r, _vr in lookups})
    at = {r: i for i, r in enumerate(used)}
    return Plan(_renumbered(tuple(ops), at), tuple((t, at[r], vr) for t, r, vr in lookups), tags.index(_PATIENT_NAME),
                tags.index(_PATIENT_ID), tags.index(_SOP_CLASS), tags.index(_SOP_INSTANCE),
                np.array(used, dtype=np.intp))


def _rows_of(ops: Any) -> Iterator[int]:
    """The table rows the operations read offsets of."""
    for op in ops:
        if op[0] == COPY:
            yield op[1]
            yield op[2]
        elif op[0] == UID or op[0] == SHIFT:
            yield op[1]
        elif op[0] == SEQ:
            for item in op[2]:
                yield from _rows_of(item)


def _renumbered(ops: tuple, at: dict[int, int]) -> tuple:
    """The operations with their rows renumbered by ``at``."""
    out = []
    for op in ops:
        if op[0] == COPY:
            op = (COPY, at[op[1]], at[op[2]])
        elif op[0] == UID or op[0] == SHIFT:
            op = (op[0], at[op[1]], *op[2:])
        elif op[0] == SEQ:
            op = (SEQ, op[1], tuple(_renumbered(item, at) for item in op[2]))
        out.append(op)
    return tuple(out)


def _level(rw: Any, rows: list, kids: dict[int, list[int]], level: list[int], implicit: bool) -> list[tuple]:
    """(tag, operation) of each element of a data set or item that the profile keeps or writes."""
    out: list[tuple] = []
    for r in level:
        tag, code = rows[r][0], rows[r][1]
        vr = vr_of(tag, code, implicit)
        d, _action = rw._decisions.get((tag, vr)) or rw._decide(tag, vr)
        if d == KEEP:
            out.append((tag, (COPY, r, r)))
        elif d == DROP:
            continue
        elif d == CREATOR or d == PRIVATE:
            if rw._safe_private:
                raise _NoPlan  # kept or not by the creator's value
        elif d == EMPTY or d == DUMMY:
            out.append((tag, (CONST, rw._constant(tag, vr, implicit, d))))
        elif d == NEW_UID:
            out.append((tag, (UID, r, tag, vr)))
        elif d == SHIFT_DATES:
            out.append((tag, (SHIFT, r, tag, vr)))
        elif d == ITEMS or (d == CLEAN_ITEMS and not rw._clean_desc):
            items = []
            for it in kids.get(r, []):
                elems = kids.get(it, [])
                if any(rows[e][0] == _CHARSET for e in elems):
                    raise NotRewritable("a character set inside a sequence item")
                items.append(tuple(_merged(_level(rw, rows, kids, elems, implicit), rows)[0]))
            out.append((tag, (SEQ, tag, tuple(items))))
        else:  # text cleaned by value
            raise _NoPlan
    return out


def _merged(out: list[tuple], rows: list) -> tuple[list[tuple], list[int]]:
    """The operations with runs of copies of adjacent elements joined, and runs of constants
    (the SOP Class and Instance UIDs kept apart, as the rewriter reads them back), and the
    (last) tag of each."""
    ops: list[tuple] = []
    tags: list[int] = []
    for tag, op in out:
        if (op[0] == COPY and ops and ops[-1][0] == COPY and tag not in (_SOP_CLASS, _SOP_INSTANCE)
                and tags[-1] not in (_SOP_CLASS, _SOP_INSTANCE) and rows[ops[-1][2]][6] == rows[op[1]][3]):
            ops[-1] = (COPY, ops[-1][1], op[2])
            tags[-1] = tag
            continue
        if (op[0] == CONST and ops and ops[-1][0] == CONST and tag not in (_SOP_CLASS, _SOP_INSTANCE)
                and tags[-1] not in (_SOP_CLASS, _SOP_INSTANCE)):
            ops[-1] = (CONST, ops[-1][1] + op[1])  # adjacent constants: one piece
            tags[-1] = tag
            continue
        ops.append(op)
        tags.append(tag)
    return ops, tags


def run_plan(rw: Any, call: Any, ops: tuple, rows: list) -> list[Any]:
    """The pieces of a data set or item (bytes or memoryviews; None in the slots).

    Parameters
    ----------
    rw : pocketpacs.share.rewrite.ByteRewriter
    call : the rewriter's state of this file
    ops : tuple
        From a :class:`Plan`.
    rows : list
        (start, value start, value end, end) of each row of the file's element table that the
        plan reads (:attr:`Plan.rows`).

    Returns
    -------
    list
    """
    mv = call.mv
    out: list[Any] = []
    append = out.append
    for op in ops:
        kind = op[0]
        if kind == COPY:
            append(mv[rows[op[1]][_START]:rows[op[2]][_END]])
        elif kind == CONST:
            append(op[1])
        elif kind == UID:
            append(rw._uid(call, (op[2], op[3], *rows[op[1]])))
        elif kind == SHIFT:
            append(rw._shift(call, (op[2], op[3], *rows[op[1]])))
        elif kind == SEQ:
            append(sequence(op[1], [b"".join(run_plan(rw, call, item, rows)) for item in op[2]], call.implicit))
        else:
            append(None)
    return out
