"""Temporal sampling: which frame indices of a video make up a clip.

Two kinds cover the ViViT, TimeSformer and VideoMAE recipes:

* **uniform** (TSN-style): split the video into ``T`` equal segments and take one frame from each,
  so a clip always spans the whole video whatever its length.
* **dense**: ``T`` frames at a fixed stride from one window (TimeSformer "8x32" = 8 frames taken
  32 frames apart), a local window in time.

Training draws at random (``generator`` makes it reproducible); evaluation is deterministic (segment
or video centre). Short videos never fail: indices are clamped (or looped) so frames repeat. All
functions return ``torch.long`` tensors of indices in ``[0, num_frames_video)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .._choices import SAMPLING_MODES

__all__ = [
    "uniform_segment_indices",
    "dense_clip_indices",
    "multi_clip_indices",
    "FrameSampler",
]

PadMode = Literal["clamp", "loop"]


def _check(num_frames_video: int, num_samples: int, stride: int | None = None) -> None:
    if num_frames_video <= 0:
        raise ValueError(f"cannot sample frames from a video with {num_frames_video} frames "
                         "(empty or unreadable video)")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if stride is not None and stride <= 0:
        raise ValueError(f"stride must be >= 1, got {stride}")


def _pad(indices: torch.Tensor, num_frames_video: int, pad: PadMode) -> torch.Tensor:
    # Indices past the end of a short video: repeat the last frame (clamp) or wrap around (loop).
    if pad == "clamp":
        return indices.clamp_(0, num_frames_video - 1)
    if pad == "loop":
        return indices.remainder_(num_frames_video)
    raise ValueError(f"pad must be 'clamp' or 'loop', got {pad!r}")


def uniform_segment_indices(num_frames_video: int, num_samples: int, train: bool,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """One frame from each of ``num_samples`` equal segments (TSN sampling).

    Args:
        num_frames_video: frames in the video.
        num_samples: frames to sample (the clip length ``T``).
        train: random frame within each segment if True, the segment centre otherwise.
        generator: random source for ``train=True`` (reproducible sampling).

    Returns:
        Non-decreasing ``long`` tensor of shape ``(num_samples,)``. Videos shorter than
        ``num_samples`` repeat frames (segments shorter than one frame share it).
    """
    _check(num_frames_video, num_samples)
    seg = num_frames_video / num_samples
    offsets = torch.rand(num_samples, generator=generator, dtype=torch.float64) if train \
        else torch.full((num_samples,), 0.5, dtype=torch.float64)
    pos = (torch.arange(num_samples, dtype=torch.float64) + offsets) * seg
    return pos.floor().long().clamp_(0, num_frames_video - 1)


def dense_clip_indices(num_frames_video: int, num_samples: int, stride: int, train: bool,
                       generator: torch.Generator | None = None, pad: PadMode = "clamp") -> torch.Tensor:
    """``num_samples`` frames at a fixed ``stride`` from one window of the video.

    Args:
        num_frames_video: frames in the video.
        num_samples: frames in the clip (``T``).
        stride: gap between sampled frames; the window spans ``(T - 1) * stride + 1`` frames.
        train: random window start if True, the window centred in the video otherwise.
        generator: random source for ``train=True``.
        pad: for videos shorter than the window: ``"clamp"`` repeats the last frame,
            ``"loop"`` wraps around to the start.

    Returns:
        ``long`` tensor of shape ``(num_samples,)``.
    """
    _check(num_frames_video, num_samples, stride)
    span = (num_samples - 1) * stride + 1
    slack = max(num_frames_video - span, 0)
    if train:
        start = int(torch.randint(0, slack + 1, (1,), generator=generator))
    else:
        start = slack // 2
    return _pad(start + torch.arange(num_samples) * stride, num_frames_video, pad)


def multi_clip_indices(num_frames_video: int, num_samples: int, stride: int | None, num_clips: int,
                       pad: PadMode = "clamp") -> list[torch.Tensor]:
    """``num_clips`` evenly spaced clips for multi-view testing.

    With ``stride``: dense clips whose windows are centred in ``num_clips`` equal parts of the
    free range (so ``num_clips == 1`` is the eval centre clip). With ``stride=None``: uniform
    segment clips, clip ``k`` taking the frame at fraction ``(k + 0.5) / num_clips`` of every
    segment (so ``num_clips == 1`` is the segment-centre clip).

    Args:
        num_frames_video: frames in the video.
        num_samples: frames per clip.
        stride: dense stride, or ``None`` for uniform segments.
        num_clips: clips (temporal views) to return.
        pad: short-video padding for dense clips, see :func:`dense_clip_indices`.

    Returns:
        List of ``num_clips`` ``long`` tensors of shape ``(num_samples,)``, ordered in time.
    """
    _check(num_frames_video, num_samples, stride)
    if num_clips <= 0:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    frac = (torch.arange(num_clips, dtype=torch.float64) + 0.5) / num_clips
    if stride is None:
        seg = num_frames_video / num_samples
        base = torch.arange(num_samples, dtype=torch.float64)
        return [((base + f) * seg).floor().long().clamp_(0, num_frames_video - 1) for f in frac]
    span = (num_samples - 1) * stride + 1
    slack = max(num_frames_video - span, 0)
    starts = (frac * slack).floor().long().tolist()
    return [_pad(s + torch.arange(num_samples) * stride, num_frames_video, pad) for s in starts]


@dataclass
class FrameSampler:
    """Temporal sampling recipe handed to datasets as one object.

    Args:
        mode: ``"uniform"`` (TSN segments) or ``"dense"`` (fixed stride window).
        num_frames: frames per clip (``T``).
        stride: frame stride for ``"dense"`` (ignored by ``"uniform"``).
        num_clips: temporal views at evaluation (``train=False``); training always draws one clip.
        pad: short-video padding for ``"dense"``: ``"clamp"`` or ``"loop"``.

    Example:
        >>> sampler = FrameSampler("dense", num_frames=8, stride=4, num_clips=2)
        >>> [c.tolist() for c in sampler(100, train=False)]
        [[17, 21, 25, 29, 33, 37, 41, 45], [53, 57, 61, 65, 69, 73, 77, 81]]
    """

    mode: Literal["uniform", "dense"] = "uniform"
    num_frames: int = 8
    stride: int = 4
    num_clips: int = 1
    pad: PadMode = "clamp"

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"FrameSampler mode must be one of {', '.join(SAMPLING_MODES)}, got {self.mode!r}")
        if self.num_frames <= 0 or self.num_clips <= 0 or self.stride <= 0:
            raise ValueError(f"num_frames, num_clips and stride must be >= 1, got num_frames="
                             f"{self.num_frames}, num_clips={self.num_clips}, stride={self.stride}")
        if self.pad not in ("clamp", "loop"):
            raise ValueError(f"pad must be 'clamp' or 'loop', got {self.pad!r}")

    def __call__(self, num_video_frames: int, train: bool = False,
                 generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Index tensors for one video: one clip when training, ``num_clips`` clips otherwise.

        Args:
            num_video_frames: frames in the video.
            train: random sampling (one clip) instead of deterministic multi-view sampling.
            generator: random source for training.

        Returns:
            List of ``long`` tensors, each of shape ``(num_frames,)``.
        """
        if train:
            if self.mode == "uniform":
                return [uniform_segment_indices(num_video_frames, self.num_frames, True, generator)]
            return [dense_clip_indices(num_video_frames, self.num_frames, self.stride, True, generator, self.pad)]
        stride = None if self.mode == "uniform" else self.stride
        return multi_clip_indices(num_video_frames, self.num_frames, stride, self.num_clips, self.pad)
