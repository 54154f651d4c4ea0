"""The reference's cross-entropy term: class-weighted mean over the labelled pixels."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class WeightedCrossEntropyLoss(nn.Module):
    """``F.cross_entropy`` with class weights, averaged as torch averages.

    ``loss = loss_weight * sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]``
    over the pixels ``i`` whose label is not ``ignore_index``: exactly
    ``F.cross_entropy(pred, target, weight=w, ignore_index=ignore_index)``,
    FIANet's reference loss (docs/reference.md section 7). mmseg 1.2's
    ``CrossEntropyLoss(class_weight=..., avg_non_ignore=True)`` has the same
    value but looks the class weight of every pixel up before masking the
    ignored ones, so a single ignored pixel (label 255: a mask's "ignore"
    value, or the data preprocessor's ``seg_pad_val`` padding) raises an
    ``IndexError``.

    When every pixel of the batch is ignored the weighted mean is 0 / 0
    (NaN from ``F.cross_entropy``); this loss returns 0 instead, still
    connected to ``pred`` (its gradient is zero), so the training step, the
    optimizer and DDP's gradient reduction go on as for any other batch.

    Args:
        class_weight (Sequence[float] | None): Weight per class; None: all 1.
        loss_weight (float): Multiplier. Default: 1.0.
        ignore_index (int): Label to ignore unless the decode head passes its
            own. Default: 255.
        loss_name (str): Key in the loss dict. Default: ``'loss_ce'``.
    """

    def __init__(self, class_weight: Optional[Sequence[float]] = None, loss_weight: float = 1.0,
                 ignore_index: int = 255, loss_name: str = 'loss_ce') -> None:
        super().__init__()
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = None, **kwargs) -> Tensor:
        """pred (N, C, H, W) logits, target (N, H, W) labels -> scalar.

        ``weight`` (per-pixel weights of a decode head's sampler) is not
        supported: the reference has none.
        """
        if weight is not None:
            raise ValueError('WeightedCrossEntropyLoss takes no per-pixel weights (a decode '
                             "head's sampler); remove the sampler or use mmseg's "
                             'CrossEntropyLoss')
        ignore = self.ignore_index if ignore_index is None else ignore_index
        class_weight = None
        if self.class_weight is not None:
            if len(self.class_weight) != pred.shape[1]:
                raise ValueError(f'WeightedCrossEntropyLoss: class_weight has '
                                 f'{len(self.class_weight)} values for {pred.shape[1]} classes')
            class_weight = pred.new_tensor(self.class_weight)
        target = target.long()
        loss = F.cross_entropy(pred, target, weight=class_weight, ignore_index=ignore,
                               reduction='mean')
        # all pixels ignored: 0 / 0 -> 0 (the NaN branch gets a zero gradient, and the
        # gradient of an ignored pixel is zero anyway); no host synchronisation
        any_labelled = (target != ignore).any()
        loss = torch.where(any_labelled, loss, torch.zeros_like(loss))
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name of the loss item (``loss_`` prefix: part of the total)."""
        return self._loss_name
