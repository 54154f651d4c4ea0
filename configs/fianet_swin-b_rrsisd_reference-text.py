# FIANet Swin-B on RRSIS-D, evaluated with the reference's own NLTK text masks
# (DecoupleAndTokenize decoupling='reference', docs/reference.md 6b): for testing the
# authors' converted checkpoints exactly. Needs NLTK and its data:
#   pip install nltk && python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng
# Only the text step of the val/test pipeline changes; the other steps are the base
# config's, taken as they are (the step is found by its type, not copied).
_base_ = ['./fianet_swin-b_rrsisd.py']
test_pipeline = [
    dict(step, decoupling='reference') if step['type'] == 'DecoupleAndTokenize' else step
    for step in _base_.test_pipeline
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
