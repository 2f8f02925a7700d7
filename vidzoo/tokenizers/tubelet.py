"""Tubelet embedding: non-overlapping t x p x p spatio-temporal patches (ViViT sec. 3.2)."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .._choices import INFLATION_MODES
from .base import VideoTokenizer


def inflate_patch_kernel(weight: torch.Tensor, tubelet_size: int, mode: str = "central_frame") -> torch.Tensor:
    """Inflate a 2-D patch kernel ``(D, C, p, p)`` to a tubelet kernel ``(D, C, t, p, p)``.

    ViViT (Arnab et al. 2021), eq. 8-9:

    * ``"average"`` ("filter inflation", as in I3D): the 2-D kernel replicated along time and
      divided by t, so a static clip gives the image model's embedding.
    * ``"central_frame"``: the 2-D kernel at the central time index ``t // 2``, zeros elsewhere;
      the paper's best initialisation.

    Args:
        weight: 2-D conv weight ``(D, C, p, p)``, or already 3-D ``(D, C, 1, p, p)``.
        tubelet_size: Temporal extent t.
        mode: ``"central_frame"`` or ``"average"``.
    """
    if weight.ndim == 5:
        if weight.shape[2] == tubelet_size:
            return weight
        if weight.shape[2] != 1:
            raise ValueError(f"Cannot inflate a 3-D kernel of temporal size {weight.shape[2]} to {tubelet_size}.")
        weight = weight[:, :, 0]
    if weight.ndim != 4:
        raise ValueError(f"Expected a 2-D patch kernel (D, C, p, p); got shape {tuple(weight.shape)}.")
    if mode == "average":
        return weight.unsqueeze(2).repeat(1, 1, tubelet_size, 1, 1) / tubelet_size
    if mode == "central_frame":
        out = weight.new_zeros(weight.shape[0], weight.shape[1], tubelet_size, *weight.shape[2:])
        out[:, :, tubelet_size // 2] = weight
        return out
    raise ValueError(f"Unknown inflation mode {mode!r}; expected one of {INFLATION_MODES}.")


class TubeletTokenizer(VideoTokenizer):
    """3-D patch embedding, ``proj`` is a ``Conv3d`` with kernel = stride = (t, p, p)."""

    def __init__(self, img_size=224, num_frames=32, patch_size=16, tubelet_size: int = 2, in_chans=3,
                 embed_dim=768, pad_mode="error") -> None:
        super().__init__(img_size, num_frames, patch_size, tubelet_size, in_chans, embed_dim, pad_mode)
        k = (self.tubelet_size, *self.patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(x), "b d t h w -> b t (h w) d")

    @torch.no_grad()
    def init_from_2d(self, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     mode: str = "central_frame") -> None:
        """Initialise from an image model's patch embedding by filter inflation (see
        :func:`inflate_patch_kernel`)."""
        w = inflate_patch_kernel(weight, self.tubelet_size, mode)
        if w.shape != self.proj.weight.shape:
            raise ValueError(f"2-D kernel inflated to {tuple(w.shape)} does not fit proj {tuple(self.proj.weight.shape)}.")
        self.proj.weight.copy_(w)
        if bias is not None:
            self.proj.bias.copy_(bias)
