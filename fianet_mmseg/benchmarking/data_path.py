"""The GPU data path measured: a config's training speed and data wait, and the black boxes
painted on the device against the reference's per-sample boxes.

:func:`training_throughput` trains a config (random weights, nothing downloaded)
for a few steps through mmengine's runner and reads the per-iteration ``time`` and
``data_time`` that ``IterTimerHook`` records (``data_time``: the wait for the
next batch between two steps); ``tools/analysis_tools/gpu_check.sh`` runs it for
the reference-exact and the GPU data path. :func:`compare_black_boxes` puts the
same boxes on images both ways (reference: painted on the original, then Pillow's
bilinear resize; device: Pillow's resize, then ``BatchBlackBoxes``) and reports
the difference in grey levels (``tools/analysis_tools/black_boxes_on_device.py``).
"""
from __future__ import annotations

import os.path as osp
import statistics
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from ..constants import BLACK_BOXES
from .settings import use_random_weights

#: The data preprocessor's statistics of the configs (ImageNet, RGB).
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def throughput_config(cfg: Config, iters: int, warmup: int, work_dir: str,
                      batch_size: Optional[int] = None, num_workers: Optional[int] = None,
                      seed: int = 0) -> Config:
    """``cfg`` set up for ``warmup + iters`` training steps in one epoch: random weights, the
    first ``(warmup + iters) * batch`` training samples, no validation, no checkpoint."""
    use_random_weights(cfg)
    loader = cfg.train_dataloader
    if batch_size is not None:
        loader.batch_size = batch_size
    if num_workers is not None:
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    loader.dataset.indices = (warmup + iters) * loader.batch_size
    loader.drop_last = True
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=loader.batch_size)
    cfg.launcher = 'none'
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    return cfg


def training_throughput(cfg: Config, iters: int, warmup: int, work_dir: str,
                        batch_size: Optional[int] = None, num_workers: Optional[int] = None,
                        seed: int = 0) -> dict:
    """Train ``cfg`` for ``warmup`` untimed and ``iters`` timed steps (see
    :func:`throughput_config`); the runner picks the device (CUDA when available).

    Returns:
        dict: ``device``, ``batch``, ``iters``, ``samples_per_s`` (timed samples over
        the timed steps' summed ``time``), ``data_wait_share`` (summed ``data_time``
        over summed ``time``), the median ``step_s`` and ``data_wait_s``,
        ``peak_memory_gb`` (CUDA only) and the config's train loop type.
    """
    from mmengine.runner import Runner

    cfg = throughput_config(cfg, iters, warmup, work_dir, batch_size, num_workers, seed)
    runner = Runner.from_cfg(cfg)
    device = next(runner.model.parameters()).device
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    runner.train()
    times = [float(t) for t in runner.message_hub.get_scalar('train/time').data[0]]
    waits = [float(t) for t in runner.message_hub.get_scalar('train/data_time').data[0]]
    if len(times) != warmup + iters:
        raise RuntimeError(f'expected {warmup + iters} training steps, the runner made '
                           f'{len(times)}: does the training split hold enough samples?')
    times, waits = times[warmup:], waits[warmup:]
    batch = cfg.train_dataloader.batch_size
    record = dict(
        config=osp.basename(cfg.filename) if cfg.filename else None,
        train_loop=cfg.train_cfg.get('type', 'EpochBasedTrainLoop'),
        device=str(device), batch=batch, iters=iters, warmup=warmup,
        num_workers=cfg.train_dataloader.num_workers,
        samples_per_s=batch * len(times) / sum(times),
        data_wait_share=sum(waits) / sum(times),
        step_s=statistics.median(times), data_wait_s=statistics.median(waits))
    if device.type == 'cuda':
        record['peak_memory_gb'] = torch.cuda.max_memory_allocated(device) / 1e9
    return record


def textured_image(size: int, seed: int) -> np.ndarray:
    """An RGB uint8 (size, size, 3) image: smooth colour fields plus +-25 grey-level noise
    (harder for the device boxes than most aerial images: every pixel differs from its
    neighbours)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8),
                      (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-25, 26, (size, size, 3))
    return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)


def _normalised(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, normalised as the data preprocessor does."""
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()
    return (image - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def black_boxes_both_ways(rgb: np.ndarray, boxes: np.ndarray, size: Tuple[int, int]
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same boxes on one image, the reference's way and the device's way.

    Args:
        rgb (np.ndarray): (H0, W0, 3) uint8 original image.
        boxes (np.ndarray): (N, 4) ``(top, left, bottom, right)`` in original pixels.
        size (tuple[int, int]): ``(H, W)`` of the network input.

    Returns:
        tuple: reference and device images ((3, H, W) float32, normalised) and the
        boxes' coverage of each input pixel ((H, W)).
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from PIL import Image

    from ..models.batch_augments import BatchBlackBoxes, box_coverage

    height, width = size
    painted = rgb.copy()
    for top, left, bottom, right in boxes:
        painted[top:bottom, left:right] = 0
    reference = _normalised(np.asarray(Image.fromarray(painted).resize((width, height),
                                                                       Image.BILINEAR)))
    resized = _normalised(np.asarray(Image.fromarray(rgb).resize((width, height),
                                                                 Image.BILINEAR)))
    sample = SegDataSample(metainfo=dict(ori_shape=rgb.shape[:2], img_shape=(height, width)))
    sample.set_data({BLACK_BOXES: torch.as_tensor(boxes, dtype=torch.long),
                     'gt_sem_seg': PixelData(data=torch.zeros((1, height, width)))})
    device, _ = BatchBlackBoxes(MEAN, STD)(resized[None].clone(), [sample])
    coverage = box_coverage(torch.as_tensor(boxes), rgb.shape[:2], size)
    return reference, device[0], coverage


def compare_black_boxes(images: Iterable[np.ndarray], size: Tuple[int, int] = (480, 480),
                        seed: int = 0, box_cfg: Optional[dict] = None) -> Dict[str, object]:
    """The device boxes against the reference's, in grey levels (0-255), over ``images``.

    Each image gets boxes drawn by ``RandomBlackBoxes(**box_cfg)`` (the configs'
    20-60 boxes of 32x32 original pixels) from numpy's generator seeded with
    ``seed``, then :func:`black_boxes_both_ways`.

    Returns:
        dict: per image and over all images: ``max`` and ``mean`` absolute difference,
        ``mean_in_reach`` (over the pixels the boxes' filter reaches), ``share_over_1``
        (pixels with a channel more than 1 grey level off), ``in_reach`` (share of
        pixels in the boxes' reach), ``max_out_of_reach`` (0: identical there).
    """
    from ..datasets.transforms import RandomBlackBoxes

    boxes_transform = RandomBlackBoxes(**dict(dict(ratio=1.0, seed=0), **(box_cfg or {})))
    np.random.seed(seed)
    std = torch.tensor(STD).view(3, 1, 1)
    rows, diffs, reaches = [], [], []
    for rgb in images:
        boxes = boxes_transform.draw_boxes(*rgb.shape[:2])
        reference, device, coverage = black_boxes_both_ways(rgb, boxes, size)
        diff = ((device - reference).abs() * std).double()  # grey levels
        reach = coverage > 0
        diffs.append(diff)
        reaches.append(reach)
        rows.append(_difference_stats(diff[None], reach[None]) | dict(boxes=len(boxes)))
    if not rows:
        raise ValueError('compare_black_boxes: no images')
    return dict(images=rows, all=_difference_stats(torch.stack(diffs), torch.stack(reaches)))


def _difference_stats(diff: torch.Tensor, reach: torch.Tensor) -> Dict[str, float]:
    """Statistics of (N, 3, H, W) differences in grey levels (per pixel: its largest channel
    difference); ``reach``: (N, H, W)."""
    per_pixel = diff.amax(1)
    outside = per_pixel[~reach]
    return dict(max=float(per_pixel.max()), mean=float(per_pixel.mean()),
                mean_in_reach=float(per_pixel[reach].mean()) if reach.any() else 0.0,
                share_over_1=float((per_pixel > 1).double().mean()),
                in_reach=float(reach.double().mean()),
                max_out_of_reach=float(outside.max()) if outside.numel() else 0.0)


def loader_step_times(paths: Sequence[str], size: Tuple[int, int] = (480, 480),
                      seed: int = 0) -> Dict[str, float]:
    """Mean milliseconds per image of the loader's image steps, in this process: decoding
    (``LoadRefSegImage``), the configs' black boxes painted on the original
    (``RandomBlackBoxes`` on a selected reference) and the resize (``Resize``, Pillow)."""
    import time

    from mmseg.registry import TRANSFORMS

    load = TRANSFORMS.build(dict(type='LoadRefSegImage'))
    boxes = TRANSFORMS.build(dict(type='RandomBlackBoxes', ratio=1.0, seed=seed))
    resize = TRANSFORMS.build(dict(type='Resize', scale=(size[1], size[0]), keep_ratio=False,
                                   backend='pillow'))
    np.random.seed(seed)
    totals = dict(decode=0.0, boxes=0.0, resize=0.0)
    for path in paths:
        start = time.perf_counter()
        results = load(dict(img_path=path, ref_id=0))
        decoded = time.perf_counter()
        results = boxes(results)
        painted = time.perf_counter()
        resize(results)
        totals['decode'] += decoded - start
        totals['boxes'] += painted - decoded
        totals['resize'] += time.perf_counter() - painted
    if not paths:
        raise ValueError('loader_step_times: no images')
    return {f'{key}_ms': 1e3 * value / len(paths) for key, value in totals.items()}


def read_rgb(paths: Sequence[str]) -> Iterable[np.ndarray]:
    """Images as the reference decodes them (``PIL.Image.open(...).convert('RGB')``)."""
    from PIL import Image

    for path in paths:
        with Image.open(path) as image:
            yield np.asarray(image.convert('RGB'))
