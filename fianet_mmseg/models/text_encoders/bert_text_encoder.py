"""HuggingFace BERT as FIANet's text encoder."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ...checkpoint import decode_architecture, encode_architecture
from ...utils import resolve_pretrained


@MODELS.register_module()
class BertTextEncoder(BaseModule):
    """A ``transformers.BertModel`` (no pooler) that encodes several masked views.

    FIANet reads the same wordpieces three times, each time with a different
    attention mask (whole expression, object phrase, position phrases), and
    keeps ``last_hidden_state``. All views go through BERT in one call on a
    batch of ``num_views * B`` rows, each row holding only its view's words:
    they are gathered to the front of the row (keeping their position ids)
    and the rows are cut to the longest view in the batch (under tracing /
    compilation they keep the full width ``L``, which is not data-dependent).
    The features of a view's words are the ones BERT computes with the view
    as attention mask (a word attends only to the view's words either way);
    the features outside each view are zero instead of BERT's values there,
    which FIANet never reads (its pixel-word attentions zero the masked
    words), also for a view without words.

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
        feature_cache_mb (float): Size bound (MiB) of a cache of word
            features, used only while the encoder cannot change: no BERT
            parameter requires grad and BERT is in eval mode (the frozen
            encoder of the CPU demo). Each view of each expression (its words
            and their positions) is then encoded once; later batches take its
            features from the cache (least recently used entries go first when
            the bound is reached). The cached features are the ones
            :meth:`forward` computes without the cache (up to rounding: the
            rows are padded differently). The cache is cleared
            when weights are loaded or the module is moved / cast; it is off
            under tracing. 0: no cache. Default: 256.
        init_cfg: Unused; the weights come from ``name_or_path``.

    Shapes:
        input_ids (B, L) and masks [(B, L), ...] -> [(B, L, D), ...].
    """

    def __init__(self,
                 name_or_path: Optional[str] = 'bert-base-uncased',
                 bert_config: Optional[dict] = None,
                 trainable_layers: Optional[Sequence[int]] = tuple(range(10)),
                 train_embeddings: bool = False,
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
        """Encode each view's words of ``input_ids`` (B, L); returns (B, L, D) per mask."""
        if self.caching():
            return self._forward_cached(input_ids, masks)
        num_views, length = len(masks), input_ids.shape[1]
        rows = _PackedWords.pack(input_ids.repeat(num_views, 1), torch.cat(masks),
                                 full_width=_tracing())
        hidden = self.bert(input_ids=rows.input_ids, attention_mask=rows.attention_mask,
                           position_ids=rows.position_ids).last_hidden_state
        feats = rows.unpack(hidden, length)  # (num_views * B, L, D)
        return list(feats.unflatten(0, (num_views, -1)).unbind(0))

    def _forward_cached(self, input_ids: Tensor, masks: List[Tensor]) -> List[Tensor]:
        """:meth:`forward`'s features, each (view words, positions) encoded once."""
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
                    continue  # a view without words: zero features (as without the cache)
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


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class _PackedWords(NamedTuple):
    """The words of each row's view moved to the front of the row.

    ``order`` (N, W) holds the original positions of the packed slots (the
    view's words first, in their order, then the other positions); ``valid``
    (N, W) marks the slots that hold a word of the view.
    """

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    order: Tensor
    valid: Tensor

    @classmethod
    def pack(cls, input_ids: Tensor, mask: Tensor, full_width: bool = False) -> _PackedWords:
        """Pack the words of ``mask`` (N, L) from ``input_ids`` (N, L).

        The packed width W is the longest view's word count (at least 1), or
        L with ``full_width`` (no data-dependent shape, for tracing).
        """
        keep = mask.bool()
        length = keep.shape[1]
        counts = keep.sum(dim=1, keepdim=True)
        # the slot of every position: the view's words first, then the others, in order
        slot = torch.where(keep, keep.cumsum(dim=1) - 1, counts + (~keep).cumsum(dim=1) - 1)
        positions = torch.arange(length, device=keep.device).expand_as(slot)
        order = torch.zeros_like(slot).scatter(1, slot, positions)
        width = length if full_width else max(int(counts.max()), 1)
        order = order[:, :width]
        slots = torch.arange(width, device=keep.device)[None]
        valid = slots < counts
        # a view without words still needs one key (no NaN rows)
        attention = valid | (slots == 0)
        return cls(input_ids=torch.where(valid, input_ids.gather(1, order), 0),
                   attention_mask=attention.long(), position_ids=order, order=order,
                   valid=valid)

    def unpack(self, hidden: Tensor, length: int) -> Tensor:
        """(N, W, D) features of the packed slots -> (N, L, D), zero off the view."""
        hidden = torch.where(self.valid[..., None], hidden, 0)
        index = self.order[..., None].expand(-1, -1, hidden.shape[-1])
        out = hidden.new_zeros(hidden.shape[0], length, hidden.shape[-1])
        return out.scatter(1, index, hidden)
