"""Checks on what enters vidzoo from outside: model arguments and saved ``config.json`` files.

Every model argument gets a type and a domain here, so ``create_model(..., depth=-1)``, a
``--set depth=one`` on the command line and a hostile ``config.json`` all end in the same one-line
``ValueError`` naming the key, instead of a model built with nonsense or a traceback deep in torch.
The bounds (below) are checked before anything is allocated. They are generous for real video
transformers (ViT-g: width 1408, depth 40, 22 heads, MLP ratio 48/11, 64 frames at 384 px, ~1.0B
parameters; a 6B InternVideo2-size model) and stop a typo or a hostile file (``depth=1e7``,
``embed_dim: 8192``, ``crop_pct: 1e-6``) from allocating the machine away.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

from ._pretrained import PretrainedCfg

# Bounds of sizes that enter from outside (arguments, config.json, pretrained cfgs, data labels).
MAX_DEPTH = 256
MAX_EMBED_DIM = 4096  # ViT-g 1408, ViT-G 1664, InternVideo2-6B 3200
MAX_FRAMES = 4096
MAX_IMG_SIZE = 8192
MAX_PATCH = 1024
MAX_CHANS = 64
MAX_CLASSES = 1_000_000  # classifier outputs, and the largest label + 1 a dataset may hold
MAX_MLP_RATIO = 64.0
MAX_TOKENS = 1 << 17  # tokens per clip (T' * H' * W'); TimeSformer-L has 18816, ViT-g/16x2 at 64x384 18432
MAX_PARAMS = 8e9  # 32 GB of fp32 weights; ViT-g is 1.0B, InternVideo2-6B 5.9B
MIN_CROP_PCT = 0.25  # evaluation resizes frames to crop / crop_pct: at most 4x the crop's side (timm: 0.875-1)
MAX_TEST_CLIPS = 32  # temporal views per video at test time (VideoMAE 5, ViViT 4)
TEST_CROPS = (1, 3)  # spatial views per clip: a centre crop, or three along the long side

_RATES = ("drop_rate", "pos_drop_rate", "proj_drop_rate", "attn_drop_rate", "drop_path_rate")
_ACTS = ("gelu", "gelu_tanh")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _int_in(lo: int, hi: int) -> Callable[[str, Any], None]:
    def check(key: str, v: Any) -> None:
        if not _is_int(v):
            raise ValueError(f"{key} must be an integer in [{lo}, {hi}], got {v!r}")
        if not lo <= v <= hi:
            raise ValueError(f"{key} must be in [{lo}, {hi}], got {v}")
    return check


def _size(lo: int, hi: int) -> Callable[[str, Any], None]:
    """An int or an (H, W) pair of ints."""
    one = _int_in(lo, hi)

    def check(key: str, v: Any) -> None:
        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise ValueError(f"{key} must be an integer or a pair (H, W), got {v!r}")
            one(f"{key}[0]", v[0])
            one(f"{key}[1]", v[1])
        else:
            if not _is_int(v):
                raise ValueError(f"{key} must be an integer or a pair (H, W) of integers in [{lo}, {hi}], got {v!r}")
            one(key, v)
    return check


def _rate(key: str, v: Any) -> None:
    if not _is_num(v) or not 0.0 <= v < 1.0:
        raise ValueError(f"{key} must be a number in [0, 1), got {v!r}")


def _bool(key: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"{key} must be True or False, got {v!r}")


def _opt_bool(key: str, v: Any) -> None:
    if v is not None:
        _bool(key, v)


def _str(key: str, v: Any) -> None:
    if not isinstance(v, str) or not v:
        raise ValueError(f"{key} must be a name (string), got {v!r}")


def _opt_str(key: str, v: Any) -> None:
    if v is not None:
        _str(key, v)


def _mlp_ratio(key: str, v: Any) -> None:
    if not _is_num(v) or not 0 < v <= MAX_MLP_RATIO:
        raise ValueError(f"{key} must be a number in (0, {MAX_MLP_RATIO:g}], got {v!r}")


def _norm_eps(key: str, v: Any) -> None:
    if not _is_num(v) or not 0 < v < 1:
        raise ValueError(f"{key} must be a number in (0, 1), got {v!r}")


def _act_layer(key: str, v: Any) -> None:
    if (isinstance(v, str) and v not in _ACTS) or not (isinstance(v, str) or callable(v)):
        raise ValueError(f"{key} must be 'gelu' or 'gelu_tanh' (or a module class), got {v!r}")


def _attention_order(key: str, v: Any) -> None:
    if not isinstance(v, (list, tuple)) or sorted(v) != ["space", "time"]:
        raise ValueError(f"{key} must be ('space', 'time') or ('time', 'space'), got {v!r}")


def _qkv_bias(key: str, v: Any) -> None:
    if not isinstance(v, bool) and v != "qv":
        raise ValueError(f"{key} must be True, False or 'qv' (query and value biases only), got {v!r}")


def _opt_tubelet(key: str, v: Any) -> None:
    if v is not None:
        _int_in(1, MAX_PATCH)(key, v)


# -- rotary positions and the attentive pooler (pos_embed='rope3d', global_pool='attentive')
def _opt_int_in(lo: int, hi: int) -> Callable[[str, Any], None]:
    one = _int_in(lo, hi)

    def check(key: str, v: Any) -> None:
        if v is not None:
            one(key, v)
    return check


def _attn_pool_layers(key: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, (list, tuple)) or not v or len(v) > MAX_DEPTH:
        raise ValueError(f"{key} must be a non-empty list of block indices, got {v!r}")
    for i, x in enumerate(v):
        _int_in(0, MAX_DEPTH - 1)(f"{key}[{i}]", x)
    if list(v) != sorted(set(v)):
        raise ValueError(f"{key} must be strictly increasing block indices, got {list(v)}")


_POOL_AND_ROPE_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "rope_layout": _opt_str,  # its choices: the model (vidzoo.layers.rope.ROPE_LAYOUTS)
    "attn_pool_depth": _opt_int_in(1, MAX_DEPTH),
    "attn_pool_heads": _opt_int_in(1, MAX_EMBED_DIM),
    "attn_pool_layers": _attn_pool_layers,
}


MODEL_ARG_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "attention": _str,
    "tokenizer": _str,
    "img_size": _size(1, MAX_IMG_SIZE),
    "num_frames": _int_in(1, MAX_FRAMES),
    "patch_size": _size(1, MAX_PATCH),
    "tubelet_size": _opt_tubelet,
    "in_chans": _int_in(1, MAX_CHANS),
    "num_classes": _int_in(0, MAX_CLASSES),
    "embed_dim": _int_in(1, MAX_EMBED_DIM),
    "depth": _int_in(1, MAX_DEPTH),
    "num_heads": _int_in(1, MAX_EMBED_DIM),
    "mlp_ratio": _mlp_ratio,
    "qkv_bias": _qkv_bias,
    "fc_norm": _bool,
    "class_token": _opt_bool,
    "global_pool": _opt_str,
    "pos_embed": _opt_str,
    "pad_mode": _str,
    "act_layer": _act_layer,
    "norm_eps": _norm_eps,
    "temporal_depth": _int_in(1, MAX_DEPTH),
    "attention_order": _attention_order,
    **{k: _rate for k in _RATES},
    **_POOL_AND_ROPE_CHECKS,
}


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if _is_int(v) else (int(v[0]), int(v[1]))


def validate_model_args(args: Mapping[str, Any], complete: bool = False) -> None:
    """Check types and domains of model arguments (user overrides, a spec merged with them, or a
    saved ``model_args``).

    Keys without a rule here (a new attention variant's own arguments) are left to the model.

    Args:
        args: Argument name -> value.
        complete: ``args`` is the full set the model will be built with: also check how the
            arguments fit together (heads divide the width, the token grid and parameter count
            stay within bounds).

    Raises:
        ValueError: Naming the first argument that is wrong, what it must be and what it was.
    """
    for key, value in args.items():
        if not isinstance(key, str):
            raise ValueError(f"model argument names must be strings, got {key!r}")
        check = MODEL_ARG_CHECKS.get(key)
        if check is not None:
            check(key, value)
    dim, heads = args.get("embed_dim"), args.get("num_heads")
    if dim is not None and heads is not None and dim % heads:
        raise ValueError(f"num_heads ({heads}) must divide embed_dim ({dim})")
    pool_heads = args.get("attn_pool_heads")
    if dim is not None and pool_heads is not None and dim % pool_heads:
        raise ValueError(f"attn_pool_heads ({pool_heads}) must divide embed_dim ({dim})")
    if not complete:
        return
    # Bounds on the whole model: the position table and the parameter count.
    tokens = _tokens(args)
    if tokens > MAX_TOKENS:
        raise ValueError(f"num_frames / img_size / patch_size give {tokens} tokens per clip (more than {MAX_TOKENS}); "
                         "use a larger patch or fewer frames")
    if dim is not None:
        params = estimate_params(args)
        if params > MAX_PARAMS:
            raise ValueError(f"depth ({args.get('depth')}), embed_dim ({dim}), mlp_ratio "
                             f"({args.get('mlp_ratio', 4.0)}) and num_classes ({args.get('num_classes')}) give "
                             f"~{params / 1e9:.1f}B parameters (more than {MAX_PARAMS / 1e9:.0f}B); "
                             "check these arguments")


def _tokens(args: Mapping[str, Any]) -> int:
    t = args.get("tubelet_size") or 1
    ph, pw = _pair(args.get("patch_size", 16))
    h, w = _pair(args.get("img_size", 224))
    return math.ceil(args.get("num_frames", 8) / t) * math.ceil(h / ph) * math.ceil(w / pw)


def estimate_params(args: Mapping[str, Any]) -> int:
    """Parameters of a model with the complete arguments ``args``, from the sizes alone (nothing
    is built): blocks (attention projections, a second attention for the divided / factorised
    self-attention variants, MLP), the patch embedding, a position table and the classifier.
    Within a few percent of the real count for the registered families."""
    dim = args.get("embed_dim", 768)
    pooler = (args.get("attn_pool_depth") or 1) if args.get("global_pool") == "attentive" else 0
    blocks = args.get("depth", 12) + (args.get("temporal_depth") or 0) + pooler
    attentions = 2 if args.get("attention") in ("divided", "factorised_self_attention") else 1
    per_block = (4 * attentions + 2 * args.get("mlp_ratio", 4.0)) * dim * dim
    ph, pw = _pair(args.get("patch_size", 16))
    patch = args.get("in_chans", 3) * (args.get("tubelet_size") or 1) * ph * pw * dim
    head = dim * args.get("num_classes", 0)
    return int(blocks * per_block + patch + _tokens(args) * dim + head)


def check_crop_pct(crop_pct: Any, img_size: Any = None, key: str = "crop_pct") -> None:
    """``crop_pct`` in ``[MIN_CROP_PCT, 1]``, and the frame size it resizes to (the crop's short side
    / crop_pct) within ``MAX_IMG_SIZE`` when ``img_size`` is given.

    Raises:
        ValueError: Naming ``key``, the bound and the value.
    """
    if not _is_num(crop_pct) or not MIN_CROP_PCT <= crop_pct <= 1:
        raise ValueError(f"{key} must be a number in [{MIN_CROP_PCT:g}, 1] (evaluation resizes frames to the crop "
                         f"size / crop_pct), got {crop_pct!r}")
    if img_size is not None:
        side = math.floor(min(_pair(img_size)) / crop_pct)
        if side > MAX_IMG_SIZE:
            raise ValueError(f"{key}={crop_pct:g} with img_size {img_size} resizes frames to {side} px (more than "
                             f"{MAX_IMG_SIZE})")


# ------------------------------------------------------------------------------ config.json
_SOURCE_FIELDS = ("state_dict", "file", "hf_hub_id", "hf_hub_filename", "hf_hub_revision")
_CFG_STR_FIELDS = ("tag", "architecture", "source_format", "inflation", "interpolation", "sampling", "classifier",
                   "license", "paper_ids", "paper_name", "origin_url", "notes")


def _cfg_field(key: str, v: Any) -> None:
    """Type/domain of one saved ``pretrained_cfg`` field (named ``pretrained_cfg.<key>`` in errors)."""
    name = f"pretrained_cfg.{key}"
    if key in _CFG_STR_FIELDS:
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{name} must be a string, got {v!r}")
    elif key in ("mean", "std"):
        if not isinstance(v, (list, tuple)) or not v or not all(_is_num(x) for x in v):
            raise ValueError(f"{name} must be a list of numbers, got {v!r}")
        if key == "std" and not all(x > 0 for x in v):
            raise ValueError(f"{name} must be positive, got {v!r}")
    elif key == "input_size":
        if not isinstance(v, (list, tuple)) or len(v) != 4 or not all(_is_int(x) and x >= 1 for x in v):
            raise ValueError(f"{name} must be 4 positive integers (C, T, H, W), got {v!r}")
        for what, x, hi in zip("CTHW", v, (MAX_CHANS, MAX_FRAMES, MAX_IMG_SIZE, MAX_IMG_SIZE)):
            _int_in(1, hi)(f"{name} {what}", x)
    elif key == "num_frames":
        _int_in(1, MAX_FRAMES)(name, v)
    elif key == "test_num_clips":
        _int_in(1, MAX_TEST_CLIPS)(name, v)
    elif key == "test_num_crops":
        if v not in TEST_CROPS or not _is_int(v):
            raise ValueError(f"{name} must be one of {TEST_CROPS}, got {v!r}")
    elif key == "frame_sample_rate":
        if v is not None:
            _int_in(1, MAX_FRAMES)(name, v)
    elif key == "num_classes":
        _int_in(0, MAX_CLASSES)(name, v)
    elif key == "crop_pct":
        check_crop_pct(v, key=name)
    elif key == "label_names":
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise ValueError(f"{name} must be a list of strings, got {str(v)[:80]}")
    elif key in ("extra", "provenance"):
        if v is not None and not isinstance(v, dict):
            raise ValueError(f"{name} must be an object, got {v!r}")


def parse_model_config(config: Any, is_registered: Callable[[str], bool],
                       closest: Callable[[str], str] = lambda name: "") -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Validate a vidzoo ``config.json`` (already parsed) and split it into its parts.

    A config is data: its ``architecture`` must be a registered architecture name (never an
    ``hf-hub:`` / ``local-dir:`` reference or a path), its ``model_args`` pass
    :func:`validate_model_args`, its ``pretrained_cfg`` has known fields of the right types and no
    weight source (the weights are the folder's own ``model.safetensors``).

    Args:
        config: The parsed JSON.
        is_registered: Whether a name is a registered architecture.
        closest: Hint naming the closest registered names (for the error).

    Returns:
        ``(pretrained_cfg dict, architecture, model_args)``.

    Raises:
        ValueError: ``'<field>: <what is wrong>'`` for the first problem found (the caller adds the file).
    """
    if not isinstance(config, dict):
        raise ValueError(f"expected a JSON object, got {type(config).__name__}")
    if "architecture" not in config:
        hint = (" (an HF transformers config: convert the checkpoint with `vidzoo convert`)" if "model_type" in config
                else "")
        raise ValueError(f"architecture: missing; this is not a vidzoo model config{hint}")
    if config.get("format", "vidzoo") != "vidzoo":
        raise ValueError(f"format: expected 'vidzoo', got {config.get('format')!r}")
    arch = config["architecture"]
    if not isinstance(arch, str):
        raise ValueError(f"architecture: expected a registered architecture name, got {arch!r}")
    if ":" in arch or "/" in arch or "\\" in arch or "." in arch or not is_registered(arch):
        raise ValueError(f"architecture: {arch!r} is not a registered vidzoo architecture (a config.json names an "
                         f"architecture, never another model, folder or tag){closest(arch)}")
    model_args = config.get("model_args", {})
    if not isinstance(model_args, dict):
        raise ValueError(f"model_args: expected an object, got {model_args!r}")
    try:
        validate_model_args(model_args)
    except ValueError as e:
        raise ValueError(f"model_args.{e}") from None
    num_classes = config.get("num_classes")
    if num_classes is not None:
        _int_in(0, MAX_CLASSES)("num_classes", num_classes)
        if "num_classes" in model_args and model_args["num_classes"] != num_classes:
            raise ValueError(f"num_classes: {num_classes} differs from model_args.num_classes "
                             f"({model_args['num_classes']})")
    pcfg = config.get("pretrained_cfg", {}) or {}
    if not isinstance(pcfg, dict):
        raise ValueError(f"pretrained_cfg: expected an object, got {pcfg!r}")
    known = set(PretrainedCfg.__dataclass_fields__)
    for key, value in pcfg.items():
        if key in _SOURCE_FIELDS:
            if value is None:
                continue
            raise ValueError(f"pretrained_cfg.{key}: a vidzoo config.json names no weight source (the weights are "
                             f"the folder's model.safetensors), got {value!r}")
        if key not in known:
            raise ValueError(f"pretrained_cfg.{key}: unknown field (known: {', '.join(sorted(known))})")
        _cfg_field(key, value)
    labels = pcfg.get("label_names")
    n = num_classes if num_classes is not None else model_args.get("num_classes")
    if n is not None and pcfg.get("num_classes", n) != n:  # one class count: the head's (see check_head_kept)
        raise ValueError(f"pretrained_cfg.num_classes: {pcfg['num_classes']} differs from num_classes ({n})")
    if labels is not None and n is not None and len(labels) != n:
        raise ValueError(f"pretrained_cfg.label_names: {len(labels)} names for {n} classes")
    pcfg = {k: v for k, v in pcfg.items() if k not in _SOURCE_FIELDS}
    args = dict(model_args)
    if num_classes is not None:
        args.setdefault("num_classes", num_classes)
    return pcfg, arch, args
