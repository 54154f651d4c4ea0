"""A benchmark run's settings and the config they give: switches, random weights, precision."""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

from mmengine.config import Config
from torch import nn

from ..utils.precision import PRECISIONS, REMOVED_PRECISIONS
from ..utils.run_config import use_mixed_precision

#: Speed-up switches: name -> the config keys it sets (True: on).
#: ``text_feature_cache`` is the frozen text encoder's feature cache (on: its
#: configured size or :data:`FEATURE_CACHE_MB`, off: 0 MiB; it only acts when
#: the encoder is frozen); ``fused_adamw`` is the optimizer's ``fused`` flag
#: (the project's schedules set it). README "Performance" lists each one's
#: measured training and inference ratio (and those of the former switches,
#: now the only path or removed).
SPEEDUPS: Dict[str, Tuple[str, ...]] = {
    'text_feature_cache': ('model.text_encoder.feature_cache_mb',),
    'fused_adamw': ('optim_wrapper.optimizer.fused',),
}

#: Size of the text feature cache when ``text_feature_cache`` is on (MiB).
FEATURE_CACHE_MB = 256.0
#: Optimizers whose torch class takes ``fused``.
FUSED_OPTIMIZERS = ('Adam', 'AdamW', 'SGD', 'Adagrad')
#: bert-base-uncased's architecture (its ``config.json``), for random weights.
BERT_BASE_UNCASED = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                         num_attention_heads=12, intermediate_size=3072,
                         max_position_embeddings=512, type_vocab_size=2)

#: Reduced-precision inference paths (``--mode infer`` only): the config's path at
#: that precision (:func:`fianet_mmseg.utils.precision.apply_precision`), and
#: ``int8`` (measured, not an option of ``init_model``:
#: :func:`~fianet_mmseg.utils.precision.quantize_linear_int8`).
REDUCED_PRECISIONS = (*(p for p in PRECISIONS if p != 'fp32'), *REMOVED_PRECISIONS)

#: Paths a run can time: the config as it is, every switch on, every switch off,
#: one switch on alone, the model of ``--baseline``, or a reduced precision.
CONFIG, FAST, STRAIGHTFORWARD, BASELINE = 'config', 'fast', 'straightforward', 'baseline'
#: The config's model with its tensor forward in onnxruntime (``--onnx FILE``, ``--mode infer``).
ONNXRUNTIME = 'onnxruntime'
PATHS = (CONFIG, FAST, STRAIGHTFORWARD, *SPEEDUPS, BASELINE, *REDUCED_PRECISIONS, ONNXRUNTIME)


@dataclass
class BenchmarkSettings:
    """What to time (the options of ``tools/analysis_tools/benchmark.py``).

    Attributes:
        config: Config file.
        mode: ``'train'`` (``model.train_step``) or ``'infer'`` (``test_step``).
        batch: Samples per step.
        size: ``(H, W)`` of the images; None: the config's ``img_scale``, else 480x480.
        length: Text length L; None: the config's ``max_length``, else 22.
        iters, warmup: Timed and untimed steps.
        device: ``'cpu'`` or ``'cuda[:N]'``.
        amp, amp_dtype: Mixed precision (bfloat16 autocast on CPU, AMP on GPU).
        with_cp: Activation checkpointing of the Swin blocks.
        random_init: Random weights everywhere, no download.
        path: One of :data:`PATHS`.
        text: ``'expressions'`` (built-in, tokenised) or ``'random'`` word pieces.
        threads: torch intra-op threads (None: torch's default).
        seed: Seed of the weights and the batch.
        cfg_options: Config overrides (dotted keys).
        baseline: ``FILE.py:FACTORY`` of the ``baseline`` path (see
            :func:`~fianet_mmseg.benchmarking.runs.load_baseline`).
        onnx: The ONNX file of the ``onnxruntime`` path (an export of
            ``tools/deployment/export_onnx.py`` at the run's size and text length).
    """

    config: str
    mode: str = 'train'
    batch: int = 2
    size: Optional[Sequence[int]] = None
    length: Optional[int] = None
    iters: int = 5
    warmup: int = 2
    device: str = 'cpu'
    amp: bool = False
    amp_dtype: Optional[str] = None
    with_cp: bool = False
    random_init: bool = False
    path: str = CONFIG
    text: str = 'expressions'
    threads: Optional[int] = None
    seed: int = 0
    cfg_options: dict = field(default_factory=dict)
    baseline: Optional[str] = None
    onnx: Optional[str] = None


def set_speedups(cfg: Config, enabled: Iterable[str]) -> Dict[str, bool]:
    """Turn every switch of :data:`SPEEDUPS` on (if in ``enabled``) or off.

    Parts the config does not have (e.g. ``neck=None``) are skipped, and so
    is ``fused_adamw`` for optimizers without a fused implementation.

    Returns:
        dict: switch name -> the value set.
    """
    enabled = set(enabled)
    unknown = enabled - set(SPEEDUPS)
    if unknown:
        raise KeyError(f'unknown speed-up switches {sorted(unknown)}; known: {sorted(SPEEDUPS)}')
    for name, keys in SPEEDUPS.items():
        for key in keys:
            *parents, option = key.split('.')
            section = cfg
            for parent in parents:
                section = section.get(parent) if section is not None else None
            if section is None:
                continue
            if name == 'fused_adamw' and section.get('type') not in FUSED_OPTIMIZERS:
                continue
            if name == 'text_feature_cache':
                size = section.get(option) or FEATURE_CACHE_MB
                section[option] = size if name in enabled else 0.0
                continue
            section[option] = name in enabled
    return {name: name in enabled for name in SPEEDUPS}


def model_speedups(model: nn.Module, optim_wrapper=None) -> Dict[str, object]:
    """The switch values of a built model (None: no such part)."""
    cache = getattr(getattr(model, 'text_encoder', None), 'feature_cache', None)
    fused = None if optim_wrapper is None else \
        bool(optim_wrapper.optimizer.defaults.get('fused'))
    return dict(text_feature_cache=None if cache is None else cache.max_bytes > 0,
                fused_adamw=fused)


def local_bert_config(name_or_path: Optional[str]) -> Optional[dict]:
    """The ``config.json`` of a text encoder available on this machine, or None."""
    from transformers import BertConfig

    from ..utils import resolve_pretrained

    try:
        path = resolve_pretrained(name_or_path)
    except FileNotFoundError:
        return None
    if not path or not osp.isfile(osp.join(path, 'config.json')):
        return None
    config = BertConfig.from_pretrained(path)
    return {key: getattr(config, key) for key in BERT_BASE_UNCASED}


def text_encoder_arch(cfg: Config) -> dict:
    """BERT architecture of the config's text encoder: its ``bert_config`` (no weights), the
    ``config.json`` of the configured encoder when it is on this machine, else bert-base's."""
    encoder = cfg.model.text_encoder
    if encoder.get('name_or_path') is None and encoder.get('bert_config'):
        return dict(encoder.bert_config)
    return local_bert_config(encoder.get('name_or_path')) or dict(BERT_BASE_UNCASED)


def use_random_weights(cfg: Config) -> dict:
    """Build every part from its configuration, with random weights.

    The text encoder gets ``name_or_path=None`` and :func:`text_encoder_arch`;
    ``Pretrained`` ``init_cfg`` s are dropped.

    Returns:
        dict: The text encoder architecture used.
    """
    arch = text_encoder_arch(cfg)
    cfg.model.text_encoder.name_or_path = None
    cfg.model.text_encoder.bert_config = dict(arch)
    for section in (cfg.model.get(part) for part in ('backbone', 'neck', 'decode_head')):
        if section is not None:
            section.init_cfg = _without_pretrained(section.get('init_cfg'))
    cfg.model.init_cfg = _without_pretrained(cfg.model.get('init_cfg'))
    return dict(arch)


def _without_pretrained(init_cfg):
    """An ``init_cfg`` (dict, list or None) without its ``Pretrained`` entries."""
    if isinstance(init_cfg, (list, tuple)):
        kept = [item for item in init_cfg if item.get('type') != 'Pretrained']
        return kept or None
    if init_cfg is not None and init_cfg.get('type') == 'Pretrained':
        return None
    return init_cfg


def prepare_config(settings: BenchmarkSettings) -> Tuple[Config, dict]:
    """The config with the run's settings applied, and notes on what was set
    (``amp``: the mixed-precision dtype or None; ``text_encoder_arch`` with random weights)."""
    cfg = Config.fromfile(settings.config)
    if settings.cfg_options:
        cfg.merge_from_dict(settings.cfg_options)
    notes = {}
    if settings.random_init:
        notes['text_encoder_arch'] = use_random_weights(cfg)
    if settings.path in (FAST, BASELINE):
        set_speedups(cfg, SPEEDUPS)
    elif settings.path == STRAIGHTFORWARD:
        set_speedups(cfg, ())
    elif settings.path not in (CONFIG, ONNXRUNTIME, *REDUCED_PRECISIONS):
        set_speedups(cfg, [settings.path])
    if settings.with_cp:
        cfg.model.backbone.with_cp = True
    notes['amp'] = use_mixed_precision(cfg, 'cpu' if settings.device == 'cpu' else 'cuda',
                                       settings.amp_dtype) if settings.amp else None
    return cfg, notes


#: ``tools/analysis_tools/benchmark.py``'s defaults of ``--iters`` and ``--warmup``:
#: expressions for ``--mode text``, steps otherwise.
TEXT_DEFAULTS = dict(iters=2000, warmup=200)
STEP_DEFAULTS = dict(iters=5, warmup=2)


def complete_arguments(args: Any) -> Optional[str]:
    """Fill the benchmark's unset ``iters`` / ``warmup`` (by mode) and check the arguments.

    Returns:
        str | None: What is wrong with them (for ``parser.error``), else None.
    """
    for key, value in (TEXT_DEFAULTS if args.mode == 'text' else STEP_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    paths = [args.path, *(args.compare or [])]
    problems = (
        (args.mode != 'text' and not args.config, 'give a config'),
        (args.batch < 1 or args.iters < 1, '--batch and --iters must be >= 1'),
        (args.warmup < 0, '--warmup must be >= 0'),
        (args.size is not None and min(args.size) < 32, '--size must be at least 32 32'),
        (BASELINE in paths and not args.baseline,
         'the baseline path needs --baseline FILE.py:FACTORY'),
        (ONNXRUNTIME in paths and not args.onnx, 'the onnxruntime path needs --onnx FILE'),
        (args.agreement and args.mode != 'infer', '--agreement is for --mode infer'))
    return next((message for problem, message in problems if problem), None)
