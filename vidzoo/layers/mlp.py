"""Memory-lean GELU -> linear for the transformer MLP.

Autograd keeps two copies of the MLP's hidden activation: fc1's output (GELU's backward needs it)
and GELU's output (fc2's backward needs it). Both are ``tokens x 4 * width``, the largest tensors
a ViT block saves: 2 x 18.4 MB per TimeSformer-B block and clip, a third of what the block keeps
for backward. :class:`GeluLinear` saves only fc1's output and recomputes GELU in the backward
pass (one element-wise op, under 0.5% of a training step), so the block keeps one copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_USE_GELU_RECOMPUTE = True


def set_gelu_recompute(enable: bool = True) -> None:
    """Recompute GELU in the backward pass instead of saving its output (default True).

    Gradients are the same either way (tested to fp32 rounding); False restores autograd's
    default graph, e.g. to compare memory.
    """
    global _USE_GELU_RECOMPUTE
    _USE_GELU_RECOMPUTE = bool(enable)


def gelu_approximate(act: nn.Module | None) -> str | None:
    """``approximate`` of a GELU module ('none' or 'tanh'; torch's or timm's), else None."""
    if isinstance(act, nn.GELU):
        return act.approximate
    if act is not None and type(act).__module__.startswith("timm."):
        return {"GELU": "none", "GELUTanh": "tanh"}.get(type(act).__name__)
    return None


class GeluLinear(torch.autograd.Function):
    """``F.linear(F.gelu(h), weight, bias)`` that saves ``h`` but not ``gelu(h)``.

    Under autocast the product runs in the autocast dtype as ``F.linear`` would; the backward
    recomputes GELU and casts it to that same dtype, so gradients match the plain graph's.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                approximate: str) -> torch.Tensor:
        out = F.linear(F.gelu(h, approximate=approximate), weight, bias)
        ctx.approximate = approximate
        ctx.compute_dtype = out.dtype  # the autocast dtype if autocast cast the product
        ctx.has_bias = bias is not None
        ctx.save_for_backward(h, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        h, weight = ctx.saved_tensors
        dt = ctx.compute_dtype
        a = F.gelu(h, approximate=ctx.approximate).to(dt)
        g = grad_out.to(dt)
        grad_h = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = g @ weight.to(dt)
            grad_h = torch.ops.aten.gelu_backward(grad_a.to(h.dtype), h, approximate=ctx.approximate)
        if ctx.needs_input_grad[1]:
            grad_w = (g.reshape(-1, g.shape[-1]).t() @ a.reshape(-1, a.shape[-1])).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.reshape(-1, g.shape[-1]).sum(0).to(weight.dtype)
        return grad_h, grad_w, grad_b, None


def records_grad(x: torch.Tensor, layer: nn.Linear) -> bool:
    """Whether autograd records ``layer`` applied to ``x`` (grad mode on, and ``x``, the weight or
    the bias requires grad)."""
    return torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad
                                        or (layer.bias is not None and layer.bias.requires_grad))


def gelu_to_recompute(x: torch.Tensor, act: nn.Module | None, layer: nn.Linear) -> str | None:
    """GELU's ``approximate`` when ``act`` after ``layer`` on ``x`` should go through
    :class:`GeluLinear` (recompute on, ``act`` a GELU, autograd recording); else None."""
    if not _USE_GELU_RECOMPUTE or torch.jit.is_scripting() or not records_grad(x, layer):
        return None
    return gelu_approximate(act)
