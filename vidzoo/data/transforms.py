"""Spatial transforms for video clips shaped ``(C, T, H, W)``.

Every frame of a clip gets the same geometry (one crop box, one flip decision), so motion is not
distorted. Transforms accept ``uint8`` (0..255) or float (0..1) tensors and keep the dtype, except
:class:`Normalize` / :class:`ToFloat`, which turn ``uint8`` into float first. Multi-view transforms
(:class:`ThreeCrop`) return views stacked on a new leading axis ``(V, C, T, H, W)``; the point-wise
transforms after them (flip, normalise) broadcast over that axis.

Random transforms draw from ``generator`` if given, else from torch's global RNG (which
``DataLoader`` seeds differently in each worker).

Transforms that start by shrinking the frame (:class:`ShortSideResize`, :class:`Resize`,
:class:`RandomResizedCrop`, and a :class:`Compose` that starts with one) have a ``decode_size(H, W)``
method: the frame size they can take instead of ``H x W`` without changing what they make (within
interpolation rounding). Datasets hand it to the decoder, which scales frames to it while
converting them to RGB, so full-resolution frames are neither converted nor resized.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from .augment import VideoRandAugment, VideoRandomErasing

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "ShortSideResize",
    "Resize",
    "resize_clip",
    "RandomResizedCrop",
    "CenterCrop",
    "ThreeCrop",
    "RandomHorizontalFlip",
    "ToFloat",
    "Normalize",
    "resolve_data_config",
    "train_transforms",
    "eval_transforms",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Size = int | tuple[int, int]


def _pair(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_clip(x: torch.Tensor, name: str, ndims: tuple[int, ...] = (4, 5)) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim not in ndims:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = " or ".join({4: "(C, T, H, W)", 5: "(V, C, T, H, W)"}[n] for n in ndims)
        raise ValueError(f"{name} expects a clip tensor {want}, got {shape}")


def resize_clip(x: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of the last two axes of a clip; ``uint8`` in, ``uint8`` out (rounded)."""
    h, w = size
    if x.shape[-2:] == (h, w):
        return x
    lead = x.shape[:-2]
    # interpolate wants (N, C, H, W): fold every leading axis into channels (bilinear is per channel).
    flat = x.reshape(1, -1, *x.shape[-2:])
    out = F.interpolate(flat.float() if not flat.is_floating_point() else flat, size=(h, w),
                        mode="bilinear", align_corners=False, antialias=antialias)
    if x.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = out.to(x.dtype)
    return out.reshape(*lead, h, w)


class Compose:
    """Apply transforms in order.

    Args:
        transforms: callables taking and returning a clip tensor.
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def decode_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The first transform's ``decode_size`` (None when it has none: decode at full size)."""
        first = getattr(self.transforms[0], "decode_size", None) if self.transforms else None
        return first(height, width) if first is not None else None

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"{type(self).__name__}([{inner}\n])"


class ShortSideResize:
    """Resize so the shorter side equals ``size``, keeping the aspect ratio.

    Args:
        size: target length of the shorter side.
        antialias: low-pass filter when downsampling (avoids aliasing on large reductions).
    """

    def __init__(self, size: int, antialias: bool = True) -> None:
        self.size = int(size)
        self.antialias = antialias

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H, W)`` of a ``height x width`` frame after the resize."""
        if height <= width:
            return self.size, max(1, round(width * self.size / height))
        return max(1, round(height * self.size / width)), self.size

    def decode_size(self, height: int, width: int) -> tuple[int, int]:
        """Frames decoded at the output size need no resize here."""
        return self.output_size(height, width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__)
        return resize_clip(x, self.output_size(*x.shape[-2:]), self.antialias)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class Resize:
    """Resize every frame to exactly ``size`` (aspect ratio not kept).

    Args:
        size: ``(H, W)`` or an int for a square.
        antialias: low-pass filter when downsampling.
    """

    def __init__(self, size: Size, antialias: bool = True) -> None:
        self.size = _pair(size)
        self.antialias = antialias

    def decode_size(self, height: int, width: int) -> tuple[int, int]:
        """Frames decoded at ``size`` need no resize here."""
        return self.size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__)
        return resize_clip(x, self.size, self.antialias)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class RandomResizedCrop:
    """Crop a random area/aspect-ratio box (the same for all frames) and resize it to ``size``.

    The box is drawn as in ``torchvision.transforms.RandomResizedCrop``: area fraction in
    ``scale``, log-uniform aspect ratio in ``ratio``, falling back to a centre crop.

    Args:
        size: output ``(H, W)`` or an int for a square.
        scale: range of the crop area as a fraction of the frame area.
        ratio: range of the crop aspect ratio (width / height).
        antialias: low-pass filter when downsampling.
        generator: random source (torch's global RNG when None).
    """

    def __init__(self, size: Size, scale: tuple[float, float] = (0.25, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), antialias: bool = True,
                 generator: torch.Generator | None = None) -> None:
        if not (0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.size = _pair(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.antialias = antialias
        self.generator = generator

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Draw a crop box ``(top, left, h, w)`` for a ``height x width`` frame."""
        g = self.generator
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            u = torch.rand(2, generator=g, dtype=torch.float64).tolist()
            target_area = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=g))
                left = int(torch.randint(0, width - w + 1, (1,), generator=g))
                return top, left, h, w
        # Fallback: the largest centred box whose aspect ratio is within range.
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def decode_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The smallest frame, at this frame's aspect ratio, on which every crop this transform can
        draw still has at least ``size`` pixels: decoding at it turns no reduction of a crop into an
        enlargement (crops are drawn relative to the frame, so their distribution is unchanged).
        None when that is the full frame.

        The smallest crop height is that of the smallest area at the widest ratio,
        ``sqrt(scale_min * H * W / ratio_max)``, or the height of the fallback box (when no crop
        fits), whichever is less; widths likewise. A 720p frame with ``scale=(0.25, 1)`` and
        ``size=224`` is decoded at 388x690, 3.4x fewer pixels.
        """
        area = self.scale[0] * height * width
        aspect = width / height
        fallback_h = width / self.ratio[0] if aspect < self.ratio[0] else height  # see get_params
        fallback_w = height * self.ratio[1] if aspect > self.ratio[1] else width
        min_h = min(math.sqrt(area / self.ratio[1]), fallback_h)
        min_w = min(math.sqrt(area * self.ratio[0]), fallback_w)
        factor = max(self.size[0] / min_h, self.size[1] / min_w)
        if factor >= 1:
            return None
        return min(height, math.ceil(height * factor)), min(width, math.ceil(width * factor))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__)
        top, left, h, w = self.get_params(*x.shape[-2:])
        return resize_clip(x[..., top:top + h, left:left + w], self.size, self.antialias)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class CenterCrop:
    """Crop the centre ``size`` box of every frame (zero-pads frames smaller than ``size``).

    Args:
        size: output ``(H, W)`` or an int for a square.
    """

    def __init__(self, size: Size) -> None:
        self.size = _pair(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__)
        return TF.center_crop(x, list(self.size))  # acts on the last two axes only

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class ThreeCrop:
    """Three ``size x size`` crops along the longer side (start, centre, end), SlowFast/TimeSformer
    multi-view testing. Resize the shorter side to ``size`` first so the crops tile the frame.

    Args:
        size: side of the square crops.

    Returns (when called):
        Views stacked as ``(3, C, T, size, size)``.
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__, ndims=(4,))
        s = self.size
        h, w = x.shape[-2:]
        if h < s or w < s:
            raise ValueError(f"ThreeCrop({s}) needs frames at least {s}x{s}, got {h}x{w}; "
                             f"apply ShortSideResize({s}) first")
        if w >= h:  # landscape: slide along the width
            top = (h - s) // 2
            boxes = [(top, left) for left in (0, (w - s) // 2, w - s)]
        else:
            left = (w - s) // 2
            boxes = [(top, left) for top in (0, (h - s) // 2, h - s)]
        return torch.stack([x[..., t:t + s, l:l + s] for t, l in boxes])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class RandomHorizontalFlip:
    """Mirror every frame left-right with probability ``p`` (one decision per clip).

    Do not use on direction-sensitive labels (Something-Something "left to right" classes, the
    synthetic motion dataset of :mod:`vidzoo.data.synthetic`): a flip swaps those classes.

    Args:
        p: flip probability.
        generator: random source (torch's global RNG when None).
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.p = float(p)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__)
        if self.p > 0 and float(torch.rand((), generator=self.generator)) < self.p:
            return x.flip(-1)
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class ToFloat:
    """``uint8`` (0..255) to ``float32`` (0..1); float input is returned as float32 unchanged."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)
        return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean) / std`` per channel; ``uint8`` input is first scaled to 0..1.

    Args:
        mean: per-channel mean (of 0..1 values), e.g. a model's ``pretrained_cfg["mean"]``.
        std: per-channel standard deviation.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        # (C, 1, 1, 1) broadcasts over (C, T, H, W) and (V, C, T, H, W).
        self._mean = torch.tensor(self.mean).view(-1, 1, 1, 1)
        self._std = torch.tensor(self.std).view(-1, 1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, type(self).__name__)
        if x.shape[-4] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channel statistics but the clip "
                             f"{tuple(x.shape)} has {x.shape[-4]} channels")
        x = ToFloat()(x)
        return (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


# --------------------------------------------------------------------------------------------------
# factories


def _cfg_get(cfg: Any, key: str) -> Any:
    # pretrained_cfg may be a plain dict or a PretrainedCfg-like object with attributes.
    if cfg is None:
        return None
    if isinstance(cfg, Mapping):
        return cfg.get(key)
    return getattr(cfg, key, None)


def resolve_data_config(pretrained_cfg: Any = None, img_size: Size | None = None,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        crop_pct: float | None = None) -> dict[str, Any]:
    """Merge explicit arguments with a model's ``pretrained_cfg`` (explicit wins).

    Args:
        pretrained_cfg: dict or object with optional ``input_size`` (``(C, T, H, W)`` or
            ``(C, H, W)``), ``mean``, ``std``, ``crop_pct``.
        img_size: output frame size; from ``input_size[-2:]`` when None.
        mean: normalisation mean; ImageNet mean when neither given nor in the config.
        std: normalisation std; ImageNet std when neither given nor in the config.
        crop_pct: eval centre-crop fraction; 1.0 when neither given nor in the config.

    Returns:
        Dict with ``img_size`` ``(H, W)``, ``mean``, ``std``, ``crop_pct`` and ``num_frames``
        (``T`` of a 4-entry ``input_size``, else None).

    Raises:
        ValueError: no image size can be determined.
    """
    input_size = _cfg_get(pretrained_cfg, "input_size")
    num_frames = None
    if img_size is None:
        if input_size is None:
            raise ValueError("img_size is required when pretrained_cfg has no 'input_size' "
                             "(expected (C, T, H, W))")
        img_size = (int(input_size[-2]), int(input_size[-1]))
    if input_size is not None and len(input_size) == 4:
        num_frames = int(input_size[1])
    mean = tuple(mean if mean is not None else (_cfg_get(pretrained_cfg, "mean") or IMAGENET_MEAN))
    std = tuple(std if std is not None else (_cfg_get(pretrained_cfg, "std") or IMAGENET_STD))
    if crop_pct is None:
        crop_pct = _cfg_get(pretrained_cfg, "crop_pct") or 1.0
    return {"img_size": _pair(img_size), "mean": mean, "std": std, "crop_pct": float(crop_pct),
            "num_frames": num_frames}


def train_transforms(img_size: Size | None = None, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, *, pretrained_cfg: Any = None,
                     scale: tuple[float, float] = (0.25, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                     hflip: float = 0.5, randaug: str | None = None, reprob: float = 0.0, remode: str = "pixel",
                     generator: torch.Generator | None = None) -> Compose:
    """Training pipeline: random resized crop -> horizontal flip -> [RandAugment] -> normalise ->
    [random erasing].

    Args:
        img_size: output ``(H, W)`` or int; from ``pretrained_cfg["input_size"]`` when None.
        mean: normalisation mean; from ``pretrained_cfg`` (else ImageNet) when None.
        std: normalisation std; from ``pretrained_cfg`` (else ImageNet) when None.
        pretrained_cfg: the model's ``pretrained_cfg`` (dict or object).
        scale: crop area range. The default keeps at least a quarter of the frame: video objects
            are small and a clip has fewer crops to average over than an image epoch.
        ratio: crop aspect ratio range.
        hflip: flip probability; set 0 for direction-sensitive labels.
        randaug: a RandAugment config string (:class:`~vidzoo.data.VideoRandAugment`, one draw per
            clip, on the ``uint8`` crop), or None.
        reprob: random-erasing probability (:class:`~vidzoo.data.VideoRandomErasing`, one box
            through every frame, on the normalised clip); 0 for none.
        remode: random-erasing fill (``const``, ``rand`` or ``pixel``).
        generator: random source shared by the random transforms.

    Returns:
        A :class:`Compose` mapping a ``uint8`` ``(C, T, H, W)`` clip to a normalised float clip.
    """
    cfg = resolve_data_config(pretrained_cfg, img_size, mean, std)
    ts: list[Callable] = [RandomResizedCrop(cfg["img_size"], scale=scale, ratio=ratio, generator=generator)]
    if hflip > 0:
        ts.append(RandomHorizontalFlip(hflip, generator=generator))
    if randaug:
        ts.append(VideoRandAugment(randaug, generator=generator))
    ts.append(Normalize(cfg["mean"], cfg["std"]))
    if reprob > 0:
        ts.append(VideoRandomErasing(reprob, mode=remode, generator=generator))
    return Compose(ts)


def eval_transforms(img_size: Size | None = None, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, *, pretrained_cfg: Any = None,
                    crop_pct: float | None = None, num_crops: int = 1) -> Compose:
    """Evaluation pipeline: short-side resize -> centre crop (or three crops) -> normalise.

    Args:
        img_size: output ``(H, W)`` or int; from ``pretrained_cfg["input_size"]`` when None.
        mean: normalisation mean; from ``pretrained_cfg`` (else ImageNet) when None.
        std: normalisation std; from ``pretrained_cfg`` (else ImageNet) when None.
        pretrained_cfg: the model's ``pretrained_cfg`` (dict or object).
        crop_pct: the shorter side is resized to ``min(img_size) / crop_pct`` before the centre
            crop; from ``pretrained_cfg`` (else 1.0) when None. Ignored for ``num_crops=3``.
        num_crops: 1 (centre crop, ``(C, T, H, W)`` out) or 3 (:class:`ThreeCrop`, square
            ``img_size`` only, ``(3, C, T, H, W)`` out).

    Returns:
        A :class:`Compose`.
    """
    cfg = resolve_data_config(pretrained_cfg, img_size, mean, std, crop_pct)
    h, w = cfg["img_size"]
    if num_crops == 1:
        short = int(math.floor(min(h, w) / cfg["crop_pct"]))
        ts: list[Callable] = [ShortSideResize(short), CenterCrop((h, w))]
    elif num_crops == 3:
        if h != w:
            raise ValueError(f"num_crops=3 needs a square img_size, got {(h, w)}")
        ts = [ShortSideResize(h), ThreeCrop(h)]
    else:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    ts.append(Normalize(cfg["mean"], cfg["std"]))
    return Compose(ts)
