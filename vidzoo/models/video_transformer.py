"""The composed video transformer: tokenizer -> position embeddings -> attention-variant blocks -> head.

One :class:`VideoTransformer` subclass per attention variant, registered by name
(``list_attention()``). A subclass only says which block it stacks, which position-embedding
layouts and pooling it supports, and, where the variant is not a plain stack of blocks over the
clip (``space_only``, ``factorised_encoder``), how ``forward_features`` folds the clip.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, ClassVar, Sequence

import torch
from einops import rearrange, reduce
from timm.layers import get_act_layer, trunc_normal_
from timm.models._features import feature_take_indices
from torch import nn
from torch.utils.checkpoint import checkpoint

from .._utils import unknown_name_error
from ..layers import ROPE_LAYOUTS, rope3d_tables, sincos_pos_embed_1d
from ..layers.attention import QKV_BIAS
from ..tokenizers import VideoTokenizer, get_tokenizer
from .blocks import (Block, DividedSpaceTimeBlock, FactorisedDotProductBlock, FactorisedSelfAttentionBlock,
                     Grid)
from .heads import AttentivePooler

POS_EMBED_TYPES = ("joint", "separable", "space", "sincos", "rope3d")
GLOBAL_POOLS = ("token", "avg", "attentive")
# Arguments that mean something only with one choice of another: (argument, value) -> dependants.
# Overriding the argument to another value drops the spec's dependants (see _builder.merge_model_args);
# a dependant given by the user with another value is an error.
DEPENDENT_ARGS = {("pos_embed", "rope3d"): ("rope_layout",),
                  ("global_pool", "attentive"): ("attn_pool_depth", "attn_pool_heads", "attn_pool_layers")}

_ATTENTION: dict[str, type["VideoTransformer"]] = {}


def register_attention(name: str) -> Callable[[type["VideoTransformer"]], type["VideoTransformer"]]:
    """Class decorator registering a :class:`VideoTransformer` subclass as attention variant ``name``."""
    def wrap(cls: type[VideoTransformer]) -> type[VideoTransformer]:
        cls.attention = name
        _ATTENTION[name] = cls
        return cls
    return wrap


def list_attention() -> list[str]:
    """Names of the registered attention variants."""
    return sorted(_ATTENTION)


def get_attention(name: str) -> type["VideoTransformer"]:
    """Model class of attention variant ``name`` (ValueError listing close names if unknown)."""
    if name not in _ATTENTION:
        raise unknown_name_error("attention variant", name, _ATTENTION)
    return _ATTENTION[name]


def _check_dependent_args(values: dict[str, Any]) -> None:
    """A dependant of :data:`DEPENDENT_ARGS` set (not None) while its argument has another value: ValueError."""
    for (arg, choice), deps in DEPENDENT_ARGS.items():
        if values[arg] == choice:
            continue
        for dep in deps:
            if values[dep] is not None:
                raise ValueError(f"{dep} applies only with {arg}='{choice}'; got {dep}={values[dep]!r} with "
                                 f"{arg}={values[arg]!r}.")


def _act(act_layer: str | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if isinstance(act_layer, str):
        if act_layer not in ("gelu", "gelu_tanh"):
            raise ValueError(f"act_layer must be 'gelu' or 'gelu_tanh' (or a module class), got {act_layer!r}.")
        return get_act_layer(act_layer)
    return act_layer


class VideoTransformer(nn.Module):
    """Video classifier built from a tokenizer and an attention variant.

    Input ``(B, C, T, H, W)`` normalised with ``pretrained_cfg`` mean/std; output logits
    ``(B, num_classes)``. The input must match ``num_frames`` / ``img_size`` / ``in_chans``
    exactly (a ValueError names the mismatch); to run at another size, create the model at that
    size — pretrained position and time embeddings are resampled when the weights are loaded.

    Args:
        img_size: Frame size, int or (H, W).
        num_frames: Frames per clip T.
        patch_size: Spatial patch side.
        tubelet_size: Temporal extent of a token (``tubelet`` tokenizer; 1 for ``uniform``).
        in_chans: Input channels.
        num_classes: Classifier outputs; 0 gives an identity head (features).
        tokenizer: Registered tokenizer name (``uniform`` or ``tubelet``).
        embed_dim: Token width.
        depth: Number of blocks (spatial blocks for ``factorised_encoder``).
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: Bias on qkv projections: ``True`` (fused ``qkv.bias``), ``False``, or ``'qv'``
            (query and value biases ``q_bias`` / ``v_bias``, no key bias: VideoMAE).
        class_token: Prepend a learnt class token (default: when ``global_pool == 'token'``).
        global_pool: ``'token'`` (class token), ``'avg'`` (mean of the video tokens) or
            ``'attentive'`` (a learnt query attends over all tokens: :class:`~vidzoo.models.heads.AttentivePooler`,
            ``attn_pool``; V-JEPA 2's attentive probe).
        fc_norm: Normalise after pooling (``fc_norm``) instead of every token before it (``norm``
            becomes identity): VideoMAE's ``use_mean_pooling``, timm's ``fc_norm``.
        pos_embed: ``'joint'`` one table over all T'xN tokens (ViViT), ``'separable'`` a spatial
            table plus a ``time_embed`` (TimeSformer), ``'space'`` spatial only, ``'sincos'`` a
            fixed 1-D sinusoid table over the flattened ``(t, h, w)`` index generated for the
            model's grid (VideoMAE; a non-persistent buffer, never trained or saved), ``'rope3d'``
            no table at all but 3-D rotary embedding of q and k in every attention, positions
            from the clip's token grid (V-JEPA 2; ``joint`` attention, no class token); default
            per variant.
        pad_mode: Tokenizer padding: ``'error'`` or ``'pad'`` (zero-pad to a patch multiple).
        drop_rate: Dropout before the head.
        pos_drop_rate: Dropout after adding position embeddings.
        proj_drop_rate: Dropout after attention projections and in the MLP.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, linearly increasing over blocks.
        act_layer: ``'gelu'`` or ``'gelu_tanh'`` (the official ViViT JAX code).
        norm_eps: LayerNorm epsilon.
        rope_layout: With ``pos_embed='rope3d'``: ``'vjepa2'`` (default; the frequency layout the V-JEPA 2
            weights were trained with) or ``'interleave'`` (standard pairs); see :mod:`vidzoo.layers.rope`.
        attn_pool_depth: With ``global_pool='attentive'``: pooler blocks, ``depth - 1`` self-attention
            blocks then the cross-attention block (default 1; V-JEPA 2 probes: 4).
        attn_pool_heads: With ``global_pool='attentive'``: pooler heads (default ``num_heads``).
        attn_pool_layers: With ``global_pool='attentive'``: indices of the blocks whose outputs, each
            through the final ``norm``, the pooler reads, concatenated along the token axis
            (default: the last block only; V-JEPA 2's Diving48 probes read four). Strictly increasing.
    """

    attention: ClassVar[str] = ""
    block_fn: ClassVar[type[nn.Module]] = Block
    pos_embed_types: ClassVar[tuple[str, ...]] = ("joint", "separable", "sincos")  # first is the default
    default_global_pool: ClassVar[str] = "token"
    supports_class_token: ClassVar[bool] = True
    supports_fc_norm: ClassVar[bool] = True
    supports_pool_layers: ClassVar[bool] = True  # attn_pool_layers: blocks run over the whole clip in order
    variant_args: ClassVar[tuple[str, ...]] = ()  # extra constructor args of this variant

    dependent_args: ClassVar[dict[tuple[str, str], tuple[str, ...]]] = DEPENDENT_ARGS  # for the builder

    @staticmethod
    def for_attention(name: str) -> type["VideoTransformer"]:
        """The registered subclass of attention variant ``name`` (what the builder instantiates)."""
        return get_attention(name)

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        num_frames: int = 8,
        patch_size: int = 16,
        tubelet_size: int | None = None,
        in_chans: int = 3,
        num_classes: int = 400,
        tokenizer: str = "uniform",
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool | str = True,
        class_token: bool | None = None,
        global_pool: str | None = None,
        fc_norm: bool = False,
        pos_embed: str | None = None,
        pad_mode: str = "error",
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        act_layer: str | Callable[..., nn.Module] = "gelu",
        norm_eps: float = 1e-6,
        rope_layout: str | None = None,
        attn_pool_depth: int | None = None,
        attn_pool_heads: int | None = None,
        attn_pool_layers: Sequence[int] | None = None,
        block_kwargs: dict[str, Any] | None = None,
        **variant_kwargs: Any,
    ) -> None:
        super().__init__()
        global_pool = global_pool or self.default_global_pool
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}.")
        class_token = (global_pool == "token") if class_token is None else bool(class_token)
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True.")
        if class_token and not self.supports_class_token:
            raise ValueError(f"The '{self.attention}' attention variant has no class token; it pools by "
                             f"global average (global_pool='avg').")
        pos_embed = pos_embed or self.pos_embed_types[0]
        if pos_embed not in self.pos_embed_types:
            raise ValueError(f"pos_embed={pos_embed!r} is not supported by '{self.attention}'; expected one of "
                             f"{self.pos_embed_types}.")
        if qkv_bias not in QKV_BIAS:
            raise ValueError(f"qkv_bias must be one of {QKV_BIAS}, got {qkv_bias!r}.")
        if fc_norm and not self.supports_fc_norm:
            raise ValueError(f"fc_norm=True is not supported by '{self.attention}' (its norm is part of the "
                             f"per-frame encoder).")
        _check_dependent_args(dict(pos_embed=pos_embed, global_pool=global_pool, rope_layout=rope_layout,
                                   attn_pool_depth=attn_pool_depth, attn_pool_heads=attn_pool_heads,
                                   attn_pool_layers=attn_pool_layers))
        if pos_embed == "rope3d":
            if class_token:
                raise ValueError("pos_embed='rope3d' gives no position to a class token; use global_pool='avg' or "
                                 "'attentive' (class_token=False).")
            rope_layout = rope_layout or ROPE_LAYOUTS[0]
            if rope_layout not in ROPE_LAYOUTS:
                raise ValueError(f"rope_layout must be one of {ROPE_LAYOUTS}, got {rope_layout!r}.")
            if embed_dim // num_heads < 6:
                raise ValueError(f"pos_embed='rope3d' rotates 2+ channels per axis: embed_dim // num_heads must be "
                                 f">= 6, got {embed_dim} // {num_heads} = {embed_dim // num_heads}.")
        if attn_pool_layers is not None:
            attn_pool_layers = tuple(attn_pool_layers)
            if not self.supports_pool_layers:
                raise ValueError(f"attn_pool_layers is not supported by '{self.attention}' (its blocks do not run "
                                 f"over the whole clip in one sequence).")
            if (not attn_pool_layers or list(attn_pool_layers) != sorted(set(attn_pool_layers))
                    or not all(0 <= i < depth for i in attn_pool_layers)):
                raise ValueError(f"attn_pool_layers must be strictly increasing block indices in [0, {depth - 1}], "
                                 f"got {attn_pool_layers}.")
        self.num_heads = num_heads
        self.rope_layout = rope_layout
        self.attn_pool_layers = attn_pool_layers
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.pos_embed_type = pos_embed
        self.num_features = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.grad_checkpointing = False
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        act = _act(act_layer)

        tok_cls = get_tokenizer(tokenizer)
        tok_kwargs = {} if tubelet_size is None else {"tubelet_size": tubelet_size}
        self.patch_embed: VideoTokenizer = tok_cls(img_size=img_size, num_frames=num_frames, patch_size=patch_size,
                                                   in_chans=in_chans, embed_dim=embed_dim, pad_mode=pad_mode,
                                                   **tok_kwargs)
        T, H, W = self.patch_embed.grid_size
        N = H * W
        P = self.num_prefix_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        pos_len = P + T * N if pos_embed in ("joint", "sincos") else P + N
        if pos_embed == "rope3d":  # rotary: positions enter every attention, nothing is added to the tokens
            self.pos_embed = None
        elif pos_embed == "sincos":  # regenerated for this grid, so never in a state dict
            table = sincos_pos_embed_1d(pos_len, embed_dim).to(self.patch_embed.proj.weight.device)
            self.register_buffer("pos_embed", table, persistent=False)
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, pos_len, embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, T, embed_dim)) if pos_embed == "separable" else None
        self.pos_drop = nn.Dropout(pos_drop_rate)

        self._drop_path_rate = drop_path_rate
        dpr = _linspace(drop_path_rate, depth)
        block_args = dict(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                          proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, act_layer=act, norm_layer=norm_layer)
        self._block_args = block_args
        self.blocks = nn.ModuleList([self.block_fn(drop_path=dpr[i], **block_args, **(block_kwargs or {}))
                                     for i in range(depth)])
        self.norm = nn.Identity() if fc_norm else norm_layer(embed_dim)
        self.fc_norm = norm_layer(embed_dim) if fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.attn_pool = (AttentivePooler(embed_dim, num_heads if attn_pool_heads is None else attn_pool_heads,
                                          1 if attn_pool_depth is None else attn_pool_depth)
                          if global_pool == "attentive" else None)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_variant(**variant_kwargs)
        self.init_weights()

    # ----------------------------------------------------------------------------------- init
    def _init_variant(self) -> None:
        """Hook for modules a variant adds beside ``blocks`` (takes the variant's extra args)."""

    def init_weights(self) -> None:
        """timm ViT initialisation (truncated normal 0.02 on linears and position tables)."""
        for p in (self.pos_embed, self.cls_token):
            if isinstance(p, nn.Parameter):
                trunc_normal_(p, std=0.02)
        self.apply(_init_linear)
        if self.attn_pool is not None:
            self.attn_pool.init_weights()  # its own (upstream's) scheme

    # ----------------------------------------------------------------------------------- API
    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` of the tokenizer."""
        return self.patch_embed.grid_size

    @property
    def num_frames(self) -> int:
        return self.patch_embed.num_frames

    @property
    def img_size(self) -> tuple[int, int]:
        return self.patch_embed.img_size

    @property
    def default_cfg(self) -> dict[str, Any]:
        """Alias of ``pretrained_cfg`` (timm compatibility)."""
        return self.pretrained_cfg

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters usually excluded from weight decay."""
        names = {"pos_embed", "cls_token", "time_embed", "temporal_pos_embed", "temporal_cls_token",
                 "attn_pool.query_tokens"}
        return {n for n, _ in self.named_parameters() if n in names}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups from input to output, as timm's ViT (layer-wise lr decay, freezing):
        the embeddings, then each block (``blocks`` then ``temporal_blocks``), then the rest
        (final norms and head). The attentive pooler (``attn_pool``, whose blocks are not ``blocks.N``)
        is matched by nothing here, so it falls in the last group with the head: it is part of the
        head, and trains at the head's learning rate under layer decay."""
        return dict(stem=r"^cls_token|^pos_embed|^time_embed|^patch_embed",
                    blocks=r"^blocks\.(\d+)" if coarse else [(r"^blocks\.(\d+)", None), (r"^norm\.", (99999,))],
                    temporal_blocks=[(r"^temporal_cls_token|^temporal_pos_embed", (0,)),
                                     (r"^temporal_blocks\.(\d+)", (1,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations (and attentive-pooler blocks) in backward to save memory."""
        self.grad_checkpointing = enable
        if self.attn_pool is not None:
            self.attn_pool.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        """The final linear classifier (``head``). With ``global_pool='attentive'`` the trainable head
        also includes the pooler: :meth:`head_modules` lists everything :meth:`forward_head` uses."""
        return self.head

    def head_modules(self) -> dict[str, nn.Module]:
        """The modules :meth:`forward_head` runs after :meth:`forward_features`, by attribute name (also
        their state-dict prefixes): ``attn_pool`` (attentive pooling), ``fc_norm`` (when used) and
        ``head``; what a probe on a frozen backbone trains."""
        mods = {"attn_pool": self.attn_pool, "fc_norm": self.fc_norm, "head": self.head}
        return {k: m for k, m in mods.items() if m is not None and any(True for _ in m.parameters())}

    def reset_classifier(self, num_classes: int, global_pool: str | None = None, *,
                         attn_pool_depth: int | None = None, attn_pool_heads: int | None = None) -> None:
        """Replace the head with a fresh ``num_classes`` one (0: identity); optionally change pooling.

        ``global_pool='attentive'`` puts a fresh attentive pooler on the model (any attention variant;
        ``attn_pool_depth`` blocks, default 1, and ``attn_pool_heads`` heads, default ``num_heads``); it
        reads ``forward_features``' tokens. Without ``global_pool`` (and without ``attn_pool_*``) the
        pooling, and an attentive model's pooler with its weights, stay as they are. ``model_args`` and
        ``pretrained_cfg`` follow (class count, pooling; the old label names go), so ``save_pretrained``
        writes a config that rebuilds this head.
        """
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}.")
            if global_pool == "token" and self.cls_token is None:
                raise ValueError("global_pool='token' needs a model built with a class token.")
        pool = global_pool or self.global_pool
        if (attn_pool_depth is not None or attn_pool_heads is not None) and pool != "attentive":
            raise ValueError(f"attn_pool_depth / attn_pool_heads apply only with global_pool='attentive' (pooling "
                             f"is {pool!r}).")
        fresh_pooler = global_pool is not None or attn_pool_depth is not None or attn_pool_heads is not None
        if pool == "attentive" and (fresh_pooler or self.attn_pool is None):
            depth = 1 if attn_pool_depth is None else attn_pool_depth
            heads = self.num_heads if attn_pool_heads is None else attn_pool_heads
            ref = self.patch_embed.proj.weight
            self.attn_pool = AttentivePooler(self.embed_dim, heads, depth).to(device=ref.device, dtype=ref.dtype)
            self.attn_pool.grad_checkpointing = self.grad_checkpointing
        elif pool != "attentive":
            self.attn_pool = None
            self.attn_pool_layers = None
        self.global_pool = pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            _init_linear(self.head)
            self.head.to(device=self.patch_embed.proj.weight.device, dtype=self.patch_embed.proj.weight.dtype)
        self._sync_head_args()

    def _sync_head_args(self) -> None:
        """Keep ``model_args`` / ``pretrained_cfg`` (what ``save_pretrained`` writes) in step with the head."""
        args = getattr(self, "model_args", None)
        if isinstance(args, dict):
            # class_token explicitly: its default follows global_pool, which may have changed
            args.update(num_classes=self.num_classes, global_pool=self.global_pool,
                        class_token=self.cls_token is not None)
            if self.attn_pool is not None:
                args.update(attn_pool_depth=self.attn_pool.depth, attn_pool_heads=self.attn_pool.num_heads)
                if self.attn_pool_layers is not None:
                    args["attn_pool_layers"] = list(self.attn_pool_layers)
                else:
                    args.pop("attn_pool_layers", None)
            else:
                for k in DEPENDENT_ARGS[("global_pool", "attentive")]:
                    args.pop(k, None)
        cfg = getattr(self, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.update(num_classes=self.num_classes, label_names=None)  # a fresh classifier knows no labels
            prov = cfg.get("provenance")
            if isinstance(prov, dict) and prov.get("kind") not in (None, "random_init"):
                prov["head"] = "fresh"

    # ------------------------------------------------------------------------------- forward
    def _run_blocks(self, blocks: nn.ModuleList, x: torch.Tensor, grid: Grid,
                    rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        args = (x, grid) if rope is None else (x, grid, rope)
        for blk in blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(blk, *args, use_reentrant=False)
            else:
                x = blk(*args)
            args = (x, *args[1:])
        return x

    def _rope(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(cos, sin)`` of 3-D RoPE for the model's token grid (``pos_embed='rope3d'``), else None."""
        if self.pos_embed_type != "rope3d":
            return None
        return rope3d_tables(self.grid_size, self.embed_dim // self.num_heads, self.rope_layout, device=x.device)

    def _prefix(self, batch: int) -> torch.Tensor | None:
        """Class token with its position embedding, expanded to ``batch``; None without one."""
        if self.cls_token is None:
            return None
        joint = self.pos_embed_type in ("joint", "sincos")
        cls = self.cls_token if joint else self.cls_token + self.pos_embed[:, :1]
        return cls.expand(batch, -1, -1)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Add position (and time) embeddings to grid tokens ``(B, T, N, D)``; return the sequence
        ``(B, P + T*N, D)`` with the class token first."""
        B = x.shape[0]
        cls = self._prefix(B)
        if self.pos_embed_type == "rope3d":  # no table (and no class token)
            x = rearrange(x, "b t n d -> b (t n) d")
        elif self.pos_embed_type in ("joint", "sincos"):
            x = rearrange(x, "b t n d -> b (t n) d")
            if cls is not None:
                x = torch.cat([cls, x], dim=1)
            x = x + self.pos_embed
        else:
            x = x + self.pos_embed[:, self.num_prefix_tokens:].unsqueeze(1)
            if self.time_embed is not None:
                x = x + self.time_embed.unsqueeze(2)
            x = rearrange(x, "b t n d -> b (t n) d")
            if cls is not None:
                x = torch.cat([cls, x], dim=1)
        return self.pos_drop(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clip ``(B, C, T, H, W)`` -> normalised tokens ``(B, P + T'*N, D)``; with ``attn_pool_layers``
        the normalised tokens of each of those blocks, concatenated: ``(B, len(layers) * (P + T'*N), D)``
        (what the attentive pooler reads)."""
        x = self._pos_embed(self.patch_embed(x))
        T, H, W = self.grid_size
        rope = self._rope(x)
        if self.attn_pool_layers is None:
            return self.norm(self._run_blocks(self.blocks, x, (T, H * W), rope))
        feats = []
        for i, blk in enumerate(self.blocks[:self.attn_pool_layers[-1] + 1]):
            x = self._run_blocks([blk], x, (T, H * W), rope)
            if i in self.attn_pool_layers:
                feats.append(self.norm(x))
        return torch.cat(feats, dim=1)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``forward_features`` tokens to ``(B, D)`` (the attentive pooler reads every token)."""
        if self.global_pool == "attentive":
            return self.attn_pool(x)
        if self.global_pool == "token":
            return x[:, 0]
        return x[:, self.num_prefix_tokens:].mean(dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens -> logits (or the pooled features with ``pre_logits=True``)."""
        x = self.head_drop(self.fc_norm(self.pool(x)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------ features (timm API)
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        output_fmt: str = "NCTHW",
        intermediates_only: bool = False,
    ) -> list[Any] | tuple[torch.Tensor, list[Any]]:
        """Forward pass that also returns the output of chosen blocks (timm's feature API).

        Feature maps are the video tokens of a block on the token grid, ``(B, D, T', H', W')``
        (``output_fmt='NCTHW'``) or ``(B, T'*H'*W', D)`` (``'NLC'``); class tokens are split off.
        Blocks are indexed over ``blocks`` in order; ``factorised_encoder`` continues the count
        over ``temporal_blocks`` (see that class). ``space_only`` and the spatial stage of
        ``factorised_encoder`` encode each frame on its own, so their class tokens are per frame.

        Args:
            x: Clip ``(B, C, T, H, W)``.
            indices: Last ``n`` blocks if int, all if None, else these block indices (negative
                counts from the end).
            return_prefix_tokens: Return ``(feature_map, prefix_tokens)`` pairs: class tokens
                ``(B, P, D)``, or ``(B, T', P, D)`` per frame where frames are encoded alone.
                Without a class token the feature maps are returned alone.
            norm: Apply the final norm (``norm``; ``temporal_norm`` for temporal blocks) to each.
            output_fmt: ``'NCTHW'`` or ``'NLC'``.
            intermediates_only: Return only the list of intermediates; blocks after the last
                one asked for are not run.

        Returns:
            ``(final_tokens, intermediates)`` where ``final_tokens`` is what ``forward_features``
            returns, or ``intermediates`` alone.
        """
        if output_fmt not in ("NCTHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCTHW' or 'NLC', got {output_fmt!r}.")
        take, max_index = feature_take_indices(self._num_feature_blocks(), indices)
        final, feats = self._intermediate_tokens(x, set(take), norm, max_index if intermediates_only else None)
        out = []
        for y, prefix in feats:  # y: (B, T', H', W', D)
            y = y.permute(0, 4, 1, 2, 3).contiguous() if output_fmt == "NCTHW" else y.flatten(1, 3)
            out.append((y, prefix) if return_prefix_tokens and prefix is not None else y)
        return out if intermediates_only else (final, out)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the blocks after the last of ``indices`` (and optionally the final norm and the head),
        for a model used only through :meth:`forward_intermediates`; returns the kept indices."""
        take, max_index = feature_take_indices(self._num_feature_blocks(), indices)
        self._prune_blocks(max_index, prune_norm)
        if prune_head:
            if getattr(self, "fc_norm", None) is not None:
                self.fc_norm = nn.Identity()
            # an attentive pooler (and the blocks it reads) is part of the head: it goes too
            self.reset_classifier(0, global_pool="avg" if self.global_pool == "attentive" else None)
        return take

    def _num_feature_blocks(self) -> int:
        return len(self.blocks)

    def _prune_blocks(self, max_index: int, prune_norm: bool) -> None:
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()

    def _grid_feature(self, y: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Block output ``(B, P + T'N, D)`` -> grid tokens ``(B, T', H', W', D)``, class tokens ``(B, P, D)``."""
        T, H, W = self.grid_size
        P = self.num_prefix_tokens
        return y[:, P:].reshape(batch, T, H, W, -1), (y[:, :P] if P else None)

    def _frame_feature(self, y: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-frame block output ``(B*T', P + N, D)`` -> ``(B, T', H', W', D)``, ``(B, T', P, D)``."""
        T, H, W = self.grid_size
        P = self.num_prefix_tokens
        grid = rearrange(y[:, P:], "(b t) (h w) d -> b t h w d", b=batch, h=H)
        return grid, (rearrange(y[:, :P], "(b t) p d -> b t p d", b=batch) if P else None)

    def _frames_in(self, x: torch.Tensor) -> torch.Tensor:
        """Clip -> per-frame sequences ``(B*T', P + N, D)`` with position embeddings (and class tokens),
        for the variants that encode frames alone (``space_only``, ``factorised_encoder``)."""
        x = self.patch_embed(x)
        B, T = x.shape[:2]
        x = x + self.pos_embed[:, self.num_prefix_tokens:].unsqueeze(1)
        x = rearrange(x, "b t n d -> (b t) n d")
        cls = self._prefix(B * T)
        return self.pos_drop(torch.cat([cls, x], dim=1) if cls is not None else x)

    def _intermediate_tokens(self, x: torch.Tensor, take: set[int], norm: bool, stop: int | None):
        """``(final tokens or None, [(grid tokens (B, T', H', W', D), prefix or None), ...])``."""
        B = x.shape[0]
        T, H, W = self.grid_size
        x = self._pos_embed(self.patch_embed(x))
        rope = self._rope(x)
        feats, pooled = [], []
        for i, blk in enumerate(self.blocks[:None if stop is None else stop + 1]):
            x = self._run_blocks([blk], x, (T, H * W), rope)
            if i in take:
                feats.append(self._grid_feature(self.norm(x) if norm else x, B))
            if stop is None and self.attn_pool_layers is not None and i in self.attn_pool_layers:
                pooled.append(self.norm(x))
        if stop is not None:
            return None, feats
        return (torch.cat(pooled, dim=1) if self.attn_pool_layers is not None else self.norm(x)), feats


def _linspace(end: float, n: int) -> list[float]:
    """Stochastic-depth rates 0..end over n blocks (plain Python: works under a meta device)."""
    return [end * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@register_attention("joint")
class JointSpaceTimeTransformer(VideoTransformer):
    """ViViT model 1 / TimeSformer ``joint``: every token attends to every token of the clip; the one
    variant with ``pos_embed='rope3d'`` (V-JEPA 2)."""

    pos_embed_types = ("joint", "separable", "sincos", "rope3d")


@register_attention("factorised_dot_product")
class FactorisedDotProductTransformer(VideoTransformer):
    """ViViT model 4: half the heads attend over space, half over time, in one block."""

    block_fn = FactorisedDotProductBlock
    default_global_pool = "avg"
    supports_class_token = False


@register_attention("factorised_self_attention")
class FactorisedSelfAttentionTransformer(VideoTransformer):
    """ViViT model 3: spatial then temporal self-attention in each block (``attention_order``)."""

    block_fn = FactorisedSelfAttentionBlock
    default_global_pool = "avg"
    supports_class_token = False
    variant_args = ("attention_order",)

    def __init__(self, *args: Any, attention_order: tuple[str, str] = ("space", "time"), **kwargs: Any) -> None:
        block_kwargs = dict(kwargs.pop("block_kwargs", None) or {}, attention_order=tuple(attention_order))
        super().__init__(*args, block_kwargs=block_kwargs, **kwargs)


@register_attention("divided")
class DividedSpaceTimeTransformer(VideoTransformer):
    """TimeSformer divided space-time attention (temporal, then spatial, then MLP)."""

    block_fn = DividedSpaceTimeBlock
    pos_embed_types = ("separable", "joint", "sincos")

    def init_weights(self) -> None:
        super().init_weights()
        # Official TimeSformer: temporal_fc starts at zero in every block but the first, so
        # the model begins close to the image model it is usually initialised from.
        for i, blk in enumerate(self.blocks):
            if i > 0:
                nn.init.zeros_(blk.temporal_fc.weight)
                nn.init.zeros_(blk.temporal_fc.bias)


@register_attention("space_only")
class SpaceOnlyTransformer(VideoTransformer):
    """TimeSformer space-only: each frame is encoded on its own (with its own class token), the
    per-frame representations are averaged over time before the final norm."""

    pos_embed_types = ("space",)
    supports_pool_layers = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        B, T = x.shape[:2]
        x = x + self.pos_embed[:, self.num_prefix_tokens:].unsqueeze(1)
        x = rearrange(x, "b t n d -> (b t) n d")
        cls = self._prefix(B * T)
        if cls is not None:
            x = torch.cat([cls, x], dim=1)
        x = self._run_blocks(self.blocks, self.pos_drop(x), (1, x.shape[1] - self.num_prefix_tokens))
        x = reduce(x, "(b t) l d -> b l d", "mean", t=T)
        return self.norm(x)

    def _intermediate_tokens(self, x: torch.Tensor, take: set[int], norm: bool, stop: int | None):
        # Frames are encoded alone: feature maps stack them, class tokens are per frame (B, T', P, D).
        B, T = x.shape[0], self.grid_size[0]
        x = self._frames_in(x)
        feats = []
        for i, blk in enumerate(self.blocks[:None if stop is None else stop + 1]):
            x = self._run_blocks([blk], x, (1, x.shape[1] - self.num_prefix_tokens))
            if i in take:
                feats.append(self._frame_feature(self.norm(x) if norm else x, B))
        final = self.norm(reduce(x, "(b t) l d -> b l d", "mean", t=T)) if stop is None else None
        return final, feats


@register_attention("factorised_encoder")
class FactorisedEncoderTransformer(VideoTransformer):
    """ViViT model 2: a spatial transformer per time index (spatial class token, ``blocks`` and
    ``norm``) then a temporal transformer over the per-frame representations
    (``temporal_cls_token``, ``temporal_pos_embed``, ``temporal_blocks``, ``temporal_norm``).

    Extra args:
        temporal_depth: Number of temporal blocks (4 for ViViT-B).
    """

    pos_embed_types = ("space",)
    supports_fc_norm = False
    supports_pool_layers = False
    variant_args = ("temporal_depth",)

    def _init_variant(self, temporal_depth: int = 4) -> None:
        # How a frame's tokens become its representation is part of the backbone: fixed here (the
        # class token, or the mean with average pooling) and kept when only the final pooling changes.
        self.frame_pool = self.global_pool if self.global_pool != "attentive" else (
            "token" if self.cls_token is not None else "avg")
        D, T = self.embed_dim, self.grid_size[0]
        args_ = dict(self._block_args)
        norm_layer = args_["norm_layer"]
        dpr = _linspace(self._drop_path_rate, temporal_depth)
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, D)) if self.cls_token is not None else None
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + T, D))
        self.temporal_blocks = nn.ModuleList([Block(drop_path=dpr[i], **args_) for i in range(temporal_depth)])
        self.temporal_norm = norm_layer(D)

    def _pool_frame(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.frame_pool == "token" else x[:, self.num_prefix_tokens:].mean(dim=1)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None, **kwargs: Any) -> None:
        super().reset_classifier(num_classes, global_pool, **kwargs)
        if global_pool in ("token", "avg"):  # without the attentive pooler the frames pool the same way
            self.frame_pool = global_pool

    def init_weights(self) -> None:
        super().init_weights()
        for p in (self.temporal_pos_embed, self.temporal_cls_token):
            if p is not None:
                trunc_normal_(p, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        B, T = x.shape[:2]
        P = self.num_prefix_tokens
        # Spatial encoder: frames (or tubelet time steps) are independent sequences.
        x = x + self.pos_embed[:, P:].unsqueeze(1)
        x = rearrange(x, "b t n d -> (b t) n d")
        cls = self._prefix(B * T)
        if cls is not None:
            x = torch.cat([cls, x], dim=1)
        x = self._run_blocks(self.blocks, self.pos_drop(x), (1, x.shape[1] - P))
        x = self._pool_frame(self.norm(x))  # per-frame representation (B*T, D)
        # Temporal encoder over the T frame representations.
        x = rearrange(x, "(b t) d -> b t d", b=B)
        if self.temporal_cls_token is not None:
            x = torch.cat([self.temporal_cls_token.expand(B, -1, -1), x], dim=1)
        x = self.pos_drop(x + self.temporal_pos_embed)
        x = self._run_blocks(self.temporal_blocks, x, (T, 1))
        return self.temporal_norm(x)

    # Intermediates: indices 0..depth-1 are the spatial blocks, maps (B, D, T', H', W') with
    # per-frame class tokens (B, T', P, D) (normalised with ``norm``); indices depth..depth +
    # temporal_depth - 1 are the temporal blocks, whose tokens are one per time step: maps
    # (B, D, T', 1, 1), class token (B, P, D) (normalised with ``temporal_norm``).
    def _num_feature_blocks(self) -> int:
        return len(self.blocks) + len(self.temporal_blocks)

    def _prune_blocks(self, max_index: int, prune_norm: bool) -> None:
        depth = len(self.blocks)
        if max_index < depth:  # only spatial features are kept: the temporal encoder goes entirely
            self.blocks = self.blocks[:max_index + 1]
            self.temporal_blocks = nn.ModuleList()
            if prune_norm:
                self.norm = nn.Identity()
                self.temporal_norm = nn.Identity()
        else:
            self.temporal_blocks = self.temporal_blocks[:max_index - depth + 1]
            if prune_norm:
                self.temporal_norm = nn.Identity()

    def _intermediate_tokens(self, x: torch.Tensor, take: set[int], norm: bool, stop: int | None):
        B, (T, _, _), P, depth = x.shape[0], self.grid_size, self.num_prefix_tokens, len(self.blocks)
        x = self._frames_in(x)
        feats = []
        for i, blk in enumerate(self.blocks[:None if stop is None else stop + 1]):
            x = self._run_blocks([blk], x, (1, x.shape[1] - P))
            if i in take:
                feats.append(self._frame_feature(self.norm(x) if norm else x, B))
        if stop is not None and stop < depth:
            return None, feats
        x = rearrange(self._pool_frame(self.norm(x)), "(b t) d -> b t d", b=B)
        if self.temporal_cls_token is not None:
            x = torch.cat([self.temporal_cls_token.expand(B, -1, -1), x], dim=1)
        x = self.pos_drop(x + self.temporal_pos_embed)
        for j, blk in enumerate(self.temporal_blocks[:None if stop is None else stop - depth + 1]):
            x = self._run_blocks([blk], x, (T, 1))
            if depth + j in take:
                y = self.temporal_norm(x) if norm else x
                feats.append((y[:, P:, None, None, :], y[:, :P] if P else None))
        return (self.temporal_norm(x) if stop is None else None), feats
