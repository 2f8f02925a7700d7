"""Convert an upstream checkpoint into a vidzoo model folder (what ``vidzoo convert SRC DST`` runs).

``SRC`` may be a checkpoint file, a folder holding an HF transformers ``config.json`` and its
weights, or ``hf-hub:org/repo[@revision]`` of such a repo. Where an HF config is present the vidzoo
architecture and its arguments are read from it (frames, image size, patch/tubelet, width, depth,
heads, MLP width, norm eps, activation, classes and ``id2label``); otherwise ``model_name`` names
the architecture and ``overrides`` give its arguments.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ._factory import create_model
from ._local import LocalModelError, read_training_checkpoint, resolve_model_path
from ._hub import (WEIGHT_FILES, HubDownloadError, check_model_folder_destination, download_file, download_weights,
                   save_pretrained)
from ._pretrained import PretrainedCfg
from ._weights import _read_json, check_head_kept, label_names_from_config, load_checkpoint
from .models import get_pretrained_cfg, list_pretrained, resolve_alias, split_model_name_tag
from .models.tables import VIT_SIZES
from .models.vjepa2 import SIZES as VJEPA2_SIZES

_HF_ACT = {"gelu": "gelu", "gelu_fast": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
_TIMESFORMER_ATTN = {"divided_space_time": "divided", "joint_space_time": "joint", "space_only": "space"}


def _hf_common_args(cfg: dict[str, Any]) -> dict[str, Any]:
    size = cfg.get("image_size", 224)
    hidden = cfg.get("hidden_size", 768)
    act = cfg.get("hidden_act", "gelu")
    if act not in _HF_ACT:
        raise ValueError(f"Unsupported hidden_act {act!r} in config.json; vidzoo supports {sorted(_HF_ACT)}.")
    args = dict(img_size=size if isinstance(size, int) else tuple(size), num_frames=cfg.get("num_frames", 8),
                in_chans=cfg.get("num_channels", 3), embed_dim=hidden, depth=cfg.get("num_hidden_layers", 12),
                num_heads=cfg.get("num_attention_heads", 12),
                mlp_ratio=cfg.get("intermediate_size", 4 * hidden) / hidden,
                qkv_bias=cfg.get("qkv_bias", True), norm_eps=cfg.get("layer_norm_eps", 1e-6), act_layer=_HF_ACT[act])
    if "id2label" in cfg:
        args["num_classes"] = len(cfg["id2label"])
    return args


def model_args_from_hf_config(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(architecture, overrides)`` of the vidzoo model matching an HF transformers ViViT / TimeSformer /
    VideoMAE config."""
    kind = cfg.get("model_type")
    args = _hf_common_args(cfg)
    if kind == "vivit":
        t, ph, pw = cfg.get("tubelet_size", (2, 16, 16))
        if ph != pw:
            raise ValueError(f"Non-square tubelet {cfg.get('tubelet_size')} is not supported.")
        args.update(patch_size=ph, tubelet_size=t)
        return "vivit_joint_base_patch16x2_224", args
    if kind == "timesformer":
        attn = _TIMESFORMER_ATTN.get(cfg.get("attention_type", "divided_space_time"))
        if attn is None:
            raise ValueError(f"Unknown TimeSformer attention_type {cfg.get('attention_type')!r}.")
        args["patch_size"] = cfg.get("patch_size", 16)
        arch = f"timesformer_{attn}_base_patch16_224"
        if attn == "divided" and args["img_size"] == 448:
            arch = "timesformer_divided_base_patch16_448"
        elif attn == "divided" and args["num_frames"] == 96:
            arch = "timesformer_divided_base_patch16_224_f96"
        return arch, args
    if kind == "videomae":
        if not cfg.get("use_mean_pooling", True):
            args["num_classes"] = 0  # a pretraining config: the encoder as a backbone (mean pooling + fc_norm)
        # transformers' layer_norm_eps (1e-12, and 1e-5 in fc_norm) is the port's; the weights were
        # trained with the original code's 1e-6, vidzoo's eps for the family
        args.update(patch_size=cfg.get("patch_size", 16), tubelet_size=cfg.get("tubelet_size", 2), norm_eps=1e-6,
                    qkv_bias="qv" if cfg.get("qv_bias", cfg.get("qkv_bias", True)) else False)
        return "videomae_joint_base_patch16x2_224", args
    if kind == "vjepa2":
        return _vjepa2_args(cfg)
    raise ValueError(f"config.json has model_type {kind!r}; convert_checkpoint reads HF 'vivit', 'timesformer', "
                     "'videomae' and 'vjepa2' configs (pass model_name=ARCH for other checkpoints).")


def _vjepa2_args(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A transformers V-JEPA 2 config -> the vidzoo architecture of its width and crop, and its arguments.

    The attentive probe's head count is not in the config (transformers uses the encoder's); vidzoo keeps
    the architecture's, upstream's 16. A classifier config (``id2label``) keeps its classes; an encoder
    (``VJEPA2Model``) gets ``num_classes=0`` and a fresh pooler."""
    hidden, crop = cfg.get("hidden_size", 1024), cfg.get("crop_size", 256)
    # the architecture of the same width (ViT-L for another width); the config's values override its spec
    size = next((k for k in VJEPA2_SIZES if VIT_SIZES[k].embed_dim == hidden), "large")
    act = cfg.get("hidden_act", "gelu")
    if act not in _HF_ACT:
        raise ValueError(f"Unsupported hidden_act {act!r} in config.json; vidzoo supports {sorted(_HF_ACT)}.")
    classifier = any("ForVideoClassification" in a for a in cfg.get("architectures") or [])
    args = dict(img_size=crop, num_frames=cfg.get("frames_per_clip", 64), in_chans=cfg.get("in_chans", 3),
                patch_size=cfg.get("patch_size", 16), tubelet_size=cfg.get("tubelet_size", 2), embed_dim=hidden,
                depth=cfg.get("num_hidden_layers", VIT_SIZES[size].depth),
                num_heads=cfg.get("num_attention_heads", VIT_SIZES[size].num_heads),
                mlp_ratio=cfg.get("mlp_ratio", VIT_SIZES[size].mlp_ratio), qkv_bias=cfg.get("qkv_bias", True),
                norm_eps=cfg.get("layer_norm_eps", 1e-6), act_layer=_HF_ACT[act],
                num_classes=len(cfg["id2label"]) if classifier and "id2label" in cfg else 0)
    if classifier:
        args["attn_pool_depth"] = cfg.get("num_pooler_layers", 3) + 1
    return f"vjepa2_joint_{size}_patch16x2_{384 if crop == 384 and size == 'giant' else 256}", args


def _registered_tag_of(repo_id: str, arch: str) -> str | None:
    """``arch.tag`` of the registered tag whose weights are ``repo_id`` (None when there is none)."""
    for name in list_pretrained(f"{arch}.*"):
        if get_pretrained_cfg(name).hf_hub_id == repo_id:
            return name
    return None


def _locate(src: str) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None, str]:
    """``(weights path, HF config, HF preprocessor config, origin)`` of ``src``."""
    if src.startswith("hf-hub:"):
        repo_id, _, revision = src[len("hf-hub:"):].partition("@")
        revision = revision or None
        weights = download_weights(repo_id, None, revision)
        config = _read_json(download_file(repo_id, "config.json", revision))  # None if not JSON
        try:
            pre = _read_json(download_file(repo_id, "preprocessor_config.json", revision))
        except HubDownloadError:
            pre = None
        return weights, config, pre, f"https://huggingface.co/{repo_id}"
    p = Path(src).expanduser()
    if p.is_dir():
        weights = next((p / n for n in WEIGHT_FILES if (p / n).is_file()), None)
        if weights is None:
            raise FileNotFoundError(f"No weights in '{p}': expected one of {', '.join(WEIGHT_FILES)}.")
        folder = p
    elif p.is_file():
        weights, folder = p, p.parent
    else:
        raise FileNotFoundError(f"'{src}' is neither a checkpoint file, a folder nor an hf-hub: id.")
    config = _read_json(folder / "config.json")
    if config is not None and "model_type" not in config:
        config = None  # e.g. a vidzoo or timm config: not an HF transformers one
    pre = _read_json(folder / "preprocessor_config.json")
    return str(weights), config, pre, str(p)


def _vidzoo_model(src: str) -> nn.Module | None:
    """The model of a ``vidzoo train`` checkpoint or run folder at ``src`` (its weights, architecture, input
    cfg, class names and provenance), or None when ``src`` is not one (an upstream file or folder)."""
    if src.startswith("hf-hub:"):
        return None
    p = Path(src).expanduser()
    if p.is_dir():
        if (p / "config.json").is_file():
            return None  # an HF transformers folder (or already a vidzoo model folder)
        try:
            p = resolve_model_path(p)  # a run folder: its model/, else best/last checkpoint
        except LocalModelError:
            return None
        return create_model(str(p))
    if not p.is_file():
        return None
    try:
        read_training_checkpoint(p)
    except LocalModelError:
        return None  # an upstream checkpoint: the architecture must be named
    return create_model(str(p))


def convert_checkpoint(src: str, dst: str | os.PathLike, model_name: str | None = None,
                       inflation: str = "central_frame", **overrides: Any) -> nn.Module:
    """Read an upstream checkpoint (or vidzoo's own training checkpoint) and write it as a vidzoo folder
    (config.json + model.safetensors).

    Args:
        src: Checkpoint file, HF transformers folder, or ``hf-hub:org/repo[@revision]``; or a training
            checkpoint / run folder of ``vidzoo train`` (which carries its architecture: ``model_name``
            is then not needed).
        dst: Output folder (created).
        model_name: vidzoo architecture (``arch`` or ``arch.tag``, whose cfg gives mean/std and
            sampling); required when ``src`` has no HF ``config.json``.
        inflation: 2-D -> tubelet kernel inflation for image checkpoints.
        **overrides: Model arguments on top of those read from the config.

    Returns:
        The converted model (``create_model("local-dir:DST")`` loads the folder).

    Raises:
        vidzoo.OutputError: ``dst`` is a file, a folder holding anything but a vidzoo model (it is
            never replaced), read-only, or the disk is full; checked before any work.
    """
    check_model_folder_destination(dst)
    own = _vidzoo_model(str(src)) if model_name is None else None
    if own is not None:  # vidzoo's own training checkpoint or run folder: it knows its architecture
        save_pretrained(own, dst)
        return own
    weights, hf_cfg, pre, origin = _locate(str(src))
    args: dict[str, Any] = {}
    arch = None
    if hf_cfg is not None:
        arch, args = model_args_from_hf_config(hf_cfg)
        if hf_cfg.get("model_type") == "vjepa2" and not model_name and str(src).startswith("hf-hub:"):
            # a V-JEPA 2 tag's repo: its tag (the Diving48 probes read four blocks, which no config says)
            arch = _registered_tag_of(str(src)[len("hf-hub:"):].partition("@")[0], arch) or arch
    if model_name:
        arch = model_name
    if arch is None:
        raise ValueError(f"'{src}' has no HF transformers config.json: pass model_name=ARCH (a vidzoo architecture) "
                         "and the architecture's overrides.")
    args.update(overrides)
    base, tag = split_model_name_tag(resolve_alias(arch))
    cfg: PretrainedCfg = get_pretrained_cfg(arch)
    source_format = cfg.source_format if tag else None
    # Provenance: the file converted, and, when a tag was named, that the file is that tag's weights
    # (its licence and dataset); without a tag nothing is known beyond the file.
    provenance = {"kind": "converted", "source": origin, "as_tag": f"{base}.{tag}" if tag else None,
                  "license": cfg.license if tag else None,
                  "dataset": (cfg.extra or {}).get("dataset") if tag else None}
    extra = dict(cfg.extra or {}) if tag else {k: v for k, v in (cfg.extra or {}).items() if k != "dataset"}
    cfg = cfg.replace(file=None, hf_hub_id=None, hf_hub_filename=None, hf_hub_revision=None, origin_url=origin,
                      label_names=label_names_from_config(hf_cfg) or cfg.label_names, source_format="vidzoo",
                      license=provenance["license"], notes=cfg.notes if tag else None, extra=extra,
                      tag=tag, provenance=provenance)
    if pre and pre.get("image_mean") and pre.get("image_std"):
        cfg = cfg.replace(mean=tuple(pre["image_mean"]), std=tuple(pre["image_std"]))
    model = create_model(base, pretrained=False, pretrained_cfg=cfg, **args)
    report = load_checkpoint(model, weights, inflation=inflation, source_format=source_format)
    check_head_kept(report, model, asked="num_classes" in overrides, weights=f"'{weights}'",
                    declared="the HF config.json" if hf_cfg is not None and "num_classes" in args
                    else f"{arch} (its pretrained cfg)")
    if report.get("head_dropped") and model.num_classes:
        provenance["head"] = "fresh"  # asked for: a new classifier, to fine-tune
    model.pretrained_cfg["provenance"] = provenance
    save_pretrained(model, dst)
    return model
