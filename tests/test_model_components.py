"""FIAM / TMEM switches, Swin checkpoint loading, loss, training step, gradients."""
from __future__ import annotations

import logging

import pytest
import torch
from conftest import build_model, load_config, tiny_model_overrides
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from reference_fianet import Backbone, fill_like_fixture
from torch.nn.modules.batchnorm import _BatchNorm

from fianet_mmseg.checkpoint import official_fianet_to_mmseg, official_swin_to_mmseg
from fianet_mmseg.models.layers import FIAM, TextFeatures

CONFIG = 'fianet_swin-b_rrsisd.py'
LENGTH = 10


def text_inputs(batch: int = 2, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (batch, LENGTH), generator=gen)
    attention = torch.ones(batch, LENGTH, dtype=torch.long)
    attention[0, 8:] = 0
    obj = torch.zeros_like(attention)
    obj[:, 1:3] = 1
    pos = torch.zeros_like(attention)
    pos[:, 4:7] = 1
    return dict(input_ids=ids, attention_mask=attention, object_mask=obj, position_mask=pos)


def tiny_model(**extra):
    overrides = tiny_model_overrides()
    overrides.update(extra)
    model = build_model(CONFIG, overrides)
    model.init_weights()
    return model.eval()


def logits_for(model, text: dict, img: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_tensors(img, **text)


def changed_mask(text: dict, key: str) -> dict:
    text = {k: v.clone() for k, v in text.items()}
    text[key][:, 1:7] = 1 - text[key][:, 1:7]
    text[key][:, 0] = 1  # keep every mask non-empty
    return text


IMG = torch.randn(2, 3, 64, 64)


@pytest.mark.slow
@pytest.mark.parametrize('switches, obj_matters, pos_matters', [
    ({}, True, True),
    ({'model.backbone.with_opab': False}, False, False),
    ({'model.backbone.with_object': False}, False, True),
    ({'model.backbone.with_position': False}, True, False),
], ids=['full', 'no-opab', 'no-object-branch', 'no-position-branch'])
def test_opab_switches_change_what_the_model_reads(switches, obj_matters, pos_matters):
    torch.manual_seed(0)
    model = tiny_model(**switches)
    text = text_inputs()
    base = logits_for(model, text, IMG)
    obj_delta = (logits_for(model, changed_mask(text, 'object_mask'), IMG) - base).abs().max()
    pos_delta = (logits_for(model, changed_mask(text, 'position_mask'), IMG) - base).abs().max()
    assert (obj_delta > 1e-5) == obj_matters
    assert (pos_delta > 1e-5) == pos_matters
    # the whole expression always matters (context branch and TMEM)
    ctx_delta = (logits_for(model, changed_mask(text, 'attention_mask'), IMG) - base).abs().max()
    assert ctx_delta > 1e-5


def _text_features(batch=2, width=16, length=LENGTH) -> TextFeatures:
    feats = [torch.randn(batch, width, length) for _ in range(3)]
    masks = [torch.ones(batch, length) for _ in range(3)]
    masks[1][:, 5:] = 0
    masks[2][:, :5] = 0
    return TextFeatures(*feats, *masks)


def test_fiam_without_opab_is_lavt_pwam():
    """x + tanh-gate(r) * r, with r the PWAM output; no OPAB, no channel gate."""
    torch.manual_seed(0)
    fiam = FIAM(8, 16, with_opab=False).eval()
    assert not hasattr(fiam, 'opab') and not hasattr(fiam, 'channel_gate')
    x = torch.randn(2, 16, 8)
    text = _text_features()
    context, updated = fiam(x, (4, 4), text)
    gate = fiam.context_gate.gate
    lin1, lin2 = gate[0], gate[2]
    expected = x + torch.tanh(lin2(torch.relu(lin1(context)))) * context
    torch.testing.assert_close(updated, expected)
    # the full FIAM adds the OPAB term and scales the sum by the channel gate
    full = FIAM(8, 16).eval()
    full.load_state_dict(fiam.state_dict(), strict=False)
    _, full_updated = full(x, (4, 4), text)
    assert not torch.allclose(full_updated, updated)


def test_last_stage_only_outputs_context():
    """The reference discards the last stage's update: nothing else is built there."""
    model = tiny_model()
    last = model.backbone.fusions[-1]
    assert not last.with_update
    assert {name.split('.')[0] for name, _ in last.named_parameters()} == {'context'}


def test_tmem_blocks_and_disabling():
    torch.manual_seed(0)
    three = tiny_model(**{'model.neck.num_blocks': 3})
    assert len(three.neck.blocks) == 3
    no_tmem = tiny_model(**{'model.neck': None})
    assert not no_tmem.with_neck
    text = text_inputs()
    assert logits_for(no_tmem, text, IMG).shape == (2, 2, 64, 64)
    # TMEM reads the whole expression
    feats = [torch.randn(2, 16 * 2**i, 16 // 2**i, 16 // 2**i) for i in range(4)]
    tf = three.encode_text(text)
    out = three.neck(feats, tf)
    other = three.neck(feats, tf._replace(context=torch.randn_like(tf.context)))
    assert [o.shape for o in out] == [f.shape for f in feats]
    assert not torch.allclose(out[0], other[0])
    with pytest.raises(ValueError, match='neck=None'):
        MODELS.build(dict(type='TMEM', in_channels=[4, 8], text_channels=8, num_blocks=0))


def test_absolute_position_embedding_is_added_and_resized():
    """``use_abs_pos_embed=True`` (the demo's choice) really reaches the features."""
    model = tiny_model(**{'model.backbone.use_abs_pos_embed': True,
                          'model.backbone.pretrain_img_size': 64})
    # float64: without the embedding equal patches give equal features up to rounding,
    # which the instance norms of FIAM amplify; in float32 that reaches ~1e-4
    model.double()
    backbone = model.backbone
    assert backbone.absolute_pos_embed.shape == (1, 16 * 16, 16)
    text = model.encode_text(text_inputs())
    # every patch alike: only the embedding tells them apart
    flat = torch.zeros(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        for size in (64, 96):  # the pretraining grid, and one the embedding is resized to
            img = flat[..., :1, :1].expand(2, 3, size, size)
            first = backbone(img, text)[0]
            assert not torch.allclose(first[..., 0, 0], first[..., -1, -1])
            backbone.absolute_pos_embed.data.zero_()
            first = backbone(img, text)[0]
            assert torch.allclose(first[..., 0, 0], first[..., 2, 2], atol=1e-5)
            torch.nn.init.trunc_normal_(backbone.absolute_pos_embed, std=0.5)


def official_swin_checkpoint(tmp_path, embed=16, depths=(2, 2, 2, 2), window=4):
    """A Swin checkpoint in the official release layout, with its extra entries."""
    swin = Backbone(embed, depths, (1, 2, 2, 4), window, 32, (1, 1, 1, 1), 1)
    state = {}
    for key, value in swin.state_dict().items():
        keep = key.startswith('patch_embed.') or ('.blocks.' in key) or '.downsample.' in key
        if keep:
            state[key] = fill_like_fixture(key, value.shape)
    # entries the segmentation backbone has no place for
    state['norm.weight'] = torch.ones(embed * 8)
    state['head.weight'] = torch.zeros(1000, embed * 8)
    state['layers.0.blocks.1.attn_mask'] = torch.zeros(16, window**2, window**2)
    state['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(
        window**2, window**2, dtype=torch.long)
    path = tmp_path / 'swin_official.pth'
    torch.save({'model': state}, path)
    return path, state


def test_backbone_loads_official_swin_layout(tmp_path):
    path, official = official_swin_checkpoint(tmp_path)
    cfg = load_config(CONFIG, tiny_model_overrides())
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    backbone_cfg = dict(cfg.model.backbone, text_channels=32)
    backbone = MODELS.build(backbone_cfg)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        backbone.init_weights()
    finally:
        logger.removeHandler(handler)
    converted, _ = official_swin_to_mmseg(official)
    own = backbone.state_dict()
    swin_keys = [k for k in own if not k.startswith('fusions.') and not k.startswith('norm')]
    assert swin_keys and set(swin_keys) <= set(converted)
    for key in swin_keys:
        torch.testing.assert_close(own[key], converted[key], msg=key)
    # patch merging reordered for nn.Unfold, not copied verbatim
    reduction = 'stages.0.downsample.reduction.weight'
    assert not torch.equal(own[reduction], official['layers.0.downsample.reduction.weight'])
    log = '\n'.join(r.getMessage() for r in records)
    for unplaced in ('head.weight', 'norm.weight', 'attn_mask', 'relative_position_index'):
        assert unplaced in log
    assert 'Swin weights missing' not in log


@pytest.mark.parametrize('height, width', [(6, 8), (5, 7)])
def test_converted_patch_merging_computes_the_official_merge(height, width):
    """mmseg's ``nn.Unfold`` merge with converted weights = the official concatenating
    merge (tests/reference_fianet.py), odd sizes padded; float64: rounding only."""
    from mmseg.models.backbones.swin import PatchMerging as MmsegPatchMerging
    from reference_fianet import PatchMerging

    dim = 6
    official = PatchMerging(dim).double()
    state = {f'layers.0.downsample.{k}': fill_like_fixture(f'layers.0.downsample.{k}', v.shape)
             for k, v in official.state_dict().items()}
    official.load_state_dict({k[len('layers.0.downsample.'):]: v for k, v in state.items()})
    converted, _ = official_swin_to_mmseg(state)
    merge = MmsegPatchMerging(dim, 2 * dim, stride=2).double()
    merge.load_state_dict({k[len('stages.0.downsample.'):]: v for k, v in converted.items()})
    x = torch.randn(2, height * width, dim, dtype=torch.float64)
    expected = official(x, height, width)
    got, shape = merge(x, (height, width))
    assert shape == ((height + 1) // 2, (width + 1) // 2)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_backbone_reports_missing_swin_weights(tmp_path):
    path, official = official_swin_checkpoint(tmp_path)
    state = {k: v for k, v in official.items() if not k.startswith('layers.3.')}
    torch.save({'model': state}, path)
    cfg = load_config(CONFIG, tiny_model_overrides())
    backbone = MODELS.build(dict(cfg.model.backbone, text_channels=32,
                                 init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)
    try:
        backbone.init_weights()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    log = '\n'.join(r.getMessage() for r in records)
    assert 'Swin weights missing' in log and 'stages.3.blocks.0' in log


def test_converter_rejects_foreign_state_dict():
    with pytest.raises(KeyError, match='not a reference FIANet state dict'):
        official_fianet_to_mmseg({'encoder.weight': torch.zeros(1)})


def test_reference_loss_on_hand_checked_tensors():
    """0.9 * weighted-mean CE([0.9, 1.1]) + 0.1 * summed per-class Dice, as configured."""
    cfg = load_config(CONFIG, tiny_model_overrides())
    head = MODELS.build(dict(cfg.model.decode_head, in_channels=[4, 8, 16, 32], channels=8))
    # pixel a: p = (0.5, 0.5), label 1; pixel b: p = (0.75, 0.25), label 0
    logits = torch.tensor([[[[0.0, float(torch.log(torch.tensor(3.0)))]],
                            [[0.0, 0.0]]]])
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.tensor([[[1, 0]]])))
    losses = head.loss_by_feat(logits, [sample])
    ce = (1.1 * 0.693147 + 0.9 * 0.287682) / (1.1 + 0.9)
    dice = (1 - 1.5 / 2.25) + (1 - 1.0 / 1.75)
    assert losses['loss_ce'].item() == pytest.approx(0.9 * ce, abs=1e-5)
    assert losses['loss_dice'].item() == pytest.approx(0.1 * dice, abs=1e-5)
    # summed over samples: a second identical sample doubles the Dice term only
    two = head.loss_by_feat(logits.repeat(2, 1, 1, 1), [sample, sample])
    assert two['loss_ce'].item() == pytest.approx(0.9 * ce, abs=1e-5)
    assert two['loss_dice'].item() == pytest.approx(0.2 * dice, abs=1e-5)


def _training_batch(batch=2, size=64):
    gen = torch.Generator().manual_seed(3)
    img = torch.randn(batch, 3, size, size, generator=gen)
    samples = []
    for i in range(batch):
        mask = torch.zeros(1, size, size, dtype=torch.long)
        mask[:, 8 + 10 * i:30 + 10 * i, 12:40] = 1
        sample = SegDataSample(gt_sem_seg=PixelData(data=mask))
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size)))
        samples.append(sample)
    return img, samples


@pytest.mark.slow
def test_training_step_learns_and_grads_reach_trainable_text_layers_only():
    overrides = tiny_model_overrides(layers=12)
    overrides['model.text_encoder.trainable_layers'] = list(range(10))  # reference default
    overrides['model.text_encoder.bert_config'].update(hidden_dropout_prob=0.0,
                                                       attention_probs_dropout_prob=0.0)
    overrides['model.backbone.drop_path_rate'] = 0.0
    cfg = load_config(CONFIG, overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_cfg = dict(cfg.optim_wrapper)
    optim_cfg['optimizer'] = dict(optim_cfg['optimizer'], lr=3e-4)
    optim = build_optim_wrapper(model, optim_cfg)
    img, samples = _training_batch()
    text = text_inputs()

    def total_loss():
        losses = model.loss(img, samples, text)
        return sum(v for k, v in losses.items() if 'loss' in k)

    first = total_loss()
    optim.zero_grad()
    first.backward()
    bert = model.text_encoder.bert
    for index, layer in enumerate(bert.encoder.layer):
        grads = [p.grad for p in layer.parameters()]
        if index < 10:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), index
        else:
            assert all(g is None for g in grads), index
    assert all(p.grad is None for p in bert.embeddings.parameters())
    optim.step()
    for _ in range(2):
        optim.update_params(total_loss())
    assert total_loss().item() < first.item()


def test_weight_decay_follows_the_reference_rule():
    """No decay for backbone (and TMEM) norms, position tables; 0.01 elsewhere."""
    cfg = load_config(CONFIG, tiny_model_overrides())
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {}
    for group in optim.optimizer.param_groups:
        for param in group['params']:
            decay_of[id(param)] = group['weight_decay']
    checked = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:  # frozen text-encoder parts
            continue
        exempt = name.startswith(('backbone.', 'neck.')) and any(
            key in name for key in ('norm', 'relative_position_bias_table',
                                    'absolute_pos_embed'))
        assert decay_of[id(param)] == (0.0 if exempt else 0.01), name
        checked += exempt
    assert checked > 10


def test_fully_frozen_text_encoder_evaluates_while_partly_trained_one_keeps_dropout():
    def encoder(trainable_layers):
        return MODELS.build(dict(
            type='BertTextEncoder', name_or_path=None, trainable_layers=trainable_layers,
            bert_config=dict(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=32,
                             hidden_dropout_prob=0.5)))

    ids = torch.randint(1, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    masks = [torch.ones(2, 6, dtype=torch.long)]
    frozen = encoder([]).train()
    assert not frozen.bert.training
    assert torch.equal(frozen(ids, masks)[0], frozen(ids, masks)[0])  # no dropout
    partly = encoder([1]).train()
    assert partly.bert.training and not partly(ids, masks)[0].equal(partly(ids, masks)[0])
    frozen.eval()
    assert not frozen.bert.training and not frozen.training


# ------------------------------------------------- the reference's initialisation
def _uniform_default_bound(weight: torch.Tensor) -> float:
    """PyTorch's default init of Linear / Conv: U(-b, b), b = 1 / sqrt(fan_in)."""
    return 1.0 / weight[0].numel() ** 0.5


def test_reference_initialisation_then_the_swin_checkpoint(tmp_path):
    """docs/reference.md 6c: backbone (and TMEM) Linear trunc_normal(0.02) / bias 0, LayerNorm
    1 / 0, then the Swin checkpoint; decoder convolutions and norms PyTorch's defaults."""
    path, official = official_swin_checkpoint(tmp_path)
    cfg = load_config(CONFIG)
    overrides = tiny_model_overrides()
    overrides.pop('model.backbone.init_cfg')  # keep the config's list ...
    cfg.merge_from_dict(overrides)
    cfg.model.backbone.init_cfg[-1]['checkpoint'] = str(path)  # ... with a local checkpoint
    assert [c['type'] for c in cfg.model.backbone.init_cfg] == \
        ['TruncNormal', 'Constant', 'Pretrained']
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()

    linears = [m for m in [*model.backbone.fusions.modules(), *model.neck.modules()]
               if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert len(linears) >= 16 and weights.numel() > 10000
    # std 0.02 (PyTorch's default here would be U(+-1/sqrt(16..64)), std > 0.07)
    assert 0.019 < weights.std().item() < 0.021 and weights.abs().max().item() < 0.02 * 6
    assert all(m.bias is None or not m.bias.any() for m in linears)
    # LayerNorms that the checkpoint does not hold: the stage outputs' and TMEM's
    norms = [getattr(model.backbone, f'norm{i}') for i in range(4)]
    norms += [m for m in model.neck.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 6
    assert all(m.weight.eq(1).all() and m.bias.eq(0).all() for m in norms)
    # the checkpoint overwrote what it holds
    converted, _ = official_swin_to_mmseg(official)
    own = model.backbone.state_dict()
    for key in ('patch_embed.projection.weight', 'stages.1.blocks.0.ffn.layers.0.0.weight',
                'stages.2.blocks.1.attn.w_msa.qkv.weight'):
        torch.testing.assert_close(own[key], converted[key])
    # decoder: PyTorch's defaults, not mmcv's Kaiming normal nor mmseg's N(0, 0.01) classifier
    convs = [m for m in model.decode_head.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        bound = _uniform_default_bound(conv.weight)
        assert conv.weight.abs().max().item() <= bound
        assert conv.weight.std().item() > 0.8 * bound / 3**0.5
    assert model.decode_head.conv_seg in convs
    bns = [m for m in model.decode_head.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(m.weight.eq(1).all() and m.bias.eq(0).all() for m in bns)


# ------------------------------------------------------------ post-processing
@pytest.mark.parametrize('flip', [None, 'horizontal', 'vertical'])
def test_prediction_at_input_size_uses_mmseg_padding_order_and_undoes_flips(flip):
    """padding_size is (left, right, top, bottom) in mmseg; asymmetric on purpose."""
    model = build_model(CONFIG, tiny_model_overrides()).eval()
    left, right, top, bottom = 1, 3, 2, 0
    height, width = 6, 7  # the image at the network's input size
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 2, height + top + bottom, width + left + right, generator=gen)
    logits[0, 1, ::2, ::3] = logits[0, 0, ::2, ::3]  # ties: the first class, as argmax says
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                pad_shape=tuple(logits.shape[2:]), padding_size=[left, right, top, bottom],
                flip=flip is not None, flip_direction=flip)
    sample = SegDataSample(metainfo=meta)
    result = model.postprocess_result(logits.clone(), [sample])[0]
    expected = logits[0, :, top:top + height, left:left + width]
    if flip == 'horizontal':
        expected = expected.flip(2)
    elif flip == 'vertical':
        expected = expected.flip(1)
    expected = expected.argmax(0, keepdim=True)
    assert torch.equal(result.pred_sem_seg_at_input.data, expected)
    # mmseg's own prediction at the original size (same size here) agrees
    assert torch.equal(result.pred_sem_seg.data, expected)


# ---------------------------------------------------------------------------------------------
# The cross-entropy term with class weights and ignored pixels (label 255)

def _weighted_ce_float64(logits: torch.Tensor, target: torch.Tensor, class_weight) -> float:
    """sum_i w[y_i] * -log softmax_i[y_i] / sum_i w[y_i] over labelled pixels, by hand."""
    log_prob = logits.double().log_softmax(dim=1).permute(0, 2, 3, 1).reshape(-1, 2)
    labels = target.reshape(-1)
    total = weights = 0.0
    for row, label in zip(log_prob.tolist(), labels.tolist()):
        if label == 255:
            continue
        total -= class_weight[label] * row[label]
        weights += class_weight[label]
    return total / weights


def _summed_dice_float64(logits: torch.Tensor, target: torch.Tensor) -> float:
    """sum over (sample, class) of 1 - (2 |P T| + 1e-6) / (|P| + |T| + 1e-6), labelled pixels."""
    prob = logits.double().softmax(dim=1)
    total = 0.0
    for n in range(target.shape[0]):
        labelled = target[n] != 255
        for c in range(2):
            p = prob[n, c][labelled]
            t = (target[n][labelled] == c).double()
            total += 1 - (2 * (p * t).sum().item() + 1e-6) / (p.sum().item() + t.sum().item()
                                                              + 1e-6)
    return total


def test_weighted_cross_entropy_is_the_class_weighted_mean():
    """Unequal class counts: the weighted mean differs from the plain and the count mean."""
    loss = MODELS.build(dict(type='WeightedCrossEntropyLoss', class_weight=[0.9, 1.1],
                             loss_weight=0.9))
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 2, 6, 7, generator=gen) * 2
    target = (torch.rand(2, 6, 7, generator=gen) > 0.8).long()  # about 1 in 5 foreground
    target[0, :2] = 255  # ignored rows
    labelled = target != 255
    assert 0 < (target == 1).sum() < (target == 0).sum() / 2
    expected = 0.9 * _weighted_ce_float64(logits, target, [0.9, 1.1])
    # what this test tells apart: the mean over labelled pixels without the weights'
    # normalisation (the weighted sum divided by the pixel count) and the unweighted mean
    nll = -logits.double().log_softmax(1).gather(1, target.clamp(max=1)[:, None])[:, 0]
    weight = torch.tensor([0.9, 1.1], dtype=torch.float64)[target.clamp(max=1)]
    count_mean = 0.9 * (weight * nll)[labelled].sum().item() / labelled.sum().item()
    plain_mean = 0.9 * nll[labelled].mean().item()
    # float32 logits, a sum of 68 terms: a few float32 eps relative is the rounding
    tolerance = 64 * torch.finfo(torch.float32).eps * expected
    assert min(abs(count_mean - expected), abs(plain_mean - expected)) > 100 * tolerance
    assert loss(logits, target, ignore_index=255).item() == pytest.approx(expected,
                                                                          abs=tolerance)
    # the decode head's ignore_index wins over the loss's own
    other = target.masked_fill(target == 255, 7)
    assert loss(logits, other, ignore_index=7).item() == pytest.approx(expected, abs=tolerance)


def test_weighted_cross_entropy_of_an_all_ignored_batch_is_a_connected_zero():
    """F.cross_entropy gives 0 / 0 = NaN; the loss gives 0 with a zero gradient instead."""
    loss = MODELS.build(dict(type='WeightedCrossEntropyLoss', class_weight=[0.9, 1.1]))
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    value = loss(logits, target, ignore_index=255)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


def test_weighted_cross_entropy_rejects_mismatched_weights_and_pixel_weights():
    loss = MODELS.build(dict(type='WeightedCrossEntropyLoss', class_weight=[0.9, 1.1, 1.0]))
    with pytest.raises(ValueError, match='3 values for 2 classes'):
        loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    loss = MODELS.build(dict(type='WeightedCrossEntropyLoss'))
    with pytest.raises(ValueError, match='per-pixel weights'):
        loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long),
             weight=torch.ones(1, 2, 2))


def test_dice_ignores_pixels_labelled_255():
    dice = MODELS.build(dict(type='ClasswiseDiceLoss', eps=1e-6, reduction='sum'))
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 2, 5, 5, generator=gen)
    target = (torch.rand(2, 5, 5, generator=gen) > 0.5).long()
    target[:, 3:] = 255
    changed = logits.clone()
    changed[:, :, 3:] = 50 * torch.randn(2, 2, 2, 5, generator=gen)  # only ignored pixels
    expected = _summed_dice_float64(logits, target)
    tolerance = 64 * torch.finfo(torch.float32).eps * 4  # 4 (sample, class) terms of size <= 1
    assert dice(logits, target).item() == pytest.approx(expected, abs=tolerance)
    assert dice(changed, target).item() == pytest.approx(expected, abs=tolerance)


def _ignored_pixels_batch():
    """Two images of different sizes, masks holding 0, 1 and 255; padded by the preprocessor."""
    gen = torch.Generator().manual_seed(7)
    text = text_inputs(batch=2, seed=1)
    inputs, samples, masks = [], [], []
    for i, (h, w) in enumerate([(64, 64), (48, 40)]):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen))
        mask = torch.zeros(1, h, w, dtype=torch.long)
        mask[:, 10:30, 8 + 4 * i:30] = 1
        mask[:, :4] = 255  # an ignored band inside the image
        masks.append(mask)
        sample = SegDataSample(gt_sem_seg=PixelData(data=mask.clone()))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.set_data({key: value[i] for key, value in text.items()})
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples), masks


@pytest.mark.numerics
def test_training_steps_with_ignored_and_padded_pixels_report_the_reference_loss():
    """Masks with 255 and seg maps padded with 255: the reported losses are 0.9 * weighted CE +
    0.1 * summed Dice of the logits over the labelled pixels (mmseg's class-weighted
    CrossEntropyLoss raised IndexError on this batch)."""
    overrides = tiny_model_overrides()
    overrides.update({'model.data_preprocessor.size_divisor': 32,
                      'model.backbone.drop_path_rate': 0.0})
    cfg = load_config(CONFIG, overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    logits = []
    model.decode_head.conv_seg.register_forward_hook(lambda m, i, out: logits.append(out))
    # what the loss sees: each mask at the top left of 64 x 64, the rest 255
    target = torch.full((2, 64, 64), 255, dtype=torch.long)
    data, masks = _ignored_pixels_batch()
    for i, mask in enumerate(masks):
        target[i, :mask.shape[1], :mask.shape[2]] = mask[0]
    assert (target[1, :48, :40] == 255).any() and (target[1, 48:] == 255).all()
    for _ in range(3):
        data, _ = _ignored_pixels_batch()
        logits.clear()
        reported = model.train_step(data, optim)
        assert len(logits) == 1
        full = torch.nn.functional.interpolate(logits[0].detach().double(), size=(64, 64),
                                               mode='bilinear', align_corners=True)
        ce = 0.9 * _weighted_ce_float64(full, target, [0.9, 1.1])
        dice = 0.1 * _summed_dice_float64(full, target)
        # float32 losses of about 1 from sums of <= 8192 terms: 64 float32 eps relative
        tolerance = 64 * torch.finfo(torch.float32).eps * (ce + dice)
        assert reported['decode.loss_ce'].item() == pytest.approx(ce, abs=tolerance)
        assert reported['decode.loss_dice'].item() == pytest.approx(dice, abs=tolerance)
        assert reported['loss'].item() == pytest.approx(ce + dice, abs=2 * tolerance)
