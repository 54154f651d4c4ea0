"""FIANet computes what the reference computes (docs/reference.md; tests/fixtures/README.md)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import (
    FIXTURE_BERT,
    FIXTURE_OVERRIDES,
    PARITY_FIXTURE,
    PARITY_TOLERANCE,
    REPO,
    build_model,
    load_config,
)
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from reference_fianet import ReferenceFIANet, fill_like_fixture, reference_loss

from fianet_mmseg.checkpoint import official_fianet_to_mmseg

CONVERTER = REPO / 'tools' / 'model_converters' / 'fianet_official_to_mmseg.py'
CONFIG = 'fianet_swin-b_rrsisd.py'
TOLERANCE = PARITY_TOLERANCE  # why this much: tests/conftest.py
pytestmark = [pytest.mark.numerics, pytest.mark.slow]  # each test 20-45 s on two CPU cores
# Project and test oracle in the same process are compared in float64, where the
# same rounding differences are ~1e-13 of the logits: a real difference of the
# computation cannot hide under the tolerance, on any CPU.
FLOAT64_TOLERANCE = 1e-9


@pytest.fixture(scope='module')
def reference_logits():
    """tests/fixtures/reference_logits_small.pt: the reference model's inputs and logits."""
    return torch.load(PARITY_FIXTURE, weights_only=True)


def convert_with_cli(state: dict, overrides: dict, tmp_path) -> dict:
    """Save ``state`` in the reference checkpoint layout, run the converter CLI with
    ``--config``: the Swin-B config with ``overrides`` (the architecture of ``state``)."""
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    config = tmp_path / 'architecture.py'
    torch.save({'model': state}, src)
    load_config(CONFIG, overrides).dump(str(config))
    done = subprocess.run([sys.executable, str(CONVERTER), str(src), str(dst),
                           '--config', str(config)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return torch.load(dst, weights_only=True)['state_dict']


def model_overrides(embed=128, depths=(2, 2, 2, 2), heads=(4, 8, 16, 32), window=12,
                    fusion_heads=(1, 1, 1, 1), tmem_blocks=1, bert=None, **switches) -> dict:
    dims = [embed * 2**i for i in range(4)]
    overrides = {
        'model.backbone.embed_dims': embed,
        'model.backbone.depths': list(depths),
        'model.backbone.num_heads': list(heads),
        'model.backbone.window_size': window,
        'model.backbone.fusion_num_heads': list(fusion_heads),
        'model.neck.in_channels': dims,
        'model.neck.num_blocks': tmem_blocks,
        'model.decode_head.in_channels': dims,
        'model.text_encoder.name_or_path': None,
        'model.text_encoder.bert_config': dict(bert or FIXTURE_BERT),
    }
    overrides.update({f'model.{k}': v for k, v in switches.items()})
    return overrides


def load_converted(overrides: dict, converted: dict):
    """The model of ``overrides`` with every entry of ``converted`` (strict: all of them,
    the text encoder's architecture included, and nothing else)."""
    model = build_model(CONFIG, overrides)
    model.load_state_dict(converted, strict=True)
    return model.eval()


@pytest.fixture(scope='module')
def reference_logits_converted(reference_logits, tmp_path_factory) -> dict:
    """The fixture's weights in the reference layout, converted by the CLI."""
    state = {name: fill_like_fixture(name, shape)
             for name, shape in reference_logits['official_keys']}
    return convert_with_cli(state, FIXTURE_OVERRIDES, tmp_path_factory.mktemp('reference'))


@pytest.mark.parametrize('text_encoder', ['trained', 'frozen'])
def test_logits_match_the_reference_fixture(reference_logits, reference_logits_converted,
                                            text_encoder):
    """The issue's own overrides + the CLI-converted fixture weights -> the reference logits.

    With a trained text encoder the words of all views go through BERT in one call; a
    frozen one (nothing trains, eval mode) takes them from the feature cache instead.
    """
    overrides = dict(FIXTURE_OVERRIDES)
    if text_encoder == 'frozen':
        overrides['model.text_encoder.trainable_layers'] = []
    model = load_converted(overrides, reference_logits_converted)
    assert model.text_encoder.caching() == (text_encoder == 'frozen')
    with torch.no_grad():
        logits = model.forward_tensors(**reference_logits['inputs'])
    assert logits.shape == reference_logits['logits'].shape
    assert (logits - reference_logits['logits']).abs().max().item() < TOLERANCE


def test_oracle_matches_fixture(reference_logits):
    """The test oracle has the reference's exact key layout and reproduces its logits."""
    oracle = ReferenceFIANet(bert=FIXTURE_BERT).eval()
    official = {name: tuple(shape) for name, shape in reference_logits['official_keys']}
    own = {k: tuple(v.shape) for k, v in oracle.state_dict().items()
           if not k.endswith('num_batches_tracked')}
    assert own == official
    oracle.fill_()
    with torch.no_grad():
        logits = oracle(**reference_logits['inputs'])
    assert (logits - reference_logits['logits']).abs().max().item() < TOLERANCE


def random_inputs(batch: int, height: int, width: int, length: int, vocab: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=gen)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=gen)
    attention = (torch.arange(length)[None] < lengths[:, None]).long()
    ids = ids * attention
    obj = torch.zeros_like(attention)
    pos = torch.zeros_like(attention)
    for i in range(batch):
        obj[i, 1:3] = 1
        pos[i, 3:int(lengths[i]) - 1] = 1
    img = torch.randn(batch, 3, height, width, generator=gen)
    return dict(img=img, input_ids=ids, attention_mask=attention, object_mask=obj,
                position_mask=pos)


VARIANTS = {
    # odd grids everywhere: patch-embed padding, window padding, odd patch merging
    'nonsquare-padded': dict(
        arch=dict(embed=32, depths=(1, 2, 3, 1), heads=(1, 2, 4, 8), window=7,
                  fusion_heads=(1, 2, 4, 8), tmem_blocks=2,
                  bert=dict(vocab_size=500, hidden_size=64, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=128,
                            max_position_embeddings=32)),
        inputs=dict(batch=3, height=102, width=150, length=20, vocab=500)),
    'window12-tmem3': dict(
        arch=dict(embed=48, depths=(2, 2, 4, 2), heads=(2, 2, 4, 4), window=12,
                  fusion_heads=(2, 2, 2, 2), tmem_blocks=3,
                  bert=dict(vocab_size=300, hidden_size=96, num_hidden_layers=1,
                            num_attention_heads=3, intermediate_size=192,
                            max_position_embeddings=32)),
        inputs=dict(batch=1, height=160, width=96, length=22, vocab=300)),
}


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_parity_other_configurations(variant, tmp_path):
    """Depths, windows, fusion heads, TMEM blocks, batch, non-square inputs, text width."""
    spec = VARIANTS[variant]
    oracle = ReferenceFIANet(**spec['arch']).eval()
    state = oracle.fill_()
    overrides = model_overrides(**spec['arch'])
    converted = convert_with_cli(state, overrides, tmp_path)
    model = load_converted(overrides, converted)
    inputs = random_inputs(seed=1, **spec['inputs'])
    inputs['img'] = inputs['img'].double()
    with torch.no_grad():
        expected = oracle.double()(**inputs)
        logits = model.double().forward_tensors(**inputs)
    assert logits.shape == expected.shape == (spec['inputs']['batch'], 2,
                                             spec['inputs']['height'], spec['inputs']['width'])
    assert logits.dtype == expected.dtype == torch.float64
    assert (logits - expected).abs().max().item() < FLOAT64_TOLERANCE


def test_loss_and_gradient_of_every_trained_parameter_match_the_oracle():
    """A training step's loss and the gradients of every parameter the reference trains
    are the reference's (float64; the oracle's gradients go through the checkpoint
    converter, which also reorders patch merging, so keys and layouts line up)."""
    spec = VARIANTS['window12-tmem3']
    bert = dict(spec['arch']['bert'], num_hidden_layers=2, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    arch = dict(spec['arch'], bert=bert)
    oracle = ReferenceFIANet(**arch)
    state = oracle.fill_()
    oracle = oracle.double().train()
    converted, dropped = official_fianet_to_mmseg(state, bert_config=bert)  # as the CLI
    overrides = model_overrides(**arch)
    overrides['model.backbone.drop_path_rate'] = 0.0
    model = load_converted(overrides, converted).double().train()

    inputs = random_inputs(seed=2, batch=2, height=96, width=96, length=22, vocab=300)
    inputs['img'] = inputs['img'].double()
    gen = torch.Generator().manual_seed(4)
    target = (torch.rand(2, 96, 96, generator=gen) > 0.6).long()
    samples = []
    for i in range(2):
        sample = SegDataSample(gt_sem_seg=PixelData(data=target[i:i + 1]))
        sample.set_metainfo(dict(img_shape=(96, 96), ori_shape=(96, 96)))
        samples.append(sample)

    reference = reference_loss(oracle(**inputs), target)
    reference.backward()
    text = {k: v for k, v in inputs.items() if k != 'img'}
    losses = model.loss(inputs['img'], samples, text)
    total = sum(value for key, value in losses.items() if 'loss' in key)  # as mmengine sums
    total.backward()
    assert total.item() == pytest.approx(reference.item(), rel=FLOAT64_TOLERANCE)

    # the reference's optimizer gets every parameter but BERT's embeddings and layers >= 10
    oracle_grads = {name: param.grad for name, param in oracle.named_parameters()
                    if not name.startswith('text_encoder.embeddings.')}
    mapped, unused = official_fianet_to_mmseg({k: g for k, g in oracle_grads.items()
                                               if g is not None})
    trained = {name: param for name, param in model.named_parameters() if param.requires_grad}
    assert set(trained) == set(mapped)
    scale = sum(g.norm().item() for g in mapped.values()) / len(mapped)
    for name, param in trained.items():
        error = (param.grad - mapped[name]).norm().item()
        assert error <= FLOAT64_TOLERANCE * (mapped[name].norm().item() + scale), name
    # what the converter drops is dead in the reference: no gradient reaches it
    for name in dropped:
        grad = dict(oracle.named_parameters()).get(name)
        assert grad is None or grad.grad is None or not grad.grad.any(), name
    assert not unused or all(k in dropped for k in unused)
