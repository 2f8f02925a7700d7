"""3-D rotary position embedding of queries and keys (V-JEPA 2's ``use_rope``).

There is no position table: each attention head's channels are split into a time, a height and a
width slice of ``d = 2 * ((head_dim // 3) // 2)`` channels each, in that order; each slice is
rotated by the angle ``pos * 10000 ** (-k / (d / 2))`` (``k = 0 .. d/2 - 1``) of its own axis, with
``pos`` the integer index of the token along that axis (tubelet index, patch row, patch column) on
the grid the clip actually has. The last ``head_dim - 3 d`` channels are not rotated
(head_dim 64 -> 20 / 20 / 20 + 4; 80 -> 26 / 26 / 26 + 2; 88 -> 28 / 28 / 28 + 4).

Rotation pairs adjacent channels, ``(x[2i], x[2i+1]) -> (-x[2i+1], x[2i])``, in both layouts; they
differ in which frequency each channel's sine and cosine take:

* ``"vjepa2"``: the ``d/2`` frequencies are repeated as a block, ``[f_0 .. f_{d/2-1}, f_0 .. f_{d/2-1}]``,
  so the two channels of a pair do not share a frequency. This is how the code that trained the
  V-JEPA 2 weights computes it (upstream calls it a bug kept for checkpoint compatibility); the
  weights need it.
* ``"interleave"``: each frequency is repeated for the two channels of its pair,
  ``[f_0, f_0, f_1, f_1, ...]``: the standard rotation (V-JEPA 2.1).

The tables are computed in float32 for any grid and cast to the queries' dtype (upstream computes
them in the queries' dtype, which under bf16 autocast rounds the angles).
"""
from __future__ import annotations

import torch

ROPE_LAYOUTS = ("vjepa2", "interleave")


def rope3d_dim(head_dim: int) -> int:
    """Channels rotated per axis: ``2 * ((head_dim // 3) // 2)`` (the rest of ``3 *`` that stays as is)."""
    return 2 * ((head_dim // 3) // 2)


def rope3d_positions(grid: tuple[int, int, int], device: torch.device | str | None = None) -> torch.Tensor:
    """``(T*H*W, 3)`` integer (t, h, w) index of every token of a ``(T, H, W)`` grid, in the
    tokenizer's order (time-major, then rows, then columns)."""
    T, H, W = grid
    t, h, w = torch.meshgrid(torch.arange(T, device=device), torch.arange(H, device=device),
                             torch.arange(W, device=device), indexing="ij")
    return torch.stack([t.flatten(), h.flatten(), w.flatten()], dim=-1)


def rope3d_tables(grid: tuple[int, int, int], head_dim: int, layout: str = "vjepa2",
                  device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables ``(T*H*W, 3 d)`` for the rotated channels of a head.

    Args:
        grid: Token grid ``(T, H, W)`` of the clip.
        head_dim: Channels per attention head.
        layout: ``"vjepa2"`` or ``"interleave"`` (see the module docstring).
        device: Device of the tables.
        dtype: Dtype of the returned tables (computed in float32).

    Raises:
        ValueError: Unknown layout, or a head too narrow to rotate (``head_dim < 6``).
    """
    if layout not in ROPE_LAYOUTS:
        raise ValueError(f"rope_layout must be one of {ROPE_LAYOUTS}, got {layout!r}")
    d = rope3d_dim(head_dim)
    if d == 0:
        raise ValueError(f"3-D RoPE needs at least 6 channels per head (2 per axis), got head_dim {head_dim}")
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32, device=device) / (d / 2))
    pos = rope3d_positions(grid, device).to(torch.float32)  # (L, 3)
    freq = pos[:, :, None] * omega  # (L, 3, d/2)
    if layout == "vjepa2":
        freq = torch.cat([freq, freq], dim=-1)  # [f_0 .. f_{d/2-1}] twice
    else:
        freq = freq.repeat_interleave(2, dim=-1)  # [f_0, f_0, f_1, f_1, ...]
    freq = freq.flatten(1)  # (L, 3 d): time slice, height slice, width slice
    return freq.cos().to(dtype), freq.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` channels of ``x`` (``(..., L, head_dim)``) pairwise:
    ``x * cos + rot(x) * sin`` with ``rot(x)[2i] = -x[2i+1]``, ``rot(x)[2i+1] = x[2i]``; the remaining
    channels pass unchanged. The tables are cast to ``x``'s dtype (under autocast q and k are bf16/fp16)."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    n = cos.shape[-1]
    xr = x[..., :n]
    rot = torch.stack((-xr[..., 1::2], xr[..., 0::2]), dim=-1).flatten(-2)
    out = xr * cos + rot * sin
    return torch.cat([out, x[..., n:]], dim=-1) if n < x.shape[-1] else out
