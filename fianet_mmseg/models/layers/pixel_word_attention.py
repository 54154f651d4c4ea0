"""Pixel-word cross-attention, the building block of every FIANet fusion."""
from __future__ import annotations

import torch
from torch import Tensor, nn

# Additive bias the reference gives to masked words: ``10000 * m - 10000``.
MASK_BIAS = 10000.0


class PixelWordAttention(nn.Module):
    """Visual tokens attend over the words of one text view.

    The reference calls it SILA ("spatial image-language attention", from
    LAVT). Queries come from the pixels, keys and values from the words; masked
    words are zeroed in keys and values and get a ``-10000`` logit bias.

    Kept quirk of the reference: the logits are scaled by
    ``key_channels ** -0.5`` (all heads' width), not by the per-head width.

    Args:
        visual_channels (int): Width ``Cv`` of the visual tokens.
        text_channels (int): Width ``D`` of the word features.
        key_channels (int): Width ``K`` of queries and keys.
        value_channels (int): Width ``V`` of the values.
        out_channels (int): Width ``O`` of the output tokens.
        num_heads (int): Number of heads; channels split head-major.
    """

    def __init__(self,
                 visual_channels: int,
                 text_channels: int,
                 key_channels: int,
                 value_channels: int,
                 out_channels: int,
                 num_heads: int = 1) -> None:
        super().__init__()
        if key_channels % num_heads or value_channels % num_heads:
            raise ValueError(
                f'key_channels ({key_channels}) and value_channels '
                f'({value_channels}) must be divisible by num_heads '
                f'({num_heads})')
        self.key_channels = key_channels
        self.value_channels = value_channels
        self.num_heads = num_heads
        self.query_proj = nn.Conv1d(visual_channels, key_channels, 1)
        self.query_norm = nn.InstanceNorm1d(key_channels)
        self.key_proj = nn.Conv1d(text_channels, key_channels, 1)
        self.value_proj = nn.Conv1d(text_channels, value_channels, 1)
        self.out_proj = nn.Conv1d(value_channels, out_channels, 1)
        self.out_norm = nn.InstanceNorm1d(out_channels)

    def forward(self, x: Tensor, text: Tensor, mask: Tensor) -> Tensor:
        """Attend.

        Args:
            x (Tensor): Visual tokens, (B, N, Cv).
            text (Tensor): Word features, (B, D, L).
            mask (Tensor): Word mask, (B, L), 1 for words to attend to.

        Returns:
            Tensor: (B, N, O).
        """
        batch, num_tokens = x.shape[:2]
        heads = self.num_heads
        mask = mask.to(x.dtype)
        query = self.query_norm(self.query_proj(x.transpose(1, 2)))  # (B, K, N)
        key = self.key_proj(text) * mask.unsqueeze(1)  # (B, K, L)
        value = self.value_proj(text) * mask.unsqueeze(1)  # (B, V, L)
        num_words = key.shape[-1]
        key = key.reshape(batch, heads, -1, num_words)  # (B, h, K/h, L)
        value = value.reshape(batch, heads, -1, num_words).transpose(2, 3)  # (B, h, L, V/h)
        query = query.reshape(batch, heads, -1, num_tokens).transpose(2, 3)  # (B, h, N, K/h)
        bias = (MASK_BIAS * mask - MASK_BIAS)[:, None, None]  # (B, 1, 1, L)
        attn = torch.softmax(self.key_channels**-0.5 * (query @ key) + bias, dim=-1)
        out = (attn @ value).transpose(1, 2)  # (B, N, h, V/h)
        out = out.reshape(batch, num_tokens, self.value_channels)
        out = self.out_norm(self.out_proj(out.transpose(1, 2)))  # (B, O, N)
        return out.transpose(1, 2)
