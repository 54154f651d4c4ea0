# FIANet with Swin-B (window 12, ImageNet-22k 384 weights) and bert-base-uncased,
# as in the reference (docs/reference.md sections 1-5).
# Batch norms of TMEM and the decoder: plain BN in one process (as the reference),
# statistics synchronised across processes in distributed runs: AutoSyncBN builds torch's
# SyncBatchNorm where CUDA is available, PortableSyncBN (CPU/gloo too) elsewhere.
# norm_cfg = dict(type='BN', requires_grad=True) keeps them per process.
norm_cfg = dict(type='AutoSyncBN', requires_grad=True)
data_preprocessor = dict(
    type='RefSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
swin_b_22k_384 = ('https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
                  'swin_base_patch4_window12_384_22k.pth')
model = dict(
    type='FIANet',
    data_preprocessor=data_preprocessor,
    text_encoder=dict(
        type='BertTextEncoder',
        name_or_path='bert-base-uncased',
        trainable_layers=list(range(10)),  # reference: embeddings, layers 10-11 frozen
        train_embeddings=False),
    backbone=dict(
        type='FIAMSwinTransformer',
        pretrain_img_size=384,
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.3,
        patch_norm=True,
        use_abs_pos_embed=False,
        with_cp=False,
        fusion_num_heads=[1, 1, 1, 1],
        with_opab=True,
        with_object=True,
        with_position=True,
        # The reference's order: every Linear (FIAM's too) truncated normal, LayerNorms
        # 1 / 0, then the Swin checkpoint overwrites what it holds.
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
            dict(type='Pretrained', checkpoint=swin_b_22k_384),
        ]),
    # TMEM lives in the reference's backbone: its Linear / LayerNorm layers get the same
    # initialisation; convolutions and batch norms keep PyTorch's defaults.
    neck=dict(type='TMEM', in_channels=[128, 256, 512, 1024], num_blocks=3, norm_cfg=norm_cfg,
              init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
                        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)]),
    decode_head=dict(
        type='SimpleDecodeHead',
        in_channels=[128, 256, 512, 1024],
        channels=512,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=[
            # reference: 0.9 * CE(class weights [0.9, 1.1], weighted mean) + 0.1 * Dice (summed)
            # (mmseg's CrossEntropyLoss with class weights fails on ignored pixels, label 255)
            dict(type='WeightedCrossEntropyLoss', class_weight=[0.9, 1.1], loss_weight=0.9,
                 loss_name='loss_ce'),
            dict(type='ClasswiseDiceLoss', loss_weight=0.1, eps=1e-6, reduction='sum',
                 loss_name='loss_dice'),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
