"""Data sets and transforms, registered in mmseg's registries."""
from .refseg_dataset import RefSegDataset
from .transforms import DecoupleAndTokenize, PackRefSegInputs, RandomBlackBoxes, RandomFlipWithText

__all__ = ['DecoupleAndTokenize', 'PackRefSegInputs', 'RandomBlackBoxes', 'RandomFlipWithText',
           'RefSegDataset']
