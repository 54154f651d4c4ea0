from .auto_sync_batchnorm import AutoSyncBatchNorm
from .fiam import FIAM, ContextAlignment, ObjectPositionAlignment, TanhGate, TextFeatures
from .pixel_word_attention import PixelWordAttention
from .sync_batchnorm import PortableSyncBatchNorm

__all__ = ['AutoSyncBatchNorm', 'FIAM', 'ContextAlignment', 'ObjectPositionAlignment',
           'PixelWordAttention', 'PortableSyncBatchNorm', 'TanhGate', 'TextFeatures']
