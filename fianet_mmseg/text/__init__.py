"""Text side of FIANet: expression decoupling and wordpiece masks.

Names are imported on first use, so ``import fianet_mmseg.text`` does not load
spaCy, transformers or NLTK.
"""
from importlib import import_module
from typing import Any

_EXPORTS = {
    'DecoupledText': '.decoupler',
    'TextDecoupler': '.decoupler',
    'ExpressionEncoder': '.tokenization',
    'load_tokenizer': '.tokenization',
    'load_lexicon': '.lexicon',
    'ReferenceMaskBuilder': '.reference_masks',
    'ReferenceText': '.reference_masks',
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
