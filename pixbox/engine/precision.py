"""Mixed precision: which autocast a run uses (:func:`resolve_amp`) and the layers kept out of it.

**What ``amp`` chooses.** ``"auto"`` autocasts where it is native and fast: float16 with a gradient scaler on
CUDA, bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX, :func:`cpu_bf16_supported`), float32
elsewhere. True forces autocast (bfloat16 on any CPU, emulated and slower where not native); False trains in
float32. The trainer prints the choice in one line.

**Convolutions kept in float32 on the CPU** (:class:`TinyConvGuard`). oneDNN's bfloat16 weight-gradient kernel
(``jit_bf16:avx512_core_bf16`` backward_weights, PyTorch 2.13 / oneDNN 3.12) returns wrong values for a strided
convolution whose output is one pixel high or wide: for a 3x3, stride-2 convolution of a 1x1 map the taps that
see only padding, whose gradient is 0, get garbage in 230 of 300 trials, and sometimes inf or NaN (measured here;
float32 is exact). SSD's extra layers meet such maps at small image sizes (``ssd_resnet18`` at 64 px stopped with
a NaN loss in 2 of 4 runs). Such layers cost nothing (their maps are tiny), so under bfloat16 autocast on the CPU
every ``Conv2d`` whose input is smaller than its kernel's reach, or whose output is one pixel high or wide with a
stride above 1, runs in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TinyConvGuard", "cpu_bf16_supported", "non_finite_tensors", "resolve_amp"]


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX); see the module docstring."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_amp(amp: bool | str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype of ``amp`` on ``device``, and one line saying what was chosen and why.

    Args:
        amp (bool or "auto"): ``"auto"``, True (forced) or False (float32); see the module docstring.
        device (torch.device): the training device.

    Returns:
        tuple: the autocast dtype (None for float32) and a line such as ``"precision: bfloat16 autocast (this CPU
        computes bfloat16 natively ...); --no-amp for float32"``.
    """
    if amp != "auto" and not isinstance(amp, bool):
        raise ValueError(f"amp must be 'auto', True or False, got {amp!r}")
    kind = device.type
    native = kind == "cuda" or (kind == "cpu" and cpu_bf16_supported())
    if amp is False:
        return None, f"precision: float32 ({'--no-amp' if native else 'amp off'})"
    if kind == "cuda":
        return torch.float16, "precision: float16 autocast with a gradient scaler (CUDA); --no-amp for float32"
    if kind == "cpu" and native:
        return torch.bfloat16, ("precision: bfloat16 autocast (this CPU computes bfloat16 natively: AVX512-BF16 "
                                "or AMX); --no-amp for float32")
    if kind == "cpu" and amp is True:
        return torch.bfloat16, ("precision: bfloat16 autocast, forced by --amp (this CPU has no native bfloat16: "
                                "emulated, slower than float32)")
    if kind == "cpu":
        return None, ("precision: float32 (this CPU has no native bfloat16, so autocast would be slower; "
                      "--amp forces it)")
    return None, f"precision: float32 (no autocast on {kind})"


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def is_tiny_conv(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether oneDNN's bfloat16 weight gradient of ``conv`` on ``x`` is (or may be) wrong; see the module docstring."""
    if x.dim() < 3:
        return False
    size = tuple(x.shape[-2:])
    kernel, stride, dilation = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    if isinstance(conv.padding, str):  # "same" keeps the size, "valid" pads nothing
        padding = (0, 0) if conv.padding == "valid" else None
    else:
        padding = _pair(conv.padding)
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(n < r for n, r in zip(size, reach)):
        return True
    if padding is None or max(stride) == 1:
        return False
    out = [(n + 2 * p - r) // s + 1 for n, p, r, s in zip(size, padding, reach, stride)]
    return min(out) <= 1


class TinyConvGuard:
    """Runs ``model``'s ``Conv2d`` layers that meet tiny maps (:func:`is_tiny_conv`) in float32 under CPU autocast.

    Each ``Conv2d`` is hooked: for a tiny call under CPU autocast, autocast is off (and the input made float32)
    until the call returns, even by raising; the next layer accepts the float32 output.

    Args:
        model (nn.Module): the model; its ``Conv2d`` submodules are hooked.

    Attributes:
        calls (int): layer calls run in float32 so far.
    """

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.calls = 0
        self._contexts: list = []
        self._handles = []
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                self._handles.append(module.register_forward_pre_hook(self._before))
                self._handles.append(module.register_forward_hook(self._after, always_call=True))

    def _before(self, module: nn.Conv2d, args):
        x = args[0] if args else None
        if not (isinstance(x, Tensor) and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and is_tiny_conv(module, x)):
            self._contexts.append(None)
            return None
        context = torch.autocast("cpu", enabled=False)
        context.__enter__()
        self._contexts.append(context)
        self.calls += 1
        return (x.to(module.weight.dtype),) + tuple(args[1:])

    def _after(self, module, args, output):
        context = self._contexts.pop() if self._contexts else None
        if context is not None:
            context.__exit__(None, None, None)
        return None

    def remove(self) -> None:
        """Removes the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def non_finite_tensors(model: nn.Module) -> list[str]:
    """The names of ``model``'s floating-point parameters and buffers holding NaN or infinity."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]
