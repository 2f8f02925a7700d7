"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021, arXiv:2103.15691).

Models 1-4 of the paper: joint space-time (``joint``), factorised encoder (``fenc``),
factorised self-attention (``fsa``), factorised dot-product (``fdp``); tubelet embedding 2x16x16
on 32 frames at 224 px, tanh-approximate GELU as in the official Scenic (JAX) code. Also the
small OrganMNIST3D model of the Keras ViViT example (28^3 one-channel volumes).
"""
from __future__ import annotations

from typing import Any

import torch

from .._builder import build_model_with_cfg
from .._pretrained import INCEPTION_MEAN, INCEPTION_STD, PretrainedCfg, generate_default_cfgs
from .._registry import register_model, register_model_alias
from .tables import VIT_SIZES
from .video_transformer import VideoTransformer

ATTENTION = {"joint": "joint", "fenc": "factorised_encoder", "fsa": "factorised_self_attention",
             "fdp": "factorised_dot_product"}


def _spec(attn: str, size: str, **kwargs: Any) -> dict[str, Any]:
    dim, depth, heads, _ = VIT_SIZES[size]
    spec = dict(attention=ATTENTION[attn], tokenizer="tubelet", img_size=224, num_frames=32, patch_size=16,
                tubelet_size=2, embed_dim=dim, depth=depth, num_heads=heads, act_layer="gelu_tanh")
    if attn == "fenc":
        spec["temporal_depth"] = 4
    spec.update(kwargs)
    return spec


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: VideoTransformer,
                         **kwargs: Any) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto a ViViT model: HF transformers ViViT (``google/vivit-*``), timm 2-D
    ViT (tubelet kernels inflated, the spatial position table tiled over time) or vidzoo keys.
    ``kwargs`` (``inflation``, ``source_format``, ``source_grid``, ``report``) go to
    :func:`vidzoo._convert.convert_state_dict`."""
    from .._convert import convert_state_dict
    return convert_state_dict(state_dict, model, **kwargs)


def _create_vivit(variant: str, pretrained: bool, spec: dict[str, Any], **kwargs: Any) -> VideoTransformer:
    return build_model_with_cfg(VideoTransformer, variant, pretrained, spec,
                                pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


def _cfg(num_frames: int = 32, img_size: int = 224, in_chans: int = 3, **kwargs: Any) -> PretrainedCfg:
    kwargs = dict(dict(mean=INCEPTION_MEAN, std=INCEPTION_STD, frame_sample_rate=2, sampling="dense",
                       license="apache-2.0"), **kwargs)
    return PretrainedCfg(num_frames=num_frames, input_size=(in_chans, num_frames, img_size, img_size),
                         paper_ids="arXiv:2103.15691", paper_name="ViViT: A Video Vision Transformer", **kwargs)


def _in21k(num_frames: int = 32, **kwargs: Any) -> PretrainedCfg:
    """Initialised from timm's ImageNet-21k ViT-B/16 (augreg): kernels inflated, positions tiled or
    copied, temporal parts as Scenic; the 21843-class head is dropped for a fresh one."""
    return _cfg(num_frames, hf_hub_id="timm/vit_base_patch16_224.augreg_in21k", hf_hub_filename="model.safetensors",
                source_format="timm_vit", origin_url="https://huggingface.co/timm/vit_base_patch16_224.augreg_in21k",
                extra=dict(dataset="ImageNet-21k (image initialisation)"),
                notes="Video model initialised from an ImageNet-21k image model; the head and any temporal "
                      "parameters are untrained (fine-tune before use).", **kwargs)


default_cfgs = generate_default_cfgs({
    # Scenic's ViViT-B/16x2 K400 (model 1), converted by HF transformers; inputs scaled to [-1, 1].
    "vivit_joint_base_patch16x2_224.k400": _cfg(
        hf_hub_id="google/vivit-b-16x2-kinetics400", hf_hub_filename="pytorch_model.bin", source_format="hf_vivit",
        num_classes=400, license="mit", test_num_clips=4, test_num_crops=3, extra=dict(dataset="Kinetics-400"),
        origin_url="https://huggingface.co/google/vivit-b-16x2-kinetics400"),
    **{f"vivit_{a}_base_patch16x2_224.in21k": _in21k() for a in ATTENTION},
    "vivit_joint_base_patch16_224.in21k": _in21k(16),
    **{f"vivit_{a}_{s}_patch16x2_224": _cfg() for a in ATTENTION for s in ("tiny", "small", "base")},
    "vivit_joint_large_patch16x2_224": _cfg(),
    "vivit_fenc_large_patch16x2_224": _cfg(),
    "vivit_joint_base_patch16_224": _cfg(num_frames=16),
    "vivit_joint_mini_patch8x8_28": _cfg(num_frames=28, img_size=28, in_chans=1, num_classes=11, mean=(0.0,),
                                          std=(1.0,), sampling="uniform", frame_sample_rate=None,
                                          notes="OrganMNIST3D volumes: depth is time; inputs scaled to [0, 1]."),
})


# ---------------------------------------------------------------------------------- ViViT-B
@register_model
def vivit_joint_base_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-B/16x2, model 1 (joint space-time attention), 32x224, 88.9M params at 400 classes."""
    return _create_vivit("vivit_joint_base_patch16x2_224", pretrained, _spec("joint", "base"), **kwargs)


@register_model
def vivit_fenc_base_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-B/16x2, model 2 (factorised encoder, 12 spatial + 4 temporal layers), 115.1M params."""
    return _create_vivit("vivit_fenc_base_patch16x2_224", pretrained, _spec("fenc", "base"), **kwargs)


@register_model
def vivit_fsa_base_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-B/16x2, model 3 (factorised self-attention), 117.3M params."""
    return _create_vivit("vivit_fsa_base_patch16x2_224", pretrained, _spec("fsa", "base"), **kwargs)


@register_model
def vivit_fdp_base_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-B/16x2, model 4 (factorised dot-product attention), 88.9M params."""
    return _create_vivit("vivit_fdp_base_patch16x2_224", pretrained, _spec("fdp", "base"), **kwargs)


@register_model
def vivit_joint_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-B/16, joint attention with uniform frame sampling: 16 frames x 196 patches, the same
    token count as the 16x2 tubelet model on 32 frames."""
    spec = _spec("joint", "base", tokenizer="uniform", num_frames=16, tubelet_size=None)
    return _create_vivit("vivit_joint_base_patch16_224", pretrained, spec, **kwargs)


# ---------------------------------------------------------------------------------- ViViT-L
@register_model
def vivit_joint_large_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-L/16x2, model 1 (joint space-time attention), 32x224."""
    return _create_vivit("vivit_joint_large_patch16x2_224", pretrained, _spec("joint", "large"), **kwargs)


@register_model
def vivit_fenc_large_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-L/16x2, model 2 (factorised encoder, 24 spatial + 4 temporal layers), 32x224."""
    return _create_vivit("vivit_fenc_large_patch16x2_224", pretrained, _spec("fenc", "large"), **kwargs)


# ----------------------------------------------------------------------- small and tiny (CPU)
@register_model
def vivit_joint_small_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-S/16x2 joint (ViT-S width 384, 6 heads)."""
    return _create_vivit("vivit_joint_small_patch16x2_224", pretrained, _spec("joint", "small"), **kwargs)


@register_model
def vivit_fenc_small_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-S/16x2 factorised encoder."""
    return _create_vivit("vivit_fenc_small_patch16x2_224", pretrained, _spec("fenc", "small"), **kwargs)


@register_model
def vivit_fsa_small_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-S/16x2 factorised self-attention."""
    return _create_vivit("vivit_fsa_small_patch16x2_224", pretrained, _spec("fsa", "small"), **kwargs)


@register_model
def vivit_fdp_small_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-S/16x2 factorised dot-product."""
    return _create_vivit("vivit_fdp_small_patch16x2_224", pretrained, _spec("fdp", "small"), **kwargs)


@register_model
def vivit_joint_tiny_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-Ti/16x2 joint (ViT-Ti width 192, 3 heads)."""
    return _create_vivit("vivit_joint_tiny_patch16x2_224", pretrained, _spec("joint", "tiny"), **kwargs)


@register_model
def vivit_fenc_tiny_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-Ti/16x2 factorised encoder."""
    return _create_vivit("vivit_fenc_tiny_patch16x2_224", pretrained, _spec("fenc", "tiny"), **kwargs)


@register_model
def vivit_fsa_tiny_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-Ti/16x2 factorised self-attention."""
    return _create_vivit("vivit_fsa_tiny_patch16x2_224", pretrained, _spec("fsa", "tiny"), **kwargs)


@register_model
def vivit_fdp_tiny_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """ViViT-Ti/16x2 factorised dot-product (heads: 4, as it splits heads between space and time)."""
    spec = _spec("fdp", "tiny", num_heads=4)
    return _create_vivit("vivit_fdp_tiny_patch16x2_224", pretrained, spec, **kwargs)


# ----------------------------------------------------------------------- OrganMNIST3D recipe
@register_model
def vivit_joint_mini_patch8x8_28(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """The Keras ViViT example's model for OrganMNIST3D: 28x28x28 one-channel volumes, tubelets
    8x8x8, width 128, 8 layers, 8 heads, 11 classes, LayerNorm + global average pooling head.

    The volume is zero-padded to 32^3 (4x4x4 tokens) rather than cropped, so no voxel is dropped.
    """
    spec = dict(attention="joint", tokenizer="tubelet", img_size=28, num_frames=28, patch_size=8, tubelet_size=8,
                in_chans=1, embed_dim=128, depth=8, num_heads=8, global_pool="avg", class_token=False,
                pad_mode="pad")
    return _create_vivit("vivit_joint_mini_patch8x8_28", pretrained, spec, **kwargs)


register_model_alias("vivit_tubelet", "vivit_joint_base_patch16x2_224")
register_model_alias("vivit_uniform", "vivit_joint_base_patch16_224")
register_model_alias("vivit_organmnist3d", "vivit_joint_mini_patch8x8_28")
