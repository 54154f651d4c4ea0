"""The object and spatial parts of a noun phrase (rules in :mod:`~.decoupling_rules`)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

from .word_classes import (
    CAT,
    CONJ,
    GLUE,
    LOC,
    NOT_CONTENT,
    OF,
    SPACE,
    TRAILING_JUNK,
    TRANSPARENT,
    TokenSpan,
    Unit,
)


def trim(units: Sequence[Unit], start: int, end: int,
          junk: frozenset = TRAILING_JUNK) -> TokenSpan:
    """Unit range [start, end) without leading / trailing units of ``junk``."""
    while start < end and units[start].cls in NOT_CONTENT:
        start += 1
    while end > start and units[end - 1].cls in junk:
        end -= 1
    return start, end

def location_run_end(units: Sequence[Unit], start: int) -> int:
    """End of the run of location words from ``start`` (``upper left``, ``top and left``)."""
    end = start
    while end < len(units):
        cls = units[end].cls
        joins_locations = cls == CONJ and end + 1 < len(units) and units[end + 1].cls == LOC
        if cls not in (LOC, GLUE, SPACE) and not joins_locations:
            break
        end += 1
    while end > start and units[end - 1].cls != LOC:
        end -= 1
    return end

def nominal_spans(units: List[Unit]) -> Tuple[TokenSpan | None, List[TokenSpan]]:
    """Object unit range (or None) and spatial unit ranges of a noun phrase."""
    spatial: List[TokenSpan] = []
    size = len(units)
    start = 0
    while start < size and units[start].cls in NOT_CONTENT:
        start += 1
    lead_end = location_run_end(units, start)
    if lead_end > start:
        after = lead_end
        while after < size and units[after].cls in TRANSPARENT:
            after += 1
        if after == size or units[after].cls == OF:
            return None, [trim(units, start, size)]
        spatial.append((start, lead_end))
        start = after
    of_index = next((i for i in range(start, size) if units[i].cls == OF), size)
    tail = of_index
    while tail > start and units[tail - 1].cls in (LOC, GLUE, SPACE):
        tail -= 1
    tail_start, _ = trim(units, tail, of_index, junk=frozenset())
    has_tail = any(units[i].cls == LOC for i in range(tail_start, of_index))
    obj_end = size
    if has_tail and tail_start > start:
        spatial.append(trim(units, tail_start, size if of_index < size else of_index))
        obj_end = tail_start
    obj_start, obj_end = trim(units, start, obj_end)
    if obj_end <= obj_start:
        return None, spatial
    index = obj_start
    while index < obj_end:  # location words between attributes: also spatial
        if units[index].cls == LOC:
            run_end = min(location_run_end(units, index), obj_end)
            spatial.append((index, run_end))
            index = run_end
        else:
            index += 1
    return (obj_start, obj_end), spatial

def category_of(units: Sequence[Unit]) -> str | None:
    """Canonical category of the last category term before the first ``of`` (else after)."""
    of_index = next((i for i, u in enumerate(units) if u.cls == OF), len(units))
    for part in (units[:of_index], units[of_index:]):
        found = [unit.category for unit in part if unit.cls == CAT]
        if found:
            return found[-1]
    return None
