"""Word classes of the decoupling rules, and the units and phrases they cut an expression into.

The classes come from the lexicon (``lexicon.json``, :mod:`fianet_mmseg.text.lexicon`); see
:mod:`fianet_mmseg.text.decoupling_rules` for how the rules use them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

from spacy.tokens import Token

# Word classes.
CAT, LANDMARK, PREP, LOC, VERB, VERB_T, ADV = 'CAT', 'LANDMARK', 'PREP', 'LOC', 'VERB', \
    'VERB_T', 'ADV'
DET, COPULA, REL, EXPL, WITH, CONJ, OF = 'DET', 'COPULA', 'REL', 'EXPL', 'WITH', 'CONJ', 'OF'
DET_OR_REL, PUNCT, GLUE, SPACE, WORD = 'DET_OR_REL', 'PUNCT', 'GLUE', 'SPACE', 'WORD'

LEXICON_CLASSES = (  # (class, spatial key) in priority order, after categories
    (PREP, 'prepositions'), (VERB_T, 'transitive_location_verbs'), (VERB, 'location_verbs'),
    (LOC, 'location_words'), (ADV, 'adverbs'))
FUNCTION_CLASSES = (
    (OF, 'of'), (WITH, 'attribute_prepositions'), (CONJ, 'conjunctions'),
    (COPULA, 'copulas'), (EXPL, 'expletives'), (DET, 'determiners'), (REL, 'relatives'))
TRANSPARENT = frozenset({SPACE, GLUE})
NOT_CONTENT = frozenset({DET, SPACE, GLUE, CONJ, OF})
TRAILING_JUNK = frozenset({DET, SPACE, GLUE, CONJ, ADV, VERB, OF})
LOOKAHEAD_STOP = frozenset({PUNCT, COPULA, REL, PREP, WITH, CONJ, VERB, VERB_T})
SPAN_ANCHORS = frozenset({LOC, LANDMARK, CAT})
GROUP_PREPS = frozenset({'between', 'in between', 'among', 'amongst'})

NOMINAL, SPATIAL, ATTRIBUTE = 'nominal', 'spatial', 'attribute'
TokenSpan = Tuple[int, int]


def is_word(token: Token) -> bool:
    """A token of letters or digits (not punctuation, not space)."""
    return token.is_alpha or token.is_digit


@dataclass
class Unit:
    """A word or a lexicon match: tokens [start, end), its class, lower-case text."""

    start: int  # token indices [start, end)
    end: int
    cls: str
    text: str  # lower case
    category: str | None = None


@dataclass
class Phrase:
    """A run of units: a noun phrase, a spatial phrase or an attribute phrase."""

    kind: str
    units: List[Unit] = field(default_factory=list)
    prep: str = ''

    def has_content(self) -> bool:
        return any(unit.cls not in NOT_CONTENT for unit in self.units)

