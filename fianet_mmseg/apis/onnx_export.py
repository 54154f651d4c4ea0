"""Export FIANet's tensor forward to ONNX and check it with onnxruntime
(the work of ``tools/deployment/export_onnx.py``; :func:`export_and_check`).

The graph is ``FIANet.forward_tensors``: inputs ``img`` (B, 3, H, W) float32,
normalised as by the model's data preprocessor (RGB, mean/std), and
``input_ids``, ``attention_mask``, ``object_mask``, ``position_mask`` (B, L)
int64 (as ``DecoupleAndTokenize`` makes them); output ``logits`` (B, 2, H, W)
at the input size (argmax over dim 1 = mask). The batch axis is dynamic, H, W
and L are fixed (default: the test pipeline's ``Resize`` scale and the
``DecoupleAndTokenize`` ``max_length``).

Exporter: torch's dynamo-based ``torch.onnx.export(..., dynamo=True)`` (the
TorchScript exporter fails on TMEM), offline, on CPU. The text encoder keeps
the batch symbolic by itself: under tracing it packs each view's words into
rows of the full width L (not the longest view's, a data-dependent size). One
export-only change keeps it so in mmseg's Swin, computing the same values:
``window_reverse`` infers the window batch with ``view(-1, ...)`` instead of
a float division.

The opset (``--opset``): the exporter's default is 20; it cannot write opsets below 18
(it warns and keeps 18), so the opset actually written is returned.

Check before success: onnxruntime (CPU) and PyTorch run the same random
inputs at batch sizes 1 and 3 (the export uses 2, so both differ from it);
the largest absolute logit difference must be <= ``atol`` (1e-3). The
model is written to a temporary file next to OUT.onnx and moved onto OUT.onnx
only when the check passes, so a failed check never replaces an existing
OUT.onnx; the rejected file is deleted (kept as ``OUT.failed.onnx`` with
``keep_failed``) and the tool's exit status is 1. Models over 2 GiB (ONNX's
single-file limit) are not supported.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from mmseg.registry import TRANSFORMS
from torch import Tensor, nn

from ..utils.onnx_runtime import INPUT_NAMES, OUTPUT_NAMES, onnx_session
from .inference import get_inference_pipeline

EXPORT_BATCH = 2
CHECK_BATCHES = (1, 3)
EXAMPLE_EXPRESSIONS = (
    'the gray storage tank on the lower left',
    'a large ship in the middle',
    'the tennis court on the right of the swimming pool',
    'vehicle',
)

Inputs = Tuple[Tensor, ...]


class TensorForward(nn.Module):
    """``FIANet.forward_tensors`` as a module's ``forward`` (for the exporter)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: Tensor, input_ids: Tensor, attention_mask: Tensor,
                object_mask: Tensor, position_mask: Tensor) -> Tensor:
        return self.model.forward_tensors(img, input_ids, attention_mask, object_mask,
                                          position_mask)


def _window_reverse(self, windows: Tensor, H: int, W: int) -> Tensor:  # noqa: N803
    """mmseg's ``ShiftWindowMSA.window_reverse`` without the float batch division."""
    size = self.window_size
    x = windows.view(-1, H // size, W // size, size, size, windows.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(x.shape[0], H, W, -1)


@contextlib.contextmanager
def export_friendly(model: nn.Module) -> Iterator[None]:
    """Temporarily make the model traceable with a symbolic batch (same values)."""
    from mmseg.models.backbones.swin import ShiftWindowMSA

    original = ShiftWindowMSA.window_reverse
    ShiftWindowMSA.window_reverse = _window_reverse
    try:
        yield
    finally:
        ShiftWindowMSA.window_reverse = original


def _pipeline_step(model: nn.Module, name: str) -> Optional[dict]:
    """A copy of the first step of type ``name`` of the model's test pipeline."""
    steps = get_inference_pipeline(model).steps
    return next((dict(step) for step in steps if str(step['type']).split('.')[-1] == name),
                None)


def input_geometry(model: nn.Module, shape: Optional[Sequence[int]],
                   length: Optional[int]) -> Tuple[int, int, int]:
    """``(H, W, L)`` from the arguments, else from the config's test pipeline."""
    if shape is None:
        resize = _pipeline_step(model, 'Resize')
        if resize is None or resize.get('keep_ratio') or resize.get('scale') is None:
            raise ValueError('the test pipeline has no fixed-size Resize; give --shape H W')
        width, height = resize['scale']  # mmcv's scale is (w, h)
        shape = (height, width)
    if length is None:
        text = _pipeline_step(model, 'DecoupleAndTokenize')
        if text is None:
            raise ValueError('the test pipeline has no DecoupleAndTokenize; give --length L')
        length = text['max_length']
    height, width = (int(v) for v in shape)
    if height < 1 or width < 1 or int(length) < 2:
        raise ValueError(f'need H, W >= 1 and L >= 2, got {height}x{width}, L={length}')
    return height, width, int(length)


def example_inputs(model: nn.Module, batch: int, height: int, width: int, length: int,
                   seed: int = 0) -> Inputs:
    """Random normalised images and the text tensors of canned expressions.

    The text goes through the config's ``DecoupleAndTokenize`` (tokenizer,
    decoupling) with ``max_length=length``.
    """
    step = _pipeline_step(model, 'DecoupleAndTokenize')
    if step is None:
        raise ValueError('the test pipeline has no DecoupleAndTokenize')
    step['max_length'] = length
    tokenize = TRANSFORMS.build(step)
    texts = [tokenize(dict(expression=EXAMPLE_EXPRESSIONS[i % len(EXAMPLE_EXPRESSIONS)]))
             for i in range(batch)]
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (batch, 3, height, width), generator=generator).float()
    preprocessor = model.data_preprocessor
    img = (raw - preprocessor.mean.cpu()) / preprocessor.std.cpu()
    text = [torch.as_tensor(np.stack([t[key] for t in texts]), dtype=torch.long)
            for key in INPUT_NAMES[1:]]
    return (img, *text)


def export(model: nn.Module, path: str, inputs: Inputs, opset: Optional[int] = None) -> None:
    """Write the ONNX graph of :class:`TensorForward` with a dynamic batch axis."""
    wrapper = TensorForward(model).eval()
    batch = torch.export.Dim('batch', min=1, max=1024)
    dynamic_shapes = tuple({0: batch} for _ in INPUT_NAMES)
    with export_friendly(model), torch.no_grad():
        torch.onnx.export(wrapper, inputs, path, dynamo=True, dynamic_shapes=dynamic_shapes,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          opset_version=opset, external_data=False)


def torch_reference(model: nn.Module) -> Callable[[Inputs], np.ndarray]:
    """PyTorch logits of the unmodified model, as numpy."""
    def run(inputs: Inputs) -> np.ndarray:
        with torch.no_grad():
            return model.forward_tensors(*inputs).cpu().numpy()
    return run


def max_abs_differences(onnx_path: str, reference: Callable[[Inputs], np.ndarray],
                        checks: Dict[int, Inputs]) -> Dict[int, float]:
    """Largest ``|onnxruntime - reference|`` of the logits, per batch size."""
    session = onnx_session(onnx_path)
    differences = {}
    for batch, inputs in checks.items():
        feed = {name: tensor.cpu().numpy() for name, tensor in zip(INPUT_NAMES, inputs)}
        (logits,) = session.run(list(OUTPUT_NAMES), feed)
        expected = reference(inputs)
        if logits.shape != expected.shape:
            raise ValueError(f'batch {batch}: onnxruntime gives {logits.shape}, PyTorch '
                             f'{expected.shape}')
        differences[batch] = float(np.abs(logits - expected).max())
    return differences


def check_and_commit(candidate: str, out: str, reference: Callable[[Inputs], np.ndarray],
                     checks: Dict[int, Inputs], atol: float,
                     keep_failed: bool = False) -> Tuple[bool, Dict[int, float]]:
    """Move ``candidate`` onto ``out`` if every difference is <= ``atol``.

    Otherwise ``out`` is left as it was and ``candidate`` is deleted (renamed
    to ``<out stem>.failed.onnx`` when ``keep_failed``).

    Returns:
        tuple: ``(passed, {batch: max abs difference})``.
    """
    try:
        differences = max_abs_differences(candidate, reference, checks)
    except Exception:
        os.remove(candidate)
        raise
    passed = all(np.isfinite(d) and d <= atol for d in differences.values())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(candidate, 0o666 & ~umask)  # mkstemp made it private
    if passed:
        os.replace(candidate, out)
    elif keep_failed:
        os.replace(candidate, osp.splitext(out)[0] + '.failed.onnx')
    else:
        os.remove(candidate)
    return passed, differences


def export_and_check(model: nn.Module, out: str, shape: Optional[Sequence[int]] = None,
                     length: Optional[int] = None, opset: Optional[int] = None,
                     atol: float = 1e-3, keep_failed: bool = False) -> dict:
    """Export ``model`` to ``out`` (``.onnx``), check it, and commit it only if it passes.

    Args:
        model: A model from :func:`~fianet_mmseg.apis.init_model` on the CPU.
        out: The ONNX file to write.
        shape: ``(H, W)`` of the input; None: the test pipeline's ``Resize`` scale.
        length: Token length L; None: ``DecoupleAndTokenize``'s ``max_length``.
        opset: The ONNX opset asked for (None: the exporter's).
        atol: Largest accepted ``|onnxruntime - PyTorch|`` logit difference.
        keep_failed: Keep a rejected model as ``<out stem>.failed.onnx``.

    Returns:
        dict: ``height``, ``width``, ``length``, ``seconds`` (the export),
        ``passed``, ``differences`` (``{batch: max abs difference}``) and
        ``opset`` (the opset written; None when the check failed).
    """
    if not out.endswith('.onnx'):
        raise ValueError(f'OUT must end with .onnx, got {out}')
    height, width, length = input_geometry(model, shape, length)
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    handle, candidate = tempfile.mkstemp(suffix='.onnx', prefix='.export-', dir=out_dir)
    os.close(handle)
    start = time.perf_counter()
    try:
        export(model, candidate, example_inputs(model, EXPORT_BATCH, height, width, length),
               opset)
    except BaseException:
        os.remove(candidate)
        raise
    seconds = time.perf_counter() - start
    checks = {batch: example_inputs(model, batch, height, width, length, seed=batch)
              for batch in CHECK_BATCHES}
    passed, differences = check_and_commit(candidate, out, torch_reference(model), checks,
                                           atol, keep_failed)
    written = None
    if passed:
        import onnx

        written = next((o.version for o in onnx.load(out, load_external_data=False).opset_import
                        if o.domain in ('', 'ai.onnx')), None)
    return dict(height=height, width=width, length=length, seconds=seconds, passed=passed,
                differences=differences, opset=written)
