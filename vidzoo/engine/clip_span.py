"""Whether a dataset's videos are long enough for the model's clips.

A dense clip of ``T`` frames ``stride`` apart spans ``(T - 1) * stride + 1`` frames; a video shorter
than that still gives a clip, but the sampler repeats its last frame (TimeSformer's 8 x 32 on a
32-frame video reads frames 0, 31, 31, 31, ...). A uniform clip needs ``T`` frames. This module
counts the videos that are too short, from frame counts that cost no decoding
(:func:`vidzoo.data.frame_count`: container headers, remembered per file), and words the warning
with the fix: ``--frame-stride N`` or ``--sampling uniform``. ``train --frame-stride auto`` picks
the largest stride whose span fits the median training video (:func:`largest_fitting_stride`).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from torch.utils.data import Dataset

from ..data import ClipDataset, InputSpec, NpzVolumeDataset, UnreadableVideoError, frame_count

__all__ = ["clip_span", "largest_fitting_stride", "count_frames", "SpanCheck", "check_span", "video_span_warning"]


def clip_span(sampling: str, num_frames: int, stride: int) -> int:
    """Frames a clip covers without repeating one: ``(T - 1) * stride + 1`` (dense), ``T`` (uniform)."""
    return (num_frames - 1) * stride + 1 if sampling == "dense" else num_frames


def largest_fitting_stride(video_frames: int, num_frames: int) -> int:
    """The largest dense stride whose clip of ``num_frames`` frames fits in ``video_frames`` frames (>= 1)."""
    if num_frames <= 1:
        return max(1, video_frames)
    return max(1, (video_frames - 1) // (num_frames - 1))


def count_frames(ds: Dataset) -> list[int | None] | None:
    """Frames of every sample of a :mod:`vidzoo.data` dataset, without decoding (None for a sample that
    cannot be counted: it is unreadable, which reading it will report); None for other datasets."""
    if isinstance(ds, NpzVolumeDataset):
        return [int(ds.images.shape[1])] * len(ds)
    if not isinstance(ds, ClipDataset):
        return None
    counts: list[int | None] = []
    for i in range(len(ds)):
        try:
            counts.append(frame_count(ds.source(i)))
        except (UnreadableVideoError, OSError):
            counts.append(None)
    return counts


@dataclass
class SpanCheck:
    """Videos of a dataset shorter than a clip's span.

    Attributes:
        sampling: ``dense`` or ``uniform``.
        num_frames: Frames per clip ``T``.
        stride: Dense stride.
        span: Frames a clip covers (:func:`clip_span`).
        counts: Frame count of every counted video.
        short: ``(source, frames)`` of each video shorter than ``span``.
        uncounted: Videos that could not be counted (unreadable: reading them says so).
    """

    sampling: str
    num_frames: int
    stride: int
    span: int
    counts: list[int] = field(default_factory=list)
    short: list[tuple[str, int]] = field(default_factory=list)
    uncounted: int = 0

    @property
    def median(self) -> int | None:
        """Median frames of the counted videos."""
        return int(statistics.median_low(self.counts)) if self.counts else None

    def clip_words(self) -> str:
        """``"8 frames 32 apart, a span of 225 frames"`` / ``"8 frames, one per equal part of the video"``."""
        if self.sampling == "dense":
            return f"{self.num_frames} frames {self.stride} apart span {self.span} frames"
        return f"a clip takes {self.num_frames} frames"

    def fix(self, auto: bool = False) -> str:
        """The flags that avoid repeated frames."""
        if self.sampling != "dense":
            return "a smaller --num-frames avoids it (uniform sampling cannot take more frames than a video has)"
        if len(self.counts) == 1:
            n, which = largest_fitting_stride(self.counts[0], self.num_frames), "this video"
        elif self.median is not None and self.median < self.span:
            n, which = largest_fitting_stride(self.median, self.num_frames), "the median video"
        else:
            n, which = largest_fitting_stride(min(f for _, f in self.short), self.num_frames), "the shortest video"
        fix = f"use --frame-stride {n} (fits {which})"
        if auto:
            fix += ", --frame-stride auto (the largest stride that fits the median training video)"
        return fix + f" or --sampling uniform ({self.num_frames} frames spread over the whole video)"

    def message(self, what: str = "", auto: bool = False, fix: bool = True) -> str | None:
        """One line for the console and the log, or None when no video is too short.

        Args:
            what: ``"training"`` / ``"validation"`` / ``""``: which videos.
            auto: Mention ``--frame-stride auto`` (``vidzoo train``).
            fix: Say how to avoid it (False: said already, for other videos).
        """
        if not self.short:
            return None
        n, total = len(self.short), len(self.counts)
        shortest = min(f for _, f in self.short)
        one = n == 1
        kind = (f"{what} " if what else "") + ("video" if total == 1 else "videos")
        unread = f" ({self.uncounted} more could not be read)" if self.uncounted else ""
        if self.sampling == "dense":
            head = (f"{n} of {total} {kind}{unread} {'is' if one else 'are'} shorter than a clip "
                    f"({self.clip_words()}; shortest {shortest}, median {self.median} frames)")
        else:
            head = (f"{n} of {total} {kind}{unread} {'has' if one else 'have'} fewer frames than a clip takes "
                    f"({self.num_frames}; shortest {shortest})")
        return f"{head}: {'its clip repeats' if one else 'their clips repeat'} frames" + (
            f"; {self.fix(auto)}" if fix else "")

    def to_dict(self) -> dict[str, Any]:
        """For ``metrics.json``: the count, the clip, and the short videos (first 100) with their frames."""
        return {"short_videos": len(self.short), "videos_counted": len(self.counts),
                "videos_not_counted": self.uncounted, "clip_span": self.span,
                "sampling": self.sampling, "num_frames": self.num_frames,
                "frame_stride": self.stride if self.sampling == "dense" else None,
                "median_frames": self.median,
                "short_video_list": [{"path": s, "frames": f} for s, f in self.short[:100]]}


def video_span_warning(source: str, frames: int, sampling: str, num_frames: int, stride: int) -> str | None:
    """One line for one video shorter than a clip (``predict``), or None when it is long enough."""
    check = SpanCheck(sampling, num_frames, stride, clip_span(sampling, num_frames, stride), [frames])
    if frames >= check.span:
        return None
    check.short.append((source, frames))
    if sampling == "dense":
        return (f"'{source}' has {frames} frames, fewer than a clip spans ({check.clip_words()}): its clip repeats "
                f"frames; {check.fix()}")
    return f"'{source}' has {frames} frames, fewer than the {num_frames} a clip takes: its clip repeats frames"


def check_span(ds: Dataset, spec: InputSpec, counts: Sequence[int | None] | None = None) -> SpanCheck | None:
    """Count the samples of ``ds`` shorter than a clip of ``spec`` (None for datasets that are not
    :mod:`vidzoo.data` datasets). ``counts``: frame counts already made (:func:`count_frames`)."""
    if counts is None:
        counts = count_frames(ds)
    if counts is None:
        return None
    sampling = "uniform" if isinstance(ds, NpzVolumeDataset) else spec.sampling
    check = SpanCheck(sampling, spec.num_frames, spec.frame_stride,
                      clip_span(sampling, spec.num_frames, spec.frame_stride))
    for i, n in enumerate(counts):
        if n is None:
            check.uncounted += 1
            continue
        check.counts.append(n)
        if n < check.span:
            check.short.append((ds.source(i), n))  # type: ignore[attr-defined]
    return check
