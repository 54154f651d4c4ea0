from .pretrained import DEMO_TEXT_ENCODER, resolve_pretrained

__all__ = ['DEMO_TEXT_ENCODER', 'resolve_pretrained']
