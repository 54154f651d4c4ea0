# FIANet on RRSIS-D with automatic mixed precision (fp16 with dynamic loss scaling on
# GPU; use optim_wrapper.dtype='bfloat16' on GPUs that support it). Add
# model.backbone.with_cp=True to also checkpoint the Swin blocks' activations.
_base_ = ['./fianet_swin-b_rrsisd.py']
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
