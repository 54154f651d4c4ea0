from .ckpt_convert import official_fianet_to_mmseg, official_swin_to_mmseg, unfold_merge_order
from .text_inputs import stack_text_inputs

__all__ = ['official_fianet_to_mmseg', 'official_swin_to_mmseg',
           'stack_text_inputs', 'unfold_merge_order']
