"""Python inference API: a model from a config (+ checkpoint), masks for expressions.

Example::

    from fianet_mmseg.apis import init_model, inference_model

    model = init_model('configs/fianet_swin-b_rrsisd.py', 'fianet_rrsisd.pth', device='cuda')
    result = inference_model(model, 'demo.jpg', 'the gray storage tank on the lower left')
    mask = result.pred_sem_seg.data[0]  # (H, W) at the image's size, 1 = referred object

Pairing rule of :func:`inference_model`: ``image`` and ``expression`` are each
a single item or a list. Two lists are paired element-wise and must have the
same length; a single item on one side is used with every item of the other
side (one image with many expressions, or one expression for many images).
The result is one ``SegDataSample`` when both are single items, else a list in
pair order.

Image files are read by :func:`~fianet_mmseg.utils.image_io.read_image`, the
reader of every entry point (the demos, the visualiser and the data sets'
``LoadRefSegImage`` too): any bit depth (16-bit and float data stretched per
band to 8 bit as GeoTIFFs are), 1, 3 or 4 channels, EXIF orientation ignored.
A :class:`~fianet_mmseg.utils.image_io.GeoImage` (from ``read_image`` or
:func:`~fianet_mmseg.apis.raster_input.read_geotiff`: band selection, a window, other
stretch limits) is an image too.
"""
from __future__ import annotations

import copy
import os.path as osp
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from torch import nn

from ..checkpoint import load_weights, read_checkpoint_for_model
from ..constants import TEXT_KEYS
from ..utils.image_io import GeoImage, read_image
from ..utils.precision import check_inference_options, set_inference_options

ImageType = Union[str, Path, np.ndarray, GeoImage]
ConfigType = Union[str, Path, Config]

_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadRefSegAnnotations')
_TEXT_STEP = 'DecoupleAndTokenize'
_PIPELINE_ATTR = '_refseg_inference_pipeline'


def _step_type(step: dict) -> str:
    """The registry name of a pipeline step, without a scope prefix."""
    return str(step.get('type', '')).split('.')[-1]


class InferencePipeline:
    """The test pipeline of a config, split into the image loader and the rest.

    Built from ``test_dataloader.dataset.pipeline`` (else ``test_pipeline``),
    without ``LoadAnnotations``. Paths are read by
    :func:`~fianet_mmseg.utils.image_io.read_image` (what the configs' loader,
    ``LoadRefSegImage``, decodes in ``tools/test.py``), then they and arrays go
    through mmseg's ``LoadImageFromNDArray`` in place of the config's loader.

    Args:
        cfg (Config): The model's config.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        steps = None
        if cfg.get('test_dataloader') is not None:
            steps = cfg.test_dataloader.get('dataset', {}).get('pipeline')
        if steps is None:
            steps = cfg.get('test_pipeline')
        if not steps:
            raise KeyError('the config has no test_dataloader.dataset.pipeline (nor '
                           'test_pipeline) to build the inference pipeline from')
        steps = [copy.deepcopy(step) for step in steps
                 if _step_type(step) not in _ANNOTATION_LOADERS]
        loader = _step_type(steps[0]) if steps else ''
        if not (loader.startswith('Load') and 'Image' in loader):
            raise ValueError(f'the test pipeline must start with an image loader '
                             f'(LoadRefSegImage), got {steps[:1]!r}')
        self.steps = steps
        self.array_loader = TRANSFORMS.build(dict(
            type='LoadImageFromNDArray', to_float32=steps[0].get('to_float32', False)))
        self.transforms = Compose(steps[1:])
        self._tokenizer = None

    def load(self, image: ImageType, where: str) -> dict:
        """Run the image loader; ``where`` names the input in error messages.

        A path is read with :func:`read_image`; it and a :class:`GeoImage` go
        through the array loader with ``img_path`` set to the file.
        """
        if isinstance(image, np.ndarray):
            return self.array_loader(dict(img=image))
        if not isinstance(image, GeoImage):
            image = self.read(image, where)
        results = self.array_loader(dict(img=image.bgr))
        results['img_path'] = image.path
        return results

    @staticmethod
    def read(path: Union[str, Path], where: str) -> GeoImage:
        """:func:`read_image` with errors that name ``where`` and the file."""
        path = str(path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{where}: image file {path} does not exist')
        try:
            return read_image(path)
        except ImportError as err:
            raise ImportError(f'{where}: {err}') from err
        except (ValueError, OSError) as err:  # not an image, a broken file
            raise ValueError(f'{where}: cannot read image {path} ({err})') from err

    def __call__(self, image: ImageType, expression: str, where: str = 'input') -> dict:
        """``dict(inputs=(3, H, W) uint8 tensor, data_samples=SegDataSample)``."""
        results = self.load(image, where)
        results.update(expression=expression, seg_fields=[], reduce_zero_label=False)
        return self.transforms(results)

    def text_step(self) -> Any:
        """The pipeline's ``DecoupleAndTokenize`` step."""
        for step in self.transforms.transforms:
            if type(step).__name__ == _TEXT_STEP:
                return step
        raise KeyError(f'the test pipeline has no {_TEXT_STEP} step')

    @property
    def tokenizer(self) -> Any:
        """The wordpiece tokenizer of the text step (loaded once)."""
        if self._tokenizer is None:
            from ..text import load_tokenizer

            self._tokenizer = load_tokenizer(self.text_step().tokenizer)
        return self._tokenizer


def get_inference_pipeline(model: nn.Module) -> InferencePipeline:
    """The model's :class:`InferencePipeline` (built from ``model.cfg`` once)."""
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('the model has no .cfg; build it with fianet_mmseg.apis.init_model')
    pipeline = getattr(model, _PIPELINE_ATTR, None)
    if pipeline is None or pipeline.cfg is not cfg:  # built anew when model.cfg is replaced
        pipeline = InferencePipeline(cfg)
        setattr(model, _PIPELINE_ATTR, pipeline)
    return pipeline


def init_model(config: ConfigType, checkpoint: Optional[str] = None, device: str = 'cpu',
               cfg_options: Optional[Dict[str, Any]] = None, precision: str = 'fp32',
               onnx: Optional[str] = None) -> nn.Module:
    """Build a FIANet from a config and load its weights for inference.

    Args:
        config (str | Path | Config): Config file or object (copied).
        checkpoint (str, optional): Checkpoint file. Every weight of the
            model must come from it (a missing, unexpected or differently
            shaped tensor is an error naming it). When it holds the text
            encoder's weights and architecture (every checkpoint this project
            writes does), the encoder is built from that architecture and
            nothing is downloaded. None keeps the weights as built (the text
            encoder's pretrained ones, the rest random).
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        cfg_options (dict, optional): Dotted-key overrides merged into the
            config (like ``--cfg-options``).
        precision (str): ``'fp32'`` (exact) or ``'bf16'``
            (:func:`~fianet_mmseg.utils.precision.apply_precision`; the
            precision the model runs at is ``model.inference_precision``).
        onnx (str, optional): An ONNX file of ``tools/deployment/export_onnx.py``:
            the tensor forward runs in onnxruntime
            (:func:`~fianet_mmseg.utils.onnx_runtime.use_onnxruntime`; float32).

    Returns:
        nn.Module: The model in eval mode on ``device``, with ``model.cfg``
        and ``model.dataset_meta`` (from the checkpoint's
        ``meta.dataset_meta``, else :class:`RefSegDataset`'s classes and
        palette).
    """
    if isinstance(config, (str, Path)):
        if not osp.isfile(str(config)):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file path or a Config, got {type(config).__name__}')
    check_inference_options(precision, onnx)  # before the model is built
    if checkpoint is not None and not osp.isfile(str(checkpoint)):
        raise FileNotFoundError(f'checkpoint file {checkpoint} does not exist')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.train_cfg = None
    dataset_meta = state = None
    if checkpoint is not None:
        state, meta = read_checkpoint_for_model(str(checkpoint), cfg.model)
        dataset_meta = meta.get('dataset_meta')
    model = MODELS.build(cfg.model)
    if state is not None:
        load_weights(model, state, str(checkpoint))
    if not dataset_meta:
        from ..datasets import RefSegDataset

        dataset_meta = copy.deepcopy(RefSegDataset.METAINFO)
    model.dataset_meta = dataset_meta
    model.cfg = cfg
    if str(device) == 'cpu':
        model = revert_sync_batchnorm(model)
    model.to(device)
    model.eval()
    set_inference_options(model, precision, onnx, str(device))
    return model


def _as_list(value: Any) -> Tuple[List[Any], bool]:
    """``(items, was_single)``."""
    if isinstance(value, (list, tuple)):
        return list(value), False
    return [value], True


def _check_image_input(image: Any, where: str) -> None:
    if isinstance(image, (str, Path, GeoImage)):
        return
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'{where}: an image array must be (H, W, 3) uint8 BGR, got shape '
                             f'{image.shape}, dtype {image.dtype} (give a list for several '
                             'images)')
        return
    raise TypeError(f'{where}: an image must be a file path, an (H, W, 3) uint8 BGR array or a '
                    f'GeoImage, got {type(image).__name__}')


def _check_expression(expression: Any, where: str) -> None:
    if not isinstance(expression, str):
        raise TypeError(f'{where}: an expression must be a string, got '
                        f'{type(expression).__name__}')
    if not expression.strip():
        raise ValueError(f'{where}: the expression is empty')


def pair_inputs(image: Union[ImageType, Sequence[ImageType]],
                expression: Union[str, Sequence[str]]) -> Tuple[List[Tuple[Any, str]], bool]:
    """Validate and pair images with expressions (see the module's pairing rule).

    Returns:
        tuple: ``([(image, expression), ...], single)`` where ``single`` says
        that one ``SegDataSample`` (not a list) is to be returned.

    Raises:
        ValueError: Empty lists, lists of different lengths, empty
            expressions, arrays that are not (H, W, 3) uint8.
        TypeError: Inputs of other types.
    """
    images, single_image = _as_list(image)
    expressions, single_expression = _as_list(expression)
    if not images:
        raise ValueError('no image given (empty list)')
    if not expressions:
        raise ValueError('no expression given (empty list)')
    if not single_image and not single_expression and len(images) != len(expressions):
        raise ValueError(f'{len(images)} images but {len(expressions)} expressions: two lists '
                         'are paired element-wise and must have the same length')
    for index, item in enumerate(images):
        _check_image_input(item, f'image {index}' if not single_image else 'image')
    for index, item in enumerate(expressions):
        _check_expression(item, f'expression {index}' if not single_expression
                          else 'expression')
    count = max(len(images), len(expressions))
    if single_image:
        images = images * count
    if single_expression:
        expressions = expressions * count
    return list(zip(images, expressions)), single_image and single_expression


@torch.no_grad()
def _predict(model: nn.Module, packed: List[dict]) -> List[SegDataSample]:
    """One ``test_step`` per group of equally sized inputs, results in input order."""
    groups: Dict[Tuple[int, ...], List[int]] = {}
    for index, data in enumerate(packed):
        groups.setdefault(tuple(data['inputs'].shape), []).append(index)
    results: List[Optional[SegDataSample]] = [None] * len(packed)
    for indices in groups.values():
        outputs = model.test_step(pseudo_collate([packed[i] for i in indices]))
        for index, output in zip(indices, outputs):
            results[index] = output
    return results


def inference_model(model: nn.Module, image: Union[ImageType, Sequence[ImageType]],
                    expression: Union[str, Sequence[str]],
                    batch_size: int = 8) -> Union[SegDataSample, List[SegDataSample]]:
    """Segment the object each expression refers to.

    Args:
        model (nn.Module): A model from :func:`init_model`.
        image: An image path (any bit depth, read by :func:`read_image`), an
            ``(H, W, 3)`` uint8 **BGR** array, a :class:`GeoImage`, or a list
            of them.
        expression: A referring expression or a list of them. Paired with
            ``image`` as in the module docstring.
        batch_size (int): Pairs per forward pass (one ``model.test_step``
            per batch; inputs of different sizes after the pipeline are split
            into one pass per size).

    Returns:
        SegDataSample | list[SegDataSample]: ``pred_sem_seg`` (1, H, W) at the
        image's original size (1 = referred object), ``seg_logits``
        (2, H, W), ``pred_sem_seg_at_input`` and metainfo ``expression``,
        ``object_phrase``, ``spatial_phrases``, ``decoupled_category``,
        ``img_path`` (None for arrays), ``ori_shape``, ``img_shape``; the data
        fields ``input_ids``, ``attention_mask``, ``object_mask``,
        ``position_mask`` ((L,) int64) are the text as the model received it.
        See :func:`foreground_probability` and :func:`wordpiece_masks`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')
    pairs, single = pair_inputs(image, expression)
    pipeline = get_inference_pipeline(model)
    results: List[SegDataSample] = []
    for start in range(0, len(pairs), batch_size):
        packed = []
        for index, (item, text) in enumerate(pairs[start:start + batch_size], start=start):
            where = 'input' if single else f'input {index}'
            packed.append(pipeline(item, text, where))
        results.extend(_predict(model, packed))
    return results[0] if single else results


def foreground_probability(result: SegDataSample) -> np.ndarray:
    """The referred object's probability per pixel, ``(H, W)`` float32 in [0, 1].

    Softmax over the classes of ``result.seg_logits`` (at the image's size),
    channel 1; the sigmoid of a single-channel output.
    """
    logits = result.seg_logits.data.detach().float().cpu()
    if logits.shape[0] == 1:
        probability = torch.sigmoid(logits[0])
    else:
        probability = torch.softmax(logits, dim=0)[1]
    return probability.numpy()


def wordpiece_masks(model: nn.Module, result: Union[SegDataSample, str]
                    ) -> List[Dict[str, Any]]:
    """The text as the model received it (or would receive an expression): one row per
    token position.

    Args:
        result: A result of :func:`inference_model`, or an expression (run
            through the pipeline's text step alone).

    Returns:
        list[dict]: For each of the ``L`` positions: ``index``, ``wordpiece``
        (``[PAD]`` for padding), ``input_id``, ``attention_mask``,
        ``object_mask``, ``position_mask`` (0 / 1).
    """
    pipeline = get_inference_pipeline(model)
    tokenizer = pipeline.tokenizer
    if isinstance(result, str):
        encoded = pipeline.text_step()(dict(expression=result))
        columns = {key: [int(v) for v in encoded[key]] for key in TEXT_KEYS}
    else:
        columns = {key: result.get(key).detach().cpu().tolist() for key in TEXT_KEYS}
    tokens = tokenizer.convert_ids_to_tokens(columns['input_ids'])
    return [dict(index=index, wordpiece=token, input_id=columns['input_ids'][index],
                 attention_mask=columns['attention_mask'][index],
                 object_mask=columns['object_mask'][index],
                 position_mask=columns['position_mask'][index])
            for index, token in enumerate(tokens)]
