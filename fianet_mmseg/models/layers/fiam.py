"""The fine-grained image-text alignment module (FIAM) of one backbone stage."""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .pixel_word_attention import PixelWordAttention


class TextFeatures(NamedTuple):
    """The three text views FIANet aligns with the image.

    ``context`` is the whole expression, ``object`` the ground-object phrase
    and ``position`` the spatial-position phrases. Features are (B, D, L),
    masks (B, L) with 1 for the words of the view.
    """

    context: Tensor
    object: Tensor
    position: Tensor
    context_mask: Tensor
    object_mask: Tensor
    position_mask: Tensor


class TanhGate(nn.Module):
    """``x * tanh(W2 relu(W1 x))``: the language gate of LAVT and FIANet.

    Args:
        channels (int): Token width ``c``; both linear layers are ``c -> c``
            without bias.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, channels, bias=False), nn.ReLU(),
            nn.Linear(channels, channels, bias=False), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, c) -> (B, N, c)."""
        return self.gate(x) * x


class ContextAlignment(nn.Module):
    """Pixel-word alignment with the whole expression (LAVT's PWAM).

    ``r = GELU(conv(GELU(conv(x)) * attn(x, l)))``.

    Args:
        channels (int): Visual width ``c``.
        text_channels (int): Word width ``D``.
        num_heads (int): Heads of the pixel-word attention.
    """

    def __init__(self, channels: int, text_channels: int, num_heads: int = 1) -> None:
        super().__init__()
        self.vis_proj = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.GELU())
        self.attn = PixelWordAttention(channels, text_channels, channels, channels,
                                       channels, num_heads)
        self.fuse_proj = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.GELU())

    def forward(self, x: Tensor, text: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, c), text (B, D, L), mask (B, L) -> (B, N, c)."""
        vis = self.vis_proj(x.transpose(1, 2))  # (B, c, N)
        lang = self.attn(x, text, mask).transpose(1, 2)  # (B, c, N)
        return self.fuse_proj(vis * lang).transpose(1, 2)


class ObjectPositionAlignment(nn.Module):
    """The object-position alignment block (OPAB).

    Object branch: ``o = T(attn_obj(x, t))`` (a tanh-gated pixel-word
    attention with the object phrase). Position branch: the pixel-word
    attention with the spatial phrases, reduced to a spatial map
    ``s = sigmoid(conv3x3([mean_c, max_c]))`` of shape (B, N, 1). Output
    ``a = o * s``.

    The switches are the paper's ablations. The reference has no code for
    them; this project defines: without the position branch ``a = o``;
    without the object branch the map weights the visual tokens, ``a = x * s``.
    At least one branch must be on (use ``FIAM(with_opab=False)`` to remove
    the block).

    Args:
        channels (int): Visual width ``c``.
        text_channels (int): Word width ``D``.
        num_heads (int): Heads of both pixel-word attentions.
        with_object (bool): Build and use the object branch.
        with_position (bool): Build and use the position branch.
    """

    def __init__(self, channels: int, text_channels: int, num_heads: int = 1,
                 with_object: bool = True, with_position: bool = True) -> None:
        super().__init__()
        if not (with_object or with_position):
            raise ValueError('ObjectPositionAlignment needs at least one branch; '
                             'set with_opab=False to remove the whole block')
        self.with_object = with_object
        self.with_position = with_position
        if with_object:
            self.object_attn = PixelWordAttention(channels, text_channels, channels,
                                                  channels, channels, num_heads)
            self.object_gate = TanhGate(channels)
        if with_position:
            self.position_attn = PixelWordAttention(channels, text_channels, channels,
                                                    channels, channels, num_heads)
            self.position_conv = nn.Conv2d(2, 1, 3, padding=1, bias=False)

    def position_map(self, x: Tensor, hw_shape: Tuple[int, int], text: Tensor,
                     mask: Tensor) -> Tensor:
        """Spatial weight from the position phrases, (B, N, 1) in (0, 1)."""
        height, width = hw_shape
        feat = self.position_attn(x, text, mask).transpose(1, 2)  # (B, c, N)
        feat = feat.reshape(feat.shape[0], -1, height, width)
        pooled = torch.cat([feat.mean(dim=1, keepdim=True),
                            feat.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.position_conv(pooled)).flatten(2).transpose(1, 2)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int], text: TextFeatures) -> Tensor:
        """x (B, N, c) -> a (B, N, c)."""
        if self.with_object:
            aligned = self.object_gate(self.object_attn(x, text.object, text.object_mask))
        else:
            aligned = x
        if not self.with_position:
            return aligned
        return aligned * self.position_map(x, hw_shape, text.position, text.position_mask)


class FIAM(nn.Module):
    """Fine-grained image-text alignment after the Swin blocks of one stage.

    With ``r`` the context alignment, ``a`` the OPAB output and
    ``g = sigmoid(fc(relu(fc(mean_N(x)))))`` a channel gate, the stage's tokens
    are updated as ``x + (T(r) * r + a) * g``.

    Kept quirk of the reference (from LAVT): the stage *outputs* ``r``, not the
    updated ``x``; the updated ``x`` only feeds the next stage. For the last
    stage the update is therefore dead code in the reference;
    ``with_update=False`` leaves it out (nothing but ``r`` is built).

    ``with_opab=False`` gives LAVT's context-only fusion, ``x + T(r) * r``
    (no OPAB, no channel gate).

    Args:
        channels (int): Visual width ``c`` of the stage.
        text_channels (int): Word width ``D``.
        num_heads (int): Heads of the pixel-word attentions.
        with_opab (bool): Use the object-position alignment block.
        with_object (bool): OPAB object branch.
        with_position (bool): OPAB position branch.
        with_update (bool): Compute the updated tokens (False: only ``r``).
        gate_reduction (int): Channel-gate bottleneck ratio.
    """

    def __init__(self,
                 channels: int,
                 text_channels: int,
                 num_heads: int = 1,
                 with_opab: bool = True,
                 with_object: bool = True,
                 with_position: bool = True,
                 with_update: bool = True,
                 gate_reduction: int = 8) -> None:
        super().__init__()
        self.with_update = with_update
        self.with_opab = with_opab and with_update
        self.context = ContextAlignment(channels, text_channels, num_heads)
        if not with_update:
            return
        self.context_gate = TanhGate(channels)
        if self.with_opab:
            self.channel_gate = nn.Sequential(
                nn.Linear(channels, channels // gate_reduction), nn.ReLU(),
                nn.Linear(channels // gate_reduction, channels), nn.Sigmoid())
            self.opab = ObjectPositionAlignment(channels, text_channels, num_heads,
                                                with_object, with_position)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                text: TextFeatures) -> Tuple[Tensor, Optional[Tensor]]:
        """Align one stage.

        Args:
            x (Tensor): Tokens after the stage's Swin blocks, (B, N, c).
            hw_shape (tuple[int, int]): The token grid (H, W), N = H * W.
            text (TextFeatures): The three text views.

        Returns:
            tuple: ``r`` (B, N, c), the stage output before its norm, and the
            updated tokens (B, N, c), or None when ``with_update`` is False.
        """
        context = self.context(x, text.context, text.context_mask)
        if not self.with_update:
            return context, None
        update = self.context_gate(context)
        if self.with_opab:
            gate = self.channel_gate(x.mean(dim=1)).unsqueeze(1)  # (B, 1, c)
            update = (update + self.opab(x, hw_shape, text)) * gate
        return context, x + update
