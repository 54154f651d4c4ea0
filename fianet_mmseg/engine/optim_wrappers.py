"""An optimizer wrapper that runs the forward under ``torch.autocast`` on any device."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS
from torch import nn

_DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """bfloat16 mixed precision without loss scaling, on CPU as well as GPU.

    mmengine's ``AmpOptimWrapper`` refuses to start without an accelerator.
    This wrapper enters ``torch.autocast(device_type, dtype=bfloat16)`` in
    :meth:`optim_context` (where ``BaseModel.train_step`` runs the data
    preprocessor, the forward and the losses); backward and the optimizer step
    stay in float32 on float32 parameters. bfloat16 has float32's exponent
    range, so no loss scaling is needed. For float16 on a GPU use mmengine's
    ``AmpOptimWrapper`` (dynamic loss scaling).

    Args:
        dtype (str | torch.dtype): ``'bfloat16'`` (the only choice).
        device_type (str | None): Autocast device type (``'cpu'``,
            ``'cuda'``...). None: the device of the model's first parameter.
        **kwargs: :class:`OptimWrapper` arguments (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).

    Example:
        ``optim_wrapper = dict(type='AutocastOptimWrapper', optimizer=...)``
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16',
                 device_type: Optional[str] = None, **kwargs) -> None:
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f'AutocastOptimWrapper: dtype must be bfloat16, got {dtype!r} '
                                 "(float16 needs loss scaling: use 'AmpOptimWrapper')")
            dtype = _DTYPES[dtype]
        if dtype != torch.bfloat16:
            raise ValueError(f'AutocastOptimWrapper: dtype must be bfloat16, got {dtype} '
                             "(float16 needs loss scaling: use 'AmpOptimWrapper')")
        super().__init__(**kwargs)
        self.cast_dtype = dtype
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (gradient accumulation) plus autocast."""
        device_type = self.device_type
        if device_type is None:
            param = next(model.parameters(), None)
            device_type = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device_type, dtype=self.cast_dtype):
            yield
