# FIANet, Swin-B + bert-base-uncased, RRSIS-D: lr 3e-5, 40 epochs, 3 TMEM blocks,
# batch 8 at 480x480 on one GPU (docs/reference.md section 7).
_base_ = [
    './_base_/models/fianet_swin-b.py',
    './_base_/datasets/rrsisd.py',
    './_base_/schedules/fianet_poly_40e.py',
    './_base_/default_runtime.py',
]
model = dict(neck=dict(num_blocks=3))
optim_wrapper = dict(optimizer=dict(lr=3e-5))
