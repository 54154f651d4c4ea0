"""The decoupler's word lists, loaded from ``lexicon.json`` (shipped with the package).

The JSON file holds base forms only. :func:`term_variants` adds, for category and
landmark terms, the plural of the last word and the hyphenated and joined spellings
of multi-word terms, so that ``"storage tank"`` also matches ``"storage tanks"``,
``"storage-tank"``, ``"storagetank"`` and ``"storagetanks"`` (RRSIS-D's release
names such as ``Expressway-Service-area`` and ``groundtrackfield`` are covered this
way). All terms are lower-cased; matching ignores case.

A multi-word category term of a data set that is not configured counts as the
configured category of its last word (with RRSIS-D alone, RefSegRS's ``heavy-duty
vehicle`` is a ``vehicle``); the other data set's remaining terms are landmarks.

When several data sets are configured (``dataset=None``), a term that is the name
(or a variant of the name) of a category wins over another category's synonym: with
both data sets ``"car"`` is RefSegRS's ``car``, with RRSIS-D alone it is ``vehicle``.
Two categories claiming the same synonym is an error in the lexicon.
"""
from __future__ import annotations

import json
import os.path as osp
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, List, Tuple

DATASETS: Tuple[str, ...] = ('rrsisd', 'refsegrs')
LEXICON_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'lexicon.json')

_SPATIAL_KEYS = ('prepositions', 'location_words', 'location_verbs',
                 'transitive_location_verbs', 'adverbs')
_FUNCTION_KEYS = ('determiners', 'copulas', 'relatives', 'expletives',
                  'attribute_prepositions', 'conjunctions', 'of')


@dataclass(frozen=True)
class Lexicon:
    """Lower-cased term sets of one configuration of the decoupler."""

    categories: Tuple[str, ...]
    category_terms: Dict[str, str]  # term -> canonical category name
    landmarks: FrozenSet[str]
    spatial: Dict[str, FrozenSet[str]]  # keys: _SPATIAL_KEYS
    function_words: Dict[str, FrozenSet[str]]  # keys: _FUNCTION_KEYS


def check_dataset(dataset: str | None) -> str | None:
    """Return ``dataset`` lower-cased, or raise ValueError listing the choices."""
    if dataset is None:
        return None
    if not isinstance(dataset, str) or dataset.lower() not in DATASETS:
        raise ValueError(f'unknown dataset {dataset!r} for the text decoupler; '
                         f'choose one of {list(DATASETS)} or None (both)')
    return dataset.lower()


def normalise_term(term: str) -> str:
    """Lower-case and collapse white space."""
    return ' '.join(term.lower().split())


def plural(word: str) -> str:
    """Regular English plural of a lower-case word."""
    if re.search(r'(s|x|z|ch|sh)$', word):
        return word + 'es'
    if re.search(r'[^aeiou]y$', word):
        return word[:-1] + 'ies'
    return word + 's'


def term_variants(term: str) -> List[str]:
    """The term, its plural, and hyphenated / joined spellings of both."""
    term = normalise_term(term)
    words = [w for w in re.split(r'[\s-]+', term) if w]
    forms = [term]
    if len(words) > 1:
        forms += [' '.join(words), '-'.join(words), ''.join(words)]
    variants: List[str] = []
    for form in forms:
        last = re.split(r'[\s-]', form)[-1]
        for variant in (form, form[:len(form) - len(last)] + plural(last)):
            if variant not in variants:
                variants.append(variant)
    return variants


def _string_list(value: object, where: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f'{where} must be a list of non-empty strings')
    return value


def _get(data: dict, keys: Tuple[str, ...], path: str) -> object:
    value: object = data
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f'{path}: missing key "{".".join(keys[:depth + 1])}"')
        value = value[key]
    return value


def _category_terms(raw: dict, datasets: Tuple[str, ...],
                    path: str) -> Tuple[Tuple[str, ...], Dict[str, str]]:
    names: List[str] = []
    synonyms: List[Tuple[str, str]] = []
    for dataset in datasets:
        table = _get(raw, ('categories', dataset), path)
        if not isinstance(table, dict) or not table:
            raise ValueError(f'{path}: "categories.{dataset}" must be a non-empty object')
        for name, words in table.items():
            where = f'{path}: "categories.{dataset}.{name}"'
            canonical = normalise_term(name)
            if canonical not in names:
                names.append(canonical)
            synonyms += [(canonical, w) for w in _string_list(words, where)]
    terms: Dict[str, str] = {}
    for canonical in names:
        for variant in term_variants(canonical):
            if terms.setdefault(variant, canonical) != canonical:
                raise ValueError(f'{path}: term {variant!r} names both '
                                 f'{terms[variant]!r} and {canonical!r}')
    from_names = set(terms)
    for canonical, word in synonyms:
        for variant in term_variants(word):
            if variant in from_names:
                continue  # a category's own name wins over a synonym
            if terms.setdefault(variant, canonical) != canonical:
                raise ValueError(f'{path}: synonym {variant!r} is claimed by both '
                                 f'{terms[variant]!r} and {canonical!r}')
    return tuple(names), terms


@lru_cache(maxsize=8)
def load_lexicon(dataset: str | None = None, path: str = LEXICON_FILE) -> Lexicon:
    """Read and check the lexicon for ``dataset`` (None: the categories of both).

    Raises:
        ValueError: Unknown data set, or a malformed lexicon (naming file and key).
    """
    dataset = check_dataset(dataset)
    try:
        with open(path, encoding='utf-8') as file:
            raw = json.load(file)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f'cannot read the decoupler lexicon {path}: {err}') from err
    datasets = DATASETS if dataset is None else (dataset,)
    categories, category_terms = _category_terms(raw, datasets, path)

    all_category_words: List[str] = []
    for name in DATASETS:
        for canonical, words in _get(raw, ('categories', name), path).items():
            all_category_words += [canonical, *words]
    for word in all_category_words:  # other data sets' compounds of a known head noun
        for variant in term_variants(word):
            head = re.split(r'[\s-]', variant)[-1]
            if variant not in category_terms and head != variant and head in category_terms:
                category_terms[variant] = category_terms[head]
    landmark_words = _string_list(_get(raw, ('landmarks',), path), f'{path}: "landmarks"')
    landmarks = frozenset(v for w in landmark_words + all_category_words
                          for v in term_variants(w))

    def word_set(section: str, key: str) -> FrozenSet[str]:
        words = _string_list(_get(raw, (section, key), path), f'{path}: "{section}.{key}"')
        return frozenset(normalise_term(w) for w in words)

    return Lexicon(
        categories=categories,
        category_terms=category_terms,
        landmarks=landmarks,
        spatial={key: word_set('spatial', key) for key in _SPATIAL_KEYS},
        function_words={key: word_set('function_words', key) for key in _FUNCTION_KEYS},
    )
