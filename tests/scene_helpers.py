"""Scenes with known objects and a stand-in segmentation model, for the scene tests.

The mosaics are drawn here with numpy (a textured ground and bright discs or
boxes: "storage tanks"), as GeoTIFFs in UTM 33N, so every object's true
footprint is known exactly.

:class:`BrightBlobModel` is a stand-in for FIANet where a test's subject is the
tiling, blending, vectors or position rules, not the model: it goes through
the same inference pipeline (``inference_model``: tokenisation, the test
pipeline's Resize, ``test_step``) with logits that are a known function of the
window's pixels: "object" = bright after a grey-level opening with a disc of
``min_size`` pixels (so it finds blobs of at least that size in *model*
pixels: it has a scale, as a trained model does), minus a penalty within
``edge`` pixels of the window's border (a model sees no context there, so
objects cut by the border are lost near it).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from conftest import load_config, options_dict, tiny_test_options, write_raster
from mmengine.structures import PixelData
from torch import nn

CRS = 'EPSG:32633'
ORIGIN = (500000.0, 4650000.0)  # UTM 33N: about 15 E, 42 N
BRIGHT, GROUND = 230, (40, 110)


def stand_in_config(window: int = 96, gsd=None):
    """The tiny test config (offline tokenizer) with a ``window`` x ``window`` input."""
    options = tiny_test_options('unused') + [
        f'test_dataloader.dataset.pipeline.1.scale=({window},{window})']
    cfg = load_config('fianet_swin-b_rrsisd.py', options_dict(options))
    cfg.gsd = gsd
    return cfg


class BrightBlobModel(nn.Module):
    """A stand-in segmentor (see the module); ``texts`` records the text of every window."""

    def __init__(self, cfg, min_size: int = 9, edge: int = 4) -> None:
        super().__init__()
        self.cfg = cfg
        self.min_size = min_size
        self.edge = edge
        self.texts: List[str] = []
        self.register_buffer('unused', torch.zeros(1))

    def logits(self, bgr: np.ndarray) -> np.ndarray:
        """``(H, W)`` float32 object logit of a BGR uint8 window."""
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.min_size, self.min_size))
        opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, kernel).astype(np.float32)
        logit = (opened - 170.0) / 10.0
        if self.edge:
            logit[:self.edge] -= 30
            logit[-self.edge:] -= 30
            logit[:, :self.edge] -= 30
            logit[:, -self.edge:] -= 30
        return logit

    @torch.no_grad()
    def test_step(self, data: Dict) -> List:
        outputs = []
        for image, sample in zip(data['inputs'], data['data_samples']):
            self.texts.append(sample.metainfo['expression'])
            bgr = image.permute(1, 2, 0).numpy().astype(np.uint8)
            logit = torch.from_numpy(self.logits(bgr))
            sample.seg_logits = PixelData(data=torch.stack([torch.zeros_like(logit), logit]))
            sample.pred_sem_seg = PixelData(data=(logit > 0).long()[None])
            outputs.append(sample)
        return outputs


def ground(height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8 textured ground (smoothed noise in GROUND's range)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(*GROUND, (height, width)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.repeat(np.clip(noise, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def disc(height: int, width: int, centre: Tuple[float, float], radius: float) -> np.ndarray:
    """``(H, W)`` bool: pixels whose centre is within ``radius`` of ``centre`` (x, y)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (cols + 0.5 - centre[0]) ** 2 + (rows + 0.5 - centre[1]) ** 2 <= radius ** 2


def mosaic(height: int, width: int, discs: Sequence[Tuple[float, float, float]],
           seed: int = 0) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Ground with bright discs ``(x, y, radius)``: ``(RGB image, [footprint per disc])``."""
    image = ground(height, width, seed)
    footprints = []
    for x, y, radius in discs:
        footprint = disc(height, width, (x, y), radius)
        image[footprint] = BRIGHT
        footprints.append(footprint)
    return image, footprints


def write_scene(path, image: np.ndarray, gsd: float = 0.5, crs=CRS, nodata=None,
                valid: np.ndarray = None) -> str:
    """An RGB ``(H, W, 3)`` uint8 image as a tiled GeoTIFF with ``gsd``-metre pixels.

    ``valid`` False pixels get the value ``nodata`` (declared as the nodata value).
    """
    from affine import Affine

    data = image.transpose(2, 0, 1).copy()
    if valid is not None:
        data[:, ~valid] = nodata
    return write_raster(path, data, Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]), crs=crs,
                        nodata=nodata, tiled=True)
