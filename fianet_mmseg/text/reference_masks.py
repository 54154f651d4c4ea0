"""The reference's own object and position masks, quirks included (docs/reference.md 6 / 6b).

The project's decoupler (:mod:`fianet_mmseg.text.decoupler`) projects character
spans onto wordpieces. The authors' checkpoints were trained with other masks: the
reference's dataset classes (``data/rrsisd_refer_bert.py``,
``data/refsegrs_refer_bert.py``) mark NLTK *word* positions. To evaluate those
checkpoints exactly, :class:`ReferenceMaskBuilder` recomputes the reference's
masks for one raw expression, rule by rule:

* ``words = word_tokenize(raw)`` (NLTK). Masks have length ``L`` (22 RRSIS-D, 20
  RefSegRS); position 0 is [CLS], so word ``i`` is written at ``i + 1``.
* **Object mask.** For every category name ``c`` of the data set
  (:data:`REFERENCE_CATEGORIES`) that ``re.findall(c, raw)`` finds -- case
  sensitive, ``c`` used as a regex, so ``car`` fires inside ``scar`` and ``cars``,
  ``tree`` inside ``street``, ``road`` next to ``road marking``, and a capitalised
  ``Airplane`` is missed -- ``cw = word_tokenize(c)``, ``index`` = the first word
  ``i`` where ``re.findall(cw[0], words[i])`` finds something (else 0), and
  ``mask[index + 1 : index + 1 + len(cw)] = 1``. Several names can fire; the
  writes add up. No name found: the mask stays ALL ZERO (the reference has no
  fallback here; the model must cope with an all-zero object view).
* **Position mask.** ``nltk.RegexpParser`` with :data:`PP_GRAMMAR` over
  ``pos_tag(words)``; each ``PP`` chunk's leaves joined by single spaces is a
  phrase; a phrase in which ``re.findall('of', phrase)`` finds anything is
  dropped (also ``roof``, ``offshore``, ``Office``...). For each kept phrase,
  ``pw = word_tokenize(phrase)``, ``index`` = the first ``i`` with
  ``words[i] == pw[0]`` (exact; else 0) and ``mask[index + 1 : index + 1 +
  len(pw)] = 1`` -- so a second ``on ...`` phrase re-marks the first ``on``. No
  kept phrase: the position mask is the attention mask.
* **Ids.** ``encode(raw, add_special_tokens=True)[:L]`` (an over-long expression
  loses its [SEP]), zero-padded; attention mask = 1 on the kept ids.

Quirks kept on purpose: word positions are used as wordpiece positions, so the
masks drift off the words they mean as soon as an earlier word splits into
several wordpieces (``left ##most``, ``over ##pass``, ``bike ##way``,
``imp ##er ##vious``, ``windmill ##s``); writes can land on [SEP] or padding.

Where this module has to differ from the reference's Python:

* Writes past ``L`` are cut. The reference assigns to a Python list slice, which
  *grows* the list there (a mask longer than ``L``, which its batching could not
  stack). Positions below ``L`` come out the same either way.
* The position fallback follows the reference's test ``sum(mask) == 0`` on that
  grown list, which is true exactly when no phrase was kept. So when every kept
  phrase lies past ``L``, the cut position mask is all zero WITHOUT the fallback.
* RRSIS-D only: the reference checks ``position_for_ref[0]`` -- the FIRST sentence
  of a reference -- and on fallback aliases the attention list, so with several
  sentences per reference later sentences get no fallback or a neighbour's mask.
  The release has one sentence per reference (docs/data_preparation.md), where this module's
  per-expression rules are exact.
* RefSegRS's reference reads each line with its trailing newline; it changes no
  word, category hit, phrase or id, so the converted (stripped) text is used.

NLTK is imported lazily. Defaults are ``nltk.word_tokenize`` and ``nltk.pos_tag``,
which need NLTK's data (``punkt_tab``, ``averaged_perceptron_tagger_eng``:
``python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng``); both are
injectable. ``nltk.word_tokenize`` splits sentences with punkt, then applies
``NLTKWordTokenizer().tokenize`` to each; for a one-sentence expression
:func:`data_free_word_tokenize` (that tokenizer alone, no data) gives the same
words. The reference ran an older NLTK whose tagger and tokenizer may differ on
rare inputs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

WordTokenizer = Callable[[str], List[str]]
PosTagger = Callable[[List[str]], List[Tuple[str, str]]]

#: Category names each reference dataset class searches for (docs/reference.md 6b).
REFERENCE_CATEGORIES: Dict[str, Tuple[str, ...]] = {
    'rrsisd': ('airplane', 'airport', 'golf field', 'expressway service area',
               'baseball field', 'stadium', 'ground track field', 'storage tank',
               'basketball court', 'chimney', 'tennis court', 'overpass', 'train station',
               'ship', 'expressway toll station', 'dam', 'harbor', 'bridge', 'vehicle',
               'windmill'),
    'refsegrs': ('road', 'vehicle', 'car', 'van', 'building', 'truck', 'trailer', 'bus',
                 'road marking', 'bikeway', 'sidewalk', 'tree', 'low vegetation',
                 'impervious surface'),
}

#: The reference's token length ``L`` per dataset.
REFERENCE_MAX_LENGTH: Dict[str, int] = {'rrsisd': 22, 'refsegrs': 20}

#: The reference's chunk grammar: preposition, optional determiner, optional
#: adjective, then a singular noun, an adjective or a past-tense verb.
PP_GRAMMAR = r"""
PP: {<IN><DT>?<JJ.*>?<NN>}
    {<IN><DT>?<JJ.*>?<JJ>}
    {<IN><DT>?<JJ.*><VBD>}
"""

#: NLTK resources of the default callables: name -> nltk.data path.
NLTK_RESOURCES: Dict[str, str] = {
    'punkt_tab': 'tokenizers/punkt_tab',
    'averaged_perceptron_tagger_eng': 'taggers/averaged_perceptron_tagger_eng',
}
NLTK_DOWNLOAD_COMMAND = 'python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng'


def import_nltk() -> ModuleType:
    """Import NLTK, or raise ImportError saying how to install it."""
    try:
        import nltk
    except ImportError as err:
        raise ImportError(
            "the reference text masks (decoupling='reference') need NLTK: "
            "pip install nltk  (or: pip install 'fianet-mmseg[reference]')") from err
    return nltk


def missing_nltk_data(names: Sequence[str] = tuple(NLTK_RESOURCES)) -> List[str]:
    """The names among ``names`` (keys of :data:`NLTK_RESOURCES`) NLTK cannot find."""
    nltk = import_nltk()
    missing = []
    for name in names:
        try:
            nltk.data.find(NLTK_RESOURCES[name])
        except LookupError:
            missing.append(name)
    return missing


def check_nltk_data(*names: str) -> None:
    """Raise LookupError naming the download command when NLTK data is missing."""
    missing = missing_nltk_data(names or tuple(NLTK_RESOURCES))
    if missing:
        raise LookupError(
            f'NLTK data {missing} not found (needed by the default word tokenizer / POS '
            f'tagger of the reference text masks). Download it with:\n'
            f'    {NLTK_DOWNLOAD_COMMAND}\n'
            f'or pass word_tokenize= / pos_tag= callables.')


def data_free_word_tokenize(text: str) -> List[str]:
    """NLTK's Treebank-style word tokenizer without punkt (no NLTK data needed).

    It is what ``nltk.word_tokenize`` applies to each punkt sentence, so the two
    agree on a one-sentence expression (they differ where punkt would split, e.g.
    on a full stop in the middle).
    """
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer().tokenize(text)


def _first(words: Sequence[str], test: Callable[[str], Any]) -> int:
    """Index of the first word passing ``test``, else 0 (the reference's default)."""
    return next((i for i, word in enumerate(words) if test(word)), 0)


def _mark(mask: np.ndarray, start: int, count: int) -> None:
    """``mask[start:start + count] = 1``, cut at the end of ``mask``."""
    mask[start:start + count] = 1


@dataclass(frozen=True)
class ReferenceText:
    """The reference's text tensors of one expression (arrays int64, (L,)).

    Attributes:
        expression (str): The raw expression.
        words (tuple[str]): Its NLTK words.
        categories (tuple[str]): Category names found, by first occurrence in
            the text (longer name first on a tie).
        phrases (tuple[str]): Kept PP phrases, in order.
        dropped_phrases (tuple[str]): PP phrases dropped for containing "of".
        position_fallback (bool): True when the position mask is the attention mask.
    """

    expression: str
    words: Tuple[str, ...]
    categories: Tuple[str, ...]
    phrases: Tuple[str, ...]
    dropped_phrases: Tuple[str, ...]
    input_ids: np.ndarray
    attention_mask: np.ndarray
    object_mask: np.ndarray
    position_mask: np.ndarray
    position_fallback: bool

    def tensors(self) -> Dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask``, ``object_mask``, ``position_mask``."""
        return dict(input_ids=self.input_ids, attention_mask=self.attention_mask,
                    object_mask=self.object_mask, position_mask=self.position_mask)


class ReferenceMaskBuilder:
    """Compute the reference's ``input_ids`` and three masks for raw expressions.

    Args:
        dataset (str): ``'rrsisd'`` or ``'refsegrs'`` (its category list).
        max_length (int | None): ``L``; None: the reference's (22 / 20).
        tokenizer (str | ExpressionEncoder | tokenizer | None): For the ids and
            the attention mask: a name / path for :func:`~fianet_mmseg.text.
            load_tokenizer`, a loaded fast tokenizer or an
            :class:`~fianet_mmseg.text.ExpressionEncoder` of length ``L``. None:
            only :meth:`object_mask` and :meth:`phrases` are available.
        word_tokenize (callable | None): ``str -> list[str]``; None:
            ``nltk.word_tokenize`` (needs ``punkt_tab``).
        pos_tag (callable | None): ``list[str] -> list[(word, tag)]`` with Penn
            Treebank tags; None: ``nltk.pos_tag`` (needs
            ``averaged_perceptron_tagger_eng``).

    The NLTK data of a default is checked on its first use (LookupError naming
    the download command); NLTK itself is needed for the chunker in any case.
    """

    def __init__(self, dataset: str, max_length: Optional[int] = None, tokenizer: Any = None,
                 word_tokenize: Optional[WordTokenizer] = None,
                 pos_tag: Optional[PosTagger] = None) -> None:
        key = dataset.lower() if isinstance(dataset, str) else dataset
        if key not in REFERENCE_CATEGORIES:
            raise ValueError(f'ReferenceMaskBuilder: dataset must be one of '
                             f'{list(REFERENCE_CATEGORIES)}, got {dataset!r}')
        self.dataset = key
        self.categories = REFERENCE_CATEGORIES[key]
        if max_length is None:
            max_length = REFERENCE_MAX_LENGTH[key]
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f'ReferenceMaskBuilder: max_length must be an int >= 2, '
                             f'got {max_length!r}')
        self.max_length = max_length
        for name, func in (('word_tokenize', word_tokenize), ('pos_tag', pos_tag)):
            if func is not None and not callable(func):
                raise TypeError(f'ReferenceMaskBuilder: {name} must be callable, got '
                                f'{type(func).__name__}')
        nltk = import_nltk()
        self._parser = nltk.RegexpParser(PP_GRAMMAR)
        self._word_tokenize = word_tokenize
        self._pos_tag = pos_tag
        self.encoder = self._make_encoder(tokenizer)

    def _make_encoder(self, tokenizer: Any) -> Any:
        if tokenizer is None:
            return None
        from .tokenization import ExpressionEncoder

        if isinstance(tokenizer, ExpressionEncoder):
            if tokenizer.max_length != self.max_length:
                raise ValueError(f'ReferenceMaskBuilder: the ExpressionEncoder has max_length='
                                 f'{tokenizer.max_length}, not {self.max_length}')
            return tokenizer
        return ExpressionEncoder(tokenizer, self.max_length, truncate=True)

    # ------------------------------------------------------------ NLTK parts
    def word_tokenize(self, text: str) -> List[str]:
        """Words of ``text`` with the configured (or default NLTK) tokenizer."""
        if self._word_tokenize is None:
            check_nltk_data('punkt_tab')
            self._word_tokenize = import_nltk().word_tokenize
        return list(self._word_tokenize(text))

    def pos_tag(self, words: List[str]) -> List[Tuple[str, str]]:
        """``(word, tag)`` pairs, checked against ``words``."""
        if self._pos_tag is None:
            check_nltk_data('averaged_perceptron_tagger_eng')
            self._pos_tag = import_nltk().pos_tag
        tagged = [tuple(pair) for pair in self._pos_tag(list(words))]
        if len(tagged) != len(words) or any(
                len(pair) != 2 or pair[0] != word for pair, word in zip(tagged, words)):
            raise ValueError(f'ReferenceMaskBuilder: pos_tag must return one (word, tag) pair '
                             f'per word of {words!r}, got {tagged!r}')
        return tagged

    # ----------------------------------------------------------------- masks
    def object_mask(self, expression: str,
                    words: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, Tuple[str, ...]]:
        """The reference's object mask, int64 (L,), and the category names found.

        No tagger needed. All zero when no category name occurs in the text.
        """
        if words is None:
            words = self.word_tokenize(expression)
        mask = np.zeros(self.max_length, dtype=np.int64)
        found = []
        for name in self.categories:
            hit = re.search(name, expression)  # same truth value as re.findall
            if hit is None:
                continue
            found.append((hit.start(), -len(name), name))
            name_words = self.word_tokenize(name)
            index = _first(words, lambda word, first=name_words[0]: re.search(first, word))
            _mark(mask, index + 1, len(name_words))
        return mask, tuple(name for *_, name in sorted(found))

    def phrases(self, words: Sequence[str]) -> Tuple[List[str], List[str]]:
        """``(kept, dropped)`` PP phrases of the words, in order.

        A phrase is dropped when ``re.findall('of', phrase)`` finds anything.
        """
        tree = self._parser.parse(self.pos_tag(list(words)))
        chunks = [' '.join(word for word, _ in subtree.leaves())
                  for subtree in tree.subtrees() if subtree.label() == 'PP']
        kept = [phrase for phrase in chunks if re.search('of', phrase) is None]
        dropped = [phrase for phrase in chunks if re.search('of', phrase) is not None]
        return kept, dropped

    def position_mask(self, expression: str, attention_mask: np.ndarray,
                      words: Optional[Sequence[str]] = None
                      ) -> Tuple[np.ndarray, List[str], List[str], bool]:
        """The reference's position mask, int64 (L,).

        Returns:
            tuple: ``(mask, kept phrases, dropped phrases, fallback)``; with no
            kept phrase ``mask`` is a copy of ``attention_mask`` and ``fallback``
            is True.
        """
        if words is None:
            words = self.word_tokenize(expression)
        kept, dropped = self.phrases(words)
        if not kept:
            return np.asarray(attention_mask, dtype=np.int64).copy(), kept, dropped, True
        mask = np.zeros(self.max_length, dtype=np.int64)
        for phrase in kept:
            phrase_words = self.word_tokenize(phrase)
            index = _first(words, lambda word, first=phrase_words[0]: word == first)
            _mark(mask, index + 1, len(phrase_words))
        return mask, kept, dropped, False

    def encode(self, expression: str) -> Tuple[np.ndarray, np.ndarray]:
        """``input_ids`` = ``encode(raw)[:L]`` zero-padded, and the attention mask."""
        if self.encoder is None:
            raise ValueError('ReferenceMaskBuilder: give tokenizer= to encode ids (the object '
                             'mask alone needs none)')
        out = self.encoder(expression)
        return out['input_ids'], out['attention_mask']

    def __call__(self, expression: str) -> ReferenceText:
        """All text tensors of ``expression`` as the reference computes them."""
        input_ids, attention = self.encode(expression)
        words = self.word_tokenize(expression)
        object_mask, categories = self.object_mask(expression, words)
        position, kept, dropped, fallback = self.position_mask(expression, attention, words)
        return ReferenceText(expression=expression, words=tuple(words), categories=categories,
                             phrases=tuple(kept), dropped_phrases=tuple(dropped),
                             input_ids=input_ids, attention_mask=attention,
                             object_mask=object_mask, position_mask=position,
                             position_fallback=fallback)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(dataset={self.dataset!r}, '
                f'max_length={self.max_length})')
