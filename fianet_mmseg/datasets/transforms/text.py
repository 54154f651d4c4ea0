"""Transforms that turn the expression into the model's text tensors."""
from __future__ import annotations

import re
from typing import Callable, Optional

from mmcv.transforms import BaseTransform
from mmcv.transforms import RandomFlip as _RandomFlip
from mmseg.registry import TRANSFORMS

DECOUPLING_MODES = ('project', 'reference', 'none')


@TRANSFORMS.register_module()
class DecoupleAndTokenize(BaseTransform):
    """Decouple the expression and encode it as wordpieces and three masks.

    Required keys: ``expression``. Added keys: ``input_ids``,
    ``attention_mask``, ``object_mask``, ``position_mask`` (int64, (L,)),
    ``object_phrase``, ``spatial_phrases`` and ``decoupled_category``.

    Decoupling modes:

    * ``'project'`` (default): the project's decoupler
      (:class:`~fianet_mmseg.text.TextDecoupler`), masks projected onto the
      wordpieces, never all zero. ``object_phrase`` / ``spatial_phrases`` /
      ``decoupled_category``: its object span, spatial spans and category.
    * ``'reference'``: the reference's own NLTK masks, quirks included
      (:class:`~fianet_mmseg.text.ReferenceMaskBuilder`), to evaluate the
      authors' converted checkpoints exactly. Needs ``dataset``. The object
      mask is ALL ZERO when no category name of the dataset occurs in the text
      (the reference has no fallback there). ``decoupled_category``: the
      category names found (tuple, in text order); ``object_phrase``: the first
      of them (or None); ``spatial_phrases``: the kept PP phrases.
    * ``'none'``: all three masks are the attention mask (the "decoupling off"
      ablation).

    Args:
        tokenizer (str): Tokenizer name, local directory or ``package://``
            path (see :func:`fianet_mmseg.text.load_tokenizer`).
        max_length (int): Token length ``L`` (reference: 22 for RRSIS-D, 20
            for RefSegRS).
        dataset (str | None): Category set (``'rrsisd'``, ``'refsegrs'``; None
            = both for the project's decoupler, not allowed in reference mode).
        truncate (bool): Cut over-long expressions like the reference (True)
            or raise an error (False).
        decoupling (str): ``'project'`` (default), ``'reference'`` or
            ``'none'``.
        word_tokenize (callable | None): Reference mode: word tokenizer
            (default ``nltk.word_tokenize``). Not serialisable in configs.
        pos_tag (callable | None): Reference mode: POS tagger (default
            ``nltk.pos_tag``). Not serialisable in configs.
    """

    def __init__(self, tokenizer: str, max_length: int, dataset: Optional[str] = None,
                 truncate: bool = True, decoupling: str = 'project',
                 word_tokenize: Optional[Callable] = None,
                 pos_tag: Optional[Callable] = None) -> None:
        if decoupling not in DECOUPLING_MODES:
            raise ValueError(f'DecoupleAndTokenize: decoupling must be one of '
                             f'{list(DECOUPLING_MODES)}, got {decoupling!r}')
        if decoupling == 'reference':
            from ...text.reference_masks import REFERENCE_CATEGORIES

            if not isinstance(dataset, str) or dataset.lower() not in REFERENCE_CATEGORIES:
                raise ValueError(f"DecoupleAndTokenize: decoupling='reference' needs the field "
                                 f'dataset = one of {list(REFERENCE_CATEGORIES)}, got '
                                 f'{dataset!r}')
        elif word_tokenize is not None or pos_tag is not None:
            raise ValueError("DecoupleAndTokenize: word_tokenize / pos_tag are for "
                             f"decoupling='reference' only, not {decoupling!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.decoupling = decoupling
        self.dataset = dataset
        self.truncate = truncate
        self.word_tokenize = word_tokenize
        self.pos_tag = pos_tag
        self._decoupler = None
        self._encoder = None
        self._reference = None

    def _build(self) -> None:
        # Built on first use, so that the transform pickles cheaply into workers.
        from ...text import ExpressionEncoder, TextDecoupler

        self._encoder = ExpressionEncoder(self.tokenizer, self.max_length, self.truncate)
        if self.decoupling == 'project':
            self._decoupler = TextDecoupler(self.dataset)
        elif self.decoupling == 'reference':
            from ...text import ReferenceMaskBuilder

            self._reference = ReferenceMaskBuilder(
                self.dataset, self.max_length, self._encoder,
                word_tokenize=self.word_tokenize, pos_tag=self.pos_tag)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_decoupler=None, _encoder=None, _reference=None)
        return state

    def transform(self, results: dict) -> dict:
        """Add the text tensors and the decoupled phrases to ``results``."""
        if self._encoder is None:
            self._build()
        expression = results['expression']
        if self._reference is not None:
            ref = self._reference(expression)
            results.update(ref.tensors())
            results['object_phrase'] = ref.categories[0] if ref.categories else None
            results['spatial_phrases'] = list(ref.phrases)
            results['decoupled_category'] = ref.categories
            return results
        decoupled = self._decoupler(expression) if self._decoupler is not None else None
        results.update(self._encoder(expression, decoupled))
        results['object_phrase'] = decoupled.object_phrase if decoupled else None
        results['spatial_phrases'] = list(decoupled.spatial_phrases) if decoupled else []
        results['decoupled_category'] = decoupled.category if decoupled else None
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(tokenizer={self.tokenizer!r}, max_length='
                f'{self.max_length}, decoupling={self.decoupling!r}, dataset={self.dataset!r})')


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
