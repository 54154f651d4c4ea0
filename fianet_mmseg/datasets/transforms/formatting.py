"""Packing a referring sample into mmseg's ``SegDataSample``."""
from __future__ import annotations

import torch
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

from ...constants import BLACK_BOXES, TEXT_KEYS

#: Sample fields kept as metainfo (for metrics, visualisation and analysis).
REFSEG_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                    'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                    'expression', 'ref_id', 'sent_id', 'image_id', 'category', 'split',
                    'object_phrase', 'spatial_phrases', 'decoupled_category',
                    'original_expression', 'sample_idx')


@TRANSFORMS.register_module()
class PackRefSegInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` plus the text tensors.

    The four text arrays (``input_ids`` and the masks, (L,) int64) become
    data fields of the ``SegDataSample`` with the same names; the
    expression and its decoupled phrases travel as metainfo. Boxes that
    ``RandomBlackBoxes(paint=False)`` drew but did not paint become the data
    field ``black_boxes`` ((N, 4) int64), for ``BatchBlackBoxes`` on the device.

    Args:
        meta_keys (tuple[str]): Metainfo keys to keep when present.
    """

    def __init__(self, meta_keys=REFSEG_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack image, mask, metainfo and text tensors."""
        missing = [key for key in TEXT_KEYS if key not in results]
        if missing:
            raise KeyError(f'PackRefSegInputs: sample lacks {missing}; put DecoupleAndTokenize '
                           'before it in the pipeline')
        packed = super().transform(results)
        packed['data_samples'].set_data(
            {key: torch.as_tensor(results[key], dtype=torch.long) for key in TEXT_KEYS})
        if BLACK_BOXES in results:
            packed['data_samples'].set_data(
                {BLACK_BOXES: torch.as_tensor(results[BLACK_BOXES], dtype=torch.long)})
        return packed
