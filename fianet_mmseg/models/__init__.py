"""FIANet's model components, registered in mmseg's ``MODELS``."""
from .backbones import FIAMSwinTransformer
from .batch_augments import BatchBlackBoxes
from .data_preprocessor import RefSegDataPreProcessor
from .decode_heads import SimpleDecodeHead
from .losses import ClasswiseDiceLoss, WeightedCrossEntropyLoss
from .necks import TMEM
from .segmentors import FIANet
from .text_encoders import BertTextEncoder

__all__ = ['BatchBlackBoxes', 'BertTextEncoder', 'ClasswiseDiceLoss', 'FIAMSwinTransformer',
           'FIANet', 'RefSegDataPreProcessor', 'SimpleDecodeHead', 'TMEM',
           'WeightedCrossEntropyLoss']
