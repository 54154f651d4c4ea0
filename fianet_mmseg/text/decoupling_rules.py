"""The rules that split an expression into the referred object and its spatial phrases.

FIANet gives its text encoder three masks: the whole expression, the referred
ground object and the spatial description. :class:`TextDecoupler` finds the
character spans of the last two with spaCy's tokeniser (``spacy.blank('en')``, no
statistical model), a :class:`~spacy.matcher.PhraseMatcher` over the word lists of
``lexicon.json`` (see :mod:`fianet_mmseg.text.lexicon`) and the rules below, run as
the spaCy pipeline component ``fianet_decoupling_rules``. It replaces the
reference's NLTK chunking (docs/reference.md section 6); spans are offsets into the exact
string given (capitals and hyphens kept), so wordpieces can be projected correctly.

Conventions
-----------
Word classes come from the lexicon: category terms, landmark nouns, prepositions
(single and multi-word: ``next to``, ``in front of``, ``closest to`` ...), location
words (``left``, ``upper``, ``middle``, ``corner``, ``leftmost`` ...), location verbs
(``located``, ``parked``, ``driving``, ``surrounded`` ...), transitive location verbs
(``crossing``, ``facing`` ...), adverbs (``directly``, ``just`` ...) and function
words. The longest lexicon match wins; ties go to category > preposition > verb >
location word > landmark. A hyphen or slash between two words with no space
around it (``heavy-duty``, ``top-left``) is part of the word.

The expression is cut into phrases:

* A **spatial phrase** starts at a preposition and runs to the next boundary: a
  preposition other than ``of``, a copula (``is``, ``are``), a relative word
  (``which``, ``that``), ``with``, a transitive location verb, or punctuation. So
  an ``of`` complement stays inside (``on the lower left of the roundabout`` is
  ONE span), and a following ``in the middle`` is a SEPARATE span:
  ``on the right of the tennis court in the middle`` -> ``on the right of the
  tennis court`` + ``in the middle`` (which noun it describes is not resolved;
  both go to the position mask).
* Location verbs, adverbs and location words directly before a preposition open
  its spatial phrase: ``parked along the road``, ``driving on the road``,
  ``surrounded by building``, ``located directly above the bridge``, ``right next
  to the pond``. A transitive location verb opens one by itself: ``crossing the
  river``. An unknown word ending in ``-ing`` / ``-ed`` right after a category
  or landmark noun and before a preposition is taken as such a verb (``ship
  sailing on the sea``, ``trees planted along the road``). A copula is never
  part of a span (``is on the right`` -> ``on the right``).
* ``and`` / ``or`` inside a spatial phrase continue it when a location word,
  landmark or category noun follows before the next boundary (``on the top and
  left``), always after ``between`` / ``among``; otherwise the phrase ends.
* A phrase that starts with ``with`` / ``without`` / ``having`` ... describes the
  object, not its position: it is in NEITHER span (``the building with a red
  roof`` -> object ``building``, no spatial span). The object span stays the noun
  phrase before it. Like any phrase it ends at the next preposition, which opens
  a spatial phrase (``the building with a red roof on the left`` -> ``on the
  left``).
* Every other phrase is a **noun phrase**. The first noun phrase that has content
  besides determiners and location words is the referred object, wherever it
  stands (``On the left is a storage tank`` -> ``storage tank``); landmarks inside
  spatial phrases never are (``The basketball court is on the right of the tennis
  court`` -> ``basketball court``).
* Object span: that noun phrase without determiners (``the``, ``a``, ``this``
  ...), without leading location words and without trailing location words
  (each such run is a spatial span of its own: ``the leftmost tennis court`` ->
  object ``tennis court``, spatial ``leftmost``; ``the upper left storage tank``
  -> spatial ``upper left``; ``the ship left of the bridge`` -> spatial ``left of
  the bridge``), and without trailing verbs or conjunctions. Attribute words
  (colour, size, shape, numerals, ordinals, comparatives) and an ``of``
  complement that is not after a location word stay in it (``large frustum of a
  cone chimney``). A location word BETWEEN attribute words stays in the object
  span and is also reported as a spatial span, so the two may overlap (``the
  small upper tank`` -> object ``small upper tank``, spatial ``upper``).
* ``and`` / ``or`` in a noun phrase join attributes (``white and gray storage
  tank``); after a category noun they end the phrase (``the storage tank and the
  ship`` -> ``storage tank``).
* A noun phrase made only of location words is a spatial span (``The tank is
  leftmost`` -> ``leftmost``; ``the left of the image`` -> one span).
* Category: the canonical name of the last category term in the object span
  before its first ``of`` (else the last one after it): ``heavy-duty vehicle`` ->
  ``vehicle``, ``storagetanks`` -> ``storage tank``. None when the object span has
  no category term of the configured data set(s) (``the red thing on the left``
  -> object ``red thing``, category None) or there is no object span. Which
  terms name which category depends on the data set (``car`` is RefSegRS's
  ``car`` but RRSIS-D's ``vehicle``; see :mod:`fianet_mmseg.text.lexicon`).
* Pronoun heads are not treated specially: ``the leftmost one`` -> object ``one``.

Known limits: no part-of-speech information, so a word that is both a location
word and something else is always read as a location word, and unknown words are
taken as attributes or nouns of the phrase they are in.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from .lexicon import Lexicon, check_dataset, load_lexicon
from .noun_phrases import category_of, nominal_spans, trim
from .word_classes import (
    ADV,
    ATTRIBUTE,
    CAT,
    CONJ,
    COPULA,
    DET,
    DET_OR_REL,
    EXPL,
    FUNCTION_CLASSES,
    GLUE,
    GROUP_PREPS,
    LANDMARK,
    LEXICON_CLASSES,
    LOC,
    LOOKAHEAD_STOP,
    NOMINAL,
    PREP,
    PUNCT,
    REL,
    SPACE,
    SPAN_ANCHORS,
    SPATIAL,
    TRANSPARENT,
    VERB,
    VERB_T,
    WITH,
    WORD,
    Phrase,
    Unit,
    is_word,
)

RULES_COMPONENT = 'fianet_decoupling_rules'
OBJECT_SPANS_KEY = 'fianet_object'
SPATIAL_SPANS_KEY = 'fianet_spatial'


class DecouplingRules:
    """spaCy component: writes the object span and the spatial spans of a Doc.

    ``doc.spans['fianet_object']`` holds zero or one span, labelled with the
    canonical category ('' when unknown); ``doc.spans['fianet_spatial']`` holds
    the spatial spans (label ``SPATIAL``), in order.

    Args:
        nlp (Language): The pipeline (its tokeniser builds the match patterns).
        dataset (str | None): ``'rrsisd'``, ``'refsegrs'`` or None (both).
    """

    def __init__(self, nlp: Language, dataset: str | None = None) -> None:
        self.lexicon: Lexicon = load_lexicon(check_dataset(dataset))
        self.matcher = PhraseMatcher(nlp.vocab, attr='LOWER')
        classes: Dict[str, str] = {}
        for term, category in self.lexicon.category_terms.items():
            classes[term] = f'{CAT}|{category}'
        for cls, key in LEXICON_CLASSES:
            for term in self.lexicon.spatial[key]:
                classes.setdefault(term, cls)
        for term in self.lexicon.landmarks:
            classes.setdefault(term, LANDMARK)
        by_label: Dict[str, List[str]] = {}
        for term, label in classes.items():
            by_label.setdefault(label, []).append(term)
        for label, terms in sorted(by_label.items()):
            self.matcher.add(label, [nlp.make_doc(term) for term in sorted(terms)])
        self.function_classes: Dict[str, str] = {}
        for cls, key in FUNCTION_CLASSES:
            for word in self.lexicon.function_words[key]:
                known = self.function_classes.get(word)
                self.function_classes[word] = DET_OR_REL if {known, cls} == {DET, REL} \
                    else known or cls

    # ------------------------------------------------------------------ units
    def _units(self, doc: Doc) -> List[Unit]:
        matched = {span.start: span for span in filter_spans(self.matcher(doc, as_spans=True))}
        units: List[Unit] = []
        index = 0
        while index < len(doc):
            span = matched.get(index)
            if span is not None:
                cls, _, category = span.label_.partition('|')
                units.append(Unit(span.start, span.end, cls, span.text.lower(),
                                   category or None))
                index = span.end
                continue
            token = doc[index]
            units.append(Unit(index, index + 1, self._token_class(doc, index), token.lower_))
            index += 1
        return units

    def _token_class(self, doc: Doc, index: int) -> str:
        token = doc[index]
        if token.is_space:
            return SPACE
        known = self.function_classes.get(token.lower_)
        if known is not None:
            return known
        if token.is_punct:
            inside_word = (0 < index < len(doc) - 1 and not token.whitespace_
                           and not doc[index - 1].whitespace_
                           and is_word(doc[index - 1]) and is_word(doc[index + 1]))
            return GLUE if inside_word else PUNCT
        return WORD

    # ---------------------------------------------------------------- phrases
    def _phrases(self, units: List[Unit]) -> List[Phrase]:
        phrases: List[Phrase] = []
        current: Phrase | None = None

        def close() -> None:
            nonlocal current
            if current is not None and current.units:
                phrases.append(current)
            current = None

        for index, unit in enumerate(units):
            cls = unit.cls
            if cls in TRANSPARENT:
                if current is not None:
                    current.units.append(unit)
                continue
            if cls == DET_OR_REL:
                cls = REL if current is not None and current.has_content() else DET
                unit.cls = cls
            if cls == EXPL and current is not None and current.units[-1].cls == PREP:
                current.units.append(unit)  # "next to it"
            elif cls in (PUNCT, COPULA, REL, EXPL):
                close()
            elif cls == PREP:
                opening = self._steal(current)
                close()
                current = Phrase(SPATIAL, opening + [unit], prep=unit.text)
            elif cls == VERB_T and (current is None or current.has_content()):
                close()
                current = Phrase(SPATIAL, [unit], prep=unit.text)
            elif cls == WITH:
                close()
                current = Phrase(ATTRIBUTE, [unit])
            elif cls == CONJ:
                if current is not None and self._conjunction_continues(current, units, index):
                    current.units.append(unit)
                else:
                    close()
            else:
                if current is None:
                    current = Phrase(NOMINAL)
                current.units.append(unit)
        close()
        return phrases

    @staticmethod
    def _steal(phrase: Phrase | None) -> List[Unit]:
        """Pop the verbs / adverbs / location words that open the next spatial phrase."""
        if phrase is None:
            return []
        allowed = {ADV, VERB, SPACE, GLUE}
        if phrase.kind != SPATIAL:
            allowed.add(LOC)
        units = phrase.units
        cut = len(units)
        while cut > 0:
            unit = units[cut - 1]
            participle = (phrase.kind != SPATIAL and unit.cls == WORD and cut >= 2
                          and units[cut - 2].cls in (CAT, LANDMARK)
                          and len(unit.text) > 4 and unit.text.endswith(('ing', 'ed')))
            if unit.cls not in allowed and not participle:
                break
            cut -= 1
        while cut < len(phrase.units) and phrase.units[cut].cls in TRANSPARENT:
            cut += 1
        stolen = units[cut:]
        del units[cut:]
        return stolen

    @staticmethod
    def _conjunction_continues(phrase: Phrase, units: Sequence[Unit], index: int) -> bool:
        if phrase.kind == ATTRIBUTE:
            return True
        if phrase.kind == NOMINAL:  # "white and gray tank", not "the tank and the ship"
            return not any(unit.cls == CAT for unit in phrase.units)
        if phrase.prep in GROUP_PREPS:
            return True
        for unit in units[index + 1:]:
            if unit.cls in LOOKAHEAD_STOP:
                return False
            if unit.cls in SPAN_ANCHORS:
                return True
        return False

    # --------------------------------------------------------------- __call__
    def __call__(self, doc: Doc) -> Doc:
        units = self._units(doc)
        object_span: Span | None = None
        spatial: List[Span] = []

        def to_span(phrase_units: Sequence[Unit], label: str) -> Span:
            return Span(doc, phrase_units[0].start, phrase_units[-1].end, label=label)

        for phrase in self._phrases(units):
            if phrase.kind == SPATIAL:
                start, end = trim(phrase.units, 0, len(phrase.units))
                if end > start:
                    spatial.append(to_span(phrase.units[start:end], 'SPATIAL'))
            elif phrase.kind == NOMINAL:
                obj, ranges = nominal_spans(phrase.units)
                spatial += [to_span(phrase.units[s:e], 'SPATIAL') for s, e in ranges if e > s]
                if obj is not None and object_span is None:
                    obj_units = phrase.units[obj[0]:obj[1]]
                    object_span = to_span(obj_units, category_of(obj_units) or '')
        doc.spans[OBJECT_SPANS_KEY] = [object_span] if object_span is not None else []
        doc.spans[SPATIAL_SPANS_KEY] = sorted(spatial, key=lambda span: (span.start, span.end))
        return doc


@Language.factory(RULES_COMPONENT, default_config={'dataset': None})
def make_decoupling_rules(nlp, name, dataset) -> DecouplingRules:
    """Factory of the ``fianet_decoupling_rules`` pipeline component.

    Args:
        nlp (Language): the pipeline. name (str): the component's name.
        dataset (str | None): ``'rrsisd'``, ``'refsegrs'`` or None (see :class:`TextDecoupler`).

    The parameters carry no annotations: spaCy validates a factory's arguments against them,
    and spaCy 3.7 (confection 0.x, pydantic.v1) cannot resolve this module's postponed
    annotations (``ConfigError: field "nlp" not yet prepared``).
    """
    return DecouplingRules(nlp, dataset)
