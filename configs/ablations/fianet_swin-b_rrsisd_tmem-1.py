# Ablation: TMEM with 1 text-aware block(s) (RRSIS-D default: 3).
_base_ = ['../fianet_swin-b_rrsisd.py']
model = dict(neck=dict(num_blocks=1))
