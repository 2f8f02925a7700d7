"""Counting a model's cost: parameters and multiply-adds (GMACs), the one counter that
``vidzoo info``, the benchmarks and the tests use.

Multiply-adds of one forward pass are counted with :class:`torch.utils.flop_counter.FlopCounterMode`
(FLOPs / 2), which is what the ViViT, TimeSformer and VideoMAE papers call GFLOPs: matrix
multiplications, convolutions and attention; LayerNorm, softmax, GELU and adds are not counted (as
in fvcore). Kernels the counter does not list (the CPU flash-attention kernel and its backward,
oneDNN's fused linear) are given their formulas, so a count on CPU equals one on the meta device.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import flop_counter as fcm
from torch.utils._device import _device_constructors

__all__ = ["MetaInit", "count_params", "flop_counter", "count_flops", "count_gmacs"]


class MetaInit(TorchFunctionMode):
    """Build a model with parameters on the meta device (no memory, no init cost), except the small
    index tensors some constructors read back (``linspace`` / ``arange``), which stay on CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _device_constructors() and kwargs.get("device") is None \
                and func not in (torch.linspace, torch.arange):
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def _linear_pointwise_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """oneDNN linear (the CPU inference path): 2 * rows * in * out; the fused bias/GELU epilogue
    is not counted, as a separate bias add or GELU would not be."""
    rows = 1
    for d in x_shape[:-1]:
        rows *= d
    return 2 * rows * w_shape[0] * w_shape[1]


def _raw(formula: Callable[..., int]) -> Callable[..., int]:
    """torch's formulas are already shape-wrapped: pass them the raw call."""
    def f(*args, **kwargs):
        return formula(*args, **kwargs)
    f._get_raw = True
    return f


def _custom_mapping() -> dict:
    """FLOP formulas for kernels FlopCounterMode does not list (keys are op packets, as it looks up
    ``func._overloadpacket``)."""
    mapping = {}
    aten = torch.ops.aten
    fwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if fwd is not None and fwd not in fcm.flop_registry:
        mapping[fwd] = _raw(fcm.sdpa_flop)
    if bwd is not None and bwd not in fcm.flop_registry:
        mapping[bwd] = _raw(fcm.sdpa_backward_flop)
    lin = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if lin is not None:
        mapping[lin] = _linear_pointwise_flop
    return mapping


def flop_counter() -> fcm.FlopCounterMode:
    """A ``FlopCounterMode`` that also counts CPU flash attention and oneDNN linear (FLOPs)."""
    return fcm.FlopCounterMode(display=False, custom_mapping=_custom_mapping())


def count_flops(fn: Callable[[], Any]) -> tuple[int, dict[str, int]]:
    """Total FLOPs of ``fn()`` and the breakdown by op (forward and, if ``fn`` runs it, backward)."""
    counter = flop_counter()
    with counter:
        fn()
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def count_gmacs(model: nn.Module, input_size: tuple[int, ...] | None = None) -> float:
    """Multiply-adds (G) of one forward pass of a batch of 1, on the device the model is on (the
    meta device counts shapes only: no memory, no compute).

    Args:
        model: The model (put in eval mode).
        input_size: ``(C, T, H, W)``; default: ``model.pretrained_cfg['input_size']``.
    """
    size = tuple(input_size or model.pretrained_cfg["input_size"])
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        flops, _ = count_flops(lambda: model(torch.empty(1, *size, device=device)))
    return flops / 2e9
