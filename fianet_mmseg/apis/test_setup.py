"""What ``tools/test.py`` sets up before ``Runner.test()``: outputs, overlays, tokenizers.

The tokenizers of the test pipeline are loaded before the model is built, so
that one that cannot be loaded (a hub name offline) is named at once with the
option that points it at a local directory, and one with more wordpieces than
the checkpoint's text encoder has embeddings is refused.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, Mapping, Optional

from mmengine.config import Config

from fianet_mmseg.text import load_tokenizer

#: The text encoder's (V, D) word embeddings in a checkpoint's state dict.
WORD_EMBEDDINGS = 'text_encoder.bert.embeddings.word_embeddings.weight'


def enable_visualization(cfg: Config, show: bool = False, show_dir: Optional[str] = None,
                         wait_time: float = 2.0) -> None:
    """Turn on the config's visualisation hook (``--show`` / ``--show-dir``).

    Raises:
        KeyError: The config has no ``default_hooks.visualization``.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError('--show/--show-dir need default_hooks.visualization in the config')
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        cfg.visualizer['save_dir'] = osp.join(cfg.work_dir, show_dir)


def set_refseg_output(cfg: Config, option: str, **outputs: str) -> None:
    """Set output arguments (``output_file``, ``output_dir``) of the config's RefSegMetric.

    Raises:
        KeyError: Naming ``option`` when ``test_evaluator`` has no RefSegMetric.
    """
    evaluators = cfg.test_evaluator
    evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
    metrics = [e for e in evaluators if e.get('type') == 'RefSegMetric']
    if not metrics:
        raise KeyError(f'{option} needs a RefSegMetric in test_evaluator')
    metrics[0].update(outputs)


def load_pipeline_tokenizers(cfg: Config, loader: str = 'test_dataloader') -> Dict[str, Any]:
    """Load the tokenizer of each ``DecoupleAndTokenize`` step of ``cfg[loader]``'s pipeline.

    Returns:
        dict: The config key of each step's ``tokenizer``
        (``test_dataloader.dataset.pipeline.3.tokenizer``) -> the tokenizer.

    Raises:
        OSError: Naming the key, the tokenizer and what to give instead.
    """
    dataset = (cfg.get(loader) or {}).get('dataset') or {}
    tokenizers = {}
    for index, step in enumerate(dataset.get('pipeline') or []):
        if str(step.get('type', '')).split('.')[-1] != 'DecoupleAndTokenize':
            continue
        key = f'{loader}.dataset.pipeline.{index}.tokenizer'
        try:
            tokenizers[key] = load_tokenizer(step['tokenizer'])
        except OSError as err:
            raise OSError(
                f'{key}={step["tokenizer"]!r}: cannot load the tokenizer ({err}). Without the '
                f'hub (HF_HUB_OFFLINE=1, no network) give a local directory holding the '
                f'vocabulary the model was trained with (vocab.txt alone is enough): '
                f'--cfg-options {key}=DIR') from err
    return tokenizers


def check_tokenizer_vocabulary(tokenizers: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Refuse a tokenizer with more wordpieces than the checkpoint's text encoder has embeddings.

    Its ids would index past the embeddings: it is another vocabulary than the
    model's. A checkpoint without BERT word embeddings is not checked.

    Args:
        tokenizers (dict): From :func:`load_pipeline_tokenizers`.
        state (dict): The checkpoint's state dict.

    Raises:
        ValueError: Naming the config key and both sizes.
    """
    embeddings = state.get(WORD_EMBEDDINGS)
    if embeddings is None:
        return
    size = embeddings.shape[0]
    for key, tokenizer in tokenizers.items():
        if len(tokenizer) > size:
            raise ValueError(f'{key}: the tokenizer has {len(tokenizer)} wordpieces, the '
                             f"checkpoint's text encoder only {size} embeddings: it is not the "
                             'vocabulary the model was trained with; give that one')
