# Ablation: without OPAB: LAVT's context-only fusion (x + tanh-gate(r) * r, no channel gate).
_base_ = ['../fianet_swin-b_rrsisd.py']
model = dict(backbone=dict(with_opab=False))
