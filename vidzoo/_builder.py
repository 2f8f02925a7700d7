"""Build a model from its spec and overrides, attach its pretrained cfg, load its weights.

As timm's builder, this module is given the model class by the family module that calls it
(``build_model_with_cfg(VideoTransformer, variant, ...)``) and imports nothing from
:mod:`vidzoo.models`, which imports it.
"""
from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ._convert import CheckpointMismatchError
from ._pretrained import PretrainedCfg, pretrained_cfg_from_dict
from ._registry import get_pretrained_cfg
from ._validation import check_crop_pct, estimate_params, validate_model_args
from ._weights import check_head_kept, load_pretrained, stored_numel

if TYPE_CHECKING:
    from .models.video_transformer import VideoTransformer


@functools.cache
def _base_args(model_cls: type[VideoTransformer]) -> tuple[str, ...]:
    """Arguments of the composed model that an entry point's spec may set and a user may override."""
    return tuple(p for p in inspect.signature(model_cls.__init__).parameters
                 if p not in ("self", "block_kwargs", "variant_kwargs"))


def model_arg_names(model_cls: type[VideoTransformer], attention: str) -> tuple[str, ...]:
    """Every override accepted by a ``model_cls`` of attention variant ``attention``."""
    return ("attention",) + _base_args(model_cls) + model_cls.for_attention(attention).variant_args


def merge_model_args(model_cls: type[VideoTransformer], spec: dict[str, Any],
                     overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply user overrides to an entry point's spec.

    Switching tokenizer or attention variant resets the spec's arguments that only meant
    something for the old one (``tubelet_size``; ``temporal_depth``, ``attention_order``; a
    position-embedding layout or class token the new variant does not support) unless the user
    set them too; likewise a ``pos_embed`` / ``global_pool`` that ends up other than the spec's
    drops the spec's ``rope_layout`` / ``attn_pool_*`` (``DEPENDENT_ARGS``). Anything the user
    set explicitly is passed on and checked by the model.
    """
    validate_model_args(overrides)  # the user's values, named as given, before they mix with the spec
    get_attention = model_cls.for_attention
    if "attention" in overrides:
        get_attention(overrides["attention"])  # unknown variant: the closest names
    args = dict(spec)
    if "tokenizer" in overrides and overrides["tokenizer"] != spec.get("tokenizer") and "tubelet_size" not in overrides:
        args.pop("tubelet_size", None)
    new_attn = overrides.get("attention", spec["attention"])
    if new_attn != spec["attention"]:
        old, new = get_attention(spec["attention"]), get_attention(new_attn)
        for k in old.variant_args:
            if k not in new.variant_args:
                args.pop(k, None)
        if args.get("pos_embed") not in new.pos_embed_types:
            args.pop("pos_embed", None)
        if not new.supports_fc_norm:
            args.pop("fc_norm", None)
        if not new.supports_class_token:
            args.pop("class_token", None)
            if args.get("global_pool") == "token":
                args.pop("global_pool")
    args.update(overrides)
    for (arg, choice), deps in model_cls.dependent_args.items():  # e.g. rope_layout goes with a pos_embed override
        if args.get(arg) != choice:
            for dep in deps:
                if dep not in overrides:
                    args.pop(dep, None)
    accepted = model_arg_names(model_cls, args["attention"])
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise TypeError(f"Unexpected model argument(s) {unknown} for attention '{args['attention']}'. "
                        f"Accepted: {', '.join(accepted)}.")
    return args


def resolve_pretrained_cfg(variant: str, pretrained_cfg: str | PretrainedCfg | dict | None = None,
                           pretrained_cfg_overlay: dict[str, Any] | None = None) -> PretrainedCfg:
    """The cfg of ``variant`` (its default tag, a named tag, or a given cfg), with an overlay applied."""
    if isinstance(pretrained_cfg, PretrainedCfg):
        cfg = pretrained_cfg
    elif isinstance(pretrained_cfg, dict):
        cfg = pretrained_cfg_from_dict(pretrained_cfg) if "provenance" in pretrained_cfg else PretrainedCfg(
            **pretrained_cfg)
    else:
        cfg = get_pretrained_cfg(f"{variant}.{pretrained_cfg}" if pretrained_cfg else variant)
    if pretrained_cfg_overlay:
        cfg = cfg.replace(**pretrained_cfg_overlay)
    return cfg


def _feed_cfg(cfg: PretrainedCfg, model: VideoTransformer) -> dict[str, Any]:
    """The cfg as the model's ``pretrained_cfg`` dict, with the input it was actually built for."""
    c, t = model.patch_embed.in_chans, model.num_frames
    label_names = cfg.label_names if cfg.label_names and len(cfg.label_names) == model.num_classes else None
    mean, std = cfg.mean, cfg.std
    if len(mean) != c:  # e.g. one-channel volumes: keep per-channel stats consistent with in_chans
        mean, std = (sum(mean) / len(mean),) * c, (sum(std) / len(std),) * c
    return cfg.replace(num_frames=t, input_size=(c, t, *model.img_size), num_classes=model.num_classes,
                       label_names=label_names, mean=tuple(mean), std=tuple(std)).to_dict()


def build_model_with_cfg(
    model_cls: type[VideoTransformer],
    variant: str,
    pretrained: bool,
    spec: dict[str, Any],
    pretrained_filter_fn: Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]] | None = None,
    pretrained_cfg: str | PretrainedCfg | dict | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    **kwargs: Any,
) -> VideoTransformer:
    """Build ``variant`` from its ``spec`` with user ``kwargs`` and (optionally) load its weights.

    Args:
        model_cls: The composed model class; the spec's ``attention`` picks its registered subclass
            (``model_cls.for_attention``).
        variant: Architecture name (``arch`` without tag).
        pretrained: Load the weights of the resolved pretrained cfg.
        spec: The entry point's architecture arguments (including ``attention``).
        pretrained_filter_fn: Converts a source state dict to this model's keys and shapes.
        pretrained_cfg: Tag name, cfg or dict; default is the architecture's default tag.
        pretrained_cfg_overlay: Fields replaced in the cfg, e.g. ``dict(file=PATH)``.
        **kwargs: Model overrides (see :func:`model_arg_names`).
    """
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg, pretrained_cfg_overlay)
    args = merge_model_args(model_cls, spec, kwargs)
    args.setdefault("num_classes", cfg.num_classes)
    validate_model_args(args, complete=True)
    check_crop_pct(cfg.crop_pct, args.get("img_size", 224), key="pretrained_cfg.crop_pct")  # eval resize size
    if pretrained and cfg.source_format == "vidzoo":
        _check_stored_size(cfg, args)
    variant_cls = model_cls.for_attention(args["attention"])
    model = variant_cls(**{k: v for k, v in args.items() if k != "attention"})
    model.model_args = args
    model.architecture = variant
    model.pretrained_cfg = _feed_cfg(cfg, model)
    report = load_pretrained(model, cfg, filter_fn=pretrained_filter_fn) if pretrained else {}
    if report:
        saved = cfg.source_format == "vidzoo"
        check_head_kept(report, model, asked=model.num_classes != cfg.num_classes, weights=_weights_name(cfg),
                        declared=("its config.json" if cfg.state_dict is None else "its checkpoint's model_args")
                        if saved else f"{variant} (its pretrained cfg)")
    model.pretrained_cfg["provenance"] = _provenance(variant, cfg, pretrained)
    if report.get("head_dropped"):  # the weights' classifier had another class count: this head is random
        model.pretrained_cfg["provenance"]["head"] = "fresh"
    return model


def _check_stored_size(cfg: PretrainedCfg, args: dict[str, Any]) -> None:
    """A saved model's arguments must describe about as many parameters as its weights hold: checked
    before the model is allocated, so a config.json that names a giant never costs its memory.

    Raises:
        CheckpointMismatchError: Naming both sizes (nothing was built).
    """
    stored = stored_numel(cfg)
    wanted = estimate_params(args)
    if stored is not None and wanted > 2 * stored + 1_000_000:  # the estimate is within ~10%; small models pass
        raise CheckpointMismatchError(
            f"the model arguments describe ~{wanted / 1e6:.1f}M parameters but the weights {_weights_name(cfg)} "
            f"hold {stored / 1e6:.2f}M: they do not belong together (nothing was built)")


def _weights_name(cfg: PretrainedCfg) -> str:
    if cfg.state_dict is not None:
        return "the state dict given"
    if cfg.file:
        return f"'{cfg.file}'"
    return f"hf-hub:{cfg.hf_hub_id}" + (f" ({cfg.hf_hub_filename})" if cfg.hf_hub_filename else "")


def _provenance(variant: str, cfg: PretrainedCfg, pretrained: bool) -> dict[str, Any]:
    """What the weights of a freshly built model are: random, or loaded from which source."""
    if not pretrained:
        return {"kind": "random_init", "architecture": variant}
    if cfg.source_format == "vidzoo" and cfg.provenance:
        return dict(cfg.provenance)  # a saved vidzoo model: its own record
    if cfg.state_dict is not None:
        source = "a state dict given in pretrained_cfg"
    elif cfg.file:
        source = f"file {cfg.file}" + (f" (as {variant}.{cfg.tag})" if cfg.tag else "")
    elif cfg.source_format == "vidzoo":
        source = f"hf-hub:{cfg.hf_hub_id}" + (f"@{cfg.hf_hub_revision}" if cfg.hf_hub_revision else "")
    else:
        source = f"{variant}.{cfg.tag}" if cfg.tag else variant
    return {"kind": "pretrained", "source": source, "origin_url": cfg.origin_url, "license": cfg.license,
            "dataset": cfg.extra.get("dataset")}
