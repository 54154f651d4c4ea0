# RefSegRS converted with `python data_prep/refsegrs.py --src <release root> --out data/refsegrs`.
# Same pipeline as RRSIS-D but 20 tokens and no black boxes (the reference uses them
# for RRSIS-D only).
_base_ = ['./rrsisd.py']
data_root = 'data/refsegrs'
max_length = 20
tokenizer = 'bert-base-uncased'
img_scale = (480, 480)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='DecoupleAndTokenize', tokenizer=tokenizer, max_length=max_length,
         dataset='refsegrs'),
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='DecoupleAndTokenize', tokenizer=tokenizer, max_length=max_length,
         dataset='refsegrs'),
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
