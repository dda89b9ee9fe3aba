"""Counting the host-device synchronisations that code would make on a GPU, on any device.

On CUDA the host waits for the device whenever it needs a value computed there: a scalar read
(``.item()``, ``int(t)``, ``float(t)``, ``bool(t)``, ``if t:``: ``aten::_local_scalar_dense``), an
op whose output shape depends on the data (``nonzero``, ``masked_select``, boolean-mask indexing,
``unique``, ``repeat_interleave`` without ``output_size``, ``bincount``), a comparison answered on
the host (``torch.equal``, ``allclose``), a copy to the host (``.cpu()``, ``.to("cpu")``,
``.numpy()``, ``.tolist()``), or a blocking copy from host data to the device
(``torch.tensor(..., device=...)``, ``Tensor.new_tensor``). :class:`SyncCounter` counts these by
op name while some code runs, whatever the tensors' device, so the syncs of a GPU run can be
reviewed on a CPU.

It counts calls, not their cost, and it cannot know where a tensor would live: a scalar read of a
host-only tensor counts, while a ``.to(device)`` of a host tensor (a no-op on a CPU) and a
``.to(torch.device("cpu"))`` do not (only ``.to("cpu")`` spelt as a string does). Keep host-side
arithmetic in Python or NumPy and the counts are those of a GPU run. ``nonzero_static`` and
``repeat_interleave(..., output_size=n)`` need no sync and are not counted.

Example:
    >>> with SyncCounter() as syncs:
    ...     _ = int(torch.arange(4).sum()) + torch.arange(4).nonzero().numel()
    >>> syncs.counts
    {'aten::_local_scalar_dense': 1, 'aten::nonzero': 1}
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SyncCounter"]

_aten = torch.ops.aten
#: Dispatched ops that read device memory on the host, or whose output size depends on the data.
_ALWAYS = {
    _aten._local_scalar_dense.default, _aten.nonzero.default, _aten.masked_select.default,
    _aten._unique.default, _aten._unique2.default, _aten.unique_dim.default, _aten.unique_consecutive.default,
    _aten.bincount.default, _aten.equal.default, _aten.allclose.default,
}
_HOST_COPIES = {"cpu", "numpy", "tolist"}  # Tensor methods that copy to the host
_FROM_DATA = {"tensor", "as_tensor"}  # torch functions that copy Python data to a given device


_TORCH_DIR = os.path.dirname(torch.__file__)


def _site() -> str:
    """``file:line`` of the innermost caller outside torch and this module."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(_TORCH_DIR)
                                 or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno}"


class _Counts(Counter):
    """Counts by op name, and by ``(op, call site)`` when ``sites`` is a Counter."""

    sites: Counter | None = None

    def add(self, name: str) -> None:
        self[name] += 1
        if self.sites is not None:
            self.sites[(name, _site())] += 1


def _bool_index(indices) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


def _is_cpu(device) -> bool:
    return isinstance(device, str) and device.split(":")[0] == "cpu"


class _Dispatch(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Counting runs eagerly: no need to wrap __torch_dispatch__ for torch.compile, which would
        # import torch._dynamo (seconds) at the first op.
        return False

    def __init__(self, counts: _Counts) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if func in _ALWAYS:
            self.counts.add(f"aten::{packet.__name__}")
        elif packet is _aten.repeat_interleave and func is _aten.repeat_interleave.Tensor:
            if kwargs.get("output_size", args[1] if len(args) > 1 else None) is None:
                self.counts.add("aten::repeat_interleave")
        elif packet in (_aten.index, _aten.index_put, _aten.index_put_, _aten._index_put_impl_):
            if _bool_index(args[1]):  # a mask index runs nonzero
                self.counts.add(f"aten::{packet.__name__} (mask)")
        return func(*args, **kwargs)


class _Function(TorchFunctionMode):
    def __init__(self, counts: _Counts) -> None:
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _HOST_COPIES and getattr(torch.Tensor, name, None) is func:
            self.counts.add(f"Tensor.{name}")
        elif func is torch.Tensor.to and (_is_cpu(kwargs.get("device")) or any(_is_cpu(a) for a in args[1:])):
            self.counts.add("Tensor.to(cpu)")
        elif func is torch.Tensor.new_tensor or (
                name in _FROM_DATA and getattr(torch, name, None) is func and kwargs.get("device") is not None
                and not isinstance(args[0] if args else None, torch.Tensor)):
            self.counts.add(f"{'Tensor' if func is torch.Tensor.new_tensor else 'torch'}.{name} (to device)")
        return func(*args, **kwargs)


class SyncCounter:
    """Context manager counting the would-be host syncs (see the module docstring) by op name.

    Attributes:
        counts (dict[str, int]): syncs per op name, e.g. ``{"aten::nonzero": 3}``, sorted by name.
        total (int): their sum.
        sites (dict[tuple[str, str], int]): with ``sites=True``, syncs per ``(op name, file:line)``
            of the innermost caller outside torch (slower: it walks the stack at every sync).

    Args:
        sites (bool): also record where each sync comes from.

    Counts ops dispatched by this thread, autograd's backward included (run on the CPU, or with the
    modes propagated), and nothing when ``torch.compile`` traces.
    """

    def __init__(self, sites: bool = False) -> None:
        self._counts = _Counts()
        self._counts.sites = Counter() if sites else None
        self._modes: tuple = ()

    def __enter__(self) -> "SyncCounter":
        self._modes = (_Function(self._counts), _Dispatch(self._counts))
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        self._modes = ()

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    @property
    def sites(self) -> dict[tuple[str, str], int]:
        return dict(self._counts.sites.most_common()) if self._counts.sites is not None else {}
