"""The per-sample text tensors that travel with each ``SegDataSample``."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import Tensor

from ...constants import TEXT_KEYS


def stack_text_inputs(data_samples: Sequence) -> Dict[str, Tensor]:
    """Stack the text fields of a batch of data samples into (B, L) tensors."""
    if not data_samples:
        raise ValueError('FIANet needs text inputs: got no data samples and no text')
    missing = [key for key in TEXT_KEYS if key not in data_samples[0]]
    if missing:
        raise KeyError(f'data samples lack the text fields {missing}; the pipeline must '
                       'run DecoupleAndTokenize and PackRefSegInputs')
    return {key: torch.stack([sample.get(key) for sample in data_samples])
            for key in TEXT_KEYS}
