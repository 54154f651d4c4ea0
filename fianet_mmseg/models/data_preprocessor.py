"""Batching for referring segmentation: images plus text tensors."""
from __future__ import annotations

from typing import Any, Dict

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from .utils import stack_text_inputs


@MODELS.register_module()
class RefSegDataPreProcessor(SegDataPreProcessor):
    """mmseg's ``SegDataPreProcessor`` that also batches the text tensors.

    Images are moved to the model's device as they come from the loader
    (uint8, a quarter of the bytes of float32), with non-blocking copies
    (effective when the loader pins memory), then converted, normalised and
    stacked there. When all images share one size and no padding is asked
    for, the conversion and normalisation run once on the stacked batch.
    The text fields of the data samples (``input_ids`` and the three masks,
    (L,) each) are stacked into (B, L) tensors and returned as ``text``,
    which :class:`FIANet` takes as a keyword argument.

    Args:
        non_blocking (bool): Non-blocking host-to-device copies. Default: True.
        **kwargs: :class:`SegDataPreProcessor` arguments.
    """

    def __init__(self, non_blocking: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self._non_blocking = non_blocking

    def _needs_padding(self, training: bool) -> bool:
        if training:
            return self.size is not None or self.size_divisor is not None
        return bool(self.test_cfg)

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Returns ``dict(inputs=(B, 3, H, W), data_samples=..., text={...})``."""
        data_samples = data.get('data_samples')
        text = stack_text_inputs(data_samples)
        inputs = data['inputs']
        same_size = all(img.shape == inputs[0].shape for img in inputs)
        if not same_size or self._needs_padding(training):
            result = super().forward(data, training)
        else:
            data = self.cast_data(data)
            batch = torch.stack(data['inputs']).float()
            if self.channel_conversion and batch.shape[1] == 3:
                batch = batch[:, [2, 1, 0]]
            if self._enable_normalize:
                batch = (batch - self.mean) / self.std
            result = dict(inputs=batch, data_samples=data['data_samples'])
        result['text'] = self.cast_data(text)
        return result
