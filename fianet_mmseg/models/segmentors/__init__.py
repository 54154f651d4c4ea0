from .fianet import FIANet

__all__ = ['FIANet']
