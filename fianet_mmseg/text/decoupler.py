"""Split a referring expression into the referred object and its spatial phrases.

FIANet gives its text encoder three masks: the whole expression, the referred
ground object and the spatial description. :class:`TextDecoupler` finds the
character spans of the last two with spaCy's tokeniser (``spacy.blank('en')``, no
statistical model) and the rules of :mod:`fianet_mmseg.text.decoupling_rules`
(which states them), run as the spaCy pipeline component ``fianet_decoupling_rules``.
It replaces the reference's NLTK chunking (docs/reference.md section 6); spans are
offsets into the exact string given (capitals and hyphens kept), so wordpieces can be
projected correctly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import spacy
from spacy.language import Language

from .decoupling_rules import OBJECT_SPANS_KEY, RULES_COMPONENT, SPATIAL_SPANS_KEY, DecouplingRules
from .lexicon import check_dataset


@dataclass(frozen=True)
class DecoupledText:
    """An expression with the character spans ``[start, end)`` of its parts."""

    expression: str
    object_span: Tuple[int, int] | None
    category: str | None
    spatial_spans: Tuple[Tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        size = len(self.expression)
        spans = tuple(tuple(span) for span in self.spatial_spans)
        object.__setattr__(self, 'spatial_spans', spans)
        if self.object_span is not None:
            object.__setattr__(self, 'object_span', tuple(self.object_span))
            spans = (self.object_span, *spans)
        for span in spans:
            if len(span) != 2 or not 0 <= span[0] < span[1] <= size:
                raise ValueError(f'DecoupledText: span {span} is not a non-empty [start, end) '
                                 f'inside the expression {self.expression!r}')

    @property
    def object_phrase(self) -> str | None:
        """Text of the object span, or None."""
        if self.object_span is None:
            return None
        return self.expression[self.object_span[0]:self.object_span[1]]

    @property
    def spatial_phrases(self) -> List[str]:
        """Texts of the spatial spans, in order."""
        return [self.expression[start:end] for start, end in self.spatial_spans]



class TextDecoupler:
    """Split an expression into the referred object and its spatial phrases.

    See :mod:`fianet_mmseg.text.decoupling_rules` for the conventions.

    Args:
        dataset (str | None): Category set: ``'rrsisd'``, ``'refsegrs'`` or None
            (the categories of both).

    The pipeline ``nlp`` is ``spacy.blank('en')`` (spaCy's English tokeniser,
    no statistical model: the rules use only the words) plus the rules.
    """

    def __init__(self, dataset: str | None = None) -> None:
        self.dataset = check_dataset(dataset)
        self.nlp: Language = spacy.blank('en')
        self._rules: DecouplingRules = self.nlp.add_pipe(
            RULES_COMPONENT, config={'dataset': self.dataset}, last=True)
        self.categories: List[str] = list(self._rules.lexicon.categories)

    def __call__(self, expression: str) -> DecoupledText:
        """Decouple one expression (spans are offsets into ``expression``)."""
        if not isinstance(expression, str):
            raise TypeError(f'TextDecoupler: expected a str expression, got '
                            f'{type(expression).__name__}: {expression!r}')
        doc = self._rules(self.nlp.make_doc(expression))  # no Language.__call__ bookkeeping
        objects = doc.spans[OBJECT_SPANS_KEY]
        obj = objects[0] if len(objects) else None
        return DecoupledText(
            expression=expression,
            object_span=(obj.start_char, obj.end_char) if obj is not None else None,
            category=(obj.label_ or None) if obj is not None else None,
            spatial_spans=tuple((s.start_char, s.end_char) for s in doc.spans[SPATIAL_SPANS_KEY]),
        )

    def __repr__(self) -> str:
        return f'{type(self).__name__}(dataset={self.dataset!r})'
