"""LAVT's "simple decoding" head, as used by FIANet."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


@MODELS.register_module()
class SimpleDecodeHead(BaseDecodeHead):
    """Top-down decoder: the deepest map is fused with each shallower one.

    At every step the running map is resized bilinearly (align_corners True,
    and only when it is smaller) to the next map's grid, concatenated with it
    and passed through two 3x3 conv-BN-ReLU blocks; ``conv_seg`` (1x1) gives
    the logits at the shallowest map's resolution (1/4 of the input).
    ``align_corners=True`` makes mmseg resize them to the input the way the
    reference does.

    Initialisation: with ``init_cfg=None`` (the default here) every
    convolution and batch norm gets PyTorch's default initialisation, as the
    reference's plain ``nn.Conv2d`` / ``nn.BatchNorm2d`` decoder has (mmcv's
    ``ConvModule`` would use Kaiming normal, mmseg's decode heads a normal
    std 0.01 classifier). An explicit ``init_cfg`` is applied as mmseg does.

    Args:
        in_channels (Sequence[int]): Widths of the backbone / neck maps.
        channels (int): Hidden width. Reference: 512.
        **kwargs: :class:`BaseDecodeHead` arguments (``num_classes``,
            ``loss_decode``, ``norm_cfg``, ...).

    Shapes:
        4 maps (B, C_i, H_i, W_i) -> logits (B, num_classes, H_0, W_0).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 512, **kwargs) -> None:
        kwargs.setdefault('input_transform', 'multiple_select')
        kwargs.setdefault('in_index', list(range(len(in_channels))))
        kwargs.setdefault('align_corners', True)
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        kwargs.setdefault('init_cfg', None)
        super().__init__(in_channels=list(in_channels), channels=channels, **kwargs)
        conv_kwargs = dict(kernel_size=3, padding=1, norm_cfg=self.norm_cfg,
                           act_cfg=self.act_cfg, conv_cfg=self.conv_cfg)
        blocks = []
        running = self.in_channels[-1]
        for width in reversed(self.in_channels[:-1]):
            blocks.append(nn.Sequential(
                ConvModule(running + width, channels, **conv_kwargs),
                ConvModule(channels, channels, **conv_kwargs)))
            running = channels
        self.fuse_blocks = nn.ModuleList(blocks)

    def init_weights(self) -> None:
        """PyTorch's default initialisation of the convolutions and norms (see class doc)."""
        if self.init_cfg is not None:
            return super().init_weights()
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, _BatchNorm)):
                module.reset_parameters()
        self._is_init = True

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Maps from shallow to deep -> logits at the shallowest grid."""
        feats = self._transform_inputs(inputs)
        x = feats[-1]
        for block, skip in zip(self.fuse_blocks, reversed(feats[:-1])):
            if x.shape[-2] < skip.shape[-2] or x.shape[-1] < skip.shape[-1]:
                x = F.interpolate(x, size=skip.shape[2:], mode='bilinear', align_corners=True)
            x = block(torch.cat([x, skip], dim=1))
        return self.cls_seg(x)
