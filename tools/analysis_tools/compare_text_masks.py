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

The comparison is :func:`fianet_mmseg.text.mask_agreement.compare_text_masks`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, Sequence

from fianet_mmseg.text.mask_agreement import compare_text_masks, report_lines
from fianet_mmseg.text.reference_masks import REFERENCE_MAX_LENGTH
from fianet_mmseg.utils import DEMO_TEXT_ENCODER


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


def main(argv: Sequence[str] | None = None) -> Dict[str, object]:
    args = parse_args(argv)
    comparison = compare_text_masks(args.inputs, args.dataset, args.max_length, args.tokenizer,
                                    args.out)
    for line in report_lines(comparison, args.examples):
        print(line)
    return comparison['report']


if __name__ == '__main__':
    try:
        main()
    except (ImportError, FileNotFoundError, ValueError) as err:
        sys.exit(f'compare_text_masks: {err}')
