"""Swin Transformer with a FIAM after every stage (FIANet's image encoder)."""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import ModuleList, initialize
from mmengine.runner import CheckpointLoader
from mmengine.utils import to_2tuple
from mmseg.models.backbones import SwinTransformer
from mmseg.models.backbones.swin import WindowMSA
from mmseg.registry import MODELS
from torch import Tensor

from ...checkpoint import official_swin_to_mmseg
from ..layers import FIAM, TextFeatures


def _per_stage(value: Union[int, bool, Sequence], num_stages: int, name: str) -> list:
    """Broadcast a scalar option to all stages, or check a per-stage list."""
    if isinstance(value, (int, bool)):
        return [value] * num_stages
    value = list(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} has {len(value)} entries for {num_stages} stages')
    return value


@MODELS.register_module()
class FIAMSwinTransformer(SwinTransformer):
    """Swin backbone of FIANet: mmseg's Swin stages, each followed by a FIAM.

    The Swin parts (patch embedding, shifted-window blocks, patch merging,
    per-stage output norms) are mmseg's :class:`SwinTransformer`; this class
    inserts a :class:`FIAM` between each stage's blocks and its patch merging
    and returns the FIAM context outputs ``r`` through ``norm{i}``, as the
    reference does (see :class:`FIAM` for that quirk).

    Args:
        text_channels (int | None): Word width ``D``. None: set by the
            segmentor from its text encoder.
        fusion_num_heads (int | Sequence[int]): Heads of the pixel-word
            attentions, per stage. Default: 1.
        with_opab (bool): Use the object-position alignment block (False:
            LAVT's context-only fusion). Default: True.
        with_object (bool): OPAB object branch. Default: True.
        with_position (bool): OPAB position branch. Default: True.
        **kwargs: mmseg :class:`SwinTransformer` arguments (``embed_dims``,
            ``depths``, ``num_heads``, ``window_size``, ``drop_path_rate``,
            ``with_cp``, ``init_cfg``...). ``init_cfg=dict(type='Pretrained',
            checkpoint=...)`` accepts the official Swin release layout
            (``model`` -> ``layers.*``) as well as mmseg's.

    Shapes:
        img (B, 3, H, W) -> 4 maps (B, C_i, H / 2^(i+2), W / 2^(i+2)).
    """

    def __init__(self,
                 text_channels: Optional[int] = None,
                 fusion_num_heads: Union[int, Sequence[int]] = 1,
                 with_opab: bool = True,
                 with_object: bool = True,
                 with_position: bool = True,
                 **kwargs) -> None:
        if text_channels is None:
            raise ValueError('FIAMSwinTransformer needs text_channels (the segmentor '
                             'fills it in from its text encoder)')
        super().__init__(**kwargs)
        pretrain_size = to_2tuple(kwargs.get('pretrain_img_size', 224))
        patch_size = kwargs.get('patch_size', 4)
        #: patch grid of ``absolute_pos_embed`` (when used)
        self.abs_pos_grid = (pretrain_size[0] // patch_size, pretrain_size[1] // patch_size)
        num_stages = len(self.stages)
        if tuple(self.out_indices) != tuple(range(num_stages)):
            raise ValueError(f'FIANet uses every stage: out_indices must be '
                             f'{tuple(range(num_stages))}, got {self.out_indices}')
        heads = _per_stage(fusion_num_heads, num_stages, 'fusion_num_heads')
        self.fusions = ModuleList([
            FIAM(channels, text_channels, heads[i], with_opab=with_opab,
                 with_object=with_object, with_position=with_position,
                 with_update=i < num_stages - 1)
            for i, channels in enumerate(self.num_features)
        ])
        # The relative position index is derived from the window size: keep it
        # out of checkpoints (the reference's checkpoints do not hold it either).
        for module in self.modules():
            if isinstance(module, WindowMSA):
                index = module.relative_position_index
                del module._buffers['relative_position_index']
                module.register_buffer('relative_position_index', index, persistent=False)

    def init_weights(self) -> None:
        """Initialise as ``init_cfg`` says, then load a Swin checkpoint if it names one.

        ``init_cfg=None``: mmseg's Swin initialisation, which is the
        reference's random one (every ``nn.Linear`` truncated normal with std
        0.02 and zero bias, LayerNorms 1 / 0; FIAM's linear layers included).
        A list of mmengine initialisers is applied in order, except a
        ``Pretrained`` entry, which is loaded last by this class (it accepts
        the official Swin release layout, see the class doc). The configs give
        the reference's order (docs/reference.md 6c): the truncated-normal /
        constant initialisation of the whole backbone first, then the
        checkpoint overwrites what it holds; the FIAMs and output norms keep
        their initialisation. Backbone weights that the checkpoint does not
        provide and checkpoint entries that fit nowhere are reported in the log.
        """
        if self.init_cfg is None:
            return super().init_weights()
        cfgs = self.init_cfg if isinstance(self.init_cfg, (list, tuple)) else [self.init_cfg]
        pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
        others = [cfg for cfg in cfgs if cfg.get('type') != 'Pretrained']
        if len(pretrained) > 1:
            raise ValueError(f'{type(self).__name__}: init_cfg has {len(pretrained)} '
                             'Pretrained entries, at most one is allowed')
        if others:
            initialize(self, others)
        if pretrained:
            self._load_swin_checkpoint(pretrained[0]['checkpoint'])
        self._is_init = True

    def _load_swin_checkpoint(self, checkpoint: str) -> None:
        """Load Swin weights (official or mmseg layout) over the initialised backbone."""
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, logger='current', map_location='cpu')
        state = ckpt.get('state_dict', ckpt.get('model', ckpt))
        state = {k[len('backbone.'):] if k.startswith('backbone.') else k: v
                 for k, v in state.items()}
        state = {k[len('module.'):] if k.startswith('module.') else k: v
                 for k, v in state.items()}
        state, dropped = official_swin_to_mmseg(state)
        own = self.state_dict()
        for key in [k for k in state if k.endswith('relative_position_bias_table')]:
            if key in own and own[key].shape != state[key].shape:
                state[key] = _resize_bias_table(state[key], own[key].shape)
        missing, unexpected = self.load_state_dict(state, strict=False)
        # FIAM and the per-stage output norms exist only in the segmentation model.
        new_parts = re.compile(r'^(fusions\.|norm\d+\.)')
        unplaced_swin = [k for k in missing if not new_parts.match(k)]
        print_log(f'{type(self).__name__}: loaded {len(state) - len(unexpected)} tensors '
                  f'from {checkpoint}; FIAM and output norms start from '
                  f'scratch ({len(missing) - len(unplaced_swin)} tensors)', logger='current')
        if unplaced_swin:
            print_log(f'Swin weights missing from the checkpoint: {unplaced_swin}',
                      logger='current', level=30)
        if unexpected or dropped:
            print_log(f'checkpoint entries not used by the backbone: '
                      f'{sorted(unexpected) + sorted(dropped)}', logger='current', level=30)

    def forward(self, img: Tensor, text: TextFeatures) -> List[Tensor]:
        """img (B, 3, H, W) -> 4 maps (B, C_i, H_i, W_i)."""
        x, hw_shape = self.patch_embed(img)
        if self.use_abs_pos_embed:
            x = x + self._abs_pos_embed(hw_shape)
        x = self.drop_after_pos(x)
        outs = []
        for i, (stage, fusion) in enumerate(zip(self.stages, self.fusions)):
            for block in stage.blocks:
                x = block(x, hw_shape)
            context, x = fusion(x, hw_shape, text)
            out = getattr(self, f'norm{i}')(context)
            outs.append(out.transpose(1, 2).reshape(out.shape[0], -1, *hw_shape).contiguous())
            if stage.downsample is not None:
                x, hw_shape = stage.downsample(x, hw_shape)
        return outs

    def _abs_pos_embed(self, hw_shape: Tuple[int, int]) -> Tensor:
        """The absolute position embedding (1, H*W, C) on the patch grid ``hw_shape``.

        Stored on the grid of ``pretrain_img_size``; resized bilinearly for
        other inputs (mmseg's Swin adds it only at that size). The reference
        FIANet (Swin-B) has none; the CPU demo turns it on.
        """
        embed, grid = self.absolute_pos_embed, self.abs_pos_grid
        if tuple(hw_shape) == grid:
            return embed
        embed = embed.transpose(1, 2).reshape(1, -1, *grid)
        embed = F.interpolate(embed, size=hw_shape, mode='bilinear', align_corners=False)
        return embed.flatten(2).transpose(1, 2)


def _resize_bias_table(table: Tensor, shape: Tuple[int, int]) -> Tensor:
    """Bicubic resize of a relative position bias table to another window."""
    old_len, heads = table.shape
    new_len = shape[0]
    old_side, new_side = int(old_len**0.5), int(new_len**0.5)
    grid = table.transpose(0, 1).reshape(1, heads, old_side, old_side)
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic')
    return grid.reshape(heads, new_len).transpose(0, 1).contiguous()
