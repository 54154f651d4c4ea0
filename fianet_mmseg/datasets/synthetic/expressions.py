"""Referring expressions of synthetic objects: the cheapest attributes that single one out.

An expression names the category plus the fewest of colour, size and position
that make its object the only match in its image (positions: see
:func:`~.objects.region_of`).
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .objects import HORIZONTAL, VERTICAL, SceneObject


def _position_options(obj: SceneObject) -> List[Tuple[str, int | None, int | None]]:
    """Position phrases usable for an object: (kind, horizontal, vertical) regions named."""
    horizontal, vertical = obj.region
    options = []
    if horizontal in (0, 2):
        options.append(('side', horizontal, None))
    if vertical in (0, 2):
        options.append(('edge', None, vertical))
    if horizontal in (0, 2) and vertical in (0, 2):
        options.append(('corner', horizontal, vertical))
    if horizontal == 1 and vertical == 1:
        options.append(('center', 1, 1))
    return options


def _excluded(other: SceneObject, target: SceneObject, attributes: Sequence) -> bool:
    """Whether naming ``attributes`` of the target certainly rules out ``other``."""
    if other.category != target.category:
        return True
    for attribute in attributes:
        if attribute == 'colour' and other.colour != target.colour:
            return True
        if attribute == 'size' and other.size != target.size:
            return True
        if isinstance(attribute, tuple):
            for named, actual in zip(attribute[1:], other.region, strict=True):
                if named is not None and actual is not None and named != actual:
                    return True
    return False


def choose_attributes(target: SceneObject, others: Sequence[SceneObject],
                       rng: np.random.Generator,
                       position_preference: float = 0.0) -> list | None:
    """The cheapest set of attributes (besides the category) that leaves one match.

    Among equally cheap sets one is drawn at random; with probability
    ``position_preference`` the draw is only among those naming a position
    (when there are such sets).
    """
    optional = [['colour'], ['size'], _position_options(target)]
    candidates = []
    for use in itertools.product([False, True], repeat=3):
        choices = [options if chosen else [None] for options, chosen in
                   zip(optional, use, strict=True)]
        for combo in itertools.product(*choices):
            attributes = [a for a in combo if a is not None]
            if all(_excluded(other, target, attributes) for other in others):
                cost = len(attributes) + sum(0.5 for a in attributes
                                             if isinstance(a, tuple) and a[0] == 'corner')
                candidates.append((cost, attributes))
    if not candidates:
        return None
    best = min(cost for cost, _ in candidates)
    cheapest = [attributes for cost, attributes in candidates if cost == best]
    if position_preference > 0:
        with_position = [attributes for attributes in cheapest
                         if any(isinstance(a, tuple) for a in attributes)]
        if with_position and rng.random() < position_preference:
            cheapest = with_position
    return cheapest[int(rng.integers(len(cheapest)))]


def _position_phrase(position: tuple, rng: np.random.Generator) -> str:
    """Words for a position option, e.g. "on the upper left"."""
    kind, horizontal, vertical = position
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if kind == 'side':
        side = HORIZONTAL[horizontal]
        return pick([f'on the {side}', f'on the {side} side', f'at the {side}'])
    if kind == 'edge':
        edge = VERTICAL[vertical]
        return pick([f'at the {edge}', f'on the {edge}'])
    if kind == 'corner':
        side = HORIZONTAL[horizontal]
        upper = 'upper' if vertical == 0 else 'lower'
        top = VERTICAL[vertical]
        return pick([f'on the {upper} {side}', f'in the {upper} {side} corner',
                     f'at the {top} {side}'])
    return pick(['in the middle', 'in the center', 'in the middle of the image'])


def expression_text(target: SceneObject, attributes: list, rng: np.random.Generator) -> str:
    """Expression text, first letter upper-case as in the release."""
    words = []
    if 'size' in attributes:
        words.append(target.size)
    if 'colour' in attributes:
        words.append(target.colour)
    words.append(target.category.phrase)
    article = 'an' if words[0][0] in 'aeiou' else 'a'
    if rng.random() < 0.7:
        article = 'the'
    text = ' '.join([article, *words])
    positions = [a for a in attributes if isinstance(a, tuple)]
    if positions:
        joiner = ' that is ' if rng.random() < 0.2 else ' '
        text += joiner + _position_phrase(positions[0], rng)
    return text[0].upper() + text[1:]


def named_attributes(target: SceneObject, attributes: list) -> Dict[str, str]:
    """The attribute values an expression names (for the meta file)."""
    named = {'category': target.category.name}
    for attribute in attributes:
        if attribute in ('colour', 'size'):
            named[attribute] = getattr(target, attribute)
        else:
            _, horizontal, vertical = attribute
            if horizontal is not None:
                named['horizontal'] = HORIZONTAL[horizontal]
            if vertical is not None:
                named['vertical'] = VERTICAL[vertical]
    return named
