# Ablation: decoupling off: the object and position views are the whole expression.
_base_ = ['../fianet_swin-b_rrsisd.py']
text_cfg = dict(type='DecoupleAndTokenize', tokenizer={{_base_.tokenizer}},
                max_length={{_base_.max_length}}, decouple=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=False),
    dict(type='RandomBlackBoxes', ratio=0.2, min_boxes=20, max_boxes=60, box_size=32),
    text_cfg,
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=False),
    dict(type='LoadAnnotations'),
    text_cfg,
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
