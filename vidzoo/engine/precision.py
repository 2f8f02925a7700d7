"""Precision policy shared by training, evaluation and prediction: which autocast dtype ``--amp``
means on a device, and the autocast context for it."""
from __future__ import annotations

import contextlib

import torch

from .._choices import AMP_MODES
from .errors import UserError

__all__ = ["AMP_MODES", "resolve_amp", "autocast_context", "amp_name"]


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``--amp`` on ``device`` (None: full precision)."""
    if amp not in AMP_MODES:
        raise UserError(f"--amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "none":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None  # CPU autocast is slower than fp32 for these models on most CPUs
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 or none on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def amp_name(dtype: torch.dtype | None) -> str:
    """``'fp32'``, ``'bf16'`` or ``'fp16'``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
