"""Converters from the RRSIS-D and RefSegRS release layouts to the project's format.

Output (see :mod:`.common`): ``OUT/{train,val,test}.jsonl`` with one record per
(reference, sentence) and ``OUT/masks/*.png`` binary masks. Command-line tools:
``data_prep/rrsisd.py`` and ``data_prep/refsegrs.py``.
"""
from .common import RECORD_KEYS, SPLITS, ConversionSummary, ConverterError
from .refsegrs import category_from_expression, convert_refsegrs
from .rrsisd import convert_rrsisd, decode_segmentation

__all__ = ['RECORD_KEYS', 'SPLITS', 'ConversionSummary', 'ConverterError',
           'category_from_expression', 'convert_refsegrs', 'convert_rrsisd',
           'decode_segmentation']
