from .fiam_swin import FIAMSwinTransformer

__all__ = ['FIAMSwinTransformer']
