# Ablation: OPAB without its object branch (the position map weights the visual tokens).
_base_ = ['../fianet_swin-b_rrsisd.py']
model = dict(backbone=dict(with_object=False))
