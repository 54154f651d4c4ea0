"""Show how expressions are decoupled and which wordpieces each text mask covers.

Example (from the repository root)::

    python tools/analysis_tools/decouple.py "The gray storage tank on the lower left" \
        "light-duty vehicle driving on the road" --dataset refsegrs
"""
from __future__ import annotations

import argparse
from typing import Sequence

from fianet_mmseg.text import ExpressionEncoder, TextDecoupler
from fianet_mmseg.text.tokenization import covered_wordpieces
from fianet_mmseg.utils import DEMO_TEXT_ENCODER


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('expressions', nargs='+', help='referring expressions')
    parser.add_argument('--tokenizer', default=DEMO_TEXT_ENCODER,
                        help='tokenizer directory, package:// name or cached model name '
                             f'(default {DEMO_TEXT_ENCODER}, the uncased BERT vocabulary)')
    parser.add_argument('--max-length', type=int, default=22,
                        help='token length L (22 for RRSIS-D, 20 for RefSegRS)')
    parser.add_argument('--dataset', choices=['rrsisd', 'refsegrs'], default=None,
                        help='category set (default: both)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    decoupler = TextDecoupler(args.dataset)
    encoder = ExpressionEncoder(args.tokenizer, args.max_length)
    for expression in args.expressions:
        decoupled = decoupler(expression)
        encoded = encoder(expression, decoupled)
        tokens = encoder.tokenizer.convert_ids_to_tokens(encoded['input_ids'].tolist())
        spatial = ' | '.join(repr(p) for p in decoupled.spatial_phrases) or '-'
        print(f'expression: {expression!r}')
        print(f'  object:   {decoupled.object_phrase!r} (category: {decoupled.category})')
        print(f'  spatial:  {spatial}')
        for key in ('attention_mask', 'object_mask', 'position_mask'):
            print(f'  {key + ":":16}{covered_wordpieces(tokens, encoded[key])}')


if __name__ == '__main__':
    main()
