"""Transforms that turn the expression into the model's text tensors."""
from __future__ import annotations

import re
from typing import Optional

from mmcv.transforms import BaseTransform
from mmcv.transforms import RandomFlip as _RandomFlip
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class DecoupleAndTokenize(BaseTransform):
    """Decouple the expression and encode it as wordpieces and three masks.

    Required keys: ``expression``. Added keys: ``input_ids``,
    ``attention_mask``, ``object_mask``, ``position_mask`` (int64, (L,)),
    ``object_phrase``, ``spatial_phrases`` and ``decoupled_category``.

    Args:
        tokenizer (str): Tokenizer name, local directory or ``package://``
            path (see :func:`fianet_mmseg.text.load_tokenizer`).
        max_length (int): Token length ``L`` (reference: 22 for RRSIS-D, 20
            for RefSegRS).
        decouple (bool): False: all three masks are the whole expression
            (the "decoupling off" ablation).
        dataset (str | None): Category set of the decoupler
            (``'rrsisd'``, ``'refsegrs'`` or None for both).
        spacy_model (str | None): Optional installed spaCy pipeline.
        truncate (bool): Cut over-long expressions like the reference (True)
            or raise an error (False).
    """

    def __init__(self, tokenizer: str, max_length: int, decouple: bool = True,
                 dataset: Optional[str] = None, spacy_model: Optional[str] = None,
                 truncate: bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.decouple = decouple
        self.dataset = dataset
        self.spacy_model = spacy_model
        self.truncate = truncate
        self._decoupler = None
        self._encoder = None

    def _build(self) -> None:
        # Built on first use, so that the transform pickles cheaply into workers.
        from ...text import ExpressionEncoder, TextDecoupler

        self._encoder = ExpressionEncoder(self.tokenizer, self.max_length, self.truncate)
        if self.decouple:
            self._decoupler = TextDecoupler(self.dataset, self.spacy_model)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_decoupler=None, _encoder=None)
        return state

    def transform(self, results: dict) -> dict:
        """Add the text tensors and the decoupled phrases to ``results``."""
        if self._encoder is None:
            self._build()
        expression = results['expression']
        decoupled = self._decoupler(expression) if self.decouple else None
        results.update(self._encoder(expression, decoupled))
        results['object_phrase'] = decoupled.object_phrase if decoupled else None
        results['spatial_phrases'] = list(decoupled.spatial_phrases) if decoupled else []
        results['decoupled_category'] = decoupled.category if decoupled else None
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(tokenizer={self.tokenizer!r}, max_length='
                f'{self.max_length}, decouple={self.decouple}, dataset={self.dataset!r})')


_LEFT_RIGHT = re.compile(r'\b(left|right)(most)?\b', re.IGNORECASE)


def swap_left_right(expression: str) -> str:
    """Exchange "left" and "right" (and -most forms), keeping the case."""
    def swap(match: re.Match) -> str:
        word = match.group(1)
        new = 'right' if word.lower() == 'left' else 'left'
        if word.isupper():
            new = new.upper()
        elif word[0].isupper():
            new = new.capitalize()
        return new + (match.group(2) or '')

    return _LEFT_RIGHT.sub(swap, expression)


@TRANSFORMS.register_module()
class RandomFlipWithText(_RandomFlip):
    """Horizontal flip that also swaps "left" and "right" in the expression.

    The reference does not flip (a plain flip would contradict the text);
    this flip keeps image and text consistent. Off in the configs by default;
    place it before :class:`DecoupleAndTokenize`.

    Args:
        prob (float): Flip probability.
    """

    def __init__(self, prob: float = 0.5) -> None:
        super().__init__(prob=prob, direction='horizontal')

    def transform(self, results: dict) -> dict:
        """Flip image and masks with mmcv's RandomFlip, then the words."""
        results = super().transform(results)
        if results.get('flip'):
            results['expression'] = swap_left_right(results['expression'])
        return results
