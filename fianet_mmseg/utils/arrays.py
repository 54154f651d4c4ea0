"""Conversions shared by the inference outputs and the visualiser."""
from __future__ import annotations

from typing import Any

import numpy as np


def as_hw_array(value: Any) -> np.ndarray:
    """An (H, W) numpy array from an (H, W) or (1, H, W) array or tensor.

    Raises:
        ValueError: for any other shape, naming it.
    """
    if hasattr(value, 'detach'):  # a torch tensor, on any device
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 2:
        raise ValueError(f'expected an (H, W) or (1, H, W) mask, got shape {value.shape}')
    return value
