"""Transformer blocks of the attention variants.

Every block takes ``x`` of shape ``(B, P + T*N, D)``: ``P`` prefix (class) tokens followed by the
video tokens in ``(t n)`` order, and ``grid = (T, N)`` (time steps, tokens per step). A block
folds the axes it attends over with einops and unfolds them again, so variants are
interchangeable inside one :class:`~vidzoo.models.VideoTransformer`.

Parameter names follow timm's ViT and the official TimeSformer (``norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, ``temporal_norm1``, ``temporal_attn``,
``temporal_fc``), so image and upstream video checkpoints map across by name.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from einops import rearrange, reduce, repeat
from timm.layers import DropPath
from timm.layers import Mlp as _TimmMlp
from torch import nn

from ..layers import Attention, attend
from ..layers.attention import linear
from ..layers.mlp import GeluLinear, gelu_to_recompute

Grid = tuple[int, int]


class Mlp(_TimmMlp):
    """timm's ``Mlp`` (same parameters and names). On the CPU inference path fc1's bias and GELU are
    fused into the GEMM (see :func:`vidzoo.layers.attention.linear`); in training GELU is
    recomputed in the backward pass instead of saved (see :mod:`vidzoo.layers.mlp`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GeluLinear skips GELU's output, so it applies only with nothing between GELU and fc2.
        plain_middle = isinstance(self.norm, nn.Identity) and not (self.training and self.drop1.p > 0)
        approximate = gelu_to_recompute(x, self.act, self.fc1) if plain_middle else None
        if approximate is not None:
            return self.drop2(GeluLinear.apply(self.fc1(x), self.fc2.weight, self.fc2.bias, approximate))
        x = self.drop1(linear(x, self.fc1, self.act))
        return self.drop2(linear(self.norm(x), self.fc2))


class Block(nn.Module):
    """Pre-norm transformer block (timm ViT layout).

    Attends over every token it is given: joint space-time attention on a whole clip
    (ViViT model 1, TimeSformer ``joint``) or spatial attention on one frame (``space_only``).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool | str = True,
                 proj_drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 act_layer: Callable[..., nn.Module] = nn.GELU,
                 norm_layer: Callable[..., nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = self._make_attn(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)

    def _make_attn(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float) -> nn.Module:
        return Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)

    def forward(self, x: torch.Tensor, grid: Grid | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), rope=rope))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _no_prefix(x: torch.Tensor, grid: Grid, variant: str) -> None:
    if x.shape[1] != grid[0] * grid[1]:
        raise ValueError(f"{variant} takes only grid tokens ({grid[0]}x{grid[1]}); got a sequence of "
                         f"{x.shape[1]} (a class token is not supported, use global_pool='avg').")


class FactorisedDotProductAttention(Attention):
    """ViViT model 4: half of the heads attend over space (within a frame), half over time
    (across frames at one location); their outputs are concatenated before ``proj``."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool | str = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        if num_heads % 2:
            raise ValueError(f"factorised_dot_product splits heads between space and time; num_heads "
                             f"must be even, got {num_heads}.")
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:  # type: ignore[override]
        B, L, D = x.shape
        T, N = grid
        h = self.num_heads // 2
        drop = self.attn_drop if self.training else 0.0
        q, k, v = self._qkv(x)  # (B, heads, T*N, hd)
        space = [rearrange(z[:, :h], "b h (t n) d -> (b t) h n d", t=T) for z in (q, k, v)]
        time = [rearrange(z[:, h:], "b h (t n) d -> (b n) h t d", t=T) for z in (q, k, v)]
        xs = rearrange(attend(*space, dropout_p=drop), "(b t) h n d -> b (t n) h d", b=B)
        xt = rearrange(attend(*time, dropout_p=drop), "(b n) h t d -> b (t n) h d", b=B)
        x = torch.cat([xs, xt], dim=2).reshape(B, L, D)
        return self.proj_drop(linear(x, self.proj))


class FactorisedDotProductBlock(Block):
    """Pre-norm block whose attention is :class:`FactorisedDotProductAttention`."""

    def _make_attn(self, dim, num_heads, qkv_bias, attn_drop, proj_drop):
        return FactorisedDotProductAttention(dim, num_heads, qkv_bias, attn_drop, proj_drop)

    def forward(self, x: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        _no_prefix(x, grid, "factorised_dot_product")
        x = x + self.drop_path(self.attn(self.norm1(x), grid))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class FactorisedSelfAttentionBlock(Block):
    """ViViT model 3: spatial self-attention, then temporal self-attention (order configurable),
    then the MLP, each with its own pre-norm and residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool | str = True,
                 proj_drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 act_layer: Callable[..., nn.Module] = nn.GELU, norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
                 attention_order: Sequence[str] = ("space", "time")) -> None:
        super().__init__(dim, num_heads, mlp_ratio, qkv_bias, proj_drop, attn_drop, drop_path, act_layer, norm_layer)
        if sorted(attention_order) != ["space", "time"]:
            raise ValueError(f"attention_order must be ('space', 'time') or ('time', 'space'), got {attention_order!r}.")
        self.attention_order = tuple(attention_order)
        self.temporal_norm1 = norm_layer(dim)
        self.temporal_attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)

    def forward(self, x: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        _no_prefix(x, grid, "factorised_self_attention")
        T, N = grid
        for axis in self.attention_order:
            if axis == "space":
                s = rearrange(x, "b (t n) d -> (b t) n d", t=T)
                s = s + self.drop_path(self.attn(self.norm1(s)))
                x = rearrange(s, "(b t) n d -> b (t n) d", t=T)
            else:
                s = rearrange(x, "b (t n) d -> (b n) t d", t=T)
                s = s + self.drop_path(self.temporal_attn(self.temporal_norm1(s)))
                x = rearrange(s, "(b n) t d -> b (t n) d", n=N)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DividedSpaceTimeBlock(Block):
    """TimeSformer divided space-time attention, as the official code computes it.

    Temporal attention over the patch tokens (the class token does not take part), projected by
    ``temporal_fc`` into the residual; then spatial attention per frame with the class token
    repeated into every frame and its outputs averaged back; then the MLP over all tokens.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        dim = self.norm1.normalized_shape[0]
        self.temporal_norm1 = type(self.norm1)(dim, eps=self.norm1.eps)
        self.temporal_attn = Attention(dim, self.attn.num_heads, self.attn.qkv_bias,
                                       self.attn.attn_drop, self.attn.proj_drop.p)
        self.temporal_fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        T, N = grid
        B, L, D = x.shape
        P = L - T * N  # 1 with a class token, 0 with average pooling
        cls, xt = x[:, :P], x[:, P:]
        # Temporal: each spatial location attends over time. temporal_fc acts per token, so it runs
        # in the (b n) t order and the result is added back through a permuted view (no copy).
        t = rearrange(xt, "b (t n) d -> (b n) t d", t=T)
        t = linear(self.drop_path(self.temporal_attn(self.temporal_norm1(t))), self.temporal_fc)
        xt = (xt.view(B, T, N, D) + rearrange(t, "(b n) t d -> b t n d", b=B)).flatten(1, 2)
        # Spatial: each frame attends over its tokens plus a copy of the class token.
        s = rearrange(xt, "b (t n) d -> (b t) n d", t=T)
        if P:
            s = torch.cat([repeat(cls, "b p d -> (b t) p d", t=T), s], dim=1)
        s = self.drop_path(self.attn(self.norm1(s)))
        # (b t) n d splits into b t n d as a view: the residual add puts tokens back in (t n) order.
        x = (xt.view(B, T, N, D) + s[:, P:].view(B, T, N, D)).flatten(1, 2)
        if P:
            x = torch.cat([cls + reduce(s[:, :P], "(b t) p d -> b p d", "mean", t=T), x], dim=1)
        return x + self.drop_path(self.mlp(self.norm2(x)))
