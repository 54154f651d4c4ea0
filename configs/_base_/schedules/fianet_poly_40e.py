# The reference recipe (docs/reference.md section 7): AdamW, weight decay 0.01 except the
# backbone's norm, absolute_pos_embed and relative_position_bias_table parameters
# (here also TMEM's LayerNorms, which the reference keeps inside its backbone),
# poly decay (1 - it / total) ** 0.9 stepped every iteration, no warm-up, 40 epochs.
# The text encoder's embeddings and layers 10-11 are frozen by the model config.
optim_wrapper = dict(
    type='OptimWrapper',
    # fused=True: torch's single-kernel AdamW (same update; its optimizer step measured
    # about 3x faster on CPU than the default)
    optimizer=dict(type='AdamW', lr=3e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                   fused=True),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.0),
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))
max_epochs = 40
# The reference trained with 8 images per step on one GPU. With N GPUs and B images
# each, `tools/train.py --auto-scale-lr` (or enable=True) multiplies the learning
# rate by N * B / 8 (mmengine's linear scaling rule).
auto_scale_lr = dict(enable=False, base_batch_size=8)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Best checkpoint by val overall IoU (the reference picked it on the test split).
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=1,
                    save_best='oIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)
