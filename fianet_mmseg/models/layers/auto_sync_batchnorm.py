"""Synchronised batch norm for the machine: torch's on CUDA, the portable one elsewhere."""
from __future__ import annotations

from typing import Any

import torch
from mmseg.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .sync_batchnorm import PortableSyncBatchNorm


@MODELS.register_module('AutoSyncBN')
class AutoSyncBatchNorm:
    """Norm type that builds the synchronised batch norm the machine can run.

    Where CUDA is available when the model is built (``torch.cuda.is_available()``),
    this builds torch's ``nn.SyncBatchNorm`` (mmcv's ``'SyncBN'``: the fused
    CUDA kernels, statistics gathered with NCCL); elsewhere
    :class:`PortableSyncBatchNorm` (``'PortableSyncBN'``), which also runs
    on CPU process groups (gloo), where torch's raises and
    ``DistributedDataParallel`` refuses it. Both are plain batch norm in
    one process and have ``nn.BatchNorm2d``'s parameters, buffers and
    state-dict keys, so checkpoints move between the two.

    Used as ``norm_cfg=dict(type='AutoSyncBN')`` with mmcv's
    ``build_norm_layer``; to train on CPU processes of a machine that has a
    GPU, name ``'PortableSyncBN'`` instead. Calling the class returns the
    chosen layer (an instance of one of the two classes, not of this one).

    Args:
        num_features (int): Channels ``C``.
        **kwargs: ``nn.BatchNorm2d`` arguments (``eps``, ``momentum``,
            ``affine``, ``track_running_stats``) and ``process_group``.

    Shapes:
        (B, C, ...) -> (B, C, ...).
    """

    _abbr_ = 'bn'  # the layer's attribute name in mmcv's ConvModule ("bn")

    def __new__(cls, num_features: int, **kwargs: Any) -> _BatchNorm:
        if torch.cuda.is_available():
            return nn.SyncBatchNorm(num_features, **kwargs)
        return PortableSyncBatchNorm(num_features, **kwargs)
