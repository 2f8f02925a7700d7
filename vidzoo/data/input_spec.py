"""What a model takes in and how to sample it from a video: the one reading of ``pretrained_cfg``
shared by the data pipeline and the engine; the evaluation pipeline built from it, and
:func:`load_clip`, the clip ``vidzoo predict`` feeds a model."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .._choices import SAMPLING_MODES
from .datasets import VideoPathDataset
from .sampling import FrameSampler
from .transforms import _cfg_get, eval_transforms, resolve_data_config

__all__ = ["InputSpec", "SAMPLING_MODES", "parse_views", "eval_pipeline", "load_clip"]


@dataclass(frozen=True)
class InputSpec:
    """What a model takes in and how to sample it from a video.

    Attributes:
        in_chans: Channels ``C``.
        num_frames: Frames per clip ``T``.
        img_size: Frame size ``(H, W)``.
        mean: Normalisation mean per channel.
        std: Normalisation std per channel.
        crop_pct: Evaluation centre-crop fraction.
        sampling: ``'dense'`` (``num_frames`` frames ``frame_stride`` apart) or ``'uniform'``
            (one frame per equal segment of the video).
        frame_stride: Stride of dense sampling.
    """

    in_chans: int
    num_frames: int
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    sampling: str = "dense"
    frame_stride: int = 1

    @classmethod
    def from_pretrained_cfg(cls, cfg: Any, sampling: str | None = None, frame_stride: int | None = None
                            ) -> "InputSpec":
        """The spec a ``pretrained_cfg`` (dict or object with ``input_size`` ``(C, T, H, W)``) describes,
        with the sampling choices overridden.

        Size, mean, std and crop come from :func:`~vidzoo.data.resolve_data_config` (the same
        defaults as the transform builders); sampling from ``sampling`` / ``frame_sample_rate``.

        Raises:
            ValueError: No 4-entry ``input_size``, an unknown sampling mode or a stride < 1 (the
                message names the option).
        """
        input_size = _cfg_get(cfg, "input_size")
        if input_size is None or len(input_size) != 4:
            raise ValueError(f"pretrained_cfg needs input_size (C, T, H, W), got {input_size!r}")
        data = resolve_data_config(cfg)
        sampling = sampling or _cfg_get(cfg, "sampling") or "dense"
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"--sampling must be one of {', '.join(SAMPLING_MODES)}, got {sampling!r}")
        stride = frame_stride or _cfg_get(cfg, "frame_sample_rate") or 1
        if stride < 1:
            raise ValueError(f"--frame-stride must be >= 1, got {stride}")
        return cls(in_chans=int(input_size[0]), num_frames=int(data["num_frames"]), img_size=data["img_size"],
                   mean=tuple(data["mean"]), std=tuple(data["std"]), crop_pct=data["crop_pct"], sampling=sampling,
                   frame_stride=int(stride))

    @classmethod
    def from_model(cls, model: Any, sampling: str | None = None, frame_stride: int | None = None) -> "InputSpec":
        """The spec of ``model`` (its ``pretrained_cfg``); see :meth:`from_pretrained_cfg`."""
        return cls.from_pretrained_cfg(model.pretrained_cfg, sampling, frame_stride)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, T, H, W)``."""
        return (self.in_chans, self.num_frames, *self.img_size)


def parse_views(views: str | Sequence[int] | None, pretrained_cfg: Any = None) -> tuple[int, int]:
    """``'4x3'`` -> ``(4, 3)`` (temporal clips x spatial crops); None: the cfg's ``test_num_clips`` x
    ``test_num_crops`` (1 x 1 without them).

    Raises:
        ValueError: Not ``CLIPSxCROPS`` with clips >= 1 and crops 1 or 3 (naming ``--views``).
    """
    if views is None:
        clips, crops = _cfg_get(pretrained_cfg, "test_num_clips"), _cfg_get(pretrained_cfg, "test_num_crops")
        return int(clips or 1), int(crops or 1)
    if isinstance(views, str):
        parts = views.lower().replace("*", "x").split("x")
        try:
            clips, crops = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (int(parts[0]), 1)
        except ValueError:
            raise ValueError(f"--views expects CLIPSxCROPS such as 1x1, 4x3; got {views!r}") from None
    else:
        clips, crops = (int(v) for v in views)
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"--views {clips}x{crops}: clips must be >= 1 and crops 1 or 3")
    return clips, crops


def eval_pipeline(spec: InputSpec, views: tuple[int, int] = (1, 1)
                  ) -> tuple[FrameSampler, Callable[[torch.Tensor], torch.Tensor]]:
    """The temporal sampler and spatial transform of evaluation and prediction for ``views`` = (clips,
    crops): ``clips`` windows centred in equal parts of the video (dense) or segment-centre frames
    (uniform), each resized (short side to ``min(H, W) / crop_pct``) and centre-cropped (or 3 crops),
    then normalised."""
    clips, crops = views
    if crops == 3 and spec.img_size[0] != spec.img_size[1]:
        raise ValueError(f"3 spatial crops need a square input, the model takes {spec.img_size}")
    sampler = FrameSampler(spec.sampling, num_frames=spec.num_frames, stride=spec.frame_stride, num_clips=clips)
    transform = eval_transforms(spec.img_size, spec.mean, spec.std, crop_pct=spec.crop_pct, num_crops=crops)
    return sampler, transform


def load_clip(path: str | os.PathLike, pretrained_cfg: Any, views: str | Sequence[int] | None = None,
              sampling: str | None = None, frame_stride: int | None = None) -> torch.Tensor:
    """The views of a video that ``vidzoo predict`` runs a model on: ``(V, C, T, H, W)`` float32, normalised.

    ``predict`` feeds exactly these (its softmax averaged over the ``V = clips x crops`` views), so a model
    exported to ONNX gives predict's answer on them (README, "Deploy"). Step by step, for one view:

    1. the video's frame count ``n`` (the header's; the stream's when the header claims frames it lacks);
    2. frame indices: dense sampling takes ``T`` frames ``frame_sample_rate`` apart from a window of
       ``(T - 1) * stride + 1`` frames centred in the video (``start = max(n - span, 0) // 2``; past
       the end the last frame repeats); uniform takes ``floor((i + 0.5) * n / T)``;
    3. each frame decoded to RGB with its shorter side scaled to ``S = floor(min(H, W) / crop_pct)`` (the
       longer one to ``round(long * S / short)``; PyAV/swscale bilinear while converting, when that
       shrinks the frame, else bilinear with antialiasing afterwards);
    4. the centre ``H x W`` crop (top ``round((h - H) / 2)``, left ``round((w - W) / 2)``);
    5. ``(x / 255 - mean) / std`` per channel, laid out as ``(C, T, H, W)``.

    Args:
        path: A video file or a folder of frame images.
        pretrained_cfg: The model's ``pretrained_cfg`` (a dict or object with ``input_size``, ``mean``,
            ``std``, ``crop_pct``, ``sampling``, ``frame_sample_rate``, ``test_num_clips`` /
            ``test_num_crops``), or the JSON metadata of an exported file (the same keys).
        views: ``'CLIPSxCROPS'`` or a pair; None: the cfg's test views (what ``predict`` uses by default).
        sampling: ``'dense'`` / ``'uniform'`` instead of the cfg's (``--sampling``).
        frame_stride: Dense stride instead of the cfg's (``--frame-stride``).

    Raises:
        UnreadableVideoError: The video is missing or cannot be decoded.
        ValueError: A bad ``views`` / ``sampling`` / ``frame_stride``.
    """
    spec = InputSpec.from_pretrained_cfg(pretrained_cfg, sampling, frame_stride)
    sampler, transform = eval_pipeline(spec, parse_views(views, pretrained_cfg))
    x = VideoPathDataset([path], sampler, transform)[0][0]
    return x if x.ndim == 5 else x.unsqueeze(0)
