"""Pixel-word cross-attention, the building block of every FIANet fusion."""
from __future__ import annotations

import torch
import torch.nn.functional as F
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
        use_sdpa (bool): Compute the attention with
            ``F.scaled_dot_product_attention`` (same numbers to float
            rounding) instead of explicit matmul + softmax.
        linear_projections (bool): Apply the 1x1 convolutions as linear maps
            on the token-major (B, N, C) tensors (same weights, same numbers
            to float rounding, fewer transposes and copies) instead of
            ``nn.Conv1d`` on channel-major ones. Default: True.
    """

    def __init__(self,
                 visual_channels: int,
                 text_channels: int,
                 key_channels: int,
                 value_channels: int,
                 out_channels: int,
                 num_heads: int = 1,
                 use_sdpa: bool = True,
                 linear_projections: bool = True) -> None:
        super().__init__()
        if key_channels % num_heads or value_channels % num_heads:
            raise ValueError(
                f'key_channels ({key_channels}) and value_channels '
                f'({value_channels}) must be divisible by num_heads '
                f'({num_heads})')
        self.key_channels = key_channels
        self.value_channels = value_channels
        self.num_heads = num_heads
        self.use_sdpa = use_sdpa
        self.linear_projections = linear_projections
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
        if self.linear_projections:
            words = text.transpose(1, 2)  # (B, L, D)
            query = self.query_norm(
                conv1x1_on_tokens(self.query_proj, x).transpose(1, 2))  # (B, K, N)
            key = conv1x1_on_tokens(self.key_proj, words) * mask.unsqueeze(-1)  # (B, L, K)
            value = conv1x1_on_tokens(self.value_proj, words) * mask.unsqueeze(-1)  # (B, L, V)
            num_words = key.shape[1]
            key = key.reshape(batch, num_words, heads, -1).permute(0, 2, 3, 1)  # (B, h, K/h, L)
            value = value.reshape(batch, num_words, heads, -1).transpose(1, 2)  # (B, h, L, V/h)
        else:
            query = self.query_norm(self.query_proj(x.transpose(1, 2)))  # (B, K, N)
            key = self.key_proj(text) * mask.unsqueeze(1)  # (B, K, L)
            value = self.value_proj(text) * mask.unsqueeze(1)  # (B, V, L)
            num_words = key.shape[-1]
            key = key.reshape(batch, heads, -1, num_words)  # (B, h, K/h, L)
            value = value.reshape(batch, heads, -1, num_words).transpose(2, 3)  # (B, h, L, V/h)
        query = query.reshape(batch, heads, -1, num_tokens).transpose(2, 3)  # (B, h, N, K/h)
        bias = (MASK_BIAS * mask - MASK_BIAS)[:, None, None]  # (B, 1, 1, L)
        scale = self.key_channels**-0.5
        if self.use_sdpa:
            out = F.scaled_dot_product_attention(
                query, key.transpose(2, 3), value, attn_mask=bias, scale=scale)
        else:
            attn = torch.softmax(scale * (query @ key) + bias, dim=-1)
            out = attn @ value  # (B, h, N, V/h)
        out = out.transpose(1, 2).reshape(batch, num_tokens, self.value_channels)
        if self.linear_projections:
            out = conv1x1_on_tokens(self.out_proj, out).transpose(1, 2)
            return self.out_norm(out).transpose(1, 2)
        out = self.out_norm(self.out_proj(out.transpose(1, 2)))  # (B, O, N)
        return out.transpose(1, 2)


def conv1x1_on_tokens(conv: nn.Conv1d, tokens: Tensor) -> Tensor:
    """A kernel-1 ``Conv1d`` applied to token-major (B, N, C_in) -> (B, N, C_out)."""
    return F.linear(tokens, conv.weight.squeeze(-1), conv.bias)
