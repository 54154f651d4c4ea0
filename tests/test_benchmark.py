"""Benchmark / profiler tools, and the speed-up switches: same numbers on and off."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, build_model, load_config, load_script, tiny_model_overrides
from mmengine.optim import build_optim_wrapper
from mmseg.models.backbones.swin import ShiftWindowMSA, WindowMSA
from mmseg.registry import MODELS, OPTIM_WRAPPERS

from fianet_mmseg.engine import AutocastOptimWrapper, step_profiler
from fianet_mmseg.engine import benchmarking as bench
from fianet_mmseg.models.layers import (
    CachedShiftWindowMSA,
    SDPAWindowMSA,
    shifted_window_mask,
    speed_up_window_attention,
)
from fianet_mmseg.models.text_encoders.bert_text_encoder import _PackedView

CONFIG = 'fianet_swin-b_rrsisd.py'
TOOLS = REPO / 'tools' / 'analysis'
MODEL_SWITCHES = [name for name, keys in bench.SPEEDUPS.items() if keys[0].startswith('model.')]

#: ``--cfg-options`` of a seconds-fast FIANet (16-wide Swin, 2-layer 32-wide BERT).
TINY_OPTIONS = [
    'model.backbone.embed_dims=16', 'model.backbone.depths=[2,2,2,2]',
    'model.backbone.num_heads=[1,2,2,4]', 'model.backbone.window_size=4',
    'model.neck.in_channels=[16,32,64,128]', 'model.neck.num_blocks=1',
    'model.decode_head.in_channels=[16,32,64,128]', 'model.decode_head.channels=32',
    'model.text_encoder.name_or_path=None',
    'model.text_encoder.trainable_layers=[0,1]',
    'model.text_encoder.bert_config.vocab_size=30522',
    'model.text_encoder.bert_config.hidden_size=32',
    'model.text_encoder.bert_config.num_hidden_layers=2',
    'model.text_encoder.bert_config.num_attention_heads=2',
    'model.text_encoder.bert_config.intermediate_size=64',
    'model.text_encoder.bert_config.max_position_embeddings=64',
]


def load_tool(name: str):
    return load_script(f'tools/analysis/{name}.py')


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{')]


# ----------------------------------------------------------------- the tools
def test_benchmark_prints_one_json_line(capsys):
    tool = load_tool('benchmark')
    tool.main([str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '2', '--size',
               '64', '64', '--iters', '2', '--warmup', '1', '--device', 'cpu',
               '--cfg-options', *TINY_OPTIONS])
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    record = json.loads(out)
    assert record['config'] == CONFIG and record['mode'] == 'train'
    assert record['batch'] == 2 and record['size'] == [64, 64] and record['length'] == 22
    assert record['text'] == 'expressions'  # the offline uncased vocabulary is installed
    assert set(record['step_s']) == {'median', 'min', 'max', 'p25', 'p75', 'all'}
    assert len(record['step_s']['all']) == 2
    assert record['step_s']['min'] <= record['step_s']['median'] <= record['step_s']['max']
    assert record['samples_per_s'] > 0
    assert record['memory']['kind'] == 'cpu_peak_rss' and record['memory']['peak_mb'] > 0
    assert 0 < record['params']['trainable'] < record['params']['total']
    assert record['speedups'] == dict(batched_views=True, compact_views=True,
                                      pixel_word_sdpa=True, linear_projections=True,
                                      window_mask_cache=True, window_sdpa=True,
                                      fused_adamw=True)  # the schedule fuses AdamW
    assert record['random_init'] and record['amp'] is None and not record['with_cp']


def test_benchmark_interleaved_comparison_and_inference(capsys):
    tool = load_tool('benchmark')
    tool.main([str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '1', '--size',
               '64', '64', '--iters', '1', '--warmup', '0', '--device', 'cpu', '--mode',
               'infer', '--amp', '--compare', 'straightforward', 'fast', '--interleave',
               '--cfg-options', *TINY_OPTIONS])
    records = json_lines(capsys.readouterr().out)
    assert [r.get('path') for r in records[:2]] == ['straightforward', 'fast']
    assert all(r['mode'] == 'infer' and r['amp'] == 'bfloat16' for r in records[:2])
    assert not any(v for v in records[0]['speedups'].values())
    assert all(records[1]['speedups'][name] for name in MODEL_SWITCHES)
    summary = records[2]['summary']
    assert set(summary['speedup_vs_straightforward']) == {'straightforward', 'fast'}
    assert summary['speedup_vs_straightforward']['straightforward'] == 1.0


def test_benchmark_argument_handling():
    tool = load_tool('benchmark')
    argv = ['cfg.py', '--compare', 'fast', 'straightforward', '--iters', '3', '--interleave',
            '--path', 'fast']
    assert tool.child_argv(argv, 'window_sdpa') == ['cfg.py', '--iters', '3', '--path',
                                                    'window_sdpa']
    with pytest.raises(SystemExit):
        tool.parse_args(['cfg.py', '--iters', '0'])


def test_profile_step_attributes_every_part(capsys):
    tool = load_tool('profile_step')
    tool.main([str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '1', '--size',
               '64', '64', '--warmup', '0', '--top', '0', '--cfg-options', *TINY_OPTIONS])
    record = json_lines(capsys.readouterr().out)[-1]
    parts = {row['part']: row for row in record['parts']}
    for part in ('text_encoder', 'swin_blocks', 'swin_other', 'fiam', 'tmem', 'decoder'):
        assert parts[part]['forward_ms'] > 0 and parts[part]['backward_ms'] > 0, part
    assert parts['optimizer']['total_ms'] > 0 and parts['loss']['total_ms'] > 0
    assert sum(row['share'] for row in record['parts']) == pytest.approx(1.0, abs=0.01)


def test_part_scopes_split_forward_and_backward_by_part():
    first, second = torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)
    x = torch.randn(4, 8)
    with step_profiler.part_scopes([('alpha', first, 'forward'), ('beta', second, 'forward')]):
        assert 'forward' in vars(first)
        with torch.profiler.profile() as prof:
            second(first(x).relu()).sum().backward()
    assert 'forward' not in vars(first)  # wrappers removed
    totals = step_profiler.attribute_events(prof.events())
    for part in ('alpha', 'beta'):
        assert totals[part]['forward'] > 0 and totals[part]['backward'] > 0
    assert totals['grad_accumulation']['backward'] > 0  # the four .grad tensors
    rows = step_profiler.shares_table(totals)
    assert {'alpha', 'beta', 'grad_accumulation'} <= {r['part'] for r in rows}
    assert sum(r['share'] for r in rows) == pytest.approx(1.0, abs=0.01)


def test_summarize_times_by_hand():
    stats = bench.summarize_times([3.0, 1.0, 2.0, 4.0])
    assert stats['median'] == 2.5 and stats['min'] == 1.0 and stats['max'] == 4.0
    assert stats['p25'] == 1.75 and stats['p75'] == 3.25  # inclusive quartiles
    assert stats['all'] == [3.0, 1.0, 2.0, 4.0]


def test_random_init_uses_bert_base_sizes_and_drops_pretrained():
    cfg = load_config(CONFIG)
    arch = bench.use_random_weights(cfg)
    assert cfg.model.text_encoder.name_or_path is None
    assert arch == cfg.model.text_encoder.bert_config
    assert (arch['vocab_size'], arch['hidden_size'], arch['num_hidden_layers'],
            arch['num_attention_heads'], arch['intermediate_size']) == (30522, 768, 12, 12,
                                                                       3072)
    assert cfg.model.backbone.init_cfg is None


def test_set_speedups_switches_every_key():
    cfg = load_config(CONFIG)
    bench.set_speedups(cfg, ['compact_views', 'fused_adamw'])
    assert cfg.model.text_encoder.compact_views and not cfg.model.text_encoder.batched_views
    assert not cfg.model.backbone.use_sdpa and not cfg.model.neck.use_sdpa
    assert not cfg.model.backbone.cache_window_masks and not cfg.model.backbone.window_sdpa
    assert cfg.optim_wrapper.optimizer.fused is True
    cfg.model.neck = None
    bench.set_speedups(cfg, bench.SPEEDUPS)  # no neck: skipped, no error
    assert cfg.model.neck is None
    with pytest.raises(KeyError, match='unknown speed-up'):
        bench.set_speedups(cfg, ['warp_drive'])


def test_synthetic_batch_random_text_follows_the_tokenizer_layout():
    data = bench.synthetic_batch(3, (32, 48), 12, vocab_size=500, seed=1)
    assert [tuple(img.shape) for img in data['inputs']] == [(3, 32, 48)] * 3
    for sample in data['data_samples']:
        ids, attention = sample.input_ids, sample.attention_mask
        words = int(attention.sum()) - 2
        assert ids[0] == bench.CLS_ID and ids[words + 1] == bench.SEP_ID
        assert (ids[words + 2:] == bench.PAD_ID).all()
        # the phrases lie inside the expression's attention mask
        for mask in (sample.object_mask, sample.position_mask):
            assert mask.any() and not (mask.bool() & ~attention.bool()).any()
        assert sample.gt_sem_seg.data.shape == (1, 32, 48) and sample.gt_sem_seg.data.any()


# ------------------------------------------------------- shifted-window masks
def _mmseg_mask(hw_shape, window, shift):
    """The mask mmseg's ShiftWindowMSA hands to its WindowMSA."""
    msa = ShiftWindowMSA(8, 2, window, shift_size=shift)
    seen = {}

    def keep_mask(module, args, kwargs):
        seen['mask'] = kwargs['mask']

    msa.w_msa.register_forward_pre_hook(keep_mask, with_kwargs=True)
    msa(torch.randn(1, hw_shape[0] * hw_shape[1], 8), hw_shape)
    return seen['mask']


@pytest.mark.parametrize('hw_shape, window, shift', [
    ((8, 8), 4, 2), ((7, 10), 3, 1), ((13, 5), 4, 2), ((12, 12), 12, 6), ((30, 18), 12, 6)])
def test_cached_masks_equal_mmseg(hw_shape, window, shift):
    expected = _mmseg_mask(hw_shape, window, shift)
    hw_pad = tuple(-(-side // window) * window for side in hw_shape)
    mask = shifted_window_mask(hw_pad, window, shift, torch.device('cpu'))
    assert mask.dtype == expected.dtype and mask.shape == expected.shape
    assert torch.equal(mask, expected)
    assert shifted_window_mask(hw_pad, window, shift, 'cpu') is mask  # built once


def test_shifted_window_mask_by_hand():
    # 4x4 grid, window 2, shift 1: region rows/cols [0, 0, 1, 2] -> label 3 * row + col
    mask = shifted_window_mask((4, 4), 2, 1, 'cpu')
    assert mask.shape == (4, 4, 4)
    labels = [[0, 0, 0, 0], [1, 2, 1, 2], [3, 3, 6, 6], [4, 5, 7, 8]]
    for window, label in enumerate(labels):
        for i in range(4):
            for j in range(4):
                assert mask[window, i, j] == (0.0 if label[i] == label[j] else -100.0)


def test_faster_window_attentions_match_mmseg_with_gradients():
    torch.manual_seed(0)
    reference = ShiftWindowMSA(16, 2, 4, shift_size=2)
    torch.nn.init.normal_(reference.w_msa.relative_position_bias_table, std=0.5)
    fast = ShiftWindowMSA(16, 2, 4, shift_size=2)
    fast.load_state_dict(reference.state_dict())
    fast.__class__ = CachedShiftWindowMSA
    fast.w_msa.__class__ = SDPAWindowMSA
    x = torch.randn(2, 7 * 10, 16)  # padded to 8 x 12
    outs, grads = [], []
    for module in (reference, fast):
        inp = x.clone().requires_grad_()
        out = module(inp, (7, 10))
        out.square().sum().backward()
        outs.append(out)
        grads.append([inp.grad] + [p.grad for p in module.parameters()])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for fast_grad, ref_grad in zip(grads[1], grads[0]):
        torch.testing.assert_close(fast_grad, ref_grad, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # the fused-kernel (4-D) inference path
        torch.testing.assert_close(fast(x, (7, 10)), reference(x, (7, 10)), atol=1e-5,
                                   rtol=1e-5)


def test_speed_up_window_attention_keeps_keys_and_classes():
    cfg = load_config(CONFIG, tiny_model_overrides())
    plain = MODELS.build(dict(cfg.model.backbone, text_channels=32, cache_window_masks=False,
                              window_sdpa=False))
    keys = list(plain.state_dict())
    assert {type(m) for m in plain.modules() if isinstance(m, WindowMSA)} == {WindowMSA}
    assert speed_up_window_attention(plain) == 8  # every Swin block
    assert list(plain.state_dict()) == keys
    assert {type(m) for m in plain.modules() if isinstance(m, ShiftWindowMSA)} == \
        {CachedShiftWindowMSA}
    assert {type(m) for m in plain.modules() if isinstance(m, WindowMSA)} == {SDPAWindowMSA}


# ----------------------------------------------------------- compact views
def test_packed_view_by_hand():
    ids = torch.tensor([[101, 5, 6, 7, 102, 0], [101, 8, 9, 102, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0]])
    view = _PackedView.pack(ids, mask)
    assert view.input_ids.tolist() == [[6, 7], [8, 0]]
    assert view.position_ids.tolist() == [[2, 3], [1, 0]]
    assert view.attention_mask.tolist() == [[1, 1], [1, 0]]
    assert view.valid.tolist() == [[True, True], [True, False]]
    wide = view.widen(4)
    assert wide.input_ids.tolist() == [[6, 7, 0, 0], [8, 0, 0, 0]]
    assert wide.attention_mask.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]
    feats = torch.arange(1.0, 9.0).view(2, 4, 1)  # slot features 1..8
    assert wide.unpack(feats, 6)[..., 0].tolist() == [[0, 0, 1, 2, 0, 0], [0, 5, 0, 0, 0, 0]]
    empty = _PackedView.pack(ids, torch.zeros_like(mask))
    assert empty.attention_mask[:, 0].tolist() == [1, 1] and not empty.valid.any()


def test_compact_views_keep_the_features_of_each_view():
    overrides = tiny_model_overrides()
    encoder_cfg = load_config(CONFIG, overrides).model.text_encoder
    torch.manual_seed(0)
    full = MODELS.build(dict(encoder_cfg, compact_views=False)).eval()
    compact = MODELS.build(dict(encoder_cfg, compact_views=True)).eval()
    compact.load_state_dict(full.state_dict())
    ids = torch.randint(1000, 2000, (2, 10))
    attention = torch.tensor([[1] * 8 + [0] * 2, [1] * 10])
    obj = torch.zeros_like(attention)
    obj[0, 2:4] = 1
    obj[1, 5] = 1
    pos = torch.zeros_like(attention)
    pos[:, 4:7] = 1
    masks = [attention, obj, pos]
    with torch.no_grad():
        for batched in (True, False):
            full.batched_views = compact.batched_views = batched
            for mask, a, b in zip(masks, full(ids, masks), compact(ids, masks)):
                inside = mask.bool()[..., None].expand_as(a)
                torch.testing.assert_close(b[inside], a[inside], atol=1e-5, rtol=1e-5)
                assert (b[~inside] == 0).all()


# ------------------------------------------- each switch: same logits and grads
def _pair(switch: str):
    """The straightforward tiny model and a copy with only ``switch`` on.

    The text encoder gets large random weights, so that the logits depend
    clearly on every word feature (BERT's small init barely moves them).
    """
    models = []
    for enabled in ((), (switch,)):
        cfg = load_config(CONFIG, tiny_model_overrides())
        bench.set_speedups(cfg, enabled)
        torch.manual_seed(0)
        models.append(MODELS.build(cfg.model))
    models[0].init_weights()
    for param in models[0].text_encoder.parameters():
        torch.nn.init.normal_(param, std=0.5)
    models[1].load_state_dict(models[0].state_dict())
    return models


def _text(batch=2, length=12):
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(1000, 2000, (batch, length), generator=gen)
    attention = torch.ones(batch, length, dtype=torch.long)
    attention[0, 9:] = 0
    obj = torch.zeros_like(attention)
    obj[:, 2:4] = 1
    pos = torch.zeros_like(attention)
    pos[0, 5:8] = 1
    pos[1, 4:11] = 1
    return dict(input_ids=ids, attention_mask=attention, object_mask=obj, position_mask=pos)


@pytest.mark.parametrize('switch', MODEL_SWITCHES)
def test_each_switch_gives_the_straightforward_logits(switch):
    """Logits within 1e-5; also the word features of each view and the maps."""
    plain, fast = _pair(switch)
    img = torch.randn(2, 3, 72, 88)  # padding in the patch embedding and the windows
    text = _text()
    outputs = []
    with torch.no_grad():
        for model in (plain.eval(), fast.eval()):
            words = model.encode_text(text)
            views = [words.context * words.context_mask[:, None],
                     words.object * words.object_mask[:, None],
                     words.position * words.position_mask[:, None]]
            maps = model.extract_feat(img, words)
            outputs.append((model.forward_tensors(img, **text), views, maps))
    (expected, *_), (logits, *_) = outputs
    assert logits.shape == expected.shape
    assert (logits - expected).abs().max().item() <= 1e-5
    for got, want in zip(outputs[1][1] + outputs[1][2], outputs[0][1] + outputs[0][2]):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_all_switches_give_the_straightforward_gradients():
    extra = {'model.backbone.drop_path_rate': 0.0,
             'model.text_encoder.bert_config': dict(
                 tiny_model_overrides()['model.text_encoder.bert_config'],
                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)}
    models = []
    for enabled in ((), MODEL_SWITCHES):
        cfg = load_config(CONFIG, {**tiny_model_overrides(), **extra})
        bench.set_speedups(cfg, enabled)
        torch.manual_seed(0)
        models.append(MODELS.build(cfg.model).train())
    models[0].init_weights()
    models[1].load_state_dict(models[0].state_dict())
    data = bench.synthetic_batch(2, (64, 64), 12, vocab_size=30522, seed=2)
    grads = []
    for model in models:
        batch = model.data_preprocessor(data, True)
        losses = model(**batch, mode='loss')
        sum(losses.values()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-3, msg=name)


def test_activation_checkpointing_works_with_fiam():
    """with_cp recomputes the Swin blocks in backward: same loss and gradients."""
    overrides = {**tiny_model_overrides(), 'model.backbone.drop_path_rate': 0.0}
    models = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = build_model(CONFIG, {**overrides, 'model.backbone.with_cp': with_cp})
        models.append(model.eval())  # eval: no dropout, BN statistics frozen
    models[0].init_weights()
    models[1].load_state_dict(models[0].state_dict())
    img = torch.randn(2, 3, 64, 64)
    results = []
    for model in models:
        logits = model.forward_tensors(img, **_text())
        logits.square().mean().backward()
        results.append((logits, {n: p.grad for n, p in model.backbone.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, msg=name)


# ------------------------------------------------------ mixed precision on CPU
def test_autocast_optim_wrapper_runs_the_forward_in_bfloat16():
    model = torch.nn.Linear(4, 3)
    wrapper = build_optim_wrapper(model, dict(type='AutocastOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, AutocastOptimWrapper) and wrapper.cast_dtype == torch.bfloat16
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().sum())
    assert model.weight.dtype == torch.float32 and not torch.equal(model.weight, before)
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        OPTIM_WRAPPERS.build(dict(type='AutocastOptimWrapper', dtype='float16',
                                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))


def test_use_mixed_precision_picks_the_wrapper_per_device():
    cfg = load_config(CONFIG)
    assert bench.use_mixed_precision(cfg, 'cpu') == 'bfloat16'
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    cfg = load_config(CONFIG)
    assert bench.use_mixed_precision(cfg, 'cuda') == 'float16'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
