"""Published figures, each table once: the ViT encoder sizes the families are built from, and the
papers' parameter counts and multiply-adds that the tests, the benchmarks and the README check
compare vidzoo's counts against."""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["ViTSize", "VIT_SIZES", "PaperFigures", "PAPER_FIGURES"]


class ViTSize(NamedTuple):
    """A ViT encoder's width, depth, heads and MLP ratio."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0


# ViT-Ti and ViT-S as in DeiT, ViT-B/L/H as in ViT (ViT-H also VideoMAE's and V-JEPA 2's), ViT-g as
# V-JEPA 2 builds it (upstream's vit_giant_xformers: 22 heads of 64 channels)
VIT_SIZES: dict[str, ViTSize] = {
    "tiny": ViTSize(192, 12, 3),
    "small": ViTSize(384, 12, 6),
    "base": ViTSize(768, 12, 12),
    "large": ViTSize(1024, 24, 16),
    "huge": ViTSize(1280, 32, 16),
    "giant": ViTSize(1408, 40, 22, 48 / 11),
}


class PaperFigures(NamedTuple):
    """A model as its paper reports it (heads at 400 classes, one view)."""

    paper: str
    params_m: float
    gmacs: float | None = None  # multiply-adds per view ("GFLOPs" in the papers); None: not reported


# ViViT (Arnab et al. 2021), Tables 2 / 4: "FLOPs" are multiply-adds per 32x224 view. TimeSformer
# (Bertasius et al. 2021), Table 1 / sec. 4.1: 0.59 TFLOPs for 3 spatial crops x 1 clip at 8x224,
# ~196 G per view, 121.4M parameters. VideoMAE (Tong et al. 2022), Table 6 (K400: ViT-B/L/H 180 / 597 /
# 1192 GFLOPs per 16x224 view, 87M / 305M / 633M parameters; fvcore's FLOPs are multiply-adds); ViT-S
# 57 G / 22M from the upstream model zoo.
PAPER_FIGURES: dict[str, PaperFigures] = {
    "vivit_joint_base_patch16x2_224": PaperFigures("ViViT-B/16x2 joint (model 1)", 88.9, 455.2),
    "vivit_fenc_base_patch16x2_224": PaperFigures("ViViT-B/16x2 factorised encoder (model 2)", 115.1, 284.4),
    "vivit_fsa_base_patch16x2_224": PaperFigures("ViViT-B/16x2 factorised self-attention (model 3)", 117.3, 372.3),
    "vivit_fdp_base_patch16x2_224": PaperFigures("ViViT-B/16x2 factorised dot-product (model 4)", 88.9, 277.1),
    "timesformer_divided_base_patch16_224": PaperFigures("TimeSformer-B divided, 8x224 (0.59 TFLOPs / 3 views)",
                                                         121.4, 196.0),
    "timesformer_joint_base_patch16_224": PaperFigures("TimeSformer-B joint space-time, 8x224", 85.9),
    "timesformer_space_base_patch16_224": PaperFigures("TimeSformer-B space-only, 8x224", 85.9),
    "videomae_joint_small_patch16x2_224": PaperFigures("VideoMAE ViT-S/16x2, 16x224", 22.0, 57.0),
    "videomae_joint_base_patch16x2_224": PaperFigures("VideoMAE ViT-B/16x2, 16x224", 87.0, 180.0),
    "videomae_joint_large_patch16x2_224": PaperFigures("VideoMAE ViT-L/16x2, 16x224", 305.0, 597.0),
    "videomae_joint_huge_patch16x2_224": PaperFigures("VideoMAE ViT-H/16x2, 16x224", 633.0, 1192.0),
}
