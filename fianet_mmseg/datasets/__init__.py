"""Data sets and transforms, registered in mmseg's registries; the pinning collate function
(mmengine's ``FUNCTIONS``)."""
from .collate import PinnableSamples, refseg_collate
from .refseg_dataset import RefSegDataset
from .transforms import DecoupleAndTokenize, PackRefSegInputs, RandomBlackBoxes, RandomFlipWithText

__all__ = ['DecoupleAndTokenize', 'PackRefSegInputs', 'PinnableSamples', 'RandomBlackBoxes',
           'RandomFlipWithText', 'RefSegDataset', 'refseg_collate']
