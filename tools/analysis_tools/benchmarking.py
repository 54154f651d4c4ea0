"""Building blocks of ``tools/analysis_tools/benchmark.py`` and ``profile_step.py``.

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

from fianet_mmseg.utils.run_config import use_mixed_precision  # noqa: F401  (used by the tools)

#: bert-base-uncased's architecture (its ``config.json``), for random weights.
BERT_BASE_UNCASED = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                         num_attention_heads=12, intermediate_size=3072,
                         max_position_embeddings=512, type_vocab_size=2)

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
            if name == 'text_feature_cache':
                size = section.get(option) or FEATURE_CACHE_MB
                section[option] = size if name in enabled else 0.0
                continue
            section[option] = name in enabled
    return {name: name in enabled for name in SPEEDUPS}


def model_speedups(model: nn.Module, optim_wrapper=None) -> Dict[str, object]:
    """The switch values of a built model (None: no such part)."""
    encoder = getattr(model, 'text_encoder', None)
    cache = getattr(encoder, 'feature_cache', None)
    values = dict(
        text_feature_cache=None if cache is None else cache.max_bytes > 0,
        fused_adamw=None)
    if optim_wrapper is not None:
        values['fused_adamw'] = bool(optim_wrapper.optimizer.defaults.get('fused'))
    return values


def local_bert_config(name_or_path: Optional[str]) -> Optional[dict]:
    """The ``config.json`` of a text encoder available on this machine, or None."""
    from transformers import BertConfig

    from fianet_mmseg.utils import resolve_pretrained

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


def tokenize_expressions(expressions: Sequence[str], max_length: int,
                         tokenizer: Optional[str] = None) -> Optional[List[Dict[str, Tensor]]]:
    """Decouple and tokenise expressions as the data pipeline does.

    Returns:
        list[dict] | None: Per expression the four (L,) int64 text fields,
        or None when the tokenizer (default: the offline demo vocabulary,
        uncased BERT) is not installed.
    """
    from fianet_mmseg.text import ExpressionEncoder, TextDecoupler
    from fianet_mmseg.utils import DEMO_TEXT_ENCODER

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
    :data:`~fianet_mmseg.constants.TEXT_KEYS` (L,): taken in turn from
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


def time_steps(step: Callable[[], None], iters: int, warmup: int, device: str = 'cpu',
               usage: Optional[List[Dict[str, float]]] = None) -> List[float]:
    """Run ``warmup`` untimed then ``iters`` timed steps; seconds per step.

    ``usage``, if given, receives per timed step the process's ``user_s`` and
    ``sys_s`` CPU seconds (all threads; less sensitive than the wall time to
    other programs taking turns on the cores) and its ``minor_faults`` (pages
    the kernel had to map: freshly allocated memory touched for the first time).
    """
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(iters):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        if usage is not None:
            after = resource.getrusage(resource.RUSAGE_SELF)
            usage.append(dict(user_s=after.ru_utime - before.ru_utime,
                              sys_s=after.ru_stime - before.ru_stime,
                              minor_faults=after.ru_minflt - before.ru_minflt))
    return times


def cpu_seconds(usage: List[Dict[str, float]]) -> List[float]:
    """User + system seconds per step of a :func:`time_steps` ``usage`` list."""
    return [u['user_s'] + u['sys_s'] for u in usage]


def usage_summary(usage: List[Dict[str, float]]) -> Dict[str, float]:
    """Medians of the per-step system seconds and minor page faults."""
    return dict(sys_s=round(statistics.median(u['sys_s'] for u in usage), 4),
                minor_faults=statistics.median(u['minor_faults'] for u in usage))


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


def paired_ratios(times: Dict[str, List[float]], baseline: str) -> Dict[str, dict]:
    """Per round ``baseline time / path time``, summarised (median, quartiles, range).

    ``times`` holds one value per round for every path, rounds aligned (the
    interleaved benchmark runs one step of every path per round, so a slow
    spell of the machine hits the paths of a round alike).
    """
    out = {}
    for path, values in times.items():
        ratios = [base / value for base, value in zip(times[baseline], values)]
        stats = summarize_times(ratios)
        out[path] = {k: round(v, 3) for k, v in stats.items() if k != 'all'}
    return out


#: The reference's loss (docs/reference.md section 7): 0.9 * weighted cross-entropy
#: (class weights 0.9 / 1.1) + 0.1 * Dice summed over samples and classes.
REFERENCE_CE_WEIGHT, REFERENCE_CLASS_WEIGHTS, REFERENCE_DICE_WEIGHT = 0.9, (0.9, 1.1), 0.1


def text_encoder_arch(cfg: Config) -> dict:
    """BERT architecture of the config's text encoder (as :func:`use_random_weights`)."""
    encoder = cfg.model.text_encoder
    if encoder.get('name_or_path') is None and encoder.get('bert_config'):
        return dict(encoder.bert_config)
    return local_bert_config(encoder.get('name_or_path')) or dict(BERT_BASE_UNCASED)


def build_reference(cfg: Config, device: str = 'cpu') -> nn.Module:
    """The test oracle ``tests/reference_fianet.py`` at the config's sizes.

    The oracle is the plain re-implementation of the reference model (BERT run
    once per view, the official Swin written out, explicit attention). It gets
    the config's widths, depths, heads, window, fusion heads, TMEM blocks,
    decoder width and text encoder architecture, random weights, and trains the
    same text encoder parameters as the config (embeddings and
    ``trainable_layers``; a fully frozen encoder stays in eval mode, as the
    project's does). Not built: the demo's absolute position embedding (one
    addition).
    """
    tests_dir = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'tests')
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from reference_fianet import Decoder, ReferenceFIANet

    backbone, neck = cfg.model.backbone, cfg.model.get('neck')
    if neck is None:
        raise ValueError('the reference oracle always has TMEM; the config has neck=None')
    depths = list(backbone.depths)
    heads = backbone.get('fusion_num_heads', 1)
    heads = [heads] * len(depths) if isinstance(heads, int) else list(heads)
    model = ReferenceFIANet(embed=backbone.embed_dims, depths=depths,
                            heads=list(backbone.num_heads), window=backbone.window_size,
                            fusion_heads=heads, tmem_blocks=neck.get('num_blocks', 3),
                            bert=text_encoder_arch(cfg))
    dims = [backbone.embed_dims * 2**i for i in range(len(depths))]
    model.classifier = Decoder(dims, cfg.model.decode_head.get('channels', 512))
    encoder = cfg.model.text_encoder
    trainable = encoder.get('trainable_layers', list(range(10)))
    bert = model.text_encoder
    layers = range(bert.config.num_hidden_layers) if trainable is None else set(trainable)
    bert.embeddings.requires_grad_(bool(encoder.get('train_embeddings', False)))
    for index, layer in enumerate(bert.encoder.layer):
        layer.requires_grad_(index in layers)
    model.text_frozen = not any(p.requires_grad for p in bert.parameters())
    return model.to(device)


def make_reference_step(model: nn.Module, data: dict, mode: str, cfg: Config,
                        device: str = 'cpu') -> Callable[[], None]:
    """One training step (the reference's loss, torch's AdamW) or one inference.

    Every call normalises the uint8 batch as the data preprocessor does (the
    project's step includes it too).
    """
    import torch.nn.functional as F

    from fianet_mmseg.constants import TEXT_KEYS

    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)
    images = torch.stack(data['inputs']).to(device)
    samples = data['data_samples']
    text = {key: torch.stack([s.get(key) for s in samples]).to(device) for key in TEXT_KEYS}
    target = torch.stack([s.gt_sem_seg.data[0] for s in samples]).to(device)

    def normalised() -> Tensor:
        img = images.float()
        if pre.get('bgr_to_rgb', False):
            img = img.flip(1)
        return (img - mean) / std

    if mode == 'infer':
        model.eval()

        def infer() -> None:
            with torch.no_grad():
                model(normalised(), **text).argmax(dim=1)

        return infer
    if mode != 'train':
        raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")
    model.train()
    if getattr(model, 'text_frozen', False):
        model.text_encoder.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.optim_wrapper.optimizer.get('lr', 3e-5),
                                  weight_decay=0.01)
    class_weights = torch.tensor(REFERENCE_CLASS_WEIGHTS, device=device)

    def train() -> None:
        logits = model(normalised(), **text)
        probs = logits.softmax(dim=1)
        onehot = F.one_hot(target, 2).permute(0, 3, 1, 2).to(probs.dtype)
        dice = 1 - (2 * (probs * onehot).sum((2, 3)) + 1e-6) / \
            (probs.sum((2, 3)) + onehot.sum((2, 3)) + 1e-6)
        loss = REFERENCE_CE_WEIGHT * F.cross_entropy(logits, target, weight=class_weights) \
            + REFERENCE_DICE_WEIGHT * dice.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return train


def load_average() -> Optional[List[float]]:
    """1, 5 and 15 minute load averages (None where unavailable)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
