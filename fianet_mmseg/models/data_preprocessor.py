"""Batching for referring segmentation: images plus text tensors."""
from __future__ import annotations

from typing import Any, Dict, Sequence, Union

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from .batch_augments import BatchAugments
from .utils import stack_text_inputs


@MODELS.register_module()
class RefSegDataPreProcessor(SegDataPreProcessor):
    """mmseg's ``SegDataPreProcessor`` that also batches the text tensors.

    Images are moved to the model's device as they come from the loader
    (uint8, a quarter of the bytes of float32), with non-blocking copies
    (effective when the loader pins memory), then converted, normalised and
    stacked there. When all images share one size and no padding is asked
    for, the conversion and normalisation run once on the stacked batch
    (the same tensors and, in training, the same data-sample metainfo as
    mmseg's path; ``batch_augments`` apply in training on either path, after
    the normalisation, as in mmseg). The text fields of the data samples
    (``input_ids`` and the three masks, (L,) each) are stacked into (B, L)
    tensors and returned as ``text``, which :class:`FIANet` takes as a
    keyword argument; a batch of ``refseg_collate`` brings them stacked (and
    pinned) as ``data['text']``, which is then used as it is.

    Args:
        non_blocking (bool): Non-blocking host-to-device copies. Default: True.
        batch_augments (dict | list[dict] | callable | None): Batch
            augmentations: configs of ``MODELS`` (e.g. ``BatchBlackBoxes``),
            built and applied in order, or a callable ``(inputs, data_samples)
            -> (inputs, data_samples)`` as mmseg takes it. Default: None.
        **kwargs: :class:`SegDataPreProcessor` arguments.
    """

    def __init__(self, non_blocking: bool = True,
                 batch_augments: Union[dict, Sequence[dict], Any, None] = None,
                 **kwargs) -> None:
        if isinstance(batch_augments, dict):
            batch_augments = [batch_augments]
        if isinstance(batch_augments, (list, tuple)):
            batch_augments = BatchAugments([MODELS.build(cfg) for cfg in batch_augments])
        super().__init__(batch_augments=batch_augments, **kwargs)
        self._non_blocking = non_blocking

    def _needs_padding(self, training: bool) -> bool:
        if training:
            return self.size is not None or self.size_divisor is not None
        return bool(self.test_cfg)

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Returns ``dict(inputs=(B, 3, H, W), data_samples=..., text={...})``."""
        data_samples = data.get('data_samples')
        if 'text' in data:  # stacked by refseg_collate
            text = data['text']
            data = {key: value for key, value in data.items() if key != 'text'}
        else:
            text = stack_text_inputs(data_samples)
        inputs = data['inputs']
        same_size = all(img.shape == inputs[0].shape for img in inputs)
        if not same_size or self._needs_padding(training):
            result = super().forward(data, training)
        else:
            result = self._stack_same_size(data, training)
        result['text'] = self.cast_data(text)
        return result

    def _stack_same_size(self, data: dict, training: bool) -> Dict[str, Any]:
        """mmseg's ``SegDataPreProcessor.forward`` for same-size images, no padding:
        converted and normalised once on the stacked batch."""
        data = self.cast_data(data)
        batch = torch.stack(data['inputs']).float()
        if self.channel_conversion and batch.shape[1] == 3:
            batch = batch[:, [2, 1, 0]]
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        data_samples = data.get('data_samples')
        if training:
            if data_samples is None:
                raise ValueError('RefSegDataPreProcessor: training needs data_samples')
            for sample in data_samples:  # what mmseg's stack_batch records without padding
                pad_shape = None
                for field in ('gt_sem_seg', 'gt_edge_map', 'gt_depth_map'):
                    if field in sample:
                        pad_shape = getattr(sample, field).shape
                sample.set_metainfo({'img_shape': batch.shape[-2:], 'pad_shape': pad_shape,
                                     'padding_size': [0, 0, 0, 0]})
            if self.batch_augments is not None:
                batch, data_samples = self.batch_augments(batch, data_samples)
        return dict(inputs=batch, data_samples=data_samples)
