# FIANet, Swin-B + bert-base-uncased, RefSegRS: lr 5e-5, 60 epochs, 1 TMEM block,
# batch 8 at 480x480 on one GPU (docs/reference.md section 7).
_base_ = [
    './_base_/models/fianet_swin-b.py',
    './_base_/datasets/refsegrs.py',
    './_base_/schedules/fianet_poly_40e.py',
    './_base_/default_runtime.py',
]
max_epochs = 60
model = dict(neck=dict(num_blocks=1))
optim_wrapper = dict(optimizer=dict(lr=5e-5))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
