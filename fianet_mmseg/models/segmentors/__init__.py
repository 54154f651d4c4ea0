from .fianet import INPUT_SIZE_PRED, FIANet

__all__ = ['FIANet', 'INPUT_SIZE_PRED']
