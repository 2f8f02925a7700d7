"""Uniform frame sampling: every sampled frame is tokenized like a ViT image (ViViT sec. 3.2)."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .base import VideoTokenizer


class UniformFrameTokenizer(VideoTokenizer):
    """Per-frame 2-D patch embedding, ``proj`` is a ``Conv2d`` (same names as timm's ViT).

    Takes the same arguments as :class:`VideoTokenizer` except ``tubelet_size``, which is 1.
    """

    def __init__(self, img_size=224, num_frames=8, patch_size=16, in_chans=3, embed_dim=768,
                 pad_mode="error", tubelet_size: int = 1) -> None:
        if tubelet_size != 1:
            raise ValueError(f"The 'uniform' tokenizer embeds single frames (a tubelet_size of 1); got "
                             f"tubelet_size {tubelet_size}. Use tokenizer='tubelet' for {tubelet_size}-frame tubelets.")
        super().__init__(img_size, num_frames, patch_size, 1, in_chans, embed_dim, pad_mode)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x = self.proj(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(x, "(b t) d h w -> b t (h w) d", b=B)
