"""Video tokenizer base: turns a clip ``(B, C, T, H, W)`` into tokens on a 3-D grid."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._utils import to_2tuple

PAD_MODES = ("error", "pad")


class VideoTokenizer(nn.Module):
    """Base class of vidzoo tokenizers.

    A tokenizer owns ``proj`` (the patch projection) and returns ``(B, T', H' * W', D)`` with
    ``grid_size == (T', H', W')``. Subclasses implement :meth:`_embed`.

    Args:
        img_size: Input frame size, int or (H, W).
        num_frames: Input frames T.
        patch_size: Spatial patch side p.
        tubelet_size: Temporal extent t of a token (1 for per-frame tokenizers).
        in_chans: Input channels.
        embed_dim: Token width D.
        pad_mode: ``"error"`` requires T, H, W to be multiples of the patch; ``"pad"`` zero-pads
            the end of each axis up to the next multiple (nothing is dropped).
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, num_frames: int = 8, patch_size: int = 16,
                 tubelet_size: int = 1, in_chans: int = 3, embed_dim: int = 768, pad_mode: str = "error") -> None:
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.num_frames = int(num_frames)
        self.patch_size = to_2tuple(patch_size)
        self.tubelet_size = int(tubelet_size)
        self.in_chans = int(in_chans)
        self.embed_dim = int(embed_dim)
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}.")
        self.pad_mode = pad_mode
        sizes = {"num_frames": (self.num_frames, self.tubelet_size, "tubelet_size"),
                 "img_size[0]": (self.img_size[0], self.patch_size[0], "patch_size"),
                 "img_size[1]": (self.img_size[1], self.patch_size[1], "patch_size")}
        for what, (n, p, pname) in sizes.items():
            if n < 1 or p < 1:
                raise ValueError(f"{what} ({n}) and {pname} ({p}) must be positive.")
            if n % p and pad_mode == "error":
                raise ValueError(f"{what} ({n}) is not a multiple of {pname} ({p}); use a size that is, or "
                                 f"pad_mode='pad' to zero-pad the input up to the next multiple.")
        self.grid_size = (math.ceil(self.num_frames / self.tubelet_size),
                          math.ceil(self.img_size[0] / self.patch_size[0]),
                          math.ceil(self.img_size[1] / self.patch_size[1]))
        self.num_patches = self.grid_size[1] * self.grid_size[2]  # tokens per time step

    @property
    def input_size(self) -> tuple[int, int, int, int]:
        """Expected input ``(C, T, H, W)``."""
        return (self.in_chans, self.num_frames, *self.img_size)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming expected vs. received shape for a clip that does not fit."""
        want = "(B, C, T, H, W) = (B, {}, {}, {}, {})".format(*self.input_size)
        if x.ndim != 5:
            raise ValueError(f"Expected a 5-D clip {want}; got a {x.ndim}-D tensor of shape {tuple(x.shape)}.")
        got = tuple(x.shape[1:])
        if got != self.input_size:
            names = ("channels", "frames", "height", "width")
            diffs = [f"{n} {g} != {w}" for n, g, w in zip(names, got, self.input_size) if g != w]
            raise ValueError(f"Expected input {want}; got {tuple(x.shape)} ({', '.join(diffs)}). Create the model "
                             "with matching in_chans / num_frames / img_size (position embeddings are resampled "
                             "when pretrained weights are loaded at another size).")

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_mode != "pad":
            return x
        T, H, W = x.shape[-3:]
        pt = -T % self.tubelet_size
        ph, pw = -H % self.patch_size[0], -W % self.patch_size[1]
        if pt or ph or pw:
            x = F.pad(x, (0, pw, 0, ph, 0, pt))
        return x

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokenize ``(B, C, T, H, W)`` into ``(B, T', H' * W', D)``."""
        self.check_input(x)
        return self._embed(self._pad(x))
