"""Position embeddings: resample learnt tables along space and time; fixed sin-cos tables.

Used when a model is created (or loaded) at a different ``num_frames`` / ``img_size`` than the
weights: spatial tables go through :func:`timm.layers.resample_abs_pos_embed`'s interpolation
(bicubic by default), temporal tables through 1-D interpolation, each axis on its own. Fixed
tables (:func:`sincos_pos_embed_1d`, VideoMAE) are generated for the model's own grid instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def _interp(x: torch.Tensor, size: tuple[int, ...], mode: str) -> torch.Tensor:
    """``F.interpolate`` in float32, antialiased where the mode supports it (downsampling)."""
    dtype = x.dtype
    kwargs = {}
    if mode in ("bilinear", "bicubic", "linear", "trilinear"):
        kwargs["align_corners"] = False
    if mode in ("bilinear", "bicubic"):
        kwargs["antialias"] = True
    return F.interpolate(x.float(), size=size, mode=mode, **kwargs).to(dtype)


def resample_time_embed(time_embed: torch.Tensor, num_frames: int, mode: str = "linear") -> torch.Tensor:
    """Resample a ``(1, T, D)`` time embedding to ``(1, num_frames, D)``.

    Args:
        time_embed: Table of shape ``(1, T, D)``.
        num_frames: Target temporal length T'.
        mode: ``"linear"`` or ``"nearest"`` (the official TimeSformer and HF use nearest).
    """
    if time_embed.shape[1] == num_frames:
        return time_embed
    x = rearrange(time_embed, "1 t d -> 1 d t")
    return rearrange(_interp(x, (num_frames,), mode), "1 d t -> 1 t d")


def resample_pos_embed_3d(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int, int],
    new_grid: tuple[int, int, int],
    num_prefix_tokens: int = 0,
    spatial_mode: str = "bicubic",
    temporal_mode: str = "linear",
) -> torch.Tensor:
    """Resample a position table laid out as ``[prefix tokens] + (t, h, w)`` tokens.

    ``old_grid`` / ``new_grid`` are ``(T, H, W)`` token grids; ``T == 1`` describes a purely
    spatial table (``pos_embed`` of a per-frame ViT or a TimeSformer). Prefix (class) token
    embeddings are kept as they are. Time and space are interpolated separately, so a table
    resampled to the same time length keeps every frame's spatial pattern exactly.

    Args:
        pos_embed: Tensor ``(1, P + T*H*W, D)``.
        old_grid: Grid the table was trained on.
        new_grid: Grid wanted.
        num_prefix_tokens: Number P of leading non-grid tokens (class token).
        spatial_mode: Interpolation over (H, W): bicubic, bilinear or nearest.
        temporal_mode: Interpolation over T: linear or nearest.

    Returns:
        Tensor ``(1, P + T'*H'*W', D)``.
    """
    ot, oh, ow = old_grid
    nt, nh, nw = new_grid
    expected = num_prefix_tokens + ot * oh * ow
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1 or pos_embed.shape[1] != expected:
        raise ValueError(f"pos_embed of shape {tuple(pos_embed.shape)} does not fit grid {old_grid} with "
                         f"{num_prefix_tokens} prefix tokens: expected (1, {expected}, D).")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    x = rearrange(grid, "1 (t h w) d -> t d h w", t=ot, h=oh, w=ow)
    if (oh, ow) != (nh, nw):
        x = _interp(x, (nh, nw), spatial_mode)
    if ot != nt:
        x = rearrange(_interp(rearrange(x, "t d h w -> 1 (d h w) t"), (nt,), temporal_mode),
                      "1 (d h w) t -> t d h w", h=nh, w=nw)
    grid = rearrange(x, "t d h w -> 1 (t h w) d")
    return torch.cat([prefix, grid], dim=1)


def sincos_pos_embed_1d(num_positions: int, dim: int, temperature: float = 10000.0,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """The fixed sinusoid table of VideoMAE (and "Attention Is All You Need") over a flat index.

    Entry ``(p, j)`` is ``sin`` (even ``j``) or ``cos`` (odd ``j``) of
    ``p / temperature ** (2 * (j // 2) / dim)``; VideoMAE indexes the flattened ``(t, h, w)``
    token grid with ``p``. Computed in float64 as upstream's numpy code is, returned in float32.

    Returns:
        Tensor ``(1, num_positions, dim)``.
    """
    pos = torch.arange(num_positions, dtype=torch.float64, device=device)
    j = torch.arange(dim, dtype=torch.float64, device=device)
    angle = pos[:, None] / temperature ** (2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.remainder(2) == 0, torch.sin(angle), torch.cos(angle))
    return table.float().unsqueeze(0)
