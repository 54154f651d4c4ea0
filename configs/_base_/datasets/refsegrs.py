# RefSegRS converted with `python data_prep/refsegrs.py --src <release root> --out data/refsegrs`.
# The RRSIS-D input protocol (Pillow decoding and resizing, see rrsisd.py) with 20
# tokens, the RefSegRS category set, and no black boxes (the reference uses them for
# RRSIS-D only).
_base_ = ['./rrsisd.py']
data_root = 'data/refsegrs'
max_length = 20
decouple_and_tokenize = dict(type='DecoupleAndTokenize', tokenizer={{_base_.tokenizer}},
                             max_length=max_length, dataset='refsegrs')
train_pipeline = [
    {{_base_.load_image}},
    {{_base_.load_mask}},
    {{_base_.resize}},
    decouple_and_tokenize,
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    {{_base_.load_image}},
    {{_base_.resize}},
    {{_base_.load_mask}},
    decouple_and_tokenize,
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
