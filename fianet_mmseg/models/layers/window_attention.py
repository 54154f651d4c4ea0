"""Faster drop-ins for mmseg's (shifted-)window attention of the Swin blocks.

Both variants keep mmseg's parameters, buffers and state-dict keys; they only
override ``forward``. :func:`speed_up_window_attention` swaps them into the
blocks of a built Swin backbone.

* :class:`CachedShiftWindowMSA`: mmseg's ``ShiftWindowMSA`` rebuilds the
  SW-MSA attention mask in every shifted block of every forward. The mask only
  depends on the padded grid, the window, the shift and the device, so it is
  built once per input shape and shared by all blocks
  (:func:`shifted_window_mask`).
* :class:`SDPAWindowMSA`: mmseg's ``WindowMSA`` through
  ``F.scaled_dot_product_attention``, with the relative position bias and the
  shift mask folded into one additive ``attn_mask``.
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.backbones.swin import ShiftWindowMSA, SwinBlock, WindowMSA
from torch import Tensor, nn

#: Logit the reference (and mmseg) gives to token pairs from different regions.
SHIFT_MASK_VALUE = -100.0


def _tracing() -> bool:
    """True under torch.compile / torch.export / TorchScript tracing."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _build_shifted_window_mask(hw_pad: Tuple[int, int], window_size: int, shift_size: int,
                               device: torch.device, dtype: torch.dtype) -> Tensor:
    """Region labels of the shifted grid -> pairwise 0 / -100 mask per window."""

    def region_of(length: int) -> Tensor:
        # 0: untouched by the roll, 1: last window minus the shift, 2: rolled-in strip
        label = torch.zeros(length, dtype=torch.long, device=device)
        label[length - window_size:length - shift_size] = 1
        label[length - shift_size:] = 2
        return label

    height, width = hw_pad
    region = region_of(height)[:, None] * 3 + region_of(width)[None, :]  # (H, W)
    windows = region.view(height // window_size, window_size, width // window_size,
                          window_size).permute(0, 2, 1, 3).reshape(-1, window_size**2)
    different = windows[:, None, :] != windows[:, :, None]  # (nW, w*w, w*w)
    return different.to(dtype) * SHIFT_MASK_VALUE


@functools.lru_cache(maxsize=32)
def _cached_shifted_window_mask(hw_pad: Tuple[int, int], window_size: int, shift_size: int,
                                device: torch.device, dtype: torch.dtype) -> Tensor:
    with torch.inference_mode(False), torch.no_grad():
        return _build_shifted_window_mask(hw_pad, window_size, shift_size, device, dtype)


def shifted_window_mask(hw_pad: Tuple[int, int], window_size: int, shift_size: int,
                        device: torch.device, dtype: Optional[torch.dtype] = None) -> Tensor:
    """The SW-MSA mask of mmseg's ``ShiftWindowMSA``, cached per shape.

    Args:
        hw_pad (tuple[int, int]): Padded token grid (H, W), multiples of the
            window size.
        window_size (int): Window side ``w``.
        shift_size (int): Cyclic shift, ``0 < shift < w``.
        device (torch.device): Where the mask lives.
        dtype (torch.dtype | None): Mask dtype; None: the default dtype
            (what mmseg uses).

    Returns:
        Tensor: (nW, w*w, w*w) with 0 for token pairs of the same region and
        -100 otherwise, nW = H * W / w^2. Shared between callers: do not
        modify it in place. Under compilation or tracing it is built afresh
        (nothing is cached then).
    """
    dtype = dtype or torch.get_default_dtype()
    hw_pad = (int(hw_pad[0]), int(hw_pad[1]))
    if _tracing():
        return _build_shifted_window_mask(hw_pad, window_size, shift_size, device, dtype)
    return _cached_shifted_window_mask(hw_pad, window_size, shift_size, torch.device(device),
                                       dtype)


class CachedShiftWindowMSA(ShiftWindowMSA):
    """mmseg's ``ShiftWindowMSA`` with the shift mask built once per input shape.

    Same parameters, state-dict keys and result as the parent; padding, the
    cyclic shift, window partition and reverse are the parent's.

    Shapes:
        query (B, H * W, C), hw_shape (H, W) -> (B, H * W, C).
    """

    def forward(self, query: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        batch, num_tokens, channels = query.shape
        height, width = hw_shape
        if num_tokens != height * width:
            raise ValueError(f'ShiftWindowMSA: {num_tokens} tokens for a {height}x{width} grid')
        window = self.window_size
        pad_right = (window - width % window) % window
        pad_bottom = (window - height % window) % window
        grid = F.pad(query.view(batch, height, width, channels),
                     (0, 0, 0, pad_right, 0, pad_bottom))
        hw_pad = (grid.shape[1], grid.shape[2])

        shift = self.shift_size
        if shift > 0:
            grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(hw_pad, window, shift, query.device)
        else:
            mask = None

        windows = self.window_partition(grid).view(-1, window**2, channels)
        windows = self.w_msa(windows, mask=mask).view(-1, window, window, channels)
        grid = self.window_reverse(windows, *hw_pad)
        if shift > 0:
            grid = torch.roll(grid, shifts=(shift, shift), dims=(1, 2))
        if pad_right or pad_bottom:
            grid = grid[:, :height, :width, :].contiguous()
        return self.drop(grid.view(batch, height * width, channels))


class SDPAWindowMSA(WindowMSA):
    """mmseg's ``WindowMSA`` through ``F.scaled_dot_product_attention``.

    The relative position bias (gathered from its table every call: it is a
    trained parameter) and the optional shift mask form one additive
    ``attn_mask``; the result equals the parent's to float rounding. Same
    parameters and state-dict keys. Where the bias needs no gradient
    (inference) the fused attention kernels run; while it trains, torch's
    math kernel does (on CPU about as fast as the parent's matmuls).

    Shapes:
        x (nW * B, N, C), mask (nW, N, N) or None -> (nW * B, N, C),
        N = window area.
    """

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        windows, area, channels = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(windows, area, 3, heads, channels // heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (nW*B, h, N, C/h)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(area, area, heads).permute(2, 0, 1)  # (h, N, N)
        dropout = self.attn_drop.p if self.training else 0.0
        if mask is None:
            out = F.scaled_dot_product_attention(
                query, key, value, attn_mask=bias.unsqueeze(0).to(query.dtype),
                dropout_p=dropout, scale=self.scale)
        else:
            num_windows = mask.shape[0]
            attn_mask = (bias.unsqueeze(0) + mask.unsqueeze(1)).to(query.dtype)  # (nW, h, N, N)
            images = windows // num_windows
            if torch.is_grad_enabled() and attn_mask.requires_grad:
                # trained bias: torch's math kernel either way; a 5-D view saves a copy
                per_image = (images, num_windows, heads, area, -1)
                out = F.scaled_dot_product_attention(
                    query.reshape(per_image), key.reshape(per_image),
                    value.reshape(per_image), attn_mask=attn_mask, dropout_p=dropout,
                    scale=self.scale)
            else:
                # 4-D inputs reach the fused (flash) kernels
                attn_mask = attn_mask.expand(images, -1, -1, -1, -1).reshape(
                    windows, heads, area, area)
                out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                                     dropout_p=dropout, scale=self.scale)
        out = out.reshape(windows, heads, area, -1).transpose(1, 2).reshape(
            windows, area, channels)
        return self.proj_drop(self.proj(out))


def speed_up_window_attention(module: nn.Module, cache_masks: bool = True,
                              use_sdpa: bool = True) -> int:
    """Swap the faster window attentions into every ``SwinBlock`` of ``module``.

    The swap changes the class of the existing attention modules (their
    parameters, buffers and hooks stay), so it can run after construction
    or after loading weights.

    Args:
        module (nn.Module): A Swin backbone (or anything holding SwinBlocks).
        cache_masks (bool): Use :class:`CachedShiftWindowMSA`.
        use_sdpa (bool): Use :class:`SDPAWindowMSA`.

    Returns:
        int: The number of blocks changed.
    """
    changed = 0
    for block in module.modules():
        if not isinstance(block, SwinBlock):
            continue
        if cache_masks and type(block.attn) is ShiftWindowMSA:
            block.attn.__class__ = CachedShiftWindowMSA
        if use_sdpa and type(block.attn.w_msa) is WindowMSA:
            block.attn.w_msa.__class__ = SDPAWindowMSA
        changed += int(cache_masks or use_sdpa)
    return changed
