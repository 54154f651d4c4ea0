# Ablation: decoupling off: the object and position views are the whole expression.
# Only the text steps change; the other steps are the base config's.
_base_ = ['../fianet_swin-b_rrsisd.py']
train_pipeline = [
    dict(step, decoupling='none') if step['type'] == 'DecoupleAndTokenize' else step
    for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, decoupling='none') if step['type'] == 'DecoupleAndTokenize' else step
    for step in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
