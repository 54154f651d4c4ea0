"""Benchmark / profiler tools, and the speed-up switches: same numbers on and off."""
from __future__ import annotations

import json
import mmap
import resource
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    as_cli_options,
    build_model,
    demo_text_encoder,
    load_config,
    load_script,
    tiny_model_overrides,
)
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS, OPTIM_WRAPPERS
from reference_fianet import build_reference

from fianet_mmseg.benchmarking import flops, inputs, profiling, runs, settings, timing
from fianet_mmseg.engine import AutocastOptimWrapper
from fianet_mmseg.models.text_encoders.bert_text_encoder import _FeatureCache, _PackedWords
from fianet_mmseg.utils.precision import bf16_support
from fianet_mmseg.utils.run_config import use_mixed_precision

CONFIG = 'fianet_swin-b_rrsisd.py'
TOOLS = REPO / 'tools' / 'analysis_tools'
MODEL_SWITCHES = [name for name, keys in settings.SPEEDUPS.items() if keys[0].startswith('model.')]

#: ``--cfg-options`` of the tests' tiny model.
TINY_OPTIONS = as_cli_options(tiny_model_overrides())


def load_tool(name: str):
    return load_script(f'tools/analysis_tools/{name}.py')


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{')]


class FakeMachine:
    """A scripted wall clock and ``getrusage``: time passes only in :meth:`spend`.

    :meth:`install` puts it in place of the ``time`` and ``resource`` modules that a
    benchmarking module reads, so that a timed step lasts exactly what the test says.
    Amounts are binary fractions: sums and differences of them are exact in float.
    """

    def __init__(self) -> None:
        self.wall, self.user, self.sys, self.faults = 100.0, 10.0, 1.0, 1000

    def spend(self, wall: float, user: float, sys: float, faults: int) -> None:
        self.wall += wall
        self.user += user
        self.sys += sys
        self.faults += faults

    def getrusage(self, who):
        return SimpleNamespace(ru_utime=self.user, ru_stime=self.sys, ru_minflt=self.faults,
                               ru_maxrss=resource.getrusage(who).ru_maxrss)

    def install(self, monkeypatch, module) -> None:
        monkeypatch.setattr(module, 'time', SimpleNamespace(perf_counter=lambda: self.wall))
        monkeypatch.setattr(module, 'resource', SimpleNamespace(
            getrusage=self.getrusage, RUSAGE_SELF=resource.RUSAGE_SELF))


#: Parameters of the frozen embeddings of the TINY_OPTIONS BERT: words, positions,
#: token types and the embedding LayerNorm (weight and bias), each 32 wide.
TINY_FROZEN_PARAMETERS = (30522 + 64 + 2 + 2) * 32


# ----------------------------------------------------------------- the tools
@pytest.mark.slow
def test_benchmark_prints_one_json_line(capsys, monkeypatch):
    """A real training step of the tiny model, timed on a scripted clock.

    The warm-up step costs 8 s and must not count; the two timed steps cost 0.5 s and
    0.25 s of wall time, 0.75 s and 0.375 s of CPU time (user + system); the step the
    FLOP counter runs afterwards (4 s) must not count either.
    """
    tool = load_tool('benchmark')
    machine = FakeMachine()
    machine.install(monkeypatch, timing)
    costs = iter([(8.0, 8.0, 8.0, 800), (0.5, 0.5, 0.25, 64), (0.25, 0.25, 0.125, 16),
                  (4.0, 4.0, 4.0, 400)])
    real_make_step = runs.make_step

    def make_step(*args, **kwargs):
        step = real_make_step(*args, **kwargs)

        def timed_step():
            step()
            machine.spend(*next(costs))

        return timed_step

    monkeypatch.setattr(runs, 'make_step', make_step)
    tool.main([str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '2', '--size',
               '64', '64', '--iters', '2', '--warmup', '1', '--device', 'cpu',
               '--cfg-options', *TINY_OPTIONS])
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    record = json.loads(out)
    assert next(costs, None) is None  # one warm-up, two timed and one counted step ran
    assert record['config'] == CONFIG and record['mode'] == 'train'
    assert record['batch'] == 2 and record['size'] == [64, 64] and record['length'] == 22
    assert record['text'] == 'expressions'  # the offline uncased vocabulary is installed
    assert record['step_s'] == dict(median=0.375, min=0.25, max=0.5, p25=0.3125, p75=0.4375,
                                    all=[0.5, 0.25])
    assert record['cpu_s']['all'] == [0.75, 0.375]
    assert (record['sys_s'], record['minor_faults']) == (0.1875, 40)  # medians
    assert record['samples_per_s'] == round(2 / 0.375, 3)  # batch / median step
    # FLOPs / median step, and its share of the measured peak (from rounded fields: approx)
    assert record['gflop'] > 0
    assert record['gflop_per_s'] == pytest.approx(record['gflop'] / 0.375, abs=0.1)
    assert record['fraction_of_peak'] == pytest.approx(
        record['gflop_per_s'] / record['matmul_peak']['gflop_per_s'], abs=2e-3)
    assert record['memory']['kind'] == 'cpu_peak_rss'
    # only the text encoder's embeddings are frozen (both BERT layers train)
    assert record['params']['total'] - record['params']['trainable'] == TINY_FROZEN_PARAMETERS
    assert record['speedups'] == dict(text_feature_cache=True,
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
    # the summary's ratio is the one of the two printed medians, baseline over path
    medians = [r['step_s']['median'] for r in records[:2]]
    assert summary['speedup_vs_straightforward']['fast'] == round(medians[0] / medians[1], 3)


def _scripted_paths(machine: FakeMachine, costs: dict, calls: list):
    """A ``build_path`` whose steps only spend ``costs[path]`` on ``machine``."""

    def build_path(args):
        path = args.path

        def step():
            calls.append(path)
            machine.spend(*costs[path])

        cfg = Config(dict(model=dict(backbone=dict(with_cp=False))))
        return (torch.nn.Module(), None, cfg, dict(amp=None), step,
                dict(size=[32, 32], length=6, text='random'))

    return build_path


def test_interleaved_rounds_rotate_and_time_each_path_on_its_own(capsys, monkeypatch):
    """Known per-step costs: 0.5 s wall / 0.75 s CPU (slow path), 0.125 s / 0.3125 s (fast)."""
    tool = load_tool('benchmark')
    machine, calls = FakeMachine(), []
    machine.install(monkeypatch, timing)
    costs = {'straightforward': (0.5, 0.5, 0.25, 40), 'fast': (0.125, 0.25, 0.0625, 8)}
    monkeypatch.setattr(runs, 'build_path', _scripted_paths(machine, costs, calls))
    argv = ['cfg.py', '--iters', '3', '--warmup', '1', '--device', 'cpu', '--compare',
            'straightforward', 'fast', '--interleave']
    tool.main(argv)
    slow, fast, summary = json_lines(capsys.readouterr().out)
    # warm-up path by path, then rounds whose order rotates, then one step each counted by
    # the FLOP counter
    assert calls == ['straightforward', 'fast',
                     'straightforward', 'fast', 'fast', 'straightforward', 'straightforward',
                     'fast', 'straightforward', 'fast']
    assert slow['step_s']['all'] == [0.5] * 3 and fast['step_s']['all'] == [0.125] * 3
    assert slow['cpu_s']['all'] == [0.75] * 3 and fast['cpu_s']['all'] == [0.3125] * 3
    assert (slow['sys_s'], slow['minor_faults']) == (0.25, 40)
    assert (fast['sys_s'], fast['minor_faults']) == (0.0625, 8)
    assert (slow['samples_per_s'], fast['samples_per_s']) == (4.0, 16.0)  # batch 2
    summary = summary['summary']
    assert summary['step_s_median'] == {'straightforward': 0.5, 'fast': 0.125}
    assert summary['speedup_vs_straightforward']['fast'] == 4.0
    assert summary['paired_step_s_speedup_vs_straightforward']['fast']['median'] == 4.0
    assert summary['paired_cpu_s_speedup_vs_straightforward']['fast'] == dict(
        median=2.4, min=2.4, max=2.4, p25=2.4, p75=2.4)
    assert 'speedup_vs_baseline' not in summary


def test_summary_line_divides_the_baseline_by_each_path():
    records = {'config': dict(step_s=dict(median=0.5), cpu_s=dict(median=1.5),
                              memory=dict(peak_mb=300.0)),
               'baseline': dict(step_s=dict(median=2.0), cpu_s=dict(median=3.0),
                                 memory=None)}
    rounds = dict(step_s={'config': [0.5, 1.0], 'baseline': [2.0, 3.0]})
    summary = runs.summary_line(records, rounds)['summary']
    assert summary['speedup_vs_baseline']['config'] == 4.0
    assert summary['paired_step_s_speedup_vs_baseline']['config'] == dict(
        median=3.5, min=3.0, max=4.0, p25=3.25, p75=3.75)
    assert summary['cpu_s_median'] == {'config': 1.5, 'baseline': 3.0}
    assert summary['peak_mb'] == {'config': 300.0, 'baseline': None}
    assert 'speedup_vs_straightforward' not in summary  # no such path was run


def test_time_steps_times_only_the_steps_after_the_warmup(monkeypatch):
    machine, usage = FakeMachine(), []
    machine.install(monkeypatch, timing)
    costs = iter([(4.0, 4.0, 4.0, 4), (2.0, 2.0, 2.0, 2),  # warm-up
                  (0.5, 0.75, 0.25, 10), (1.5, 2.5, 0.5, 30)])
    times = timing.time_steps(lambda: machine.spend(*next(costs)), iters=2, warmup=2,
                             usage=usage)
    assert times == [0.5, 1.5]
    assert usage == [dict(user_s=0.75, sys_s=0.25, minor_faults=10),
                     dict(user_s=2.5, sys_s=0.5, minor_faults=30)]
    assert timing.cpu_seconds(usage) == [1.0, 3.0]
    assert timing.usage_summary(usage) == dict(sys_s=0.375, minor_faults=20)


def test_peak_memory_sees_a_planted_allocation():
    """64 MiB touched after ``reset`` raise the peak by 64 MiB; a new ``reset`` forgets them."""
    memory = timing.PeakMemory('cpu')
    memory.reset()
    before = memory.current_mb()
    # 64 MiB of fresh anonymous pages, every one written: not memory the allocator kept
    # from earlier tests (a torch tensor may reuse such memory and not raise the RSS)
    block = mmap.mmap(-1, 64 * 2**20)
    np.frombuffer(block, dtype=np.uint8)[:] = 1
    peak = memory.peak()
    assert peak['kind'] == 'cpu_peak_rss'
    assert peak['peak_mb'] >= before + 60
    block.close()
    memory.reset()
    if memory.scope == 'since_reset':  # Linux lets this process reset its peak
        assert memory.peak()['peak_mb'] < peak['peak_mb'] - 32


def test_benchmark_argument_handling():
    tool = load_tool('benchmark')
    argv = ['cfg.py', '--compare', 'fast', 'straightforward', '--iters', '3', '--interleave',
            '--path', 'fast']
    assert runs.child_argv(argv, 'fused_adamw') == ['cfg.py', '--iters', '3', '--path',
                                                    'fused_adamw']
    with pytest.raises(SystemExit):
        tool.parse_args(['cfg.py', '--iters', '0'])


def test_benchmark_text_mode_times_decoupling_and_tokenisation(capsys, monkeypatch):
    """On a scripted clock: every decoupling costs 3 us, every tokenisation 5 us."""
    demo_text_encoder()
    tool = load_tool('benchmark')
    clock = {'ns': 0, 'calls': 0}

    def perf_counter_ns():  # start, middle, end of each timed expression
        clock['calls'] += 1
        clock['ns'] += (0, 3000, 5000)[(clock['calls'] - 1) % 3]
        return clock['ns']

    monkeypatch.setattr(runs, 'time', SimpleNamespace(perf_counter_ns=perf_counter_ns))
    tool.main(['--mode', 'text', '--iters', '4', '--warmup', '1', '--length', '12'])
    record = json.loads(capsys.readouterr().out)
    assert clock['calls'] == 3 * 4  # the warm-up is not timed
    assert (record['mode'], record['n'], record['max_length']) == ('text', 4, 12)
    assert record['decouple_us'] == dict(median=3.0, min=3.0, max=3.0, p25=3.0, p75=3.0)
    assert record['tokenize_us']['median'] == 5.0 and record['total_us']['max'] == 8.0
    with pytest.raises(SystemExit):  # the other modes need a config
        tool.parse_args(['--mode', 'train'])


@pytest.mark.slow
def test_profile_step_attributes_every_part(capsys):
    tool = load_tool('profile_step')
    tool.main([str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '1', '--size',
               '64', '64', '--warmup', '0', '--top', '0', '--cfg-options', *TINY_OPTIONS])
    record = json_lines(capsys.readouterr().out)[-1]
    parts = {row['part']: row for row in record['parts']}
    for part in ('text_encoder', 'swin_blocks', 'swin_other', 'fiam', 'tmem', 'decoder'):
        assert parts[part]['forward_ms'] > 0 and parts[part]['backward_ms'] > 0, part
    assert parts['optimizer']['total_ms'] > 0 and parts['loss']['total_ms'] > 0
    assert parts['grad_accumulation']['backward_ms'] > 0
    # self times: each moment of the step counted once, so the parts fit in the step's wall
    # time (+ 1 ms for rounding the rows to 0.1 ms and the step to 0.1 ms); measured 92% -
    # 99.7% of it, and 2.3 times it when inclusive times were summed instead
    parts_ms = sum(row['total_ms'] for row in record['parts'])
    assert parts_ms <= 1000 * record['profiled_step_s'] + 1


def test_part_scopes_split_forward_and_backward_by_part():
    first, second = torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)
    x = torch.randn(4, 8)
    with profiling.part_scopes([('alpha', first, 'forward'), ('beta', second, 'forward')]):
        assert 'forward' in vars(first)
        with torch.profiler.profile() as prof:
            second(first(x).relu()).sum().backward()
    assert 'forward' not in vars(first)  # wrappers removed
    totals = profiling.attribute_events(prof.events())
    for part in ('alpha', 'beta'):
        assert totals[part]['forward'] > 0 and totals[part]['backward'] > 0
    assert totals['grad_accumulation']['backward'] > 0  # the four .grad tensors
    # every event's self time lands in exactly one part and phase
    attributed = sum(sum(phases.values()) for phases in totals.values())
    assert attributed == pytest.approx(sum(e.self_cpu_time_total for e in prof.events()) / 1000)


def _event(name, start, self_us, sequence_nr=-1, parent=None, thread=1, fwd_thread=None):
    """A stand-in for a ``torch.profiler`` event with what attribute_events reads."""
    return SimpleNamespace(name=name, time_range=SimpleNamespace(start=start),
                           self_cpu_time_total=self_us, sequence_nr=sequence_nr,
                           cpu_parent=parent, thread=thread, fwd_thread=fwd_thread)


def test_attribute_events_by_hand():
    """Planted self times (microseconds) go to known parts: 20 ms in all."""
    scope = profiling.SCOPE_PREFIX
    backward = profiling.BACKWARD_PREFIX
    gamma = _event(scope + 'gamma', 0, 0)
    alpha = _event(scope + 'alpha', 2, 1000)
    beta = _event(scope + 'beta', 6, 0)
    addmm_backward = _event(backward + 'AddmmBackward0', 20, 4000, 7, thread=2, fwd_thread=1)
    events = [
        gamma, _event('aten::view', 1, 1000, 7, gamma),  # node 7, then reused below
        alpha, _event('aten::addmm', 3, 3000, 7, alpha),  # the last op with node 7
        beta, _event('aten::mul', 7, 2000, 8, beta),
        _event('aten::sum', 9, 1000, 9),  # outside every part
        addmm_backward, _event('aten::mm', 21, 2000, -1, addmm_backward, thread=2),
        _event(backward + 'MulBackward0', 23, 2000, 8, thread=2, fwd_thread=1),
        _event(backward + 'SumBackward0', 24, 1000, 9, thread=2, fwd_thread=1),
        _event(backward + profiling.ACCUMULATE_GRAD, 25, 3000, 3, thread=2),
    ]
    totals = profiling.attribute_events(list(reversed(events)))  # order from start times
    assert totals == {
        'gamma': dict(forward=1.0, backward=0.0, other=0.0),
        'alpha': dict(forward=4.0, backward=6.0, other=0.0),
        'beta': dict(forward=2.0, backward=2.0, other=0.0),
        'other': dict(forward=0.0, backward=1.0, other=1.0),
        'grad_accumulation': dict(forward=0.0, backward=3.0, other=0.0),
    }
    rows = profiling.shares_table(totals)
    # report order: the known parts first, then the others by name
    assert [(r['part'], r['total_ms'], r['share']) for r in rows] == [
        ('grad_accumulation', 3.0, 0.15), ('other', 2.0, 0.1), ('alpha', 10.0, 0.5),
        ('beta', 4.0, 0.2), ('gamma', 1.0, 0.05)]
    table = profiling.format_table(rows, 'title').splitlines()
    assert table[0] == 'title' and table[-1].split() == ['total', '20.0']
    assert table[4].split() == ['alpha', '4.0', '6.0', '10.0', '50.0%']


def test_benchmark_times_the_reference_oracle_at_the_config_sizes(capsys):
    """The test oracle given as the baseline, loaded by path (the tool imports no test)."""
    tool = load_tool('benchmark')
    tool.main([str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '1', '--size',
               '64', '64', '--iters', '2', '--warmup', '0', '--device', 'cpu',
               '--compare', 'config', 'baseline', '--interleave', '--baseline',
               str(REPO / 'tests' / 'reference_fianet.py') + ':benchmark_step',
               '--cfg-options', *TINY_OPTIONS])
    records = json_lines(capsys.readouterr().out)
    assert [r.get('path') for r in records[:2]] == ['config', 'baseline']
    assert records[1]['speedups'] is None and len(records[1]['cpu_s']['all']) == 2
    summary = records[2]['summary']
    # the summary's ratio is the one of the two printed medians, baseline over config
    medians = [r['step_s']['median'] for r in records[:2]]
    assert summary['speedup_vs_baseline']['config'] == round(medians[1] / medians[0], 3)
    assert set(summary['paired_cpu_s_speedup_vs_baseline']) == {'config', 'baseline'}
    assert 'speedup_vs_straightforward' not in summary


def test_reference_oracle_has_the_parameters_of_the_project_model():
    """Same sizes: each part of the oracle holds as many weights as the project's.

    (The oracle also builds the last stage's object-position block, which the
    reference computes and never uses and the project leaves out.)
    """
    cfg = load_config(CONFIG, tiny_model_overrides())
    oracle = build_reference(cfg)
    model = runs.build_model(cfg)

    def size(module, prefix=''):
        return sum(p.numel() for n, p in module.named_parameters() if n.startswith(prefix))

    blocks = sum(size(layer, 'blocks.') for layer in oracle.backbone.layers)
    assert blocks == sum(size(stage, 'blocks.') for stage in model.backbone.stages) > 0
    assert size(oracle.backbone.tmem) == size(model.neck) > 0
    assert size(oracle.classifier) == size(model.decode_head) > 0
    assert size(oracle.text_encoder) == size(model.text_encoder) > 0
    # the text encoder trains as the config says: embeddings frozen, both layers train
    assert not any(p.requires_grad for p in oracle.text_encoder.embeddings.parameters())
    assert all(p.requires_grad for p in oracle.text_encoder.encoder.parameters())
    cfg.model.text_encoder.trainable_layers = []
    assert build_reference(cfg).text_frozen


def test_paired_ratios_by_hand():
    times = {'straightforward': [2.0, 4.0, 3.0], 'fast': [1.0, 4.0, 1.5]}
    ratios = timing.paired_ratios(times, 'straightforward')  # rounds: 2.0, 1.0, 2.0
    assert ratios['fast'] == dict(median=2.0, min=1.0, max=2.0, p25=1.5, p75=2.0)
    # the other baseline: rounds 0.5, 1.0, 0.5
    assert timing.paired_ratios(times, 'fast')['straightforward'] == dict(
        median=0.5, min=0.5, max=1.0, p25=0.5, p75=0.75)


def test_summarize_times_by_hand():
    stats = timing.summarize_times([3.0, 1.0, 2.0, 4.0])
    assert stats['median'] == 2.5 and stats['min'] == 1.0 and stats['max'] == 4.0
    assert stats['p25'] == 1.75 and stats['p75'] == 3.25  # inclusive quartiles
    assert stats['all'] == [3.0, 1.0, 2.0, 4.0]


def test_random_init_uses_bert_base_sizes_and_drops_pretrained():
    cfg = load_config(CONFIG)
    arch = settings.use_random_weights(cfg)
    assert cfg.model.text_encoder.name_or_path is None
    assert arch == cfg.model.text_encoder.bert_config
    assert (arch['vocab_size'], arch['hidden_size'], arch['num_hidden_layers'],
            arch['num_attention_heads'], arch['intermediate_size']) == (30522, 768, 12, 12,
                                                                       3072)
    # the reference's random initialisation stays, the Swin checkpoint goes
    assert [item['type'] for item in cfg.model.backbone.init_cfg] == ['TruncNormal', 'Constant']


def test_set_speedups_switches_every_key():
    cfg = load_config(CONFIG)
    settings.set_speedups(cfg, ['fused_adamw'])
    assert cfg.model.text_encoder.feature_cache_mb == 0
    assert cfg.optim_wrapper.optimizer.fused is True
    settings.set_speedups(cfg, ['text_feature_cache'])
    assert cfg.model.text_encoder.feature_cache_mb == settings.FEATURE_CACHE_MB
    assert cfg.optim_wrapper.optimizer.fused is False
    cfg.model.neck = None
    settings.set_speedups(cfg, settings.SPEEDUPS)  # no neck: nothing to skip, no error
    assert cfg.model.neck is None
    with pytest.raises(KeyError, match='unknown speed-up'):
        settings.set_speedups(cfg, ['warp_drive'])


def test_synthetic_batch_random_text_follows_the_tokenizer_layout():
    data = inputs.synthetic_batch(3, (32, 48), 12, vocab_size=500, seed=1)
    assert [tuple(img.shape) for img in data['inputs']] == [(3, 32, 48)] * 3
    for sample in data['data_samples']:
        ids, attention = sample.input_ids, sample.attention_mask
        words = int(attention.sum()) - 2
        assert ids[0] == inputs.CLS_ID and ids[words + 1] == inputs.SEP_ID
        assert (ids[words + 2:] == inputs.PAD_ID).all()
        # the phrases lie inside the expression's attention mask
        for mask in (sample.object_mask, sample.position_mask):
            assert mask.any() and not (mask.bool() & ~attention.bool()).any()
        assert sample.gt_sem_seg.data.shape == (1, 32, 48) and sample.gt_sem_seg.data.any()


# ------------------------------------------------ the text encoder's one path
def test_packed_words_by_hand():
    ids = torch.tensor([[101, 5, 6, 7, 102, 0], [101, 8, 9, 102, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0]])
    rows = _PackedWords.pack(ids, mask)
    assert rows.input_ids.tolist() == [[6, 7], [8, 0]]
    assert rows.position_ids.tolist() == [[2, 3], [1, 0]]
    assert rows.attention_mask.tolist() == [[1, 1], [1, 0]]
    assert rows.valid.tolist() == [[True, True], [True, False]]
    feats = torch.arange(1.0, 5.0).view(2, 2, 1)  # slot features 1..4
    assert rows.unpack(feats, 6)[..., 0].tolist() == [[0, 0, 1, 2, 0, 0], [0, 3, 0, 0, 0, 0]]
    # full width (tracing): the other positions follow the view's words, not attended
    full = _PackedWords.pack(ids, mask, full_width=True)
    assert full.position_ids.tolist() == [[2, 3, 0, 1, 4, 5], [1, 0, 2, 3, 4, 5]]
    assert full.input_ids.tolist() == [[6, 7, 0, 0, 0, 0], [8, 0, 0, 0, 0, 0]]
    assert full.attention_mask.tolist() == [[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    feats = torch.arange(1.0, 13.0).view(2, 6, 1)
    assert full.unpack(feats, 6)[..., 0].tolist() == [[0, 0, 1, 2, 0, 0], [0, 7, 0, 0, 0, 0]]
    empty = _PackedWords.pack(ids, torch.zeros_like(mask))
    assert empty.attention_mask.tolist() == [[1], [1]] and not empty.valid.any()


def test_text_encoder_gives_bert_features_of_each_view():
    """The one batched call over each view's words against BERT run once per view with
    the view as attention mask (the plain way): same features on the view's words, zero
    elsewhere (float64: rounding differences only)."""
    overrides = tiny_model_overrides()
    encoder_cfg = load_config(CONFIG, overrides).model.text_encoder
    torch.manual_seed(0)
    encoder = MODELS.build(encoder_cfg).double().eval()
    for param in encoder.parameters():  # large weights: every word and position matters
        torch.nn.init.normal_(param, std=0.5)
    assert not encoder.caching()  # the encoder trains: no cache
    ids = torch.randint(1000, 2000, (2, 10))
    attention = torch.tensor([[1] * 8 + [0] * 2, [1] * 10])
    obj = torch.zeros_like(attention)
    obj[0, 2:4] = 1
    obj[1, 5] = 1
    pos = torch.zeros_like(attention)
    pos[:, 4:7] = 1
    masks = [attention, obj, pos]
    with torch.no_grad():
        feats = encoder(ids, masks)
        plain = [encoder.bert(input_ids=ids, attention_mask=mask).last_hidden_state
                 for mask in masks]
    assert len(feats) == 3
    for mask, got, want in zip(masks, feats, plain):
        assert got.shape == want.shape == (2, 10, encoder.width)
        inside = mask.bool()[..., None].expand_as(want)
        torch.testing.assert_close(got[inside], want[inside], atol=1e-12, rtol=1e-10)
        assert (got[~inside] == 0).all()


# --------------------------- each model switch (the feature cache): same logits
# The two paths compute the same function in a different order of float
# operations. They are compared in float64: there a rounding difference is about
# eps64 = 2.2e-16 per operation, and after a few hundred operations with
# reductions of up to ~1e3 terms it stays far below 1e-10 of the compared
# values, on any CPU. In float32 the same difference (~1e-6 relative) can flip
# the max of the position branch's channel pooling or a ReLU at a near-tie,
# which moves the logits by a non-rounding amount: such a comparison would test
# the instruction set, not the switch.
FLOAT64_RTOL = 1e-10


def assert_close_to_norm(got: torch.Tensor, want: torch.Tensor, scale: float, what: str):
    """``|got - want| <= FLOAT64_RTOL * (|want| + scale)`` in the 2-norm."""
    error = (got - want).norm().item()
    bound = FLOAT64_RTOL * (want.norm().item() + scale)
    assert error <= bound, f'{what}: |difference| {error:.3g} > {bound:.3g}'


def _pair(switch: str):
    """The tiny model with every switch off and a copy with only ``switch`` on, in float64.

    The text encoder gets large random weights, so that the logits depend
    clearly on every word feature (BERT's small init barely moves them). For
    ``text_feature_cache`` it is frozen (the cache acts on frozen encoders only).
    """
    overrides = tiny_model_overrides()
    if switch == 'text_feature_cache':
        overrides['model.text_encoder.trainable_layers'] = []
    models = []
    for enabled in ((), (switch,)):
        cfg = load_config(CONFIG, overrides)
        settings.set_speedups(cfg, enabled)
        torch.manual_seed(0)
        models.append(MODELS.build(cfg.model))
    models[0].init_weights()
    for param in models[0].text_encoder.parameters():
        torch.nn.init.normal_(param, std=0.5)
    models[1].load_state_dict(models[0].state_dict())
    return [model.double() for model in models]


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


@pytest.mark.numerics
@pytest.mark.parametrize('switch', MODEL_SWITCHES)
def test_each_switch_gives_the_straightforward_logits(switch):
    """Same logits, word features of each view and maps (float64, see FLOAT64_RTOL)."""
    plain, fast = _pair(switch)
    img = torch.randn(2, 3, 72, 88, dtype=torch.float64)  # padded patch grid and windows
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
    assert fast.text_encoder.caching() == (switch == 'text_feature_cache')
    assert logits.shape == expected.shape and logits.dtype == torch.float64
    assert_close_to_norm(logits, expected, 0.0, 'logits')
    for index, (got, want) in enumerate(zip(outputs[1][1] + outputs[1][2],
                                            outputs[0][1] + outputs[0][2])):
        assert_close_to_norm(got, want, 0.0, f'view / map {index}')


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
    assert use_mixed_precision(cfg, 'cpu') == 'bfloat16'
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    cfg = load_config(CONFIG)
    assert use_mixed_precision(cfg, 'cuda') == 'float16'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


# ------------------------------------------------- cached frozen-encoder features
def _frozen_encoder(feature_cache_mb: float = 1.0, **kwargs):
    """A tiny BERT with random weights, frozen (eval mode, nothing trains), in float64."""
    torch.manual_seed(0)
    encoder = MODELS.build(dict(
        type='BertTextEncoder', name_or_path=None, trainable_layers=[],
        feature_cache_mb=feature_cache_mb,
        bert_config=dict(vocab_size=200, hidden_size=16, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=16), **kwargs))
    for param in encoder.parameters():  # large weights: every word and position matters
        torch.nn.init.normal_(param, std=0.5)
    return encoder.double().eval()


def _views():
    ids = torch.tensor([[101, 11, 12, 13, 14, 102, 0, 0],
                        [101, 21, 22, 23, 102, 0, 0, 0],
                        [101, 11, 12, 13, 14, 102, 0, 0]])
    attention = (ids != 0).long()
    obj = torch.zeros_like(ids)
    obj[0, 2:4] = obj[1, 1] = obj[2, 2:4] = 1
    pos = torch.zeros_like(ids)
    pos[0, 4] = pos[2, 4] = 1  # row 1: no position words (an all-zero view)
    return ids, [attention, obj, pos]


def test_feature_cache_returns_the_computed_features_and_encodes_each_view_once():
    cached, plain = _frozen_encoder(), _frozen_encoder(feature_cache_mb=0)
    assert cached.caching() and not plain.caching()
    ids, masks = _views()
    with torch.no_grad():
        expected = plain(ids, masks)  # compact views, no cache
        first = cached(ids, masks)
        stats = cached.feature_cache.stats()
        second = cached(ids, masks)
    # rows 0 and 2 are the same expression: 2 + 2 + 1 distinct (words, positions) views;
    # the all-zero position view of row 1 needs no encoding
    assert stats == dict(entries=5, bytes=(6 + 5 + 2 + 1 + 1) * 16 * 8, hits=0, misses=5)
    assert cached.feature_cache.stats()['hits'] == 5
    for got, again, want, mask in zip(first, second, expected, masks):
        assert got.shape == want.shape == (3, 8, 16) and got.dtype == torch.float64
        assert torch.equal(again, got)  # from the cache: the very same numbers
        # the same computation on differently padded batches: float64 rounding only
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
        assert (got[~mask.bool()] == 0).all()
    assert torch.isfinite(first[2]).all() and (first[2][1] == 0).all()  # all-zero view


def test_feature_cache_depends_on_words_and_positions():
    encoder = _frozen_encoder()
    ids, masks = _views()
    with torch.no_grad():
        base = encoder(ids, masks)[1][0]
        shifted = torch.roll(ids, 1, dims=1)  # same object words one position later
        moved = encoder(shifted, [torch.roll(m, 1, dims=1) for m in masks])[1][0]
    words = masks[1][0].bool()
    assert not torch.allclose(moved[torch.roll(words, 1)], base[words])  # other positions
    assert encoder.feature_cache.stats()['misses'] == 10


def test_feature_cache_only_while_the_encoder_cannot_change():
    encoder = _frozen_encoder()
    encoder.train()  # a frozen encoder stays in eval mode: still cached
    assert encoder.caching()
    encoder.bert.encoder.layer[0].output.dense.weight.requires_grad_(True)
    assert not encoder.caching()
    trainable = MODELS.build(dict(type='BertTextEncoder', name_or_path=None,
                                  trainable_layers=[0], bert_config=dict(
                                      vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=16)))
    assert not trainable.eval().caching()
    with pytest.raises(ValueError, match='feature_cache_mb'):
        _frozen_encoder(feature_cache_mb=-1)


def test_feature_cache_is_cleared_with_new_weights_or_dtype():
    encoder, other = _frozen_encoder(), _frozen_encoder()
    for param in other.parameters():
        torch.nn.init.normal_(param, std=0.5)
    ids, masks = _views()
    with torch.no_grad():
        encoder(ids, masks)
        assert len(encoder.feature_cache) == 5
        encoder.load_state_dict(other.state_dict())
        assert len(encoder.feature_cache) == 0
        torch.testing.assert_close(encoder(ids, masks)[0], other(ids, masks)[0])
        encoder.float()
        assert len(encoder.feature_cache) == 0 and encoder(ids, masks)[0].dtype == torch.float32


def test_feature_cache_is_bounded_least_recently_used_first():
    encoder = _frozen_encoder()
    ids, masks = _views()
    one_word = 16 * 8  # bytes of one float64 word feature (width 16)
    encoder.feature_cache.max_bytes = 5 * one_word
    with torch.no_grad():
        out = encoder(ids, masks)  # 10 words in 5 views: only the newest fit
        cache = encoder.feature_cache
        assert cache.bytes <= 5 * one_word and len(cache) < 5
        assert all(torch.isfinite(o).all() for o in out)
        newest = list(cache.entries)[-1]
        encoder(ids[:1, :], [m[:1] for m in masks])  # row 0 again: its views move to the end
        assert newest not in cache.entries or list(cache.entries)[-1] != newest
        assert cache.bytes <= 5 * one_word


def test_feature_cache_evicts_the_least_recently_used_entry():
    cache = _FeatureCache(max_bytes=3 * 8)  # three float64 values
    one = [torch.zeros(1, dtype=torch.float64)]
    for key in ('a', 'b', 'c'):
        cache.add([key], one)
    cache.get('a')  # 'b' is now the least recently used
    cache.add(['d'], one)
    assert list(cache.entries) == ['c', 'a', 'd'] and cache.bytes == 24
    assert cache.stats() == dict(entries=3, bytes=24, hits=1, misses=4)


def test_cached_features_feed_a_training_step():
    """Features cached under inference mode can be read by a later backward pass."""
    encoder = _frozen_encoder()
    ids, masks = _views()
    with torch.inference_mode():
        encoder(ids, masks)
    head = torch.nn.Linear(16, 1).double()
    feats = encoder(ids, masks)
    assert encoder.feature_cache.stats()['hits'] == 5
    head(feats[0]).sum().backward()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()


@pytest.mark.numerics
def test_all_zero_phrase_masks_give_finite_logits_cached_or_not():
    """A view without words (e.g. no category found) is safe with and without the cache.

    Its word features are zero either way (the encoder keeps one key attended in such a
    row, so BERT computes no NaN); the logits agree (float64, see FLOAT64_RTOL) and are
    finite.
    """
    models = []
    for cache_mb in (0.0, 1.0):
        cfg = load_config(CONFIG, {**tiny_model_overrides(),
                                   'model.text_encoder.trainable_layers': [],
                                   'model.text_encoder.feature_cache_mb': cache_mb})
        settings.set_speedups(cfg, ['text_feature_cache'] if cache_mb else [])
        torch.manual_seed(0)
        models.append(MODELS.build(cfg.model))
    models[0].init_weights()
    models[1].load_state_dict(models[0].state_dict())
    text = _text()
    text['object_mask'][0] = 0
    text['position_mask'][:] = 0
    img = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        plain, cached = (model.double().eval().forward_tensors(img, **text)
                         for model in models)
    assert models[1].text_encoder.caching() and not models[0].text_encoder.caching()
    assert torch.isfinite(plain).all() and torch.isfinite(cached).all()
    assert_close_to_norm(cached, plain, 0.0, 'logits')


# ------------------------------------------------- FLOPs, the matmul peak, precision paths
def test_count_flops_of_a_linear_layer_by_hand():
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(10, 64)
    assert flops.count_flops(lambda: layer(x)) == 2 * 10 * 64 * 32


def test_efficiency_by_hand():
    peak = dict(gflop_per_s=4.0)
    assert flops.efficiency(4_000_000_000, 2.0, peak) == dict(
        gflop=4.0, gflop_per_s=2.0, fraction_of_peak=0.5)
    assert flops.efficiency(None, 2.0, peak)['fraction_of_peak'] is None


def test_matmul_peak_is_the_best_of_its_products(monkeypatch):
    """Scripted clock: products of 1, 2, 4 and 0.5 s after a warm-up one."""
    durations = iter([9.0, 1.0, 2.0, 4.0, 0.5])
    clock = SimpleNamespace(now=0.0, started=False)

    def perf_counter():
        if clock.started:
            clock.now += next(durations)
        clock.started = not clock.started
        return clock.now

    monkeypatch.setattr(flops, 'time', SimpleNamespace(perf_counter=perf_counter))
    peak = flops.matmul_peak(size=8, repeats=4)
    work = 2 * 8 ** 3 / 1e9
    assert peak['gflop_per_s'] == round(work / 0.5, 1)
    assert peak['median_gflop_per_s'] == round(work / 1.0, 1)  # of 0.5, 1, 2, 4: upper middle


@pytest.mark.slow
def test_precision_paths_are_timed_with_the_float32_flops(capsys):
    tool = load_tool('benchmark')
    common = [str(REPO / 'configs' / CONFIG), '--random-init', '--batch', '1', '--size',
              '64', '64', '--device', 'cpu', '--mode', 'infer', '--cfg-options', *TINY_OPTIONS]
    tool.main([*common, '--iters', '1', '--warmup', '0', '--compare', 'config', 'bf16', 'int8',
               '--interleave'])
    config, bf16, int8, summary = json_lines(capsys.readouterr().out)
    native = bf16_support('cpu')[0]  # without: the bf16 path falls back to float32
    assert [r['precision'] for r in (config, bf16, int8)] == [
        'fp32', 'bf16' if native else 'fp32', 'int8']
    assert config['gflop'] > 0 and bf16['gflop'] == int8['gflop'] == config['gflop']
    assert config['fraction_of_peak'] == pytest.approx(
        config['gflop_per_s'] / config['matmul_peak']['gflop_per_s'], abs=2e-3)
    assert summary['summary']['speedup_vs_config']['config'] == 1.0
    tool.main([*common, '--agreement'])
    rows = json_lines(capsys.readouterr().out)
    assert [r['agreement'] for r in rows] == ['bf16', 'int8']
    for row in rows:
        if row['ran_as'] == 'fp32':
            assert row['max_abs_diff'] == 0 and not native
            continue
        assert 0 < row['max_abs_diff'] < row['max_abs_logit']
        assert row['mean_abs_diff'] <= row['max_abs_diff']
        assert 0.5 < row['pixel_agreement'] <= 1.0
    with pytest.raises(ValueError, match='int8 path is for --mode infer'):
        runs.build_path(settings.BenchmarkSettings(
            str(REPO / 'configs' / CONFIG), mode='train', path='int8', random_init=True))
