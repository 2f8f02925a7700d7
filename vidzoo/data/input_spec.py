"""What a model takes in and how to sample it from a video: the one reading of ``pretrained_cfg``
shared by the data pipeline and the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._choices import SAMPLING_MODES
from .transforms import _cfg_get, resolve_data_config

__all__ = ["InputSpec", "SAMPLING_MODES"]


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
