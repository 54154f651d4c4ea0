"""The built-in demo: train and test a tiny FIANet on synthetic data (``make demo``).

Steps of :func:`run_synthetic_demo`: generate the synthetic referring data set
in the RRSIS-D release layout (if missing; :mod:`fianet_mmseg.datasets.synthetic`),
convert it with the real RRSIS-D converter, train the config
(``configs/fianet_tiny_synthetic.py``), test it on the synthetic test split, run
the grounding control (the same test with expressions shuffled among the
samples), write a few prediction overlays, and print the metrics. The last line
reads ``demo: oIoU=<x> shuffled_oIoU=<y>`` (percent). After its first training
iterations it prints the measured time per step and the projected run time
(:class:`RunTimeEstimate`; ``estimate=True``: only that, then stop). Command
line: ``tools/run_demo.py``.
"""
from __future__ import annotations

import copy
import json
import os
import os.path as osp
import time
from typing import Dict, Optional

import mmcv
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from ..datasets import RefSegDataset
from ..datasets.converters import convert_rrsisd
from ..datasets.synthetic import META_FILE as SYNTHETIC_META_FILE
from ..datasets.synthetic import generate_synthetic_rrsisd
from ..utils.cpu_process import tune_cpu_process
from ..utils.image_io import read_image
from ..visualization import render_comparison
from .inference import inference_model, init_model

REPORTED = ('P@0.5', 'P@0.7', 'P@0.9', 'oIoU', 'mIoU')
#: Written into the converted data root: the generator options it came from.
DEMO_STAMP = 'demo_synthetic_options.json'
#: The run time the demo is sized for (README "Quick start"); a machine that would
#: take longer is told so after the first training iterations.
BUDGET_S = 15 * 60
#: Time of one test sample relative to one training sample: the demo's two test
#: runs (building their runners included) took about as long per sample as
#: training did (measured in tools/run_demo.py runs).
EVAL_COST = 1.0


class EstimateDoneError(Exception):
    """Raised by :class:`RunTimeEstimate` with ``stop=True`` once it has printed."""


class RunTimeEstimate(Hook):
    """Measures training iterations ``skip + 1 .. skip + measure`` and prints the ETA.

    The projection: time so far + the remaining iterations at the measured
    rate + the test passes (``eval_samples`` at :data:`EVAL_COST` of a training
    sample each). Beyond ``budget_s`` it says how slow the machine is and what
    ``--epochs`` would fit.
    """

    priority = 'VERY_LOW'

    def __init__(self, start: float, eval_samples: int, skip: int = 5, measure: int = 20,
                 budget_s: float = BUDGET_S, stop: bool = False) -> None:
        self.start, self.eval_samples = start, eval_samples
        self.skip, self.measure, self.budget_s, self.stop = skip, measure, budget_s, stop
        self._mark: Optional[float] = None
        self.estimate: Optional[dict] = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1
        if done == self.skip:
            self._mark = time.perf_counter()
        if done != self.skip + self.measure or self._mark is None:
            return
        now = time.perf_counter()
        step_s = (now - self._mark) / self.measure
        batch = runner.train_dataloader.batch_size
        total_iters, epochs = runner.max_iters, runner.max_epochs
        eval_s = self.eval_samples * EVAL_COST * step_s / batch
        total_s = (time.time() - self.start) + (total_iters - done) * step_s + eval_s
        self.estimate = dict(step_s=step_s, total_s=total_s, iters=total_iters)
        eta = time.strftime('%H:%M', time.localtime(time.time() + total_s
                                                    - (time.time() - self.start)))
        lines = [f'demo: {step_s:.2f} s per training step (iterations {self.skip + 1}-{done}, '
                 f'batch {batch}): {total_iters} steps, about {total_s / 60:.1f} min in all '
                 f'(done about {eta})']
        if total_s > self.budget_s:
            per_epoch_s = total_iters / epochs * step_s
            fit = int((self.budget_s - (total_s - total_iters * step_s)) // per_epoch_s)
            lines.append(f'demo: this machine is slower than the demo is sized for '
                         f'({self.budget_s / 60:.0f} min on 2 CPU cores): expect '
                         f'{total_s / 60:.0f} min. `python tools/run_demo.py --epochs '
                         f'{max(1, fit)}` finishes sooner with a weaker model.')
        print('\n'.join(lines), flush=True)
        if self.stop:
            raise EstimateDoneError()


def prepare_data(options: dict, raw_root: str, data_root: str) -> None:
    """Generate and convert the synthetic data set unless it is there as ``options`` say.

    ``options`` (the config's ``synthetic_data``) are
    :func:`generate_synthetic_rrsisd` arguments. A data set the demo generated
    earlier with other options is regenerated (the generator refuses to
    replace anything that it did not write); ``data_root`` records which
    options its conversion came from.
    """
    meta = _read_json(osp.join(raw_root, SYNTHETIC_META_FILE))
    generate = meta is None or any(meta.get(k) != v for k, v in options.items())
    if generate:
        print(f'demo: generating the synthetic data set in {raw_root} ({options})')
        generate_synthetic_rrsisd(raw_root, overwrite=meta is not None, **options)
    stamp = osp.join(data_root, DEMO_STAMP)
    if not generate and _read_json(stamp) == options:
        print(f'demo: using the converted synthetic data in {data_root}')
        return
    print(f'demo: converting {raw_root} with the RRSIS-D converter into {data_root}')
    summary = convert_rrsisd(raw_root, data_root, overwrite=True)
    print(summary.format())
    with open(stamp, 'w') as f:
        json.dump(options, f)


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _count_lines(path: str) -> int:
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def test_config(cfg: Config, checkpoint: str, work_dir: str, shuffle: bool,
                samples_file: Optional[str] = None) -> Config:
    """The test run of ``checkpoint``; ``samples_file``: where per-sample IoUs go."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.test_dataloader.dataset.shuffle_expressions = shuffle
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
        else [cfg.test_evaluator]
    for evaluator in evaluators:
        if samples_file and str(evaluator.get('type')).endswith('RefSegMetric'):
            evaluator['output_file'] = samples_file
    return cfg


#: Expression types of the synthetic data, by the attributes an expression names
#: besides the category (the first that applies).
EXPRESSION_TYPES = (('position', ('horizontal', 'vertical')), ('colour', ('colour',)),
                    ('size', ('size',)), ('category only', ()))


def scores_by_expression_type(samples_file: str, raw_root: str) -> Dict[str, dict]:
    """Count, P@0.5 and mean IoU (percent) of the test samples per expression type.

    ``samples_file``: RefSegMetric's per-sample lines; the attributes each
    expression names come from the generator's meta file in ``raw_root``.
    """
    meta = _read_json(osp.join(raw_root, SYNTHETIC_META_FILE)) or {}
    named = {obj['ref_id']: obj['named'] for obj in meta.get('objects', [])}
    groups: Dict[str, list] = {name: [] for name, _ in EXPRESSION_TYPES}
    with open(samples_file) as f:
        for line in f:
            sample = json.loads(line)
            attributes = named.get(sample['ref_id'])
            if attributes is None:
                continue
            kind = next(name for name, keys in EXPRESSION_TYPES
                        if not keys or any(key in attributes for key in keys))
            groups[kind].append(sample['IoU'])
    return {kind: dict(count=len(ious), p50=100.0 * sum(i >= 0.5 for i in ious) / len(ious),
                       miou=100.0 * sum(ious) / len(ious))
            for kind, ious in groups.items() if ious}


def run_synthetic_demo(config: str = 'configs/fianet_tiny_synthetic.py',
                       work_dir: str = 'work_dirs/demo', raw_root: str = 'data/synthetic_raw',
                       data_root: str = 'data/synthetic', epochs: Optional[int] = None,
                       overlays: int = 6, estimate: bool = False) -> Optional[dict]:
    """Run the demo (see the module); returns the test metrics (None with ``estimate``).

    Args:
        config: The demo's config; its ``synthetic_data`` are the generator's options.
        work_dir: Checkpoints, logs, test outputs and overlays.
        raw_root: Where the synthetic release-layout data is generated.
        data_root: Where its conversion (annotations and masks) goes.
        epochs: Override the number of training epochs.
        overlays: Prediction | ground-truth overlays to write.
        estimate: Measure the first training iterations, print the projected
            run time and stop.
    """
    start = time.time()
    cfg = Config.fromfile(config)
    prepare_data(dict(cfg.get('synthetic_data', {})), raw_root, data_root)
    cfg.work_dir = work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader):
            cfg[loader].dataset.data_root = data_root
    if epochs:
        cfg.train_cfg.max_epochs = epochs
        cfg.train_cfg.val_interval = epochs
        cfg.default_hooks.checkpoint.interval = epochs
        for scheduler in cfg.param_scheduler:
            if scheduler.get('by_epoch', True):
                scheduler['end'] = epochs

    cpu_settings = tune_cpu_process()
    if cpu_settings:
        print(f'demo: CPU process settings: {cpu_settings}')
    runner = Runner.from_cfg(cfg)
    eval_samples = 2 * _count_lines(osp.join(data_root, 'test.jsonl'))
    if cfg.get('val_dataloader') and cfg.train_cfg.get('val_interval', 1) <= \
            cfg.train_cfg.max_epochs:
        eval_samples += _count_lines(osp.join(data_root, 'val.jsonl'))
    runner.register_hook(RunTimeEstimate(start, eval_samples, stop=estimate))
    try:
        runner.train()
    except EstimateDoneError:
        return None
    checkpoint = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    trained = time.time()

    samples_file = osp.join(work_dir, 'test', 'samples.jsonl')
    metrics = Runner.from_cfg(test_config(cfg, checkpoint, osp.join(work_dir, 'test'),
                                          False, samples_file)).test()
    shuffled = Runner.from_cfg(
        test_config(cfg, checkpoint, osp.join(work_dir, 'test_shuffled'), True)).test()
    overlay_dir = write_overlays(cfg, checkpoint, data_root, work_dir, overlays)

    total = round(time.time() - start)
    print(f'\ndemo: synthetic test split, {round(trained - start)} s training, {total} s in all')
    print('  {:<22}'.format('') + ''.join(f'{k:>8}' for k in REPORTED))
    for name, values in (('expressions', metrics), ('shuffled expressions', shuffled)):
        print(f'  {name:<22}' + ''.join(f'{values[k]:8.2f}' for k in REPORTED))
    print('  by expression type (test split):  count   P@0.5   mIoU')
    for kind, row in scores_by_expression_type(samples_file, raw_root).items():
        print(f"    {kind:<30}{row['count']:6d}{row['p50']:8.2f}{row['miou']:7.2f}")
    print(f'  checkpoint: {checkpoint}')
    print(f'  overlays (prediction | ground truth): {overlay_dir}')
    print(f"demo: oIoU={metrics['oIoU']:.2f} shuffled_oIoU={shuffled['oIoU']:.2f}")
    return dict(metrics)


def write_overlays(cfg: Config, checkpoint: str, data_root: str, work_dir: str,
                   count: int) -> str:
    """Prediction | ground-truth overlays for the first test expressions."""
    test_set = RefSegDataset(ann_file=osp.join(data_root, 'test.jsonl'))
    records = [test_set.get_data_info(i) for i in range(min(count, len(test_set)))]
    model = init_model(cfg, checkpoint, device='cpu')
    results = inference_model(model, [r['img_path'] for r in records],
                              [r['expression'] for r in records])
    out_dir = osp.join(work_dir, 'overlays')
    os.makedirs(out_dir, exist_ok=True)
    for index, (record, result) in enumerate(zip(records, results)):
        image = read_image(record['img_path']).image  # RGB, as the model read it
        gt = mmcv.imread(record['seg_map_path'], flag='unchanged')
        canvas = render_comparison(
            image, result.pred_sem_seg.data[0].cpu().numpy(), gt,
            record['expression'], result.object_phrase, result.spatial_phrases)
        mmcv.imwrite(mmcv.rgb2bgr(canvas), osp.join(out_dir, f'{index:02d}.png'))
    return out_dir
