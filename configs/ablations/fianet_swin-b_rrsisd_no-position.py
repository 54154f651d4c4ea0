# Ablation: OPAB without its position branch (a = tanh-gated object attention).
_base_ = ['../fianet_swin-b_rrsisd.py']
model = dict(backbone=dict(with_position=False))
