"""How often the project's text masks agree with the reference's own (NLTK) masks.

The work of ``tools/analysis_tools/compare_text_masks.py`` (:func:`compare_text_masks`,
:func:`report_lines`). For every record of converted JSONL files (field
``expression``) it builds the project's masks (:class:`~.tokenization.ExpressionEncoder`
over :class:`~.decoupler.TextDecoupler`, as ``DecoupleAndTokenize`` decoupling='project')
and the reference's (:class:`~.reference_masks.ReferenceMaskBuilder`, decoupling='reference',
docs/reference.md 6b), and counts, per mask, the share of expressions whose masks are
exactly equal and the mean IoU of the two binary masks (IoU of two all-zero masks counts
as 1).

The object-mask comparison needs no tagger (only NLTK's word tokenizer; without
the ``punkt_tab`` data the data-free ``NLTKWordTokenizer`` is used, which equals
``nltk.word_tokenize`` on one-sentence expressions), so it always runs. The
position-mask comparison needs NLTK's POS tagger data; without it that part is
left out with a note.
"""
from __future__ import annotations

import json
import os.path as osp
from glob import glob
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..utils import DEMO_TEXT_ENCODER
from ..utils.iou import intersection_and_union
from ..utils.jsonl import read_jsonl
from .decoupler import TextDecoupler
from .reference_masks import (
    NLTK_DOWNLOAD_COMMAND,
    REFERENCE_MAX_LENGTH,
    ReferenceMaskBuilder,
    data_free_word_tokenize,
    import_nltk,
    missing_nltk_data,
)
from .tokenization import ExpressionEncoder, covered_wordpieces


def jsonl_files(inputs: Sequence[str]) -> List[str]:
    """The JSONL files named, directories expanded to their sorted ``*.jsonl``."""
    files = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(glob(osp.join(item, '*.jsonl')))
            if not found:
                raise FileNotFoundError(f'{item}: directory without *.jsonl files')
            files += found
        elif osp.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f'{item}: no such file or directory')
    return files


def read_expressions(path: str) -> Iterator[str]:
    """The ``expression`` of each record; errors name the file and line."""
    for _, where, record in read_jsonl(path):
        expression = record.get('expression')
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError(f'{where}: no non-empty string field "expression"')
        yield expression



def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two binary masks (the metric's I and U); 1.0 when both are empty."""
    intersection, union = intersection_and_union(np.asarray(a), np.asarray(b))
    return 1.0 if union == 0 else intersection / union


class Tally:
    """Exact-match count and IoU sum of one mask kind."""

    def __init__(self) -> None:
        self.count, self.equal, self.iou_sum = 0, 0, 0.0
        self.disagreements: List[Tuple[str, np.ndarray, np.ndarray]] = []

    def add(self, expression: str, project: np.ndarray, reference: np.ndarray) -> None:
        self.count += 1
        same = np.array_equal(project, reference)
        self.equal += int(same)
        self.iou_sum += iou(project, reference)
        if not same:
            self.disagreements.append((expression, project, reference))

    def summary(self) -> Dict[str, float]:
        n = max(self.count, 1)
        return dict(expressions=self.count, exact_equal=self.equal / n,
                    mean_iou=self.iou_sum / n)



def compare_text_masks(inputs: Sequence[str], dataset: str, max_length: Optional[int] = None,
                       tokenizer: str = DEMO_TEXT_ENCODER, out: Optional[str] = None) -> dict:
    """Compare the two kinds of masks over the expressions of ``inputs``.

    Args:
        inputs: Converted JSONL files, or directories (their ``*.jsonl``).
        dataset: ``rrsisd`` or ``refsegrs`` (the reference's category list and length).
        max_length: Token length L (default: the reference's for ``dataset``).
        tokenizer: Tokenizer directory, ``package://`` name or cached model name.
        out: Also write the report as JSON here (never one of the inputs).

    Returns:
        dict: ``report`` (the numbers, as written to ``out``), ``tallies``
        (``{mask: Tally}``) and ``encoder`` (the project's).
    """
    import_nltk()
    length = max_length or REFERENCE_MAX_LENGTH[dataset]
    encoder = ExpressionEncoder(tokenizer, length)
    decoupler = TextDecoupler(dataset)

    notes = []
    if missing_nltk_data(['punkt_tab']):
        word_tokenize = data_free_word_tokenize
        notes.append('NLTK punkt_tab missing: words from NLTKWordTokenizer (no sentence '
                     'split; same words for one-sentence expressions)')
    else:
        word_tokenize = None  # nltk.word_tokenize
    with_position = not missing_nltk_data(['averaged_perceptron_tagger_eng'])
    if not with_position:
        notes.append('position masks NOT compared: NLTK tagger data missing '
                     f'(download: {NLTK_DOWNLOAD_COMMAND})')
    builder = ReferenceMaskBuilder(dataset, length, encoder, word_tokenize=word_tokenize)

    tallies = {'object_mask': Tally()}
    if with_position:
        tallies['position_mask'] = Tally()
    ref_no_category = ref_position_fallback = 0
    files = jsonl_files(inputs)
    if out and any(osp.samefile(out, f) for f in files if osp.exists(out)):
        raise ValueError(f'--out {out} is one of the inputs; not overwriting it')
    for path in files:
        for expression in read_expressions(path):
            project = encoder(expression, decoupler(expression))
            words = builder.word_tokenize(expression)
            ref_object, categories = builder.object_mask(expression, words)
            ref_no_category += int(not categories)
            tallies['object_mask'].add(expression, project['object_mask'], ref_object)
            if with_position:
                ref_position, _, _, fallback = builder.position_mask(
                    expression, project['attention_mask'], words)
                ref_position_fallback += int(fallback)
                tallies['position_mask'].add(expression, project['position_mask'],
                                             ref_position)

    report: Dict[str, object] = dict(
        dataset=dataset, max_length=length, files=files,
        reference_all_zero_object_masks=ref_no_category,
        **{key: tally.summary() for key, tally in tallies.items()})
    if with_position:
        report['reference_position_fallbacks'] = ref_position_fallback
    else:
        report['position_mask'] = None
    report['notes'] = notes
    if out:
        with open(out, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1)
    return dict(report=report, tallies=tallies, encoder=encoder)


def report_lines(comparison: dict, examples: int = 0) -> List[str]:
    """The printed report of :func:`compare_text_masks`, with up to ``examples``
    disagreeing expressions per mask."""
    report, tallies, encoder = (comparison[key] for key in ('report', 'tallies', 'encoder'))
    lines = [f'dataset {report["dataset"]}, L={report["max_length"]}, '
             f'{len(report["files"])} file(s)']
    lines += [f'note: {note}' for note in report['notes']]
    for key, tally in tallies.items():
        s = tally.summary()
        lines.append(f'{key:14} expressions {s["expressions"]:6d}  exactly equal '
                     f'{100 * s["exact_equal"]:6.2f}%  mean IoU {s["mean_iou"]:.4f}')
    lines.append('reference object mask all zero (no category found): '
                 f'{report["reference_all_zero_object_masks"]}')
    if 'reference_position_fallbacks' in report:
        lines.append('reference position mask = attention mask (no phrase kept): '
                     f'{report["reference_position_fallbacks"]}')
    for key, tally in tallies.items():
        for expression, project, reference in tally.disagreements[:examples]:
            tokens = encoder.tokenizer.convert_ids_to_tokens(
                encoder(expression)['input_ids'].tolist())
            lines.append(f'{key} differs: {expression!r}\n'
                         f'    project:   {covered_wordpieces(tokens, project)}\n'
                         f'    reference: {covered_wordpieces(tokens, reference)}')
    return lines
