"""HuggingFace BERT as FIANet's text encoder."""
from __future__ import annotations

from typing import List, Optional, Sequence

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
        batched_views (bool): Encode all views in one call on a batch of
            ``num_views * B`` instead of one call per view (same result).
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

    @property
    def width(self) -> int:
        """Hidden width ``D`` of the word features."""
        return self.bert.config.hidden_size

    def init_weights(self) -> None:
        """Keep the loaded weights (mmengine must not re-initialise BERT)."""
        self._is_init = True

    def forward(self, input_ids: Tensor, masks: List[Tensor]) -> List[Tensor]:
        """Encode ``input_ids`` once per mask; returns (B, L, D) per mask."""
        if self.batched_views:
            batch = input_ids.shape[0]
            ids = input_ids.repeat(len(masks), 1)
            hidden = self.bert(input_ids=ids, attention_mask=torch.cat(masks)).last_hidden_state
            return list(hidden.split(batch))
        return [self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
                for mask in masks]
