"""VideoMAE (Tong et al., NeurIPS 2022, arXiv:2203.12602) and VideoMAE V2 (Wang et al., CVPR 2023,
arXiv:2303.16727) video classifiers.

Not a new network: a VideoMAE encoder is a vidzoo ``joint`` space-time transformer over 2x16x16
tubelets with a fixed 1-D sin-cos position table over the flattened ``(t, h, w)`` token index
(``pos_embed='sincos'``, regenerated for any ``num_frames`` / ``img_size``, never stored), query
and value biases without a key bias (``qkv_bias='qv'``, upstream's ``q_bias`` / ``v_bias``), no
class token, mean pooling followed by ``fc_norm`` with the final ``norm`` an identity
(``global_pool='avg', fc_norm=True``: upstream's ``use_mean_pooling``) and LayerNorm eps 1e-6
as in the original code (the transformers port uses 1e-12 in the blocks and 1e-5 in fc_norm).

Tags point at the upstream weights, converted at load time by :func:`checkpoint_filter_fn`:
the MCG-NJU fine-tunes and self-supervised pretraining checkpoints on the Hugging Face Hub
(transformers format, CC BY-NC 4.0), and the VideoMAE V2 distilled ViT-S/B (original ``.pth``
format, 710 Kinetics-710 classes) as ``v2_*`` tags of the same architectures: V2 changed the
pretraining, not the ViT-S/B classifier, so they are the same network.
"""
from __future__ import annotations

from typing import Any

import torch

from .._builder import build_model_with_cfg
from .._pretrained import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PretrainedCfg, generate_default_cfgs
from .._registry import register_model, register_model_alias
from .tables import VIT_SIZES
from .video_transformer import VideoTransformer


def _spec(size: str, **kwargs: Any) -> dict[str, Any]:
    dim, depth, heads, _ = VIT_SIZES[size]
    spec = dict(attention="joint", tokenizer="tubelet", img_size=224, num_frames=16, patch_size=16, tubelet_size=2,
                embed_dim=dim, depth=depth, num_heads=heads, qkv_bias="qv", pos_embed="sincos", class_token=False,
                global_pool="avg", fc_norm=True, norm_eps=1e-6, act_layer="gelu")
    spec.update(kwargs)
    return spec


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: VideoTransformer,
                         **kwargs: Any) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto a VideoMAE model: HF transformers VideoMAE (Hub files with
    ``attention.attention.q_bias`` / ``v_bias`` and separate query/key/value, or transformers'
    in-memory ``query.bias`` / ``value.bias``; ``fc_norm``, ``classifier``), the original VideoMAE /
    VideoMAE V2 ``.pth`` (fused ``qkv`` + ``q_bias`` / ``v_bias``, under ``model`` / ``module``;
    pretraining checkpoints with an ``encoder.`` prefix and a decoder, which is dropped) or vidzoo
    keys. A pretraining encoder's final ``norm`` is dropped and ``fc_norm`` / ``head`` start fresh,
    as VideoMAE's fine-tuning does. ``kwargs`` go to :func:`vidzoo._convert.convert_state_dict`."""
    from .._convert import convert_state_dict
    return convert_state_dict(state_dict, model, **kwargs)


def _create_videomae(variant: str, pretrained: bool, spec: dict[str, Any], **kwargs: Any) -> VideoTransformer:
    return build_model_with_cfg(VideoTransformer, variant, pretrained, spec,
                                pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


_DATASETS = {"k400": ("Kinetics-400", 400), "ssv2": ("Something-Something v2", 174)}
NC_LICENSE = "cc-by-nc-4.0"


def _cfg(**kwargs: Any) -> PretrainedCfg:
    """Upstream recipe: 16 frames at 224, ImageNet mean/std; Kinetics one frame in 4 (16x4),
    tested 5 clips x 3 crops; SSv2 one frame per segment, 2 clips x 3 crops."""
    kwargs = dict(dict(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, frame_sample_rate=4, sampling="dense",
                       license=NC_LICENSE, paper_ids="arXiv:2203.12602",
                       paper_name="VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised "
                                  "Video Pre-Training"), **kwargs)
    return PretrainedCfg(num_frames=16, input_size=(3, 16, 224, 224), **kwargs)


def _hf(repo: str, data: str, **kwargs: Any) -> PretrainedCfg:
    """A fine-tuned MCG-NJU checkpoint in transformers format (``pytorch_model.bin``)."""
    dataset, n = _DATASETS[data]
    extra = dict(dataset=dataset, **kwargs.pop("extra", {}))
    if data == "ssv2":
        kwargs = dict(dict(sampling="uniform", frame_sample_rate=None, test_num_clips=2, test_num_crops=3), **kwargs)
    else:
        kwargs = dict(dict(test_num_clips=5, test_num_crops=3), **kwargs)
    return _cfg(hf_hub_id=repo, hf_hub_filename="pytorch_model.bin", source_format="hf_videomae", num_classes=n,
                origin_url=f"https://huggingface.co/{repo}", extra=extra, **kwargs)


def _pt(repo: str, data: str, epochs: int) -> PretrainedCfg:
    """A self-supervised pretraining checkpoint: the encoder only (decoder dropped), features out
    (``num_classes=0``); ``fc_norm`` and any head start fresh, as upstream fine-tuning does."""
    dataset, _ = _DATASETS[data]
    sampling = dict(sampling="uniform", frame_sample_rate=None) if data == "ssv2" else {}
    return _cfg(hf_hub_id=repo, hf_hub_filename="pytorch_model.bin", source_format="hf_videomae", num_classes=0,
                origin_url=f"https://huggingface.co/{repo}",
                extra=dict(dataset=f"{dataset} (self-supervised, {epochs} epochs; no labels)"),
                notes="Self-supervised VideoMAE encoder (pretraining checkpoint, MAE decoder dropped): fine-tune "
                      "before use; fc_norm and the head are untrained.", **sampling)


def _v2(filename: str, **kwargs: Any) -> PretrainedCfg:
    """VideoMAE V2 ViT-S/B distilled from the fine-tuned ViT-g on Kinetics-710 (original ``.pth``,
    state dict under ``module``), 710 classes; the K400 figures upstream reports map K710 classes
    to K400 ones."""
    return _cfg(hf_hub_id="OpenGVLab/VideoMAE2", hf_hub_filename=f"distill/{filename}", source_format="videomae",
                num_classes=710, license="mit", test_num_clips=5, test_num_crops=3,
                origin_url=f"https://huggingface.co/OpenGVLab/VideoMAE2/blob/main/distill/{filename}",
                paper_ids="arXiv:2303.16727",
                paper_name="VideoMAE V2: Scaling Video Masked Autoencoders with Dual Masking",
                extra=dict(dataset="Kinetics-710 (distilled from ViT-g)"),
                notes="Licence: the MIT licence of the OpenGVLab/VideoMAEv2 repository, which publishes these "
                      "weights; class names of Kinetics-710 are not bundled.", **kwargs)


default_cfgs = generate_default_cfgs({
    "videomae_joint_small_patch16x2_224.k400": _hf("MCG-NJU/videomae-small-finetuned-kinetics", "k400"),
    "videomae_joint_small_patch16x2_224.ssv2": _hf("MCG-NJU/videomae-small-finetuned-ssv2", "ssv2"),
    "videomae_joint_small_patch16x2_224.v2_k710_distill": _v2("vit_s_k710_dl_from_giant.pth"),
    "videomae_joint_small_patch16x2_224": _cfg(),
    "videomae_joint_base_patch16x2_224.k400": _hf("MCG-NJU/videomae-base-finetuned-kinetics", "k400"),
    "videomae_joint_base_patch16x2_224.ssv2": _hf("MCG-NJU/videomae-base-finetuned-ssv2", "ssv2"),
    "videomae_joint_base_patch16x2_224.k400_short": _hf(
        "MCG-NJU/videomae-base-short-finetuned-kinetics", "k400", extra=dict(pretraining="800 epochs")),
    "videomae_joint_base_patch16x2_224.ssv2_short": _hf(
        "MCG-NJU/videomae-base-short-finetuned-ssv2", "ssv2", extra=dict(pretraining="800 epochs")),
    "videomae_joint_base_patch16x2_224.v2_k710_distill": _v2("vit_b_k710_dl_from_giant.pth"),
    "videomae_joint_base_patch16x2_224.pt_k400": _pt("MCG-NJU/videomae-base", "k400", 1600),
    "videomae_joint_base_patch16x2_224.pt_k400_short": _pt("MCG-NJU/videomae-base-short", "k400", 800),
    "videomae_joint_base_patch16x2_224.pt_ssv2": _pt("MCG-NJU/videomae-base-ssv2", "ssv2", 2400),
    "videomae_joint_base_patch16x2_224.pt_ssv2_short": _pt("MCG-NJU/videomae-base-short-ssv2", "ssv2", 800),
    "videomae_joint_base_patch16x2_224": _cfg(),
    "videomae_joint_large_patch16x2_224.k400": _hf("MCG-NJU/videomae-large-finetuned-kinetics", "k400"),
    "videomae_joint_large_patch16x2_224.pt_k400": _pt("MCG-NJU/videomae-large", "k400", 1600),
    "videomae_joint_large_patch16x2_224": _cfg(),
    "videomae_joint_huge_patch16x2_224.k400": _hf("MCG-NJU/videomae-huge-finetuned-kinetics", "k400"),
    "videomae_joint_huge_patch16x2_224": _cfg(),
})


@register_model
def videomae_joint_small_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """VideoMAE ViT-S/16x2 (width 384, 12 blocks, 6 heads), 16x224."""
    return _create_videomae("videomae_joint_small_patch16x2_224", pretrained, _spec("small"), **kwargs)


@register_model
def videomae_joint_base_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """VideoMAE ViT-B/16x2 (width 768, 12 blocks, 12 heads), 16x224: 86.5M params at 400 classes."""
    return _create_videomae("videomae_joint_base_patch16x2_224", pretrained, _spec("base"), **kwargs)


@register_model
def videomae_joint_large_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """VideoMAE ViT-L/16x2 (width 1024, 24 blocks, 16 heads), 16x224."""
    return _create_videomae("videomae_joint_large_patch16x2_224", pretrained, _spec("large"), **kwargs)


@register_model
def videomae_joint_huge_patch16x2_224(pretrained: bool = False, **kwargs: Any) -> VideoTransformer:
    """VideoMAE ViT-H/16x2 (width 1280, 32 blocks, 16 heads), 16x224."""
    return _create_videomae("videomae_joint_huge_patch16x2_224", pretrained, _spec("huge"), **kwargs)


register_model_alias("videomae", "videomae_joint_base_patch16x2_224")
