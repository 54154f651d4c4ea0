from .fiam import FIAM, ContextAlignment, ObjectPositionAlignment, TanhGate, TextFeatures
from .pixel_word_attention import PixelWordAttention

__all__ = ['FIAM', 'ContextAlignment', 'ObjectPositionAlignment', 'PixelWordAttention',
           'TanhGate', 'TextFeatures']
