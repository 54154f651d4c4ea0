"""Key conversion from the reference layouts to this project's modules.

Two layouts are handled:

* the official Swin release (``swin_base_patch4_window12_384_22k.pth``:
  ``layers.{i}.blocks.{j}.attn.qkv`` ...) to mmseg's Swin
  (``stages.{i}.blocks.{j}.attn.w_msa.qkv`` ...), including the channel order
  of patch merging, which mmseg computes with ``nn.Unfold``: done by mmseg's
  own converter (``convert_swin`` of its ``tools/model_converters/swin2mmseg.py``,
  which the installed package ships);
* the reference FIANet state dict (prefixes ``backbone.``, ``classifier.``,
  ``text_encoder.``) to :class:`~fianet_mmseg.models.FIANet`: the FIAM, TMEM,
  decoder and text encoder keys here, the Swin keys by mmseg's converter.
"""
from __future__ import annotations

import functools
import importlib.util
import os.path as osp
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .loading import TEXT_ENCODER_STATE, TEXT_WEIGHTS, encode_architecture

StateDict = Dict[str, Tensor]

#: The reference's text encoder. Its architecture (the hub's ``config.json``)
#: is ``transformers.BertConfig()`` with its defaults: known without a download.
REFERENCE_TEXT_ENCODER = 'bert-base-uncased'

# Official Swin entries that are not weights of a segmentation backbone:
# derived buffers, the classification head and the final norm.
_SWIN_NOT_WEIGHTS = re.compile(
    r'(^head\.|^norm\.|relative_position_index$|attn_mask$)')

# BERT's index buffers (0, 1, ... and zeros; older transformers versions saved them): derived.
_TEXT_NOT_WEIGHTS = re.compile(r'^text_encoder\.embeddings\.(position_ids|token_type_ids)$')

# Pixel-word attention ("SILA" in the reference).
_ATTN_RULES = [
    (r'\.f_query\.0\.', '.query_proj.'),
    (r'\.f_key\.0\.', '.key_proj.'),
    (r'\.f_value\.0\.', '.value_proj.'),
    (r'\.W\.0\.', '.out_proj.'),
]

_FIAM_RULES = [
    (r'^layers\.(\d+)\.fc1\.', r'fusions.\1.channel_gate.0.'),
    (r'^layers\.(\d+)\.fc2\.', r'fusions.\1.channel_gate.2.'),
    (r'^layers\.(\d+)\.context_pixel_attn\.vis_project\.0\.', r'fusions.\1.context.vis_proj.0.'),
    (r'^layers\.(\d+)\.context_pixel_attn\.image_lang_att\.', r'fusions.\1.context.attn.'),
    (r'^layers\.(\d+)\.context_pixel_attn\.project_mm\.0\.', r'fusions.\1.context.fuse_proj.0.'),
    (r'^layers\.(\d+)\.context_tanh_gate\.', r'fusions.\1.context_gate.gate.'),
    (r'^layers\.(\d+)\.object_position_align_blk\.go_cross_attn\.',
     r'fusions.\1.opab.object_attn.'),
    (r'^layers\.(\d+)\.object_position_align_blk\.go_tanh_gating\.',
     r'fusions.\1.opab.object_gate.gate.'),
    (r'^layers\.(\d+)\.object_position_align_blk\.sp_cross_attn\.',
     r'fusions.\1.opab.position_attn.'),
    (r'^layers\.(\d+)\.object_position_align_blk\.conv1\.', r'fusions.\1.opab.position_conv.'),
]
_FIAM_KEY = re.compile(r'^layers\.(\d+)\.(fc1|fc2|context_pixel_attn|context_tanh_gate|'
                       r'object_position_align_blk)\.')
# Defined by the reference but never used in its forward pass.
_FIAM_UNUSED = re.compile(r'\.go_embedding\.')

_TMEM_RULES = [
    (r'^down_channel\.', 'reduce.'),
    (r'^up_channel\.', 'expand.'),
    (r'^block\.(\d+)\.tma\.', r'blocks.\1.attn.'),
    (r'^block\.(\d+)\.ff\.net\.0\.', r'blocks.\1.ffn.0.'),
    (r'^block\.(\d+)\.ff\.net\.3\.', r'blocks.\1.ffn.2.'),
    (r'^block\.(\d+)\.(norm1|norm2)\.', r'blocks.\1.\2.'),
    (r'^fusion\.(\d+)\.local_embedding\.', r'scale_gates.\1.local_conv.'),
    (r'^fusion\.(\d+)\.bn1\.', r'scale_gates.\1.local_bn.'),
    (r'^fusion\.(\d+)\.global_embedding\.', r'scale_gates.\1.global_conv.'),
    (r'^fusion\.(\d+)\.bn2\.', r'scale_gates.\1.global_bn.'),
    (r'^fusion\.(\d+)\.global_act\.', r'scale_gates.\1.gate_conv.'),
    (r'^fusion\.(\d+)\.bn3\.', r'scale_gates.\1.gate_bn.'),
]

# The reference decoder: ``conv{1,2}_{4,3,2}`` / ``bn{1,2}_{4,3,2}`` fuse the
# deepest map with stage 3, then 2, then 1; ``conv1_1`` is the classifier.
_HEAD_RULES = [
    (r'^conv([12])_([432])\.', lambda m: f'fuse_blocks.{4 - int(m[2])}.{int(m[1]) - 1}.conv.'),
    (r'^bn([12])_([432])\.', lambda m: f'fuse_blocks.{4 - int(m[2])}.{int(m[1]) - 1}.bn.'),
    (r'^conv1_1\.', 'conv_seg.'),
]


def _apply(rules, key: str) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


@functools.cache
def mmseg_swin_converter() -> Callable[[StateDict], StateDict]:
    """``convert_swin`` of mmseg's ``tools/model_converters/swin2mmseg.py``.

    The installed mmseg ships its tools in ``mmseg/.mim/tools`` (where ``mim``
    runs them from); the script is not an importable module, so it is loaded
    from its file.

    Raises:
        ImportError: The installed mmseg does not ship the script.
    """
    import mmseg

    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'model_converters',
                    'swin2mmseg.py')
    if not osp.isfile(path):
        raise ImportError(f'mmseg\'s Swin converter {path} is missing: this mmseg installation '
                          'does not ship its tools (reinstall mmsegmentation with pip)')
    spec = importlib.util.spec_from_file_location('mmseg_swin2mmseg', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.convert_swin


def official_swin_to_mmseg(state: StateDict) -> Tuple[StateDict, List[str]]:
    """Convert an official Swin state dict to mmseg's Swin layout (mmseg's converter).

    Keys already in mmseg's layout pass through unchanged. Dropped before the
    conversion: the classification head, the final norm and the derived
    buffers (``relative_position_index``, ``attn_mask``), which a segmentation
    backbone does not load.

    Returns:
        tuple: The converted state dict and the keys dropped as non-weights.
    """
    if not any(key.startswith('layers.') for key in state):
        return dict(state), []
    dropped = [key for key in state if _SWIN_NOT_WEIGHTS.search(key)]
    weights = {key: value for key, value in state.items() if key not in dropped}
    return dict(mmseg_swin_converter()(weights)), dropped


def text_encoder_architecture(encoder_cfg: Optional[dict] = None) -> Any:
    """The BERT architecture (``transformers.BertConfig``) of a text encoder config.

    Args:
        encoder_cfg (dict | None): A config's ``model.text_encoder``
            (:class:`~fianet_mmseg.models.BertTextEncoder` arguments). None:
            the reference's bert-base-uncased.

    Returns:
        BertConfig: From ``bert_config`` when ``name_or_path`` is None;
        ``BertConfig()`` for bert-base-uncased (its defaults are that model's
        architecture, nothing is downloaded); else the ``config.json`` of the
        local directory / ``package://`` folder / cached hub model.

    Raises:
        OSError: The named encoder's ``config.json`` cannot be found.
    """
    from transformers import BertConfig

    from ..utils import resolve_pretrained

    encoder_cfg = dict(encoder_cfg or {})
    name = encoder_cfg.get('name_or_path', REFERENCE_TEXT_ENCODER)
    if name is None:
        return BertConfig(**dict(encoder_cfg.get('bert_config') or {}))
    if name in (REFERENCE_TEXT_ENCODER, 'google-bert/' + REFERENCE_TEXT_ENCODER):
        return BertConfig()
    try:
        return BertConfig.from_pretrained(resolve_pretrained(name))
    except OSError as err:
        raise OSError(f'cannot read the architecture (config.json) of text encoder {name!r}: '
                      f'{err}') from err


def check_text_encoder(state: StateDict, bert_config: Any) -> None:
    """Check that the ``text_encoder.bert.*`` tensors of ``state`` form a BERT of ``bert_config``.

    The number of attention heads cannot be checked (no tensor has its shape).

    Raises:
        ValueError: Naming missing, unexpected and differently shaped tensors
            and the architecture they were checked against.
    """
    from transformers import BertModel

    with torch.device('meta'):  # shapes only, no memory
        bert = BertModel(bert_config, add_pooling_layer=False)
    expected = {TEXT_WEIGHTS + k: tuple(v.shape) for k, v in bert.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if k.startswith(TEXT_WEIGHTS)}
    problems = []
    for name, keys in (
            ('missing', [k for k in expected if k not in found]),
            ('unexpected', [k for k in found if k not in expected]),
            ('differently shaped (found vs expected)',
             [f'{k} {found[k]} vs {v}' for k, v in expected.items()
              if k in found and found[k] != v])):
        if keys:
            problems.append(f'{len(keys)} {name} (e.g. {keys[:3]})')
    if problems:
        arch = {k: getattr(bert_config, k) for k in (
            'vocab_size', 'hidden_size', 'num_hidden_layers', 'intermediate_size',
            'max_position_embeddings')}
        raise ValueError(f'the text encoder weights do not fit the BERT architecture {arch}: '
                         + '; '.join(problems))


def official_fianet_to_mmseg(state: StateDict,
                             bert_config: Any = None) -> Tuple[StateDict, List[str]]:
    """Convert a reference FIANet state dict to :class:`FIANet`'s layout.

    Dropped (reported, not weights of the computation): derived buffers
    (Swin's index and mask buffers, BERT's ``position_ids`` /
    ``token_type_ids`` of older transformers versions), the reference's
    unused ``go_embedding`` layers, and the last stage's token update
    (channel gate, tanh gate, OPAB), whose result the reference discards.
    BatchNorm ``num_batches_tracked`` counters missing from the source are
    added as zeros.

    Args:
        state (dict): The reference's state dict (``module.`` prefixes allowed).
        bert_config (transformers.BertConfig | dict | None): The text
            encoder's architecture (see :func:`text_encoder_architecture`).
            Given, the text encoder's weights are checked against it
            (:func:`check_text_encoder`) and it is stored as
            ``text_encoder._extra_state``, as in the checkpoints this project
            writes: the result then loads with ``strict=True``. The weights
            cannot tell it (the number of attention heads is in no shape).

    Returns:
        tuple: The converted state dict and the dropped keys.
    """
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    unknown = [k for k in state
               if not k.startswith(('backbone.', 'classifier.', 'text_encoder.'))]
    if unknown:
        raise KeyError(f'not a reference FIANet state dict: unexpected keys {unknown[:5]} '
                       f'(expected prefixes backbone., classifier., text_encoder.)')
    stages = {int(m[1]) for k in state if (m := re.match(r'backbone\.layers\.(\d+)\.', k))}
    last_stage = max(stages) if stages else -1
    converted: StateDict = {}
    swin: StateDict = {}
    dropped: List[str] = []
    for key, value in state.items():
        if _TEXT_NOT_WEIGHTS.match(key):
            dropped.append(key)
        elif key.startswith('text_encoder.'):
            converted['text_encoder.bert.' + key[len('text_encoder.'):]] = value
        elif key.startswith('classifier.'):
            converted['decode_head.' + _apply(_HEAD_RULES, key[len('classifier.'):])] = value
        elif key.startswith('backbone.tmem.'):
            sub = _apply(_TMEM_RULES, key[len('backbone.tmem.'):])
            converted['neck.' + _apply(_ATTN_RULES, '.' + sub)[1:]] = value
        else:
            sub = key[len('backbone.'):]
            fiam = _FIAM_KEY.match(sub)
            if fiam is None:
                swin[sub] = value
            elif _FIAM_UNUSED.search(sub) or (int(fiam[1]) == last_stage
                                              and fiam[2] != 'context_pixel_attn'):
                dropped.append(key)
            else:
                new = _apply(_ATTN_RULES, '.' + _apply(_FIAM_RULES, sub))[1:]
                converted['backbone.' + new] = value
    swin, swin_dropped = official_swin_to_mmseg(swin)
    converted.update({'backbone.' + k: v for k, v in swin.items()})
    dropped += ['backbone.' + k for k in swin_dropped]
    for key in list(converted):
        if key.endswith('.running_mean'):
            counter = key[:-len('running_mean')] + 'num_batches_tracked'
            converted.setdefault(counter, torch.tensor(0, dtype=torch.long))
    if bert_config is not None:
        if isinstance(bert_config, dict):
            from transformers import BertConfig

            bert_config = BertConfig(**bert_config)
        check_text_encoder(converted, bert_config)
        converted[TEXT_ENCODER_STATE] = encode_architecture(bert_config)
    return converted, dropped
