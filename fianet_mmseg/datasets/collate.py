"""Batching for a data loader that pins memory: data samples and stacked text tensors pinned too."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmengine.structures import BaseDataElement

from ..constants import TEXT_KEYS


def pin_data_element(element: BaseDataElement) -> BaseDataElement:
    """A copy of ``element`` whose tensors (nested elements' too) are in pinned memory.

    The metainfo and non-tensor fields are shared with ``element``, as
    ``BaseDataElement.to`` shares them.
    """
    pinned = element.new()
    for key, value in element.items():
        if isinstance(value, BaseDataElement):
            pinned.set_data({key: pin_data_element(value)})
        elif isinstance(value, torch.Tensor):
            pinned.set_data({key: value.pin_memory()})
    return pinned


class PinnableSamples(list):
    """The list of a batch's data samples, pinned by a ``DataLoader(pin_memory=True)``.

    torch's pin-memory thread pins what has a ``pin_memory()`` method and walks
    lists, dicts and tuples; mmengine's data elements have no such method, so
    in a plain list their masks and text tensors stay in pageable memory. This
    list pins each sample's tensors (:func:`pin_data_element`).
    """

    def pin_memory(self, device: Any = None) -> PinnableSamples:
        """The samples with their tensors in pinned memory."""
        return PinnableSamples(pin_data_element(sample) for sample in self)


@FUNCTIONS.register_module()
def refseg_collate(data_batch: Sequence[dict]) -> dict:
    """mmengine's ``pseudo_collate`` plus what a pinned, non-blocking copy needs.

    Returns ``pseudo_collate``'s dict (``inputs``: list of B (3, H, W) uint8
    tensors, ``data_samples``: the B samples, as :class:`PinnableSamples`) and,
    when the samples hold text fields, ``text``: their (B, L) int64 stacks
    (what ``RefSegDataPreProcessor`` would stack; stacked here, they are pinned
    and copied as four tensors). Config: ``collate_fn=dict(type='refseg_collate')``.
    """
    batch = pseudo_collate(data_batch)
    if not isinstance(batch, dict) or 'data_samples' not in batch:
        return batch
    samples = PinnableSamples(batch['data_samples'])
    batch['data_samples'] = samples
    if samples and all(key in samples[0] for key in TEXT_KEYS):
        batch['text'] = {key: torch.stack([sample.get(key) for sample in samples])
                         for key in TEXT_KEYS}
    return batch
