"""Building blocks of ``tools/analysis/benchmark.py`` and ``profile_step.py``.

Config preparation (random weights, speed-up switches, mixed precision),
synthetic batches in the data loader's format, model / optimizer building,
timed steps and peak memory.
"""
from __future__ import annotations

import contextlib
import copy
import os
import os.path as osp
import resource
import statistics
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from torch import Tensor, nn

#: bert-base-uncased's architecture (its ``config.json``), for random weights.
BERT_BASE_UNCASED = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                         num_attention_heads=12, intermediate_size=3072,
                         max_position_embeddings=512, type_vocab_size=2)

#: Speed-up switches: name -> the config keys it sets (True: on). The model
#: switches are constructor arguments that default to on; ``fused_adamw`` is
#: the optimizer's ``fused`` flag (the project's schedules set it).
SPEEDUPS: Dict[str, Tuple[str, ...]] = {
    'batched_views': ('model.text_encoder.batched_views',),
    'compact_views': ('model.text_encoder.compact_views',),
    'pixel_word_sdpa': ('model.backbone.use_sdpa', 'model.neck.use_sdpa'),
    'linear_projections': ('model.backbone.linear_projections',
                           'model.neck.linear_projections'),
    'window_mask_cache': ('model.backbone.cache_window_masks',),
    'window_sdpa': ('model.backbone.window_sdpa',),
    'fused_adamw': ('optim_wrapper.optimizer.fused',),
}

#: Optimizers whose torch class takes ``fused``.
FUSED_OPTIMIZERS = ('Adam', 'AdamW', 'SGD', 'Adagrad')

#: Word-piece ids of [PAD], [CLS] and [SEP] in the uncased BERT vocabulary.
PAD_ID, CLS_ID, SEP_ID = 0, 101, 102


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
            section[option] = name in enabled
    return {name: name in enabled for name in SPEEDUPS}


def model_speedups(model: nn.Module, optim_wrapper=None) -> Dict[str, object]:
    """The switch values of a built model (None: no such part; 'mixed')."""
    from mmseg.models.backbones.swin import ShiftWindowMSA, WindowMSA

    from ..models.layers import CachedShiftWindowMSA, PixelWordAttention, SDPAWindowMSA

    def summary(flags: List[bool]) -> object:
        if not flags:
            return None
        return flags[0] if all(f == flags[0] for f in flags) else 'mixed'

    modules = list(model.modules())
    encoder = getattr(model, 'text_encoder', None)
    values = dict(
        batched_views=getattr(encoder, 'batched_views', None),
        compact_views=getattr(encoder, 'compact_views', None),
        pixel_word_sdpa=summary([m.use_sdpa for m in modules
                                 if isinstance(m, PixelWordAttention)]),
        linear_projections=summary([m.linear_projections for m in modules
                                    if isinstance(m, PixelWordAttention)]),
        window_mask_cache=summary([isinstance(m, CachedShiftWindowMSA) for m in modules
                                   if isinstance(m, ShiftWindowMSA)]),
        window_sdpa=summary([isinstance(m, SDPAWindowMSA) for m in modules
                             if isinstance(m, WindowMSA)]),
        fused_adamw=None)
    if optim_wrapper is not None:
        values['fused_adamw'] = bool(optim_wrapper.optimizer.defaults.get('fused'))
    return values


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
    keys = ('vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
            'intermediate_size', 'max_position_embeddings', 'type_vocab_size')
    config = BertConfig.from_pretrained(path)
    return {key: getattr(config, key) for key in keys}


def use_random_weights(cfg: Config) -> dict:
    """Build every part from its configuration, with random weights.

    The text encoder gets ``name_or_path=None`` and the architecture of the
    configured encoder when its ``config.json`` is on this machine (the demo
    encoder), else bert-base-uncased's; Pretrained ``init_cfg`` s are dropped.

    Returns:
        dict: The text encoder architecture used.
    """
    encoder = cfg.model.text_encoder
    arch = encoder.get('bert_config') if encoder.get('name_or_path') is None else None
    arch = arch or local_bert_config(encoder.get('name_or_path')) or dict(BERT_BASE_UNCASED)
    encoder.name_or_path = None
    encoder.bert_config = dict(arch)
    for part in ('backbone', 'neck', 'decode_head'):
        section = cfg.model.get(part)
        if section is not None and (section.get('init_cfg') or {}).get('type') == 'Pretrained':
            section.init_cfg = None
    if (cfg.model.get('init_cfg') or {}).get('type') == 'Pretrained':
        cfg.model.init_cfg = None
    return dict(arch)


def use_mixed_precision(cfg: Config, device: str, dtype: Optional[str] = None) -> str:
    """Switch ``cfg.optim_wrapper`` to mixed precision; returns the dtype name.

    CPU: :class:`~fianet_mmseg.engine.AutocastOptimWrapper` (bfloat16).
    GPU: mmengine's ``AmpOptimWrapper`` with dynamic loss scaling, float16
    unless ``dtype='bfloat16'``.
    """
    wrapper = cfg.optim_wrapper
    if device == 'cpu':
        if dtype not in (None, 'bfloat16'):
            raise ValueError(f'CPU mixed precision is bfloat16 only, got {dtype!r}')
        wrapper.type = 'AutocastOptimWrapper'
        wrapper.dtype = 'bfloat16'
        wrapper.pop('loss_scale', None)
        return 'bfloat16'
    dtype = dtype or 'float16'
    wrapper.type = 'AmpOptimWrapper'
    wrapper.dtype = dtype
    wrapper.setdefault('loss_scale', 'dynamic')
    return dtype


def tokenize_expressions(expressions: Sequence[str], max_length: int,
                         tokenizer: Optional[str] = None) -> Optional[List[Dict[str, Tensor]]]:
    """Decouple and tokenise expressions as the data pipeline does.

    Returns:
        list[dict] | None: Per expression the four (L,) int64 text fields,
        or None when the tokenizer (default: the offline demo vocabulary,
        uncased BERT) is not installed.
    """
    from ..text import ExpressionEncoder, TextDecoupler
    from ..utils import DEMO_TEXT_ENCODER

    try:
        encoder = ExpressionEncoder(tokenizer or DEMO_TEXT_ENCODER, max_length)
    except (OSError, ImportError):
        return None
    decoupler = TextDecoupler()
    return [{key: torch.as_tensor(value, dtype=torch.long)
             for key, value in encoder(text, decoupler(text)).items()}
            for text in expressions]


def random_text(length: int, vocab_size: int, gen: torch.Generator) -> Dict[str, Tensor]:
    """``[CLS] words [SEP]`` then padding, with an object and a position phrase.

    3 to ``min(L - 2, 14)`` words; the object phrase is 1-3 words from the
    second word on, the position phrase the words after it (or the whole
    expression, as the tokenizer does for expressions without one).
    """
    if vocab_size <= SEP_ID + 1:
        raise ValueError(f'random text needs a vocabulary above {SEP_ID + 1}, got {vocab_size}')
    words = int(torch.randint(3, max(4, min(length - 2, 14) + 1), (1,), generator=gen))
    ids = torch.full((length,), PAD_ID, dtype=torch.long)
    first_word = 1000 if vocab_size > 2000 else SEP_ID + 1  # past the special tokens
    ids[1:words + 1] = torch.randint(first_word, vocab_size, (words,), generator=gen)
    ids[0], ids[words + 1] = CLS_ID, SEP_ID
    attention = (ids != PAD_ID).long()
    object_end = min(words, 2 + int(torch.randint(0, 3, (1,), generator=gen)))
    object_mask = torch.zeros(length, dtype=torch.long)
    object_mask[2:object_end + 1] = 1
    position_mask = torch.zeros(length, dtype=torch.long)
    position_mask[object_end + 1:words + 1] = 1
    if not position_mask.any():
        position_mask = attention.clone()
    return dict(input_ids=ids, attention_mask=attention, object_mask=object_mask,
                position_mask=position_mask)


def synthetic_batch(batch: int, size: Tuple[int, int], length: int, vocab_size: int = 30522,
                    seed: int = 0, texts: Optional[Sequence[Dict[str, Tensor]]] = None) -> dict:
    """A batch as the data loader yields it, from random numbers.

    Images are uint8 (3, H, W); each sample has a rectangular referred
    object in ``gt_sem_seg`` and the four text fields of
    :data:`~fianet_mmseg.models.utils.TEXT_KEYS` (L,): taken in turn from
    ``texts`` (see :func:`tokenize_expressions`) or made by
    :func:`random_text`.

    Returns:
        dict: ``inputs`` (list of B uint8 tensors) and ``data_samples``.
    """
    from mmseg.structures import SegDataSample

    if length < 6:
        raise ValueError(f'synthetic text needs length >= 6, got {length}')
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for index in range(batch):
        inputs.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                                    generator=gen))
        top, left = (int(torch.randint(0, max(1, d // 2), (1,), generator=gen)) for d in size)
        gt = torch.zeros(1, height, width, dtype=torch.long)
        gt[:, top:top + height // 3 + 1, left:left + width // 3 + 1] = 1
        text = texts[index % len(texts)] if texts else random_text(length, vocab_size, gen)
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width),
                                 pad_shape=(height, width), padding_size=[0, 0, 0, 0]))
        sample.set_data(dict(text))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_model(cfg: Config, device: str = 'cpu', quiet: bool = True) -> nn.Module:
    """Build and initialise ``cfg.model`` on ``device`` (``quiet``: no INFO logs)."""
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    if quiet:  # print_log(logger='current') goes to the newest logger instance
        MMLogger.get_instance(f'fianet_benchmark_{id(cfg)}', log_level='ERROR')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.to(device)


def count_parameters(model: nn.Module) -> Dict[str, int]:
    """Total and trainable (requires_grad) parameter counts."""
    params = list(model.parameters())
    return dict(total=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad))


def make_step(model: nn.Module, data: dict, mode: str, optim_wrapper=None,
              amp_dtype: Optional[str] = None) -> Callable[[], None]:
    """One full training step (``train_step``) or one inference (``test_step``)."""
    if mode == 'train':
        if optim_wrapper is None:
            raise ValueError('a training step needs an optim wrapper')
        model.train()
        return lambda: model.train_step(copy.copy(data), optim_wrapper)
    if mode != 'infer':
        raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")
    model.eval()
    device_type = next(model.parameters()).device.type
    dtype = getattr(torch, amp_dtype) if amp_dtype else None

    def infer() -> None:
        with torch.no_grad(), torch.autocast(device_type, dtype=dtype,
                                             enabled=dtype is not None):
            model.test_step(copy.copy(data))

    return infer


def synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_steps(step: Callable[[], None], iters: int, warmup: int,
               device: str = 'cpu') -> List[float]:
    """Run ``warmup`` untimed then ``iters`` timed steps; seconds per step."""
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def summarize_times(times: List[float]) -> dict:
    """Median, min, max and quartiles (seconds) of the step times."""
    ordered = sorted(times)
    if len(ordered) > 1:
        p25, _, p75 = statistics.quantiles(ordered, n=4, method='inclusive')
    else:
        p25 = p75 = ordered[0]
    return dict(median=statistics.median(ordered), min=ordered[0], max=ordered[-1],
                p25=p25, p75=p75, all=times)


class PeakMemory:
    """Peak memory of a span of the process (MiB).

    CPU: the peak resident set size (``VmHWM``), reset at :meth:`reset`
    through ``/proc/self/clear_refs`` where Linux allows it, else the peak
    over the whole process (``getrusage``). CUDA: the allocator's peak of
    allocated (and reserved) memory.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.scope = 'process'

    def reset(self) -> None:
        if self.device.startswith('cuda'):
            torch.cuda.reset_peak_memory_stats()
            self.scope = 'since_reset'
            return
        try:
            with open('/proc/self/clear_refs', 'w') as file:
                file.write('5')  # resets the peak RSS to the current RSS
            self.scope = 'since_reset'
        except OSError:
            self.scope = 'process'

    @staticmethod
    def _status_mb(field: str) -> Optional[float]:
        try:
            with open('/proc/self/status') as file:
                for line in file:
                    if line.startswith(field + ':'):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def current_mb(self) -> Optional[float]:
        if self.device.startswith('cuda'):
            return torch.cuda.memory_allocated() / 2**20
        return self._status_mb('VmRSS')

    def peak(self) -> dict:
        if self.device.startswith('cuda'):
            return dict(kind='cuda_max_allocated', scope=self.scope,
                        peak_mb=torch.cuda.max_memory_allocated() / 2**20,
                        reserved_peak_mb=torch.cuda.max_memory_reserved() / 2**20)
        peak = self._status_mb('VmHWM') if self.scope == 'since_reset' else None
        if peak is None:
            self.scope = 'process'
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return dict(kind='cpu_peak_rss', scope=self.scope, peak_mb=peak)


def load_average() -> Optional[List[float]]:
    """1, 5 and 15 minute load averages (None where unavailable)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
