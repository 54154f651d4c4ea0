from .classwise_dice_loss import ClasswiseDiceLoss
from .weighted_cross_entropy_loss import WeightedCrossEntropyLoss

__all__ = ['ClasswiseDiceLoss', 'WeightedCrossEntropyLoss']
