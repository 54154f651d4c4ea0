# RRSIS-D converted with `python data_prep/rrsisd.py --src <release root> --out data/rrsisd`.
dataset_type = 'RefSegDataset'
data_root = 'data/rrsisd'
tokenizer = 'bert-base-uncased'
max_length = 22
img_scale = (480, 480)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomBlackBoxes', ratio=0.2, min_boxes=20, max_boxes=60, box_size=32),
    dict(type='DecoupleAndTokenize', tokenizer=tokenizer, max_length=max_length,
         dataset='rrsisd'),
    dict(type='PackRefSegInputs'),
]
# Ground truth stays at the original size; RefSegMetric resizes it to the input
# size (nearest) for the reference protocol, IoUMetric compares at the original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='DecoupleAndTokenize', tokenizer=tokenizer, max_length=max_length,
         dataset='rrsisd'),
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='train.jsonl',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='val.jsonl',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='test.jsonl',
                 pipeline=test_pipeline, test_mode=True))
val_evaluator = [
    dict(type='RefSegMetric', eval_size='input'),
    dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='semseg'),
]
test_evaluator = val_evaluator
