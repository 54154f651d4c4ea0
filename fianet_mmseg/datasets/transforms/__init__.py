from .augmentation import RandomBlackBoxes
from .formatting import REFSEG_META_KEYS, PackRefSegInputs
from .loading import MASK_VALUES, LoadRefSegAnnotations, LoadRefSegImage
from .text import DecoupleAndTokenize, RandomFlipWithText, swap_left_right

__all__ = ['DecoupleAndTokenize', 'LoadRefSegAnnotations', 'LoadRefSegImage', 'MASK_VALUES',
           'PackRefSegInputs', 'REFSEG_META_KEYS', 'RandomBlackBoxes', 'RandomFlipWithText',
           'swap_left_right']
