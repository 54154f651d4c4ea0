"""Time expression decoupling and tokenisation per expression (CPU, one thread).

Prints one JSON line with the median and 90th percentile in microseconds of the
decoupling, the tokenisation (ids + three masks) and both together. Example::

    python tools/analysis_tools/benchmark_text.py --n 2000
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from typing import Dict, List, Sequence

import numpy as np

from fianet_mmseg.text import ExpressionEncoder, TextDecoupler
from fianet_mmseg.utils import DEMO_TEXT_ENCODER

#: A mix in the styles of RRSIS-D and RefSegRS (see docs/data_preparation.md).
EXPRESSIONS = (
    'The gray small windmill',
    'A tennis court on the lower left',
    'The airport in the middle',
    'A oval ground track field',
    'The basketball court is on the right of the tennis court in the middle',
    'The expressway toll station in the middle',
    'A large frustum of a cone chimney',
    'The baseball field on the top',
    'The leftmost storage tank next to the white storage tank on the bottom',
    'The ship docked at the harbor on the upper right of the image',
    'Expressway-Service-area on the lower left of the roundabout',
    'A white vehicle parked along the road in the upper left corner',
    'The overpass crossing the river',
    'car',
    'road marking',
    'heavy-duty vehicle',
    'light-duty vehicle driving on the road',
    'building along the road',
    'low vegetation surrounded by building',
    'building with a parking lot',
    'trailer in the parking area',
    'long truck',
    'impervious surface between the building and the sidewalk',
    'trees on both sides of the bikeway',
)


def percentiles(values_ns: List[int]) -> Dict[str, float]:
    """Median and p90 in microseconds."""
    values = np.asarray(values_ns, dtype=np.float64) / 1000.0
    return {'median_us': round(float(np.median(values)), 1),
            'p90_us': round(float(np.percentile(values, 90)), 1)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=2000, help='timed expressions')
    parser.add_argument('--warmup', type=int, default=200, help='untimed expressions first')
    parser.add_argument('--tokenizer', default=DEMO_TEXT_ENCODER)
    parser.add_argument('--max-length', type=int, default=22)
    parser.add_argument('--dataset', choices=['rrsisd', 'refsegrs'], default=None)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error('--n must be positive')

    decoupler = TextDecoupler(args.dataset)
    encoder = ExpressionEncoder(args.tokenizer, args.max_length)
    stream = itertools.cycle(EXPRESSIONS)
    for expression in itertools.islice(stream, args.warmup):
        encoder(expression, decoupler(expression))

    decouple_ns, tokenize_ns, total_ns = [], [], []
    clock = time.perf_counter_ns
    for expression in itertools.islice(stream, args.n):
        start = clock()
        decoupled = decoupler(expression)
        middle = clock()
        encoder(expression, decoupled)
        end = clock()
        decouple_ns.append(middle - start)
        tokenize_ns.append(end - middle)
        total_ns.append(end - start)
    print(json.dumps({
        'n': args.n, 'distinct_expressions': len(EXPRESSIONS), 'max_length': args.max_length,
        'decouple': percentiles(decouple_ns), 'tokenize': percentiles(tokenize_ns),
        'total': percentiles(total_ns), 'python': platform.python_version(),
        'processor': platform.processor() or platform.machine()}))


if __name__ == '__main__':
    main()
