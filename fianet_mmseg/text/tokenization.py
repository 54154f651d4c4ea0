"""Wordpiece ids and the three text masks of FIANet.

Protocol of the reference (docs/reference.md section 6), with its word-index drift fixed:

1. Wordpiece-tokenise with [CLS] / [SEP] (uncased BERT vocabulary).
2. Cut the ids to ``max_length`` like the reference's slicing: an over-long
   expression loses its [SEP] (``truncate=True``); with ``truncate=False`` it is
   an error instead. Zero-pad to ``max_length``.
3. A wordpiece is in the object (position) mask when its character offsets overlap
   the object span (a spatial span) of :class:`~fianet_mmseg.text.DecoupledText`,
   so a word split into several wordpieces (``left ##most``) is covered whole.
   [CLS], [SEP] and padding are never in these two masks.
4. The kept wordpieces must hold at least one word: an expression of only
   punctuation / symbols, or whose wordpieces are all ``[UNK]`` (a script or
   emoji the vocabulary lacks), gives the model nothing to read and is an error.
5. A mask is never all zero (the text encoder must not see a fully masked row):
   no object span, or its wordpieces cut away -> object mask = attention mask; no
   spatial span (or cut away) -> position mask = attention mask. Without a
   decoupling (``decoupled=None``) all three masks are the attention mask.
"""
from __future__ import annotations

import os.path as osp
import unicodedata
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

import numpy as np

from ..utils import resolve_pretrained

if TYPE_CHECKING:  # the decoupler (and spaCy) is only needed when decoupling
    from .decoupler import DecoupledText

#: Fewer entries than this means a broken vocabulary (transformers 5's
#: ``BertTokenizerFast(vocab_file=...)`` silently builds one of 5 special tokens).
MIN_VOCAB_SIZE = 100


def check_tokenizer(tokenizer: Any, source: str = 'the tokenizer') -> None:
    """Raise if ``tokenizer`` cannot give offsets or has a broken vocabulary.

    Raises:
        TypeError: Not a fast (Rust-backed) tokenizer.
        ValueError: Vocabulary smaller than :data:`MIN_VOCAB_SIZE`.
    """
    if not getattr(tokenizer, 'is_fast', False) or \
            getattr(tokenizer, 'backend_tokenizer', None) is None:
        raise TypeError(f'{source}: a fast tokenizer is needed (wordpiece offsets), got '
                        f'{type(tokenizer).__name__}')
    size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    if size < MIN_VOCAB_SIZE:
        raise ValueError(
            f'{source}: the vocabulary has only {size} entries, so nearly every word would '
            f'be [UNK]. With transformers 5, BertTokenizerFast(vocab_file=...) ignores the '
            f'file; load a directory with load_tokenizer() / from_pretrained(dir) instead.')


def load_tokenizer(name_or_path: str) -> Any:
    """Load a fast BERT wordpiece tokenizer.

    Args:
        name_or_path (str): A local directory (``vocab.txt`` alone is enough), a
            ``package://<module>/<dir>`` name (:func:`fianet_mmseg.utils.
            resolve_pretrained`) or a model name already in the HuggingFace cache.

    Raises:
        OSError: It cannot be loaded (the message names the resolved path).
        TypeError, ValueError: See :func:`check_tokenizer`.
    """
    from transformers import AutoTokenizer, BertTokenizerFast

    path = resolve_pretrained(name_or_path)
    source = f'load_tokenizer({name_or_path!r})'
    if path != name_or_path:
        source += f' -> {path}'
    if osp.isfile(path):
        raise OSError(f'{source}: give the directory that holds vocab.txt / tokenizer.json, '
                      f'not a file')
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as auto_err:
        if not osp.isfile(osp.join(path, 'vocab.txt')):
            raise OSError(f'{source}: cannot load a tokenizer from {path!r} '
                          f'(not a tokenizer directory, nor a cached model name): '
                          f'{auto_err}') from auto_err
        try:  # a directory with a bare vocab.txt
            tokenizer = BertTokenizerFast.from_pretrained(path)
        except (OSError, ValueError) as err:
            raise OSError(f'{source}: cannot load the wordpiece vocabulary in {path}: '
                          f'{err}') from err
    check_tokenizer(tokenizer, source)
    return tokenizer


def _is_punctuation(text: str) -> bool:
    """True when every character is Unicode punctuation (P*) or a symbol (S*)."""
    return all(unicodedata.category(char)[0] in 'PS' for char in text)


def _overlap_mask(offsets: Sequence[Tuple[int, int]], special: Sequence[int],
                  spans: Sequence[Tuple[int, int]]) -> np.ndarray:
    """1 for each non-special wordpiece whose [start, end) overlaps a span."""
    mask = np.zeros(len(offsets), dtype=np.int64)
    for index, ((start, end), is_special) in enumerate(zip(offsets, special, strict=True)):
        if not is_special and end > start and \
                any(start < span_end and end > span_start for span_start, span_end in spans):
            mask[index] = 1
    return mask


class ExpressionEncoder:
    """Encode an expression as ``input_ids`` and three masks, each int64 ``(L,)``.

    Args:
        tokenizer (str | tokenizer): Name / path for :func:`load_tokenizer`, or a
            loaded fast tokenizer.
        max_length (int): ``L`` (reference: 22 for RRSIS-D, 20 for RefSegRS),
            [CLS] and [SEP] included.
        truncate (bool): True: cut over-long expressions like the reference
            ([SEP] lost). False: raise ValueError instead.

    An expression whose kept wordpieces are all punctuation, symbols or
    ``[UNK]`` is refused (ValueError naming it and its wordpieces).
    """

    def __init__(self, tokenizer: Any, max_length: int, truncate: bool = True) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f'ExpressionEncoder: max_length must be an int >= 2, '
                             f'got {max_length!r}')
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer)
        else:
            check_tokenizer(tokenizer, f'ExpressionEncoder({type(tokenizer).__name__})')
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncate = truncate
        self._unk_id = getattr(tokenizer, 'unk_token_id', None)
        # A private copy of the Rust tokenizer, without the padding / truncation
        # settings a tokenizer.json may carry: faster than tokenizer.__call__.
        from tokenizers import Tokenizer

        self._backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()

    def tokenize(self, expression: str) -> Tuple[List[int], List[Tuple[int, int]], List[int]]:
        """Ids, character offsets and special-token flags, with [CLS] / [SEP], uncut."""
        encoding = self._backend.encode(expression)
        return encoding.ids, encoding.offsets, encoding.special_tokens_mask

    def __call__(self, expression: str,
                 decoupled: DecoupledText | None = None) -> Dict[str, np.ndarray]:
        """Return ``input_ids``, ``attention_mask``, ``object_mask``, ``position_mask``.

        Raises:
            ValueError: Empty expression; ``decoupled`` made from another string;
                an over-long expression with ``truncate=False``; no wordpiece that
                is a word (see :meth:`check_readable`).
        """
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError(f'ExpressionEncoder: the expression is empty or white space '
                             f'only: {expression!r}')
        if decoupled is not None and decoupled.expression != expression:
            raise ValueError(f'ExpressionEncoder: the decoupling is of {decoupled.expression!r}, '
                             f'not of the expression {expression!r}')
        ids, offsets, special = self.tokenize(expression)
        length = self.max_length
        if len(ids) > length:
            if not self.truncate:
                raise ValueError(
                    f'ExpressionEncoder: the expression {expression!r} has {len(ids)} tokens '
                    f'([CLS] and [SEP] included), more than max_length={length} '
                    f'(truncate=False)')
            ids, offsets, special = ids[:length], offsets[:length], special[:length]
        self.check_readable(expression, ids, offsets, special)
        used = len(ids)
        input_ids = np.zeros(length, dtype=np.int64)
        input_ids[:used] = ids
        attention = np.zeros(length, dtype=np.int64)
        attention[:used] = 1
        if decoupled is None:
            return dict(input_ids=input_ids, attention_mask=attention,
                        object_mask=attention.copy(), position_mask=attention.copy())

        masks = {}
        for key, spans in (('object_mask', [decoupled.object_span] if decoupled.object_span
                            else []),
                           ('position_mask', decoupled.spatial_spans)):
            mask = np.zeros(length, dtype=np.int64)
            if spans:
                mask[:used] = _overlap_mask(offsets, special, spans)
            masks[key] = mask if mask.any() else attention.copy()
        return dict(input_ids=input_ids, attention_mask=attention, **masks)

    def check_readable(self, expression: str, ids: Sequence[int],
                       offsets: Sequence[Tuple[int, int]], special: Sequence[int]) -> None:
        """Raise ValueError unless one of the (kept) wordpieces is a word.

        A word: not special, not ``[UNK]``, and not only punctuation / symbols
        (Unicode categories P*, S*) in the text its offsets cover. Digits and
        letters of any script the vocabulary holds are words.
        """
        for token_id, (start, end), is_special in zip(ids, offsets, special, strict=True):
            if not is_special and token_id != self._unk_id and end > start and \
                    not _is_punctuation(expression[start:end]):
                return
        pieces = [self._backend.id_to_token(token_id)
                  for token_id, is_special in zip(ids, special, strict=True) if not is_special]
        raise ValueError(f'ExpressionEncoder: the expression {expression!r} has no word the '
                         f'model can read: its wordpieces {pieces} are only punctuation, '
                         'symbols or [UNK] (characters the vocabulary lacks)')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(tokenizer={type(self.tokenizer).__name__}, '
                f'max_length={self.max_length}, truncate={self.truncate})')


def covered_wordpieces(tokens: Sequence[str], mask: Sequence[int]) -> str:
    """The wordpieces where ``mask`` (``(L,)``, 0/1) is 1, space-separated; ``-`` for none."""
    return ' '.join(token for token, on in zip(tokens, mask, strict=True) if on) or '-'
