"""A training loop whose next batch is copied to the device while the current step runs."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmengine.structures import BaseDataElement
from mmseg.registry import LOOPS


def _device_tensors(data: Any) -> Iterator[torch.Tensor]:
    """Every tensor of a batch: in dicts, lists, tuples and data elements (nested)."""
    if isinstance(data, torch.Tensor):
        yield data
    elif isinstance(data, (BaseDataElement, dict)):
        for value in data.values():
            yield from _device_tensors(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from _device_tensors(value)


class DevicePrefetcher:
    """Iterate a data loader one batch ahead, with the next batch already on its way.

    Before batch k is handed out, batch k+1 is taken from the loader and its
    host-to-device copy issued (``cast``: the data preprocessor's
    ``cast_data``, non-blocking from the loader's pinned memory). On CUDA the
    copy runs on a side stream; the current stream waits for that copy only
    (a CUDA event) when the batch is handed out, and the copied tensors are
    marked as used by the current stream (``record_stream``) so that the
    allocator does not hand their memory to the next copy too early. Elsewhere
    the copy is an ordinary ``cast`` (a no-op to the CPU): the same batches in
    the same order, fetched one step earlier.

    Args:
        loader (Iterable): The data loader (an iterator is created per ``iter``).
        cast (Callable): Moves a batch to the device (nested dicts, lists, tensors,
            data elements).
        device (torch.device): The device ``cast`` copies to.
    """

    def __init__(self, loader: Iterable, cast: Callable[[Any], Any],
                 device: torch.device) -> None:
        self.loader = loader
        self.cast = cast
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        stream = torch.cuda.Stream(self.device) if self.device.type == 'cuda' else None
        batches = iter(self.loader)
        ahead = self._issue(batches, stream)
        while ahead is not None:
            current = ahead
            ahead = self._issue(batches, stream)  # overlaps the step of `current`
            yield self._ready(current, stream)

    def _issue(self, batches: Iterator, stream: Optional[torch.cuda.Stream]
               ) -> Optional[Tuple[Any, Any]]:
        """The next batch with its copy issued, and the event marking the copy's end."""
        try:
            batch = next(batches)
        except StopIteration:
            return None
        if stream is None:
            return self.cast(batch), None
        with torch.cuda.stream(stream):
            moved = self.cast(batch)
            copied = torch.cuda.Event()
            copied.record(stream)
        return moved, copied

    def _ready(self, issued: Tuple[Any, Any], stream: Optional[torch.cuda.Stream]) -> Any:
        batch, copied = issued
        if stream is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(copied)
            for tensor in _device_tensors(batch):
                if tensor.device.type == 'cuda':
                    tensor.record_stream(current)
        return batch


@LOOPS.register_module()
class PrefetchingEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` fed by a :class:`DevicePrefetcher`.

    The same epochs, batches (order, ``drop_last``), hooks and resumption as
    the parent; only the iteration over the data loader differs: each
    batch's copy to the model's device is issued while the previous step runs
    (with ``pin_memory=True`` and ``collate_fn=dict(type='refseg_collate')``
    the copies come from pinned memory). The data preprocessor then finds its
    batch on the device. Config: ``train_cfg = dict(type='PrefetchingEpochBasedTrainLoop',
    ...)`` (the same arguments).
    """

    def prefetched(self) -> DevicePrefetcher:
        """The epoch's batches through the model's data preprocessor's ``cast_data``."""
        model = self.runner.model
        if is_model_wrapper(model):
            model = model.module
        preprocessor = model.data_preprocessor
        return DevicePrefetcher(self.dataloader, preprocessor.cast_data, preprocessor.device)

    def run_epoch(self) -> None:
        """Iterate one epoch (the parent's, over :meth:`prefetched`)."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self.prefetched()):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
