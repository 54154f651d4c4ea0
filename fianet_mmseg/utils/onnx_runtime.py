"""Inference through ONNX Runtime: the exported graph in place of the model's tensor forward.

``tools/deployment/export_onnx.py`` writes ``FIANet.forward_tensors`` (normalised
image and the four text tensors -> logits at the input size) as an ONNX file.
:func:`use_onnxruntime` makes a model from ``init_model`` compute
``encode_decode`` with an ``onnxruntime.InferenceSession`` of that file; the
data preprocessor, the text pipeline and the post-processing (masks at the
image's size) stay PyTorch's, so ``inference_model``, the demos, the whole-scene
path and ``tools/test.py`` work unchanged. The answers are float32's: the export
tool keeps a file only when onnxruntime matches PyTorch (max |logit difference|
<= 1e-3; 1.1e-6 measured on Swin-B). On a 2-core AMD EPYC a Swin-B inference at
480x480 ran 1.47x faster than PyTorch's (docs/benchmarks.md): onnxruntime's
float32 matrix products reach twice the rate of the MKL ones torch uses there.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

#: The graph's inputs, in the order of ``FIANet.forward_tensors``, and its output.
INPUT_NAMES = ('img', 'input_ids', 'attention_mask', 'object_mask', 'position_mask')
OUTPUT_NAMES = ('logits',)
#: The attribute naming the backend a model infers with.
BACKEND_ATTR = 'inference_backend'


def onnx_session(onnx_file: str, threads: Optional[int] = None):
    """An ``onnxruntime.InferenceSession`` of ``onnx_file`` on the CPU, with ``threads``
    intra-op threads (default: torch's)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError('inference with an ONNX file needs onnxruntime: pip install '
                          'onnxruntime (or "fianet-mmseg[onnx]")') from err
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return onnxruntime.InferenceSession(onnx_file, options,
                                        providers=['CPUExecutionProvider'])


def use_onnxruntime(model: nn.Module, onnx_file: str, threads: Optional[int] = None
                    ) -> nn.Module:
    """Make ``model.encode_decode`` run the exported graph (in place); returns ``model``.

    Args:
        model (nn.Module): A FIANet from ``init_model`` (on the CPU).
        onnx_file (str): Written by ``tools/deployment/export_onnx.py`` from
            the same weights (the graph holds them: the file decides the answers).
        threads (int, optional): onnxruntime's intra-op threads (default:
            torch's).

    Raises:
        FileNotFoundError: No such file.
        ValueError: A graph without the export's inputs, or (at inference)
            images or text of another size than the graph's fixed H, W and L.
    """
    if not osp.isfile(str(onnx_file)):
        raise FileNotFoundError(f'ONNX file {onnx_file} does not exist')
    model = getattr(model, 'module', model)
    session = onnx_session(str(onnx_file), threads)
    shapes = {node.name: node.shape for node in session.get_inputs()}
    if set(shapes) != set(INPUT_NAMES):
        raise ValueError(f'{onnx_file}: inputs {sorted(shapes)} are not those of '
                         f'tools/deployment/export_onnx.py ({", ".join(INPUT_NAMES)})')
    size, length = tuple(shapes['img'][2:]), shapes['input_ids'][1]

    def encode_decode(inputs: Tensor, batch_img_metas: List[dict],
                      text: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """Logits (B, 2, H, W) of the ONNX graph (``FIANet.encode_decode``'s contract)."""
        if text is None:
            raise ValueError('FIANet.encode_decode needs the text inputs')
        got_length = text['input_ids'].shape[1]
        if tuple(inputs.shape[2:]) != size or got_length != length or any(
                tuple(meta.get('img_shape', size))[:2] != size for meta in batch_img_metas):
            raise ValueError(f'{onnx_file} was exported for {size[0]}x{size[1]} images and '
                             f'{length} tokens, got {tuple(inputs.shape[2:])} and {got_length}:'
                             ' export it with the pipeline of this config')
        feeds = dict(img=inputs.detach().float().cpu().numpy())
        for name in INPUT_NAMES[1:]:
            feeds[name] = text[name].detach().long().cpu().numpy()
        logits = session.run(list(OUTPUT_NAMES), feeds)[0]
        return torch.from_numpy(logits).to(inputs.device)

    model.encode_decode = encode_decode
    setattr(model, BACKEND_ATTR, 'onnxruntime')
    return model
