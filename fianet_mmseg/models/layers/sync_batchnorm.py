"""Synchronised batch normalisation that also works on CPU process groups."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.distributed as dist
from mmseg.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


@MODELS.register_module('PortableSyncBN')
class PortableSyncBatchNorm(_BatchNorm):
    """Batch normalisation with statistics over all processes, on any device.

    torch's ``SyncBatchNorm`` (and mmcv's) compute the batch statistics over
    all processes of a distributed run, but only for GPU tensors: on CPU (a
    ``gloo`` run) torch raises, and ``DistributedDataParallel`` refuses any
    ``SyncBatchNorm`` module of a CPU model. This layer is a plain batch norm
    wherever nothing is to be synchronised (one process, evaluation, no
    process group). While training in a distributed run, each process sums
    its features and squared features per channel, one differentiable
    ``all_reduce`` adds them over the processes (the same on CPU/gloo and
    GPU/NCCL), and the normalisation uses the global mean and (biased)
    variance; the running statistics move with the unbiased variance, as in
    torch.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``.
    Registered as ``'PortableSyncBN'`` for mmcv's ``build_norm_layer``
    (``norm_cfg=dict(type='PortableSyncBN')``).

    Args:
        process_group: The processes to synchronise over; None: all.
        **kwargs: ``nn.BatchNorm2d`` arguments (``num_features``, ``eps``,
            ``momentum``, ``affine``, ``track_running_stats``).

    Shapes:
        (B, C, ...) -> (B, C, ...).
    """

    def __init__(self, *args: Any, process_group: Optional[Any] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {x.dim()}D input)')

    def _synchronises(self) -> bool:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group or dist.group.WORLD) > 1

    def forward(self, x: Tensor) -> Tensor:
        if not self._synchronises():
            return super().forward(x)
        self._check_input_dim(x)
        from torch.distributed.nn.functional import all_reduce

        channels = self.num_features
        dims = [0] + list(range(2, x.dim()))
        count = x.new_full((1,), x.numel() // x.shape[1])
        local = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        total = all_reduce(local, group=self.process_group or dist.group.WORLD)
        num = total[-1]
        mean = total[:channels] / num
        var = (total[channels:2 * channels] / num - mean * mean).clamp_min(0)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), num.detach())
        shape = (1, channels) + (1,) * (x.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, num: Tensor) -> None:
        """Move the running statistics like ``F.batch_norm`` does in training."""
        self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (num / (num - 1).clamp_min(1))
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)

