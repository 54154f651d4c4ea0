"""What a scene run will do: the scale, the windows, the text of each window.

A :class:`ScenePlan` is made before any window is read and holds everything
the outputs depend on; its :meth:`~ScenePlan.fingerprint` is stored in the work
folder so that ``--resume`` continues only the same run.

GSD (ground sampling distance, metres per pixel) choices, in order:

1. ``gsd`` (``--gsd``): the windows' GSD;
2. else the config's ``gsd`` (the model's training scale, a documented choice
   in ``configs/_base_/datasets/``; None where the training imagery has no
   single one, as RRSIS-D);
3. else the scene's own pixels.

The scene's GSD comes from its CRS and transform (:func:`~.grid.raster_gsd`),
or ``source_gsd`` (``--source-gsd``) for a raster without CRS. Warnings name
both numbers when the scene's GSD (or ``--gsd``) is more than
:data:`FAR_FACTOR` times finer or coarser than the model's.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..inference import get_inference_pipeline
from ..raster_input import DEFAULT_PERCENTILES
from .grid import WindowGrid
from .positions import POSITION_MODES, ExpressionParts, split_expression
from .reader import SceneReader

#: A scene GSD this many times finer or coarser than the model's draws a warning.
FAR_FACTOR = 2.0
#: Default stride: this share of the window (a quarter of each window overlaps the next).
DEFAULT_STRIDE = 0.75
PLAN_FORMAT = 'fianet-mmseg scene plan v1'


def model_input_size(model: nn.Module) -> Tuple[int, int]:
    """``(width, height)`` the test pipeline resizes every image to (its ``Resize`` step)."""
    steps = get_inference_pipeline(model).steps
    for step in steps:
        if str(step.get('type', '')).split('.')[-1] == 'Resize':
            scale = step.get('scale')
            if isinstance(scale, int):
                scale = (scale, scale)
            if scale is None or len(scale) != 2 or step.get('keep_ratio', False):
                break
            return int(scale[0]), int(scale[1])
    raise ValueError('the config\'s test pipeline has no Resize(scale=(W, H), keep_ratio=False) '
                     'step: scene inference needs the model\'s input size from it')


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the model's config and weights (what ``--resume`` checks)."""
    digest = hashlib.sha256()
    cfg = getattr(model, 'cfg', None)
    if cfg is not None:
        digest.update(json.dumps(cfg.to_dict(), sort_keys=True, default=repr).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous()
        if data.dtype == torch.bfloat16:
            data = data.float()
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def decoupler(dataset: Optional[str]) -> Any:
    """The project's :class:`~fianet_mmseg.text.TextDecoupler` of a category set (built once)."""
    from ...text import TextDecoupler

    return TextDecoupler(dataset)


def _ratio_words(ratio: float) -> str:
    return f'{ratio:.2g}x {"coarser" if ratio > 1 else "finer"}'


@dataclass
class ScenePlan:
    """A scene run, before any window is read (see the module)."""

    scene: str
    reader: SceneReader
    grid: WindowGrid
    parts: ExpressionParts
    position: str
    window_text: str
    batch_size: int
    source_gsd: Optional[Tuple[float, float]]
    target_gsd: Optional[float]
    model_gsd: Optional[float]
    gsd_source: str  #: where target_gsd came from
    warnings: List[str] = field(default_factory=list)
    model_id: str = ''

    @property
    def windows(self) -> List[Tuple[int, int]]:
        return self.grid.starts()

    def fingerprint(self) -> Dict[str, Any]:
        """What the outputs depend on (stored as ``plan.json``)."""
        stat = os.stat(self.scene)
        return dict(format=PLAN_FORMAT, scene=osp.abspath(self.scene), scene_bytes=stat.st_size,
                    scene_mtime_ns=stat.st_mtime_ns, bands=list(self.reader.bands),
                    stretch=self.reader.stretch, limits=self.reader.limits,
                    scale=list(self.grid.scale), window=list(self.grid.window),
                    stride=list(self.grid.stride), batch_size=self.batch_size,
                    expression=self.parts.expression, window_text=self.window_text,
                    position=self.position, model=self.model_id)


def make_plan(model: nn.Module, scene: str, expression: str, gsd: Optional[float] = None,
              source_gsd: Optional[float] = None, stride: Optional[Sequence[int]] = None,
              batch_size: int = 4, position: Optional[str] = None,
              bands: Optional[Sequence[int]] = None, stretch: str = 'auto',
              percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> ScenePlan:
    """Check the inputs and plan the run (see the module; arguments as in
    :class:`~.inferencer.SceneInferencer`).

    Raises:
        ValueError: Bad options, an expression without an object phrase in
            ``scene`` mode, ``gsd`` for a raster without CRS or ``source_gsd``.
        FileNotFoundError: No such scene.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError('the expression is empty')
    expression = expression.strip()
    if position is not None and position not in POSITION_MODES:
        raise ValueError(f'position must be one of {POSITION_MODES}, got {position!r}')
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')
    for name, value in (('gsd', gsd), ('source_gsd', source_gsd)):
        if value is not None and not value > 0:
            raise ValueError(f'{name} must be a positive number of metres per pixel, got {value}')
    window = model_input_size(model)
    reader = SceneReader(scene, bands=bands, stretch=stretch, percentiles=percentiles)
    try:
        warnings: List[str] = []
        scene_gsd = reader.gsd
        if reader.crs is None:
            where = ('pixel coordinates (x = column, y = row)' if reader.transform.is_identity
                     else 'the coordinates of its transform, in no known CRS')
            warnings.append(f'{scene}: the raster has no CRS: outputs are in {where}'
                            + ('' if source_gsd is not None else
                               ' and its GSD is unknown (give --source-gsd)'))
        if source_gsd is not None:
            scene_gsd = (float(source_gsd), float(source_gsd))
        model_gsd = model.cfg.get('gsd', None) if getattr(model, 'cfg', None) else None
        target, origin = (gsd, '--gsd') if gsd is not None else (model_gsd, 'config gsd')
        if target is not None and scene_gsd is None:
            if gsd is not None:
                raise ValueError(f'{scene}: --gsd {gsd} needs the scene\'s own GSD, which a '
                                 'raster without CRS does not have: give --source-gsd')
            warnings.append(f'{scene}: the model\'s GSD is {model_gsd:g} m/pixel (config gsd) '
                            'but the scene\'s is unknown: windows at its own pixels')
            target = None
        if target is None:
            scale, origin = (1.0, 1.0), 'the scene\'s own pixels'
        else:
            scale = tuple(1.0 if abs(target / g - 1.0) < 1e-6 else target / g
                          for g in scene_gsd)
        if model_gsd is not None and scene_gsd is not None:
            ratio = (scene_gsd[0] * scene_gsd[1]) ** 0.5 / model_gsd
            if not 1 / FAR_FACTOR <= ratio <= FAR_FACTOR:
                warnings.append(
                    f'{scene}: the scene\'s GSD is {scene_gsd[0]:.3g} m/pixel, the model\'s '
                    f'{model_gsd:.3g} m/pixel (config gsd): {_ratio_words(ratio)} than what the '
                    f'model was trained on' + (
                        f'; windows are resampled to {target:.3g} m/pixel ({origin})'
                        if target is not None else '; windows at the scene\'s own pixels'))
        if gsd is not None and model_gsd is not None and \
                not 1 / FAR_FACTOR <= gsd / model_gsd <= FAR_FACTOR:
            warnings.append(f'--gsd {gsd:.3g} m/pixel is {_ratio_words(gsd / model_gsd)} than '
                            f'the model\'s {model_gsd:.3g} m/pixel (config gsd)')
        if stride is None:
            stride = tuple(max(1, round(DEFAULT_STRIDE * side)) for side in window)
        elif isinstance(stride, int):
            stride = (stride, stride)
        grid = WindowGrid(reader.width, reader.height, scale, window,
                          (int(stride[0]), int(stride[1])))
        text_step = get_inference_pipeline(model).text_step()
        parts = split_expression(expression, decoupler(getattr(text_step, 'dataset', None)))
        if position is None:
            position = 'scene' if len(grid.starts()) > 1 else 'window'
        if position == 'scene' and not parts.object_phrase:
            raise ValueError(
                f'the expression {expression!r} has no object phrase (the decoupler found only '
                f'the position phrases {parts.position_phrases}): --position scene conditions '
                'every window on the object; name it (e.g. "the storage tank on the left") or '
                'use --position window')
        window_text = expression if position == 'window' else parts.window_expression
        if position == 'scene':
            warnings += [f'position phrase {reason}: not applied to the scene (the windows '
                         'read it)' for reason in parts.unresolved]
        return ScenePlan(scene=str(scene), reader=reader, grid=grid, parts=parts,
                         position=position, window_text=window_text, batch_size=batch_size,
                         source_gsd=scene_gsd, target_gsd=target, model_gsd=model_gsd,
                         gsd_source=origin, warnings=warnings)
    except BaseException:
        reader.close()
        raise
