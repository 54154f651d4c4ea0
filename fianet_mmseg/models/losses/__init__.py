from .classwise_dice_loss import ClasswiseDiceLoss

__all__ = ['ClasswiseDiceLoss']
