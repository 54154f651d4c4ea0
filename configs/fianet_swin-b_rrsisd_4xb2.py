# FIANet on RRSIS-D with 4 GPUs x 2 images: the reference's batch of 8 per step.
#   bash tools/dist_train.sh configs/fianet_swin-b_rrsisd_4xb2.py 4
# Batch norms synchronise across the GPUs (AutoSyncBN in the base model config: torch's
# SyncBatchNorm where CUDA is available). auto_scale_lr keeps lr * (GPUs x 2) / 8, so the
# same config on 8 GPUs doubles it.
_base_ = ['./fianet_swin-b_rrsisd.py']
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=True, base_batch_size=8)
