"""Text-aware multi-scale enhancement module (TMEM), FIANet's neck."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..layers import PixelWordAttention, TextFeatures


class TextAwareBlock(nn.Module):
    """Pre-norm transformer block whose attention reads the expression.

    ``z = z + attn(LN(z), l)``; ``z = z + FFN(LN(z))`` with a
    ``c -> 2c -> c`` GELU feed-forward.

    Args:
        channels (int): Token width.
        text_channels (int): Word width ``D``.
    """

    def __init__(self, channels: int, text_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = PixelWordAttention(channels, text_channels, channels, channels, channels,
                                       num_heads=1)
        self.norm2 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, z: Tensor, text: Tensor, mask: Tensor) -> Tensor:
        """z (B, N, c), text (B, D, L), mask (B, L) -> (B, N, c)."""
        z = z + self.attn(self.norm1(z), text, mask)
        return z + self.ffn(self.norm2(z))


def hard_sigmoid(x: Tensor) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return F.relu6(x + 3) / 6


class ScaleAwareGate(nn.Module):
    """Injects the global (text-enhanced) map into one local scale.

    ``out = BN(conv(a)) * up(hsig(BN(conv(b)))) + up(BN(conv(b)))`` with ``a``
    the stage's map and ``b`` its slice of the enhanced global map; ``up`` is
    bilinear resizing to ``a``'s grid (align_corners False).

    Args:
        channels (int): Width of this scale.
        norm_cfg (dict): The three batch norms (mmcv ``build_norm_layer``).
    """

    def __init__(self, channels: int, norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        self.local_conv = nn.Conv2d(channels, channels, 1)
        self.local_bn = build_norm_layer(norm_cfg, channels)[1]
        self.gate_conv = nn.Conv2d(channels, channels, 1)
        self.gate_bn = build_norm_layer(norm_cfg, channels)[1]
        self.global_conv = nn.Conv2d(channels, channels, 1)
        self.global_bn = build_norm_layer(norm_cfg, channels)[1]

    def forward(self, local: Tensor, global_: Tensor) -> Tensor:
        """local (B, c, H, W), global_ (B, c, h, w) -> (B, c, H, W)."""
        size = local.shape[2:]
        gate = F.interpolate(hard_sigmoid(self.gate_bn(self.gate_conv(global_))), size=size,
                             mode='bilinear', align_corners=False)
        injected = F.interpolate(self.global_bn(self.global_conv(global_)), size=size,
                                 mode='bilinear', align_corners=False)
        return self.local_bn(self.local_conv(local)) * gate + injected


@MODELS.register_module()
class TMEM(BaseModule):
    """Text-aware multi-scale enhancement.

    All stage maps are average-pooled to the smallest grid, concatenated and
    reduced to ``sum(C) / 4`` channels, refined by ``num_blocks``
    :class:`TextAwareBlock` s that attend to the whole expression, expanded
    back, split per scale and injected into each original map by a
    :class:`ScaleAwareGate`. To run FIANet without TMEM, set the
    segmentor's ``neck=None``.

    Args:
        in_channels (Sequence[int]): Widths of the stage maps.
        text_channels (int | None): Word width ``D``; None: set by the
            segmentor from its text encoder.
        num_blocks (int): Text-aware blocks (reference: 3 for RRSIS-D, 1 for
            RefSegRS).
        reduction (int): ``hidden = sum(in_channels) // reduction``.
        norm_cfg (dict): Batch norms (mmcv ``build_norm_layer``): ``BN`` as in
            the reference; the configs use ``AutoSyncBN`` (torch's
            ``SyncBatchNorm`` with CUDA, ``PortableSyncBN`` without), which is
            the same in one process and synchronises the statistics across
            processes.

    Shapes:
        4 maps (B, C_i, H_i, W_i) -> 4 maps of the same shapes.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 256, 512, 1024),
                 text_channels: int | None = None,
                 num_blocks: int = 3,
                 reduction: int = 4,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if text_channels is None:
            raise ValueError('TMEM needs text_channels (the segmentor fills it in from '
                             'its text encoder)')
        if num_blocks < 1:
            raise ValueError(f'TMEM num_blocks must be >= 1, got {num_blocks}; '
                             'use neck=None to run without TMEM')
        self.in_channels = list(in_channels)
        total = sum(self.in_channels)
        hidden = total // reduction
        self.reduce = nn.Conv2d(total, hidden, 1)
        self.blocks = nn.ModuleList(
            [TextAwareBlock(hidden, text_channels) for _ in range(num_blocks)])
        self.bn = build_norm_layer(norm_cfg, hidden)[1]
        self.expand = nn.Conv2d(hidden, total, 1)
        self.scale_gates = nn.ModuleList([ScaleAwareGate(c, norm_cfg) for c in self.in_channels])

    def forward(self, feats: Sequence[Tensor], text: TextFeatures) -> List[Tensor]:
        """Enhance the stage maps with the expression (see class doc)."""
        grid = feats[-1].shape[2:]
        pooled = torch.cat([F.adaptive_avg_pool2d(f, grid) for f in feats], dim=1)
        z = self.reduce(pooled)  # (B, hidden, h, w)
        batch, hidden = z.shape[:2]
        tokens = z.flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens, text.context, text.context_mask)
        z = self.bn(tokens.transpose(1, 2).reshape(batch, hidden, *grid))
        globals_ = torch.split(self.expand(z), self.in_channels, dim=1)
        return [gate(local, glob) for gate, local, glob in
                zip(self.scale_gates, feats, globals_)]
