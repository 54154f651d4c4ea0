# Ablation: without TMEM (the stage maps go straight to the decoder).
_base_ = ['../fianet_swin-b_rrsisd.py']
model = dict(neck=None)
