"""The reference's Dice term: per sample and class, summed."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class ClasswiseDiceLoss(nn.Module):
    """Soft Dice computed per (sample, class) and summed over both.

    ``loss = loss_weight * sum_{n,c} 1 - (2 * sum(p * t) + eps) /
    (sum(p) + sum(t) + eps)`` with ``p`` the softmax probabilities and ``t``
    the one-hot target. FIANet's reference uses it with ``loss_weight=0.1``
    and ``eps=1e-6`` next to a class-weighted cross-entropy. mmseg's
    ``DiceLoss`` pools all classes of a sample into one ratio, hence this
    class. Pixels labelled ``ignore_index`` count for neither term.

    Args:
        loss_weight (float): Multiplier. Default: 1.0.
        eps (float): Smoothing of numerator and denominator. Default: 1e-6.
        reduction (str): ``'sum'`` (reference) or ``'mean'`` over the
            (sample, class) terms.
        ignore_index (int): Label to ignore. Default: 255.
        loss_name (str): Key in the loss dict. Default: ``'loss_dice'``.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6, reduction: str = 'sum',
                 ignore_index: int = 255, loss_name: str = 'loss_dice') -> None:
        super().__init__()
        if reduction not in ('sum', 'mean'):
            raise ValueError(f"ClasswiseDiceLoss reduction must be 'sum' or 'mean', "
                             f'got {reduction!r}')
        self.loss_weight = loss_weight
        self.eps = eps
        self.reduction = reduction
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = None, **kwargs) -> Tensor:
        """pred (N, C, H, W) logits, target (N, H, W) labels -> scalar."""
        ignore = self.ignore_index if ignore_index is None else ignore_index
        num_classes = pred.shape[1]
        valid = (target != ignore).unsqueeze(1).to(pred.dtype)  # (N, 1, H, W)
        labels = torch.where(target == ignore, torch.zeros_like(target), target)
        prob = pred.softmax(dim=1) * valid
        one_hot = F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).to(pred.dtype) * valid
        inter = (prob * one_hot).flatten(2).sum(-1)  # (N, C)
        denom = prob.flatten(2).sum(-1) + one_hot.flatten(2).sum(-1)
        loss = 1 - (2 * inter + self.eps) / (denom + self.eps)
        loss = loss.sum() if self.reduction == 'sum' else loss.mean()
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name of the loss item (``loss_`` prefix: part of the total)."""
        return self._loss_name
