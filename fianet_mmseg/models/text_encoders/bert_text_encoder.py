"""HuggingFace BERT as FIANet's text encoder."""
from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ...utils import resolve_pretrained


@MODELS.register_module()
class BertTextEncoder(BaseModule):
    """A ``transformers.BertModel`` (no pooler) that encodes several masked views.

    FIANet reads the same wordpieces three times, each time with a different
    attention mask (whole expression, object phrase, position phrases), and
    keeps ``last_hidden_state``.

    Args:
        name_or_path (str | None): Hub name, local directory or
            ``package://<module>/<dir>`` (see
            :func:`fianet_mmseg.utils.resolve_pretrained`) for
            ``BertModel.from_pretrained``. None: build a randomly initialised
            model from ``bert_config``.
        bert_config (dict | None): ``transformers.BertConfig`` arguments,
            used when ``name_or_path`` is None.
        trainable_layers (Sequence[int] | None): Encoder layers that train.
            Reference: layers 0-9 of bert-base-uncased (the embeddings and
            layers 10-11 stay as loaded). None: every layer trains. Indices
            beyond the model's depth are ignored (a 6-layer encoder trains
            all its layers with the default).
        train_embeddings (bool): Whether the embeddings train. Default: False.
            When neither the embeddings nor any layer trains, the encoder
            stays in eval mode during training (no dropout on a frozen
            feature extractor). The reference always trains bert-base with
            some layers trainable, so its dropout stays on everywhere, frozen
            layers included; that case is kept as it is.
        batched_views (bool): Encode all views in one call on a batch of
            ``num_views * B`` instead of one call per view (same result).
        compact_views (bool): Encode only the words of each view: they are
            gathered to the front of the row (keeping their position ids)
            and the row is cut to the longest view in the batch. The features
            of the view's words are the same as without compaction (a word
            attends only to the view's words either way); the features
            outside each mask are zero instead of BERT's values there, which
            FIANet never reads (its pixel-word attentions zero the masked
            words). Not applied under tracing / compilation (the width is
            data-dependent). Default: True.
        feature_cache_mb (float): Size bound (MiB) of a cache of word
            features, used only while the encoder cannot change: no BERT
            parameter requires grad and BERT is in eval mode (the frozen
            encoder of the CPU demo). Each view of each expression (its words
            and their positions) is then encoded once; later batches take its
            features from the cache (least recently used entries go first when
            the bound is reached). The features are those of
            ``compact_views``: the view's words as encoded alone, zero
            elsewhere. The cache is cleared when weights are loaded or the
            module is moved / cast; it is off under tracing. 0: no cache.
            Default: 256.
        init_cfg: Unused; the weights come from ``name_or_path``.

    Shapes:
        input_ids (B, L) and masks [(B, L), ...] -> [(B, L, D), ...].
    """

    def __init__(self,
                 name_or_path: Optional[str] = 'bert-base-uncased',
                 bert_config: Optional[dict] = None,
                 trainable_layers: Optional[Sequence[int]] = tuple(range(10)),
                 train_embeddings: bool = False,
                 batched_views: bool = True,
                 compact_views: bool = True,
                 feature_cache_mb: float = 256.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import BertConfig, BertModel

        if name_or_path is None:
            if bert_config is None:
                raise ValueError('BertTextEncoder: give name_or_path or bert_config')
            self.bert = BertModel(BertConfig(**bert_config), add_pooling_layer=False)
        else:
            try:
                self.bert = BertModel.from_pretrained(resolve_pretrained(name_or_path),
                                                      add_pooling_layer=False)
            except OSError as err:
                raise OSError(
                    f'BertTextEncoder: cannot load text encoder {name_or_path!r} ({err}). '
                    'Give a local directory with config.json and weights, or set '
                    'name_or_path=None with bert_config for a randomly initialised '
                    'encoder.') from err
        self.batched_views = batched_views
        self.compact_views = compact_views
        if feature_cache_mb < 0:
            raise ValueError(f'BertTextEncoder: feature_cache_mb must be >= 0, '
                             f'got {feature_cache_mb}')
        self.feature_cache = _FeatureCache(int(feature_cache_mb * 2**20))
        num_layers = self.bert.config.num_hidden_layers
        if trainable_layers is None:
            trainable_layers = range(num_layers)
        if any(i < 0 for i in trainable_layers):
            raise ValueError(f'BertTextEncoder: trainable_layers must be >= 0, '
                             f'got {list(trainable_layers)}')
        self.trainable_layers = sorted({i for i in trainable_layers if i < num_layers})
        self.bert.embeddings.requires_grad_(train_embeddings)
        for index, layer in enumerate(self.bert.encoder.layer):
            layer.requires_grad_(index in self.trainable_layers)
        self.frozen = not (train_embeddings or self.trainable_layers)

    def train(self, mode: bool = True) -> BertTextEncoder:
        """Set train / eval mode; a fully frozen encoder always evaluates."""
        super().train(mode)
        if self.frozen:
            self.bert.eval()
        return self

    @property
    def width(self) -> int:
        """Hidden width ``D`` of the word features."""
        return self.bert.config.hidden_size

    def init_weights(self) -> None:
        """Keep the loaded weights (mmengine must not re-initialise BERT)."""
        self._is_init = True

    def get_extra_state(self) -> Tensor:
        """The encoder's architecture, saved in checkpoints: (N,) uint8, UTF-8 JSON.

        ``{"bert_config": BertConfig.to_dict()}`` travels in the state dict as
        ``text_encoder._extra_state``, so a checkpoint of this project says which
        BERT it holds: :func:`~fianet_mmseg.apis.init_model` rebuilds the encoder
        from it without fetching ``name_or_path`` from a hub. It is a tensor
        (not a dict) because mmengine broadcasts every state-dict entry as one
        in distributed runs.
        """
        return encode_architecture(self.bert.config)

    def set_extra_state(self, state: Tensor) -> None:
        """Check that a checkpoint's encoder has this encoder's architecture."""
        stored = decode_architecture(state).get('bert_config') or {}
        own = self.bert.config.to_dict()
        keys = ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
                'vocab_size')
        different = {k: (stored[k], own[k]) for k in keys if k in stored and stored[k] != own[k]}
        if different:
            raise ValueError(f'BertTextEncoder: the checkpoint holds another text encoder '
                             f'architecture (checkpoint, model): {different}')

    def caching(self) -> bool:
        """Whether :meth:`forward` uses the feature cache (see ``feature_cache_mb``)."""
        return (self.feature_cache.max_bytes > 0 and not self.bert.training
                and not _tracing()
                and not any(p.requires_grad for p in self.bert.parameters()))

    def _apply(self, fn, *args, **kwargs):
        self.feature_cache.clear()  # .to() / .double() / .cuda(): other features
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.feature_cache.clear()  # other weights
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, input_ids: Tensor, masks: List[Tensor]) -> List[Tensor]:
        """Encode ``input_ids`` once per mask; returns (B, L, D) per mask."""
        if self.caching():
            return self._forward_cached(input_ids, masks)
        if self.compact_views and not _tracing():
            return self._forward_compact(input_ids, masks)
        if self.batched_views:
            batch = input_ids.shape[0]
            ids = input_ids.repeat(len(masks), 1)
            hidden = self.bert(input_ids=ids, attention_mask=torch.cat(masks)).last_hidden_state
            return list(hidden.split(batch))
        return [self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
                for mask in masks]

    def _forward_compact(self, input_ids: Tensor, masks: List[Tensor]) -> List[Tensor]:
        """Encode only each view's words (see ``compact_views``)."""
        views = [_PackedView.pack(input_ids, mask) for mask in masks]
        if self.batched_views:
            width = max(view.width for view in views)
            views = [view.widen(width) for view in views]
            hidden = self.bert(input_ids=torch.cat([v.input_ids for v in views]),
                               attention_mask=torch.cat([v.attention_mask for v in views]),
                               position_ids=torch.cat([v.position_ids for v in views]))
            hidden = hidden.last_hidden_state.split(input_ids.shape[0])
        else:
            hidden = [self.bert(input_ids=v.input_ids, attention_mask=v.attention_mask,
                                position_ids=v.position_ids).last_hidden_state for v in views]
        length = input_ids.shape[1]
        return [view.unpack(feats, length) for view, feats in zip(views, hidden)]

    def _forward_cached(self, input_ids: Tensor, masks: List[Tensor]) -> List[Tensor]:
        """The compact views' features, each (view words, positions) encoded once."""
        batch, length = input_ids.shape
        device = input_ids.device
        autocast = (torch.is_autocast_enabled(device.type)
                    and torch.get_autocast_dtype(device.type))
        ids_rows, mask_rows = input_ids.tolist(), [m.bool().tolist() for m in masks]
        slots, keys = [], []  # (view, row, position) of every word; the key of its view
        for view, rows in enumerate(mask_rows):
            for row, keep in enumerate(rows):
                positions = tuple(i for i, k in enumerate(keep) if k)
                if not positions:
                    continue  # a view without words: zero features (as compact_views)
                keys.append((autocast, tuple(ids_rows[row][i] for i in positions), positions))
                slots += [(view, row, i) for i in positions]
        distinct = list(dict.fromkeys(keys))
        found = {key: self.feature_cache.get(key) for key in distinct
                 if key in self.feature_cache}
        missing = [key for key in distinct if key not in found]
        if missing:
            encoded = self._encode_words(missing, device)
            found.update(zip(missing, encoded))
            self.feature_cache.add(missing, encoded)
        if not keys:
            dtype = self.bert.get_input_embeddings().weight.dtype
            return [input_ids.new_zeros(batch, length, self.width, dtype=dtype) for _ in masks]
        feats = torch.cat([found[key] for key in keys])
        out = feats.new_zeros(len(masks), batch, length, self.width)
        out.index_put_(torch.tensor(slots, device=device).unbind(1), feats)
        return list(out.unbind(0))

    def _encode_words(self, keys: List[tuple], device: torch.device) -> List[Tensor]:
        """(word ids, positions) per view -> (n, D) features each, in one BERT call."""
        width = max(len(places) for _, _, places in keys)
        # normal (not inference-mode) tensors: the features may later feed a training step
        with torch.inference_mode(False), torch.no_grad():
            rows = [(list(words) + [0] * (width - len(words)),
                     list(places) + [0] * (width - len(places)),
                     [1] * len(words) + [0] * (width - len(words)))
                    for _, words, places in keys]
            ids, positions, attention = torch.tensor(rows, device=device).unbind(1)
            hidden = self.bert(input_ids=ids, attention_mask=attention,
                               position_ids=positions).last_hidden_state
            return [hidden[row, :len(places)].clone()
                    for row, (_, _, places) in enumerate(keys)]


class _FeatureCache:
    """Least-recently-used store of (n, D) word features, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Tuple, Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def __contains__(self, key: Tuple) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: Tuple) -> Tensor:
        self.entries.move_to_end(key)
        self.hits += 1
        return self.entries[key]

    def add(self, keys: List[Tuple], values: List[Tensor]) -> None:
        """Store new entries, then drop the least recently used beyond the bound."""
        self.misses += len(keys)
        for key, value in zip(keys, values):
            self.entries[key] = value
            self.bytes += value.numel() * value.element_size()
        while self.bytes > self.max_bytes and self.entries:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def stats(self) -> Dict[str, int]:
        return dict(entries=len(self.entries), bytes=self.bytes, hits=self.hits,
                    misses=self.misses)


def encode_architecture(bert_config: Any) -> Tensor:
    """What :meth:`BertTextEncoder.get_extra_state` stores for a BERT architecture.

    Args:
        bert_config (transformers.BertConfig | dict): The architecture, or
            ``BertConfig`` arguments.

    Returns:
        Tensor: (N,) uint8, the UTF-8 JSON ``{"bert_config": BertConfig.to_dict()}``.
    """
    if isinstance(bert_config, dict):
        from transformers import BertConfig

        bert_config = BertConfig(**bert_config)
    text = json.dumps({'bert_config': bert_config.to_dict()}, sort_keys=True)
    return torch.tensor(list(text.encode('utf-8')), dtype=torch.uint8)


def decode_architecture(state: Any) -> dict:
    """The dict stored by :meth:`BertTextEncoder.get_extra_state` ({} if unreadable)."""
    if isinstance(state, Tensor) and state.dtype == torch.uint8 and state.dim() == 1:
        try:
            decoded = json.loads(bytes(state.tolist()).decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class _PackedView(NamedTuple):
    """One view's words moved to the front of each row.

    ``order`` (B, W) holds the original positions of the packed slots (the
    view's words first, in their order); ``valid`` (B, W) marks the slots that
    hold a word of the view.
    """

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    order: Tensor
    valid: Tensor

    @property
    def width(self) -> int:
        return self.order.shape[1]

    @classmethod
    def pack(cls, input_ids: Tensor, mask: Tensor) -> _PackedView:
        """Pack the words of ``mask`` (B, L) from ``input_ids`` (B, L)."""
        keep = mask.bool()
        counts = keep.sum(dim=1)
        width = max(int(counts.max()), 1)
        # stable sort: the view's positions first, each group in its original order
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :width]
        valid = torch.arange(width, device=order.device)[None] < counts[:, None]
        attention = valid.clone()
        attention[:, 0] = True  # a view without words still needs one key (no NaN rows)
        return cls(input_ids=torch.where(valid, input_ids.gather(1, order), 0),
                   attention_mask=attention.long(), position_ids=order, order=order,
                   valid=valid)

    def widen(self, width: int) -> _PackedView:
        """Append non-attended slots up to ``width`` (for one call on all views)."""
        extra = width - self.width
        if extra <= 0:
            return self
        pad = self.order.new_zeros(self.order.shape[0], extra)
        return self._replace(
            input_ids=torch.cat([self.input_ids, pad.to(self.input_ids.dtype)], dim=1),
            attention_mask=torch.cat([self.attention_mask, pad], dim=1),
            position_ids=torch.cat([self.position_ids, pad], dim=1))

    def unpack(self, hidden: Tensor, length: int) -> Tensor:
        """(B, W', D) features of the packed slots -> (B, L, D), zero off the view."""
        hidden = hidden[:, :self.width]
        hidden = torch.where(self.valid[..., None], hidden, 0)
        index = self.order[..., None].expand(-1, -1, hidden.shape[-1])
        out = hidden.new_zeros(hidden.shape[0], length, hidden.shape[-1])
        return out.scatter(1, index, hidden)
