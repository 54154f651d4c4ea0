# RRSIS-D converted with `python data_prep/rrsisd.py --src <release root> --out data/rrsisd`.
#
# The reference's input protocol (docs/reference.md 6c): images decoded with Pillow (no EXIF
# rotation), resized with Pillow's bilinear filter (antialiased when shrinking, as
# torchvision's resize of a PIL image), masks resized with Pillow's nearest filter; the
# data preprocessor normalises with the ImageNet mean / std. Training only: the black
# boxes go on the ORIGINAL image, before the resize (20-60 boxes of 32x32 original
# pixels on a fixed 20% of the references).
dataset_type = 'RefSegDataset'
data_root = 'data/rrsisd'
tokenizer = 'bert-base-uncased'
max_length = 22
img_scale = (480, 480)
# Ground sampling distance of the model's input pixels (metres per pixel), the scale
# demo/rs_image_inference.py resamples a scene's windows to (docs/inference.md, "Whole
# scenes"). A documented choice, not a fact: RRSIS-D's 800x800 images come from DIOR-RSVG,
# Google Earth imagery of 0.5 to 30 m per pixel with no per-image GSD in the release, and
# the pipeline resizes them to 480x480 (so 0.83 to 50 m per model pixel). No single value
# fits: None keeps a scene's windows at its own pixels (give --gsd for your imagery).
gsd = None
# LoadRefSegImage is the image reader of every entry point (API, demos, visualiser): 8-bit
# files decoded by Pillow as above, 16-bit / float files stretched per band to 8 bit as
# GeoTIFFs are (where Pillow's RGB conversion would saturate them).
load_image = dict(type='LoadRefSegImage')
load_mask = dict(type='LoadRefSegAnnotations', imdecode_backend='pillow')  # mmseg's loader + checks
resize = dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow')
decouple_and_tokenize = dict(type='DecoupleAndTokenize', tokenizer=tokenizer,
                             max_length=max_length, dataset='rrsisd')
train_pipeline = [
    load_image,
    dict(type='RandomBlackBoxes', ratio=0.2, min_boxes=20, max_boxes=60, box_size=32),
    load_mask,
    resize,  # image (bilinear) and mask (nearest): the training target
    decouple_and_tokenize,
    dict(type='PackRefSegInputs'),
]
# The ground truth stays at the original size here: RefSegMetric resizes it to the
# input size with Pillow's nearest filter (the reference protocol, the same mask as
# the training target), mmseg's IoUMetric compares at the original size.
test_pipeline = [
    load_image,
    resize,
    load_mask,
    decouple_and_tokenize,
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,  # as the reference's loader: every step sees a full batch
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
