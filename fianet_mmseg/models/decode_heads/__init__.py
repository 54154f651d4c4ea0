from .simple_decode_head import SimpleDecodeHead

__all__ = ['SimpleDecodeHead']
