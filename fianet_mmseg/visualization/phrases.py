"""Where the decoupled phrases of an expression are: character spans and roles.

``DecoupleAndTokenize`` stores the object phrase and the spatial phrases as
substrings of the expression; the caption marks them by these spans.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

Span = Tuple[int, int]

# Character roles in the caption (bit flags).
PLAIN, OBJECT, SPATIAL = 0, 1, 2


def _occurrences(text: str, phrase: str) -> List[Span]:
    """All ``[start, end)`` spans where ``phrase`` occurs in ``text`` (case kept)."""
    return [(m.start(), m.start() + len(phrase)) for m in re.finditer(re.escape(phrase), text)]


def locate_phrases(expression: str, object_phrase: Optional[str] = None,
                   spatial_phrases: Sequence[str] = ()) -> Tuple[Optional[Span], List[Span]]:
    """Character spans of the decoupled phrases inside ``expression``.

    The phrases are substrings of the expression (``DecoupleAndTokenize``
    stores their text). Spatial phrases are matched in order, each after the
    previous one; the object phrase is its first occurrence outside every
    spatial span (else its first occurrence). Phrases not found are skipped.

    Returns:
        tuple: ``(object_span or None, [spatial_span, ...])``.
    """
    spatial: List[Span] = []
    cursor = 0
    for phrase in spatial_phrases or ():
        if not phrase:
            continue
        start = expression.find(phrase, cursor)
        if start < 0:
            start = expression.find(phrase)
        if start < 0:
            continue
        spatial.append((start, start + len(phrase)))
        cursor = start + len(phrase)
    object_span = None
    if object_phrase:
        found = _occurrences(expression, object_phrase)
        outside = [span for span in found
                   if not any(s <= span[0] and span[1] <= e for s, e in spatial)]
        candidates = outside or found
        object_span = candidates[0] if candidates else None
    return object_span, spatial


def char_roles(expression: str, object_span: Optional[Span],
                spatial_spans: Sequence[Span]) -> np.ndarray:
    """Role flags (``OBJECT`` | ``SPATIAL``) of every character, (len,) uint8."""
    roles = np.zeros(len(expression), dtype=np.uint8)
    if object_span is not None:
        roles[object_span[0]:object_span[1]] |= OBJECT
    for start, end in spatial_spans:
        roles[start:end] |= SPATIAL
    return roles


def role_runs(text: str, roles: Sequence[int]) -> List[Tuple[str, int]]:
    """Split ``text`` into maximal runs of equal role."""
    runs: List[Tuple[str, int]] = []
    for char, role in zip(text, roles):
        if runs and runs[-1][1] == role:
            runs[-1] = (runs[-1][0] + char, role)
        else:
            runs.append((char, int(role)))
    return runs
