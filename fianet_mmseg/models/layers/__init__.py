from .fiam import FIAM, ContextAlignment, ObjectPositionAlignment, TanhGate, TextFeatures
from .pixel_word_attention import PixelWordAttention
from .window_attention import (
    CachedShiftWindowMSA,
    SDPAWindowMSA,
    shifted_window_mask,
    speed_up_window_attention,
)

__all__ = ['FIAM', 'CachedShiftWindowMSA', 'ContextAlignment', 'ObjectPositionAlignment',
           'PixelWordAttention', 'SDPAWindowMSA', 'TanhGate', 'TextFeatures',
           'shifted_window_mask', 'speed_up_window_attention']
