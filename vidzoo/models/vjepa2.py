"""V-JEPA 2 (Assran et al., 2025, arXiv:2506.09985): self-supervised ViT-L/H/g video encoders and their
attentive-probe classifiers.

Not a new network: a V-JEPA 2 encoder is a vidzoo ``joint`` space-time transformer over 2x16x16
tubelets with **no position table** but 3-D rotary embedding of q and k in every attention
(``pos_embed='rope3d'``, positions from the clip's token grid, in upstream's frequency layout
``rope_layout='vjepa2'``), fused ``qkv`` with bias, no class token, a final LayerNorm (eps 1e-6). The
classifiers are upstream's attentive probes (``global_pool='attentive'``: a learnt query over all
tokens after three self-attention blocks, ``attn_pool_depth=4``, 16 heads also on ViT-g, LayerNorm eps
1e-5, MLP ratio 4). The Diving48 probes read the final-normed tokens of four blocks, concatenated
(``attn_pool_layers``), as upstream's ``vit_encoder_multiclip_multilevel`` feeds them.

This follows the code that trained the weights (facebookresearch/vjepa2, MIT: ``src/models``,
``evals/video_classification_frozen``). The transformers port differs from it in four places, where
vidzoo follows upstream: the probe's LayerNorm eps (port 1e-6), the ViT-g probes' head count (port: the
encoder's 22), RoPE positions (port: from the configured crop size, so a clip of another size or a
non-square one gets wrong positions), and the Diving48 probes' input (port: the last block only).

Tags point at the Hub repos in transformers layout (``model.safetensors``), converted at load time by
:func:`checkpoint_filter_fn`, which also reads the original pretraining ``.pt``. A tag fixes the clip
length it was trained with (and the Diving48 probes' layers); RoPE has no table, so any
``num_frames`` / ``img_size`` override loads the same weights.
"""
from __future__ import annotations

from typing import Any

import torch

from .._builder import build_model_with_cfg, resolve_pretrained_cfg
from .._pretrained import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PretrainedCfg, generate_default_cfgs
from .._registry import register_model, register_model_alias
from .tables import VIT_SIZES
from .video_transformer import VideoTransformer

SIZES = ("large", "huge", "giant")  # upstream's vit_large / vit_huge / vit_giant_xformers (VIT_SIZES)
PROBE_DEPTH = 4  # num_probe_blocks of every published probe config
PROBE_HEADS = 16  # num_heads of every published probe config (ViT-g included)


def _spec(size: str, img_size: int) -> dict[str, Any]:
    dim, depth, heads, mlp = VIT_SIZES[size]
    return dict(attention="joint", tokenizer="tubelet", img_size=img_size, num_frames=64, patch_size=16,
                tubelet_size=2, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=mlp, qkv_bias=True,
                pos_embed="rope3d", rope_layout="vjepa2", class_token=False, global_pool="attentive",
                attn_pool_depth=PROBE_DEPTH, attn_pool_heads=PROBE_HEADS, norm_eps=1e-6, act_layer="gelu")


# Blocks whose final-normed tokens the Diving48 probes read (upstream's out_layers).
_PROBE_LAYERS = {"vjepa2_joint_large_patch16x2_256.diving48": (17, 19, 21, 23),
                 "vjepa2_joint_giant_patch16x2_384.diving48": (24, 29, 34, 39)}


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: VideoTransformer,
                         **kwargs: Any) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto a V-JEPA 2 model: HF transformers ``VJEPA2ForVideoClassification``
    (``vjepa2.encoder.layer.N.attention.{query,key,value,proj}``, ``pooler.self_attention_layers.N``,
    ``pooler.cross_attention_layer``, ``classifier``) or ``VJEPA2Model`` (``encoder.*``, ``predictor.*``,
    which is dropped), the original pretraining ``.pt`` (``{"encoder": {"module.backbone...."}, ...}``:
    the ``encoder`` entry, as upstream's torch.hub loader reads it, without the predictor and any unused
    ``pos_embed``) or vidzoo keys. An encoder-only checkpoint keeps the model's fresh attentive pooler
    and head. ``kwargs`` go to :func:`vidzoo._convert.convert_state_dict`."""
    from .._convert import convert_state_dict
    return convert_state_dict(state_dict, model, **kwargs)


def _create_vjepa2(variant: str, pretrained: bool, spec: dict[str, Any], pretrained_cfg: Any = None,
                   pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> VideoTransformer:
    # The tag's clip length (and a Diving48 probe's layers) complete the spec; user overrides still win.
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg, pretrained_cfg_overlay)
    spec = dict(spec, num_frames=cfg.num_frames)
    layers = _PROBE_LAYERS.get(f"{variant}.{cfg.tag}")
    if layers:
        spec["attn_pool_layers"] = layers
    return build_model_with_cfg(VideoTransformer, variant, pretrained, spec,
                                pretrained_filter_fn=checkpoint_filter_fn, pretrained_cfg=cfg, **kwargs)


# Licences: what the Hub model card says where it could be read here (the two ViT-g encoder pages);
# for the other repos, the MIT licence of facebookresearch/vjepa2, which publishes the weights and whose
# README puts them under it, is assumed, and each cfg says so in extra['license_source'].
CARD_LICENSES = {"facebook/vjepa2-vitg-fpc64-256": "apache-2.0", "facebook/vjepa2-vitg-fpc64-384": "apache-2.0"}
REPO_LICENSE = "mit"
_DATASETS = {"ssv2": ("Something-Something v2", 174), "diving48": ("Diving48", 48)}


def _cfg(repo: str, size: int, frames: int, extra: dict[str, Any], **kwargs: Any) -> PretrainedCfg:
    """Upstream's evaluation input: ImageNet mean/std, short side ``crop * 256 / 224`` (bilinear) and a
    centre crop (``crop_pct`` 0.875); three crops over the long side at multi-view testing."""
    card = repo in CARD_LICENSES
    extra = dict(extra, license_source="Hub model card" if card else
                 "assumed: the MIT licence of facebookresearch/vjepa2, which publishes the weights (model card "
                 "not read)")
    kwargs = dict(dict(license=CARD_LICENSES.get(repo, REPO_LICENSE), extra=extra, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, interpolation="bilinear",
                       crop_pct=224 / 256, sampling="dense", paper_ids="arXiv:2506.09985",
                       paper_name="V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and "
                                  "Planning"), **kwargs)
    return PretrainedCfg(hf_hub_id=repo, hf_hub_filename="model.safetensors", source_format="hf_vjepa2",
                         num_frames=frames, input_size=(3, frames, size, size),
                         origin_url=f"https://huggingface.co/{repo}", **kwargs)


def _encoder(repo: str, size: int) -> PretrainedCfg:
    """A self-supervised encoder (VideoMix22M, 64 frames): encoder only, predictor dropped; the
    attentive pooler and head start fresh (``num_classes=0``: the fresh pooler's output)."""
    return _cfg(repo, size, 64, dict(dataset="VideoMix22M (self-supervised, no labels)"), num_classes=0,
                frame_sample_rate=4,
                notes="Self-supervised V-JEPA 2 encoder (predictor dropped). forward_features gives its tokens; "
                      "the attentive pooler and head are untrained: train a probe on the frozen encoder, or "
                      "pass global_pool='avg' for mean-pooled features. Pretraining sampled clips at 4 frames per "
                      "second; the default stride here is 4 frames (the ViT-L SSv2 probe's): set --frame-stride "
                      "for your videos' frame rate.")


def _probe(repo: str, size: int, frames: int, data: str, stride: int, views: tuple[int, int],
           top1: float) -> PretrainedCfg:
    """A published attentive probe on the frozen encoder; ``test_num_clips x test_num_crops`` are the
    segments x spatial views of its published top-1 (``vidzoo eval --view-merge tokens``)."""
    dataset, n = _DATASETS[data]
    return _cfg(repo, size, frames, dict(dataset=dataset, published_top1=top1, view_merge="tokens"), num_classes=n,
                frame_sample_rate=stride, test_num_clips=views[0], test_num_crops=views[1],
                notes=f"Attentive probe on the frozen V-JEPA 2 encoder; published top-1 {top1}% with {views[0]} "
                      f"segments x {views[1]} views, segment tokens concatenated before the probe (vidzoo eval "
                      f"--view-merge tokens). Class names: the repo's config.json id2label, when it can be fetched.")


default_cfgs = generate_default_cfgs({
    "vjepa2_joint_large_patch16x2_256.ssv2": _probe(
        "facebook/vjepa2-vitl-fpc16-256-ssv2", 256, 16, "ssv2", 4, (2, 3), 73.7),
    "vjepa2_joint_large_patch16x2_256.diving48": _probe(
        "facebook/vjepa2-vitl-fpc32-256-diving48", 256, 32, "diving48", 2, (4, 3), 89.0),
    "vjepa2_joint_large_patch16x2_256.pt_vm22m": _encoder("facebook/vjepa2-vitl-fpc64-256", 256),
    "vjepa2_joint_huge_patch16x2_256.pt_vm22m": _encoder("facebook/vjepa2-vith-fpc64-256", 256),
    "vjepa2_joint_giant_patch16x2_256.pt_vm22m": _encoder("facebook/vjepa2-vitg-fpc64-256", 256),
    "vjepa2_joint_giant_patch16x2_384.ssv2": _probe(
        "facebook/vjepa2-vitg-fpc64-384-ssv2", 384, 64, "ssv2", 2, (2, 3), 77.3),
    "vjepa2_joint_giant_patch16x2_384.diving48": _probe(
        "facebook/vjepa2-vitg-fpc32-384-diving48", 384, 32, "diving48", 2, (4, 3), 90.2),
    "vjepa2_joint_giant_patch16x2_384.pt_vm22m": _encoder("facebook/vjepa2-vitg-fpc64-384", 384),
})


@register_model
def vjepa2_joint_large_patch16x2_256(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """V-JEPA 2 ViT-L/16 (width 1024, 24 blocks, 16 heads, 3-D RoPE) at 256 px + attentive probe."""
    return _create_vjepa2("vjepa2_joint_large_patch16x2_256", pretrained, _spec("large", 256), **kwargs)


@register_model
def vjepa2_joint_huge_patch16x2_256(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """V-JEPA 2 ViT-H/16 (width 1280, 32 blocks, 16 heads, 3-D RoPE) at 256 px + attentive probe."""
    return _create_vjepa2("vjepa2_joint_huge_patch16x2_256", pretrained, _spec("huge", 256), **kwargs)


@register_model
def vjepa2_joint_giant_patch16x2_256(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """V-JEPA 2 ViT-g/16 (width 1408, 40 blocks, 22 heads, MLP 48/11, 3-D RoPE) at 256 px + attentive
    probe (16 heads)."""
    return _create_vjepa2("vjepa2_joint_giant_patch16x2_256", pretrained, _spec("giant", 256), **kwargs)


@register_model
def vjepa2_joint_giant_patch16x2_384(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """V-JEPA 2 ViT-g/16 at 384 px (the 384-px cooldown) + attentive probe (16 heads)."""
    return _create_vjepa2("vjepa2_joint_giant_patch16x2_384", pretrained, _spec("giant", 384), **kwargs)


register_model_alias("vjepa2", "vjepa2_joint_large_patch16x2_256")
