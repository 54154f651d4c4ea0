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
    process group). While training in a distributed run, the statistics come
    from two differentiable ``all_reduce`` calls (the same on CPU/gloo and
    GPU/NCCL), both in float32 whatever the input's dtype (float64 for
    float64 input): the first sums values and counts into the global mean,
    the second sums each process's deviations from it and their squares,
    which give the (biased) variance without the cancellation of
    ``E[x^2] - E[x]^2`` and correct the mean's rounding. The output is cast
    back to the input's dtype (float16 / bfloat16 under autocast). The
    running statistics move as in torch: unbiased variance, ``momentum`` or,
    with ``momentum=None``, the cumulative average.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``.
    Registered as ``'PortableSyncBN'`` for mmcv's ``build_norm_layer``
    (``norm_cfg=dict(type='PortableSyncBN')``); the configs name
    ``'AutoSyncBN'``, which builds torch's ``SyncBatchNorm`` instead where
    CUDA is available.

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

        group = self.process_group or dist.group.WORLD
        channels = self.num_features
        dims = [0] + list(range(2, x.dim()))
        shape = (1, channels) + (1,) * (x.dim() - 2)
        # statistics in float32 (float64 for float64 input), whatever reaches the layer
        values = x.to(torch.promote_types(x.dtype, torch.float32))
        count = values.new_full((1,), x.numel() // x.shape[1])
        # pass 1: the global mean from the summed values and counts
        total = all_reduce(torch.cat([values.sum(dims), count]), group=group)
        num = total[-1]
        centred = values - (total[:channels] / num).view(shape)
        # pass 2: summed deviations from that mean (its rounding error, removed below) and
        # summed squared deviations: no cancellation of E[x^2] - E[x]^2
        deviations = all_reduce(torch.cat([centred.sum(dims), (centred * centred).sum(dims)]),
                                group=group)
        shift = deviations[:channels] / num
        var = (deviations[channels:] / num - shift * shift).clamp_min(0)
        centred = centred - shift.view(shape)
        if self.track_running_stats:
            mean = total[:channels] / num + shift
            self._update_running_stats(mean.detach(), var.detach(), num.detach())
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.to(out.dtype).view(shape) + self.bias.to(out.dtype).view(shape)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, num: Tensor) -> None:
        """Move the running statistics like ``F.batch_norm`` does in training."""
        self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (num / (num - 1).clamp_min(1))
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype),
                                                  alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype),
                                                 alpha=momentum)

