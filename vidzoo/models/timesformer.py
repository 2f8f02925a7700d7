"""TimeSformer: Is Space-Time Attention All You Need for Video Understanding?
(Bertasius et al., ICML 2021, arXiv:2102.05095).

Uniform frame tokenizer (16 px patches), a spatial ``pos_embed`` with class token plus a
``time_embed``; divided space-time (``divided``), joint space-time (``joint``) and space-only
(``space``) attention. TimeSformer: 8 frames at 224; TimeSformer-HR: 16 frames at 448;
TimeSformer-L: 96 frames at 224.
"""
from __future__ import annotations

from typing import Any

import torch

from .._builder import build_model_with_cfg
from .._pretrained import (INCEPTION_MEAN, INCEPTION_STD, KINETICS_MEAN, KINETICS_STD, PretrainedCfg,
                           generate_default_cfgs)
from .._registry import register_model, register_model_alias
from .tables import VIT_SIZES
from .video_transformer import VideoTransformer

ATTENTION = {"divided": "divided", "joint": "joint", "space": "space_only"}


def _spec(attn: str, size: str, **kwargs: Any) -> dict[str, Any]:
    dim, depth, heads, _ = VIT_SIZES[size]
    spec = dict(attention=ATTENTION[attn], tokenizer="uniform", img_size=224, num_frames=8, patch_size=16,
                embed_dim=dim, depth=depth, num_heads=heads, act_layer="gelu")
    if attn != "space":
        spec["pos_embed"] = "separable"
    spec.update(kwargs)
    return spec


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: VideoTransformer,
                         **kwargs: Any) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto a TimeSformer model: HF transformers TimeSformer
    (``facebook/timesformer-*``), official TimeSformer (``model_state`` / ``model.`` prefix), timm
    2-D ViT (temporal attention copied from spatial, time embedding zero) or vidzoo keys; position
    and time embeddings resampled with nearest interpolation as upstream does. ``kwargs`` go to
    :func:`vidzoo._convert.convert_state_dict`."""
    from .._convert import convert_state_dict
    return convert_state_dict(state_dict, model, **kwargs)


def _create_timesformer(variant: str, pretrained: bool, spec: dict[str, Any], **kwargs: Any) -> VideoTransformer:
    return build_model_with_cfg(VideoTransformer, variant, pretrained, spec,
                                pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


def _cfg(num_frames: int = 8, img_size: int = 224, frame_sample_rate: int | None = 32, **kwargs: Any) -> PretrainedCfg:
    """Official recipes: 8x32 (8 frames, one every 32), HR 16x16, L 96x4; SSv2 samples uniformly."""
    kwargs = dict(dict(mean=KINETICS_MEAN, std=KINETICS_STD, sampling="dense", license="cc-by-nc-4.0"), **kwargs)
    return PretrainedCfg(num_frames=num_frames, input_size=(3, num_frames, img_size, img_size),
                         frame_sample_rate=frame_sample_rate, test_num_clips=1, test_num_crops=3,
                         paper_ids="arXiv:2102.05095",
                         paper_name="Is Space-Time Attention All You Need for Video Understanding?", **kwargs)


_DATASETS = {"k400": ("Kinetics-400", 400), "k600": ("Kinetics-600", 600), "ssv2": ("Something-Something v2", 174)}


def _hf(repo: str, tag: str, **kwargs: Any) -> PretrainedCfg:
    """An HF transformers TimeSformer checkpoint (``pytorch_model.bin`` on main), converted at load time."""
    dataset, n = _DATASETS[tag]
    if tag == "ssv2":
        kwargs.update(sampling="uniform", frame_sample_rate=None)
    return _cfg(hf_hub_id=repo, hf_hub_filename="pytorch_model.bin", source_format="hf_timesformer", num_classes=n,
                origin_url=f"https://huggingface.co/{repo}", extra=dict(dataset=dataset), **kwargs)


def _in21k(**kwargs: Any) -> PretrainedCfg:
    """Initialised from timm's ImageNet-21k ViT-B/16 (augreg) as the official code does from its ViT:
    temporal attention and norm copied from the spatial ones, ``temporal_fc`` zero but in the first
    block, time embedding zero; the 21843-class head is dropped for a fresh one."""
    return _cfg(hf_hub_id="timm/vit_base_patch16_224.augreg_in21k", hf_hub_filename="model.safetensors",
                source_format="timm_vit", mean=INCEPTION_MEAN, std=INCEPTION_STD, license="apache-2.0",
                origin_url="https://huggingface.co/timm/vit_base_patch16_224.augreg_in21k",
                extra=dict(dataset="ImageNet-21k (image initialisation)"),
                notes="Video model initialised from an ImageNet-21k image model; the head and temporal "
                      "parameters are untrained (fine-tune before use).", **kwargs)


default_cfgs = generate_default_cfgs({
    **{f"timesformer_divided_base_patch16_224.{t}": _hf(f"facebook/timesformer-base-finetuned-{t}", t)
       for t in ("k400", "k600", "ssv2")},
    **{f"timesformer_divided_base_patch16_448.{t}": _hf(f"facebook/timesformer-hr-finetuned-{t}", t, num_frames=16,
                                                          img_size=448, frame_sample_rate=16)
       for t in ("k400", "k600", "ssv2")},
    # TimeSformer-L (96 frames, ViT-B width), K400, as converted to HF transformers by fcakyon.
    "timesformer_divided_base_patch16_224_f96.k400": _hf("fcakyon/timesformer-large-finetuned-k400", "k400",
                                                         num_frames=96, frame_sample_rate=4),
    **{f"timesformer_{a}_base_patch16_224.in21k": _in21k() for a in ATTENTION},
    "timesformer_divided_base_patch16_448.in21k": _in21k(num_frames=16, img_size=448, frame_sample_rate=16),
    "timesformer_divided_base_patch16_224_f96.in21k": _in21k(num_frames=96, frame_sample_rate=4),
    **{f"timesformer_{a}_{s}_patch16_224": _cfg() for a in ATTENTION for s in ("tiny", "small", "base")},
    "timesformer_divided_base_patch16_448": _cfg(num_frames=16, img_size=448, frame_sample_rate=16),
    "timesformer_divided_base_patch16_224_f96": _cfg(num_frames=96, frame_sample_rate=4),
})


# ------------------------------------------------------------------------------ TimeSformer-B
@register_model
def timesformer_divided_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer (divided space-time), ViT-B/16, 8x224, 121.4M params at 400 classes."""
    return _create_timesformer("timesformer_divided_base_patch16_224", pretrained, _spec("divided", "base"), **kwargs)


@register_model
def timesformer_joint_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer joint space-time attention, ViT-B/16, 8x224, 85.9M params."""
    return _create_timesformer("timesformer_joint_base_patch16_224", pretrained, _spec("joint", "base"), **kwargs)


@register_model
def timesformer_space_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer space-only attention (frames encoded separately, averaged), ViT-B/16, 8x224."""
    return _create_timesformer("timesformer_space_base_patch16_224", pretrained, _spec("space", "base"), **kwargs)


@register_model
def timesformer_divided_base_patch16_448(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer-HR: divided space-time, ViT-B/16, 16 frames at 448 px."""
    spec = _spec("divided", "base", num_frames=16, img_size=448)
    return _create_timesformer("timesformer_divided_base_patch16_448", pretrained, spec, **kwargs)


@register_model
def timesformer_divided_base_patch16_224_f96(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer-L: divided space-time, ViT-B/16, 96 frames at 224 px (long-range)."""
    spec = _spec("divided", "base", num_frames=96)
    return _create_timesformer("timesformer_divided_base_patch16_224_f96", pretrained, spec, **kwargs)


# ----------------------------------------------------------------------- small and tiny (CPU)
@register_model
def timesformer_divided_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer divided space-time, ViT-S/16 width."""
    return _create_timesformer("timesformer_divided_small_patch16_224", pretrained, _spec("divided", "small"), **kwargs)


@register_model
def timesformer_joint_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer joint space-time, ViT-S/16 width."""
    return _create_timesformer("timesformer_joint_small_patch16_224", pretrained, _spec("joint", "small"), **kwargs)


@register_model
def timesformer_space_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer space-only, ViT-S/16 width."""
    return _create_timesformer("timesformer_space_small_patch16_224", pretrained, _spec("space", "small"), **kwargs)


@register_model
def timesformer_divided_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer divided space-time, ViT-Ti/16 width."""
    return _create_timesformer("timesformer_divided_tiny_patch16_224", pretrained, _spec("divided", "tiny"), **kwargs)


@register_model
def timesformer_joint_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer joint space-time, ViT-Ti/16 width."""
    return _create_timesformer("timesformer_joint_tiny_patch16_224", pretrained, _spec("joint", "tiny"), **kwargs)


@register_model
def timesformer_space_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """TimeSformer space-only, ViT-Ti/16 width."""
    return _create_timesformer("timesformer_space_tiny_patch16_224", pretrained, _spec("space", "tiny"), **kwargs)


register_model_alias("timesformer", "timesformer_divided_base_patch16_224")
register_model_alias("timesformer_hr", "timesformer_divided_base_patch16_448")
register_model_alias("timesformer_l", "timesformer_divided_base_patch16_224_f96")
