"""How often the project's text masks agree with the reference's own (NLTK) masks.

For every record of converted JSONL files (field ``expression``) it builds the
project's masks (``DecoupleAndTokenize`` decoupling='project') and the
reference's (decoupling='reference', docs/reference.md 6b) and reports, per mask, the
share of expressions whose masks are exactly equal and the mean IoU of the two
binary masks (IoU of two all-zero masks counts as 1).

The object-mask comparison needs no tagger (only NLTK's word tokenizer; without
the ``punkt_tab`` data the data-free ``NLTKWordTokenizer`` is used, which equals
``nltk.word_tokenize`` on one-sentence expressions), so it always runs. The
position-mask comparison needs NLTK's POS tagger data; without it that part is
refused with a message. Example (from the repository root)::

    python data_prep/refsegrs.py --src tests/fixtures/formats/refsegrs --out /tmp/refsegrs
    python tools/analysis_tools/compare_text_masks.py /tmp/refsegrs --dataset refsegrs
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
from glob import glob
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from fianet_mmseg.text import ExpressionEncoder, ReferenceMaskBuilder, TextDecoupler
from fianet_mmseg.text.reference_masks import (
    NLTK_DOWNLOAD_COMMAND,
    REFERENCE_MAX_LENGTH,
    data_free_word_tokenize,
    import_nltk,
    missing_nltk_data,
)
from fianet_mmseg.utils import DEMO_TEXT_ENCODER
from fianet_mmseg.utils.jsonl import read_jsonl


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', nargs='+',
                        help='converted JSONL files, or directories (their *.jsonl)')
    parser.add_argument('--dataset', required=True, choices=sorted(REFERENCE_MAX_LENGTH),
                        help='category list and default length of the reference')
    parser.add_argument('--max-length', type=int, default=None,
                        help='token length L (default: the reference, 22 RRSIS-D / 20 RefSegRS)')
    parser.add_argument('--tokenizer', default=DEMO_TEXT_ENCODER,
                        help='tokenizer directory, package:// name or cached model name '
                             f'(default {DEMO_TEXT_ENCODER}, the uncased BERT vocabulary)')
    parser.add_argument('--examples', type=int, default=0,
                        help='print this many disagreeing expressions per mask')
    parser.add_argument('--out', default=None, help='also write the numbers as JSON here')
    return parser.parse_args(argv)


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
    """IoU of two binary masks; 1.0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


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


def covered(tokens: List[str], mask: np.ndarray) -> str:
    return ' '.join(t for t, on in zip(tokens, mask) if on) or '-'


def main(argv: Sequence[str] | None = None) -> Dict[str, object]:
    args = parse_args(argv)
    import_nltk()
    length = args.max_length or REFERENCE_MAX_LENGTH[args.dataset]
    encoder = ExpressionEncoder(args.tokenizer, length)
    decoupler = TextDecoupler(args.dataset)

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
    builder = ReferenceMaskBuilder(args.dataset, length, encoder, word_tokenize=word_tokenize)

    tallies = {'object_mask': Tally()}
    if with_position:
        tallies['position_mask'] = Tally()
    ref_no_category = ref_position_fallback = 0
    files = jsonl_files(args.inputs)
    if args.out and any(osp.samefile(args.out, f) for f in files if osp.exists(args.out)):
        raise ValueError(f'--out {args.out} is one of the inputs; not overwriting it')
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
        dataset=args.dataset, max_length=length, files=files,
        reference_all_zero_object_masks=ref_no_category,
        **{key: tally.summary() for key, tally in tallies.items()})
    if with_position:
        report['reference_position_fallbacks'] = ref_position_fallback
    else:
        report['position_mask'] = None
    report['notes'] = notes

    print(f'dataset {args.dataset}, L={length}, {len(files)} file(s)')
    for note in notes:
        print(f'note: {note}')
    for key, tally in tallies.items():
        s = tally.summary()
        print(f'{key:14} expressions {s["expressions"]:6d}  exactly equal '
              f'{100 * s["exact_equal"]:6.2f}%  mean IoU {s["mean_iou"]:.4f}')
    print(f'reference object mask all zero (no category found): {ref_no_category}')
    if with_position:
        print(f'reference position mask = attention mask (no phrase kept): '
              f'{ref_position_fallback}')
    if args.examples:
        for key, tally in tallies.items():
            for expression, project, reference in tally.disagreements[:args.examples]:
                tokens = encoder.tokenizer.convert_ids_to_tokens(
                    encoder(expression)['input_ids'].tolist())
                print(f'{key} differs: {expression!r}\n'
                      f'    project:   {covered(tokens, project)}\n'
                      f'    reference: {covered(tokens, reference)}')
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == '__main__':
    try:
        main()
    except (ImportError, FileNotFoundError, ValueError) as err:
        sys.exit(f'compare_text_masks: {err}')
