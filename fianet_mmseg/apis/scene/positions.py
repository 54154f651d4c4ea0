"""The expression at the scale of the scene: position phrases applied to its objects.

``--position`` modes:

* ``scene`` (default for scenes of more than one window): every window is
  conditioned on the expression **without its position phrases** (the object
  phrase and its attributes: "the gray storage tank on the lower left" ->
  "the gray storage tank"); the position phrases are then applied to the
  connected components of the scene's mask (:func:`select_components`).
  An expression without an object phrase is an error here.
* ``window``: every window gets the whole expression (the reference's
  semantics, per window: "on the lower left" of each window); no selection.
* ``ignore``: windows get the expression without its position phrases, and
  understood position phrases are dropped: every object that matches.

Phrases come from :class:`~fianet_mmseg.text.TextDecoupler`. The window text is
the expression with the spans of the **understood** position phrases (below)
cut out, spaces collapsed and a dangling copula or relative word at either
end removed (``On the left is a storage tank`` -> ``a storage tank``);
relations to other objects stay in it (``the tank next to the road on the
left`` -> ``the tank next to the road``), each window reading them in its own
context.

Rules of ``scene`` mode. A position phrase is **understood** when each of its
words is a direction word, a centre or corner word, or a filler word below;
any other word (a landmark, "next to", "above the bridge", "between") makes it
a relation to another object, which the scene cannot resolve: it is reported
as unresolved and not applied. Words:

* left: ``left, leftmost, left-most, left-hand, west, western, westernmost``;
  right: ``right, rightmost, right-most, right-hand, east, eastern,
  easternmost``;
* top: ``top, upper, uppermost, topmost, top-most, upmost, north, northern,
  northernmost``; bottom: ``bottom, lower, lowermost, bottommost, bottom-most,
  lowest, south, southern, southernmost``;
* both: ``northeast, northwest, southeast, southwest`` (also hyphenated, and
  ``northeastern`` ...);
* centre: ``middle, center, centre, central, centered, centred, middlemost``;
  corner: ``corner, corners``;
* fillers: :data:`FILLER_WORDS` (``on, in, at, the, of, side, edge, part,
  image, scene, located, parked`` ...).

Not understood (relations, or depth the image does not show): ``front, rear,
inner, outer, closest, nearest, farthest`` and every preposition other than
the fillers (``next to, near, above, below, between, along`` ...).

The understood phrases give a target point in the scene, ``(u, v)`` with
``u`` from 0 (left edge) to 1 (right edge) and ``v`` from 0 (top) to 1
(bottom), on the raster's pixel grid (north-up rasters: as a map shows
them): a direction sets its axis to 0 or 1; a centre word sets the axes no
direction set to 0.5 ("in the middle" -> the centre, "middle left" ->
``(0, 0.5)``); ``corner`` alone -> the nearest of the four corners. Two
phrases that set one axis to different ends contradict each other: the later
is reported and not applied. Each component's centroid ``(u, v)`` (mean pixel
centre over the raster's width and height) is scored by its distance to the
target over the axes set (so "on the left" -> the smallest ``u``, "on the
lower left" -> nearest the lower-left corner); the best component is
selected, with any other within :data:`TIE` (2% of the scene) of its score.
Components smaller than ``min_area`` never compete. Plurals are not read
("the tanks on the left" selects the leftmost one and its ties).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

POSITION_MODES = ('scene', 'window', 'ignore')
#: Components within this distance (share of the scene) of the best score are selected too.
TIE = 0.02

_LEFT = ('left', 'leftmost', 'left-most', 'left-hand', 'west', 'western', 'westernmost')
_RIGHT = ('right', 'rightmost', 'right-most', 'right-hand', 'east', 'eastern', 'easternmost')
_TOP = ('top', 'upper', 'uppermost', 'topmost', 'top-most', 'upmost', 'north', 'northern',
        'northernmost')
_BOTTOM = ('bottom', 'lower', 'lowermost', 'bottommost', 'bottom-most', 'lowest', 'south',
           'southern', 'southernmost')
_CORNERS = {'northeast': (1.0, 0.0), 'northwest': (0.0, 0.0), 'southeast': (1.0, 1.0),
            'southwest': (0.0, 1.0)}
_DIAGONAL = {form: target for word, target in _CORNERS.items()
             for form in (word, word + 'ern', word.replace('th', 'th-', 1),
                          word.replace('th', 'th-', 1) + 'ern')}
#: word -> (u, v) it sets (None: not that axis).
DIRECTION_WORDS = {
    **{word: (0.0, None) for word in _LEFT}, **{word: (1.0, None) for word in _RIGHT},
    **{word: (None, 0.0) for word in _TOP}, **{word: (None, 1.0) for word in _BOTTOM},
    **_DIAGONAL,
}
CENTRE_WORDS = frozenset({'middle', 'center', 'centre', 'central', 'centered', 'centred',
                          'middlemost'})
CORNER_WORDS = frozenset({'corner', 'corners'})
FILLER_WORDS = frozenset({
    'on', 'in', 'at', 'to', 'toward', 'towards', 'of', 'the', 'a', 'an', 'and', 'this', 'its',
    'side', 'sides', 'edge', 'edges', 'border', 'margin', 'part', 'portion', 'area', 'region',
    'half',
    'image', 'picture', 'photo', 'photograph', 'scene', 'map', 'view', 'frame',
    'far', 'very', 'most', 'located', 'situated', 'placed', 'positioned', 'lying', 'parked',
    'standing', 'sitting'})
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
_JUNK = frozenset({'is', 'are', 'was', 'were', 'which', 'that', 'who', 'and', 'or', 'there',
                   'located', 'situated', 'lies', 'sits', 'stands'})


@dataclass
class PositionRule:
    """The target of the understood position phrases (see the module)."""

    phrases: List[str] = field(default_factory=list)
    u: Optional[float] = None
    v: Optional[float] = None
    corner: bool = False
    centre: bool = False

    @property
    def active(self) -> bool:
        return self.u is not None or self.v is not None or self.corner

    def describe(self) -> str:
        if self.u is None and self.v is None:
            return 'nearest a corner of the scene' if self.active else 'none'
        axes = []
        if self.u is not None:
            axes.append(f'u={self.u:g}')
        if self.v is not None:
            axes.append(f'v={self.v:g}')
        return f'nearest ({", ".join(axes)}) (u: 0 left .. 1 right, v: 0 top .. 1 bottom)'


def parse_positions(phrases: Sequence[str]) -> Tuple[PositionRule, List[str]]:
    """``(rule of the understood phrases, [unresolved phrase: reason, ...])``."""
    rule = PositionRule()
    unresolved = []
    for phrase in phrases:
        words = _WORD.findall(phrase.lower())
        unknown = [w for w in words if w not in DIRECTION_WORDS and w not in CENTRE_WORDS
                   and w not in CORNER_WORDS and w not in FILLER_WORDS]
        if unknown:
            unresolved.append(f'{phrase!r}: a relation to another object '
                              f'({", ".join(unknown)}), not a place in the scene')
            continue
        u = v = None
        for word in words:
            du, dv = DIRECTION_WORDS.get(word, (None, None))
            u = du if du is not None else u
            v = dv if dv is not None else v
        if (u is not None and rule.u is not None and u != rule.u) or \
                (v is not None and rule.v is not None and v != rule.v):
            unresolved.append(f'{phrase!r}: contradicts {"; ".join(rule.phrases)!r}')
            continue
        rule.u = u if u is not None else rule.u
        rule.v = v if v is not None else rule.v
        rule.corner |= any(w in CORNER_WORDS for w in words)
        rule.centre |= any(w in CENTRE_WORDS for w in words)
        if u is not None or v is not None or any(w in CORNER_WORDS or w in CENTRE_WORDS
                                                 for w in words):
            rule.phrases.append(phrase)
        else:
            unresolved.append(f'{phrase!r}: no direction, centre or corner word')
    if rule.centre:
        rule.u = 0.5 if rule.u is None else rule.u
        rule.v = 0.5 if rule.v is None else rule.v
    return rule, unresolved


@dataclass
class ExpressionParts:
    """An expression split for scene inference (see the module)."""

    expression: str
    window_expression: str  #: the expression without its understood position phrases
    object_phrase: Optional[str]
    position_phrases: List[str]  #: all spatial phrases of the decoupler
    category: Optional[str]
    rule: PositionRule  #: of the understood phrases
    unresolved: List[str]  #: phrases not applied at the scene's scale, with the reason


def strip_spans(expression: str, spans: Sequence[Tuple[int, int]]) -> str:
    """The expression without the character spans, spaces collapsed, junk words trimmed."""
    keep = [True] * len(expression)
    for start, end in spans:
        keep[start:end] = [False] * (end - start)
    text = ''.join(char if kept else ' ' for char, kept in zip(expression, keep))
    words = text.split()
    while words and words[-1].strip(',.;:').lower() in _JUNK | {''}:
        words.pop()
    while words and words[0].strip(',.;:').lower() in _JUNK | {''}:
        words.pop(0)
    return ' '.join(words).strip(' ,;:')


def split_expression(expression: str, decoupler) -> ExpressionParts:
    """Decouple ``expression``: its position rule and the window text of ``scene`` mode.

    The window text keeps the phrases the scene cannot resolve (relations such
    as "next to the road"): each window still reads them in its own context.
    """
    decoupled = decoupler(expression)
    spans = list(decoupled.spatial_spans)
    phrases = [expression[start:end] for start, end in spans]
    rule, unresolved = parse_positions(phrases)
    applied = [span for span, phrase in zip(spans, phrases) if phrase in rule.phrases]
    return ExpressionParts(expression=expression,
                           window_expression=strip_spans(expression, applied),
                           object_phrase=decoupled.object_phrase, position_phrases=phrases,
                           category=decoupled.category, rule=rule, unresolved=unresolved)


def score(rule: PositionRule, u: float, v: float) -> float:
    """Distance of a centroid ``(u, v)`` to the rule's target (smaller is better)."""
    if rule.u is None and rule.v is None:  # corner alone
        return min(math.hypot(u - cu, v - cv) for cu in (0.0, 1.0) for cv in (0.0, 1.0))
    du = 0.0 if rule.u is None else u - rule.u
    dv = 0.0 if rule.v is None else v - rule.v
    return math.hypot(du, dv)


def select_components(rule: PositionRule, centroids: Sequence[Tuple[float, float]],
                      eligible: Sequence[bool]) -> List[int]:
    """Indices of the components the rule selects (all eligible ones when it is inactive).

    Args:
        rule: From :func:`parse_positions`.
        centroids: ``(u, v)`` of each component (share of the scene's width / height).
        eligible: Per component, whether it may be selected (not below ``min_area``).
    """
    candidates = [i for i, ok in enumerate(eligible) if ok]
    if not rule.active or not candidates:
        return candidates
    scores = {i: score(rule, *centroids[i]) for i in candidates}
    best = min(scores.values())
    return [i for i in candidates if scores[i] <= best + TIE]
