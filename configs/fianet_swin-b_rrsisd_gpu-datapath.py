# FIANet on RRSIS-D with the data path made for a GPU (docs/train_test.md "The GPU data path"):
# - refseg_collate: the masks and text tensors are pinned like the images (pin_memory=True; the
#   text arrives stacked), so every host-to-device copy is non-blocking from pinned memory;
# - PrefetchingEpochBasedTrainLoop: the next batch's copy runs on a side CUDA stream while the
#   current step computes;
# - the loader workers decode and resize only (Pillow, the reference's protocol): they still draw
#   the black boxes (the same references and boxes as the per-sample transform for the same seed)
#   but BatchBlackBoxes paints them on the device after the resize. At the boxes' edges that is
#   not the reference's computation (a resized boxed image is not a boxed resized image):
#   docs/differences.md gives the measured difference. fianet_swin-b_rrsisd.py keeps the
#   reference's per-sample boxes. The first two parts change no number.
_base_ = ['./fianet_swin-b_rrsisd.py']
train_pipeline = [
    dict(step, paint=False) if step['type'] == 'RandomBlackBoxes' else step
    for step in _base_.train_pipeline
]
collate_fn = dict(type='refseg_collate')
train_dataloader = dict(collate_fn=collate_fn, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(collate_fn=collate_fn)
test_dataloader = dict(collate_fn=collate_fn)
model = dict(data_preprocessor=dict(batch_augments=[
    dict(type='BatchBlackBoxes', mean=_base_.data_preprocessor.mean,
         std=_base_.data_preprocessor.std)]))
train_cfg = dict(type='PrefetchingEpochBasedTrainLoop')
