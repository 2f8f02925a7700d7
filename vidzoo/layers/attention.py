"""Multi-head self-attention over token sequences, fused (SDPA) or eager.

All vidzoo attention goes through :func:`attend`. The fused path is
``torch.nn.functional.scaled_dot_product_attention``; the eager path exists for parity tests
and export, and is switched globally at run time with :func:`set_fused_attn`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import gelu_approximate, records_grad
from .rope import apply_rope

_USE_FUSED_ATTN = True
QKV_BIAS = (True, False, "qv")


def set_fused_attn(enable: bool = True) -> None:
    """Use ``F.scaled_dot_product_attention`` (True, default) or the eager math path (False).

    Unlike ``timm.layers.set_fused_attn`` this takes effect for models already built: every
    attention call reads the switch when it runs.
    """
    global _USE_FUSED_ATTN
    _USE_FUSED_ATTN = bool(enable)


def use_fused_attn() -> bool:
    """Whether attention currently runs through SDPA."""
    return _USE_FUSED_ATTN


# CPU inference fast path for linear layers: oneDNN's GEMM with the bias (and a GELU) fused into
# its epilogue (what torch.compile/inductor emits on CPU), instead of addmm's bias copy into the
# output plus a separate GELU pass. Used only where no autograd graph is needed, for float32
# tensors on CPU outside autocast and compilation; everything else takes F.linear.
_USE_CPU_FUSED_LINEAR = True
_MKLDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def _cpu_fused_ok(x: torch.Tensor, layer: nn.Linear) -> bool:
    return (_USE_CPU_FUSED_LINEAR and _MKLDNN_LINEAR is not None and x.device.type == "cpu"
            and x.dtype == torch.float32 and layer.weight.dtype == torch.float32
            and not records_grad(x, layer)
            and not torch.is_autocast_enabled("cpu") and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling() and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled)


def linear(x: torch.Tensor, layer: nn.Linear, act: nn.Module | None = None) -> torch.Tensor:
    """``act(layer(x))`` (``act`` optional), through the fused CPU inference path where it applies."""
    if _cpu_fused_ok(x, layer):
        algo = gelu_approximate(act) if act is not None else ""
        if act is None or algo is not None:
            return _MKLDNN_LINEAR(x, layer.weight, layer.bias, "gelu" if act is not None else "none", [], algo)
        x = _MKLDNN_LINEAR(x, layer.weight, layer.bias, "none", [], "")
    else:
        x = layer(x)
    return x if act is None else act(x)


# On CPU, SDPA's flash kernel loses to plain matmul + softmax on short sequences. In whole models
# (2 threads, interleaved A/B, medians): TimeSformer-B divided (8-token temporal attention) ran
# 2.4% faster for inference and 1.5% for a training step with the eager path; ViViT-B FSA
# (16 tokens) tied (0.988x / 1.003x). In isolation the two tie around 128 tokens, and from ~200
# tokens (spatial attention) SDPA is 2x faster. At <= 64 tokens the eager (L, L) weights are no
# bigger than q itself, so memory is not the trade-off.
_CPU_EAGER_MAX_LEN = 64


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention on ``(..., L, head_dim)`` tensors.

    SDPA while fused attention is on (:func:`set_fused_attn`), except on CPU for sequences of at
    most ``_CPU_EAGER_MAX_LEN`` tokens, where the eager math path is the faster one.
    """
    if _USE_FUSED_ATTN and not (q.device.type == "cpu" and q.shape[-2] <= _CPU_EAGER_MAX_LEN):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


class Attention(nn.Module):
    """Multi-head self-attention with timm's parameter names (``qkv``, ``proj``).

    Args:
        dim: Token width.
        num_heads: Number of heads; must divide ``dim``.
        qkv_bias: ``True``: one bias on the fused qkv projection (``qkv.bias``); ``False``: none;
            ``'qv'``: query and value biases only (``q_bias``, ``v_bias``; BEiT / VideoMAE). A key
            bias adds the same ``q . b_k`` to every logit of a query, which softmax cancels, so
            ``'qv'`` computes what a zero (or any) key bias would, with upstream's parameters.
        attn_drop: Dropout on attention weights (training only).
        proj_drop: Dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool | str = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim ({dim}) must be divisible by num_heads ({num_heads}).")
        if qkv_bias not in QKV_BIAS:
            raise ValueError(f"qkv_bias must be one of {QKV_BIAS}, got {qkv_bias!r}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv_bias = qkv_bias
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias is True)
        if qkv_bias == "qv":
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, L, _ = x.shape
        if self.q_bias is None:
            qkv = linear(x, self.qkv)
        else:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
            if _cpu_fused_ok(x, self.qkv) and not bias.requires_grad:
                qkv = _MKLDNN_LINEAR(x, self.qkv.weight, bias, "none", [], "")
            else:
                qkv = F.linear(x, self.qkv.weight, bias)
        qkv = qkv.reshape(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)  # each (B, heads, L, head_dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``; ``rope``: ``(cos, sin)`` tables ``(L, n)`` rotating the first
        ``n`` channels of every head of q and k before attention (:mod:`vidzoo.layers.rope`)."""
        B, L, D = x.shape
        q, k, v = self._qkv(x)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        x = attend(q, k, v, self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(B, L, D)
        return self.proj_drop(linear(x, self.proj))
