"""HuggingFace BERT as FIANet's text encoder."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

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

    def forward(self, input_ids: Tensor, masks: List[Tensor]) -> List[Tensor]:
        """Encode ``input_ids`` once per mask; returns (B, L, D) per mask."""
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
