"""Attentive pooling head: one learnt query reads the tokens of any backbone (V-JEPA 2's attentive probe).

:class:`AttentivePooler` is upstream's ``AttentivePooler`` with one query (``AttentiveClassifier``
without its ``linear``; facebookresearch/vjepa2, ``src/models/attentive_pooler.py``):

1. ``depth - 1`` ordinary pre-norm transformer blocks over all tokens (fused ``qkv`` with bias,
   output projection ``proj``, MLP ratio 4, GELU);
2. one cross-attention block: LayerNorm on the tokens, q from the query token, k / v from the tokens
   (``kv``), **no output projection**, the result added to the query; then LayerNorm + MLP (ratio 4)
   with a residual.

Its LayerNorms use eps 1e-5 (``nn.LayerNorm``'s default, which the probes were trained with; the
V-JEPA 2 encoder uses 1e-6) and its MLP ratio is 4 whatever the backbone's (ViT-g's is 48/11).
Parameter names follow upstream (``query_tokens``, ``blocks.i.attn.qkv``,
``cross_attention_block.xattn.{q,kv}``, ...), so an upstream probe maps across by prefix.

The module is backbone-agnostic: it takes ``(B, N, D)`` tokens and returns ``(B, D)``. A
:class:`~vidzoo.models.VideoTransformer` uses it with ``global_pool="attentive"`` (``attn_pool``);
``model.reset_classifier(num_classes, global_pool="attentive")`` puts a fresh one on any model.
"""
from __future__ import annotations

import math
from functools import partial

import torch
from einops import rearrange
from timm.layers import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers import attend
from ..layers.attention import linear
from .blocks import Block, Mlp

ATTN_POOL_NORM_EPS = 1e-5
ATTN_POOL_MLP_RATIO = 4.0


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens over a token sequence, without an output projection
    (upstream's ``CrossAttention``: ``q`` and a fused ``kv`` projection)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attentive pooler: num_heads ({num_heads}) must divide the width ({dim})")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``q`` ``(B, n, D)`` attends over ``x`` ``(B, N, D)`` -> ``(B, n, D)``."""
        h = self.num_heads
        q = rearrange(linear(q, self.q), "b n (h d) -> b h n d", h=h)
        k, v = rearrange(linear(x, self.kv), "b l (two h d) -> two b h l d", two=2, h=h).unbind(0)
        return rearrange(attend(q, k, v), "b h n d -> b n (h d)")


class CrossAttentionBlock(nn.Module):
    """``q + xattn(q, norm1(x))``, then ``+ mlp(norm2(.))`` (upstream's ``CrossAttentionBlock``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = ATTN_POOL_MLP_RATIO, qkv_bias: bool = True,
                 norm_layer=nn.LayerNorm, act_layer=nn.GELU) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.xattn = CrossAttention(dim, num_heads, qkv_bias)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))


class AttentivePooler(nn.Module):
    """Tokens ``(B, N, D)`` -> one pooled vector ``(B, D)`` through a learnt query.

    Args:
        dim: Token width D.
        num_heads: Heads of every pooler attention (need not be the backbone's: the V-JEPA 2
            ViT-g probes use 16, the encoder 22).
        depth: ``depth - 1`` self-attention blocks over the tokens, then the cross-attention block
            (V-JEPA 2 probes: 4).
        mlp_ratio: MLP width / D of every pooler block (4, upstream's, also for ViT-g).
        norm_eps: LayerNorm eps of the pooler (1e-5, upstream's).
        qkv_bias: Biases on the pooler's q / k / v projections.
    """

    def __init__(self, dim: int, num_heads: int, depth: int = 1, mlp_ratio: float = ATTN_POOL_MLP_RATIO,
                 norm_eps: float = ATTN_POOL_NORM_EPS, qkv_bias: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"attn_pool_depth must be >= 1 (the cross-attention block), got {depth}")
        if dim % num_heads:
            raise ValueError(f"attn_pool_heads ({num_heads}) must divide the width ({dim})")
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.num_heads = num_heads
        self.depth = depth
        self.grad_checkpointing = False
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, act_layer=nn.GELU,
                                           norm_layer=norm_layer) for _ in range(depth - 1)])
        self.cross_attention_block = CrossAttentionBlock(dim, num_heads, mlp_ratio, qkv_bias, norm_layer)
        self.init_weights()

    def init_weights(self, std: float = 0.02) -> None:
        """Upstream's initialisation: truncated normal (0.02) query and linear weights, zero biases, unit
        LayerNorms; the output projections of block ``i`` (1-based) divided by ``sqrt(2 i)``, the
        cross-attention block's MLP output by that of the last block (``sqrt(2)`` without blocks)."""
        trunc_normal_(self.query_tokens, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for i, blk in enumerate(self.blocks, start=1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * i))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))
            self.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0 * max(len(self.blocks), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        q = self.query_tokens.repeat(x.shape[0], 1, 1)  # a copy: an expanded view of a leaf breaks module hooks
        return self.cross_attention_block(q, x).squeeze(1)
