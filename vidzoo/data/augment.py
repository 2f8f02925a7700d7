"""Clip-level RandAugment and random erasing: one draw per clip, applied to every frame.

timm's :class:`~timm.data.auto_augment.RandAugment` and
:class:`~timm.data.random_erasing.RandomErasing` are image tools. Applied frame by frame,
RandAugment picks new operations and magnitudes for every frame (a clip whose frame 3 is rotated
and frame 4 solarised). RandomErasing refuses 5-D input, and on a 4-D ``(C, T, H, W)`` clip
it takes ``C`` for the batch axis and erases a different box in each channel. The classes here
draw once per clip and apply that draw to every frame, as the SlowFast / VideoMAE / V-JEPA
video copies of these tools do.

:class:`VideoRandAugment` reads timm's config strings (``rand-m9-n2-mstd0.5-inc1``), uses timm's
op sets and reproduces timm's magnitude-to-argument mapping. The pixel work goes through
``torchvision.transforms.v2.functional`` on the ``(T, C, H, W)`` view of the clip (sharpness,
blur and solarize are rearranged for speed, with torchvision's results). Every op matches
timm's PIL op on each frame (see ``tests/test_data_augment.py``): bit-exact for the point ops,
within one level for the enhance ops and autocontrast, up to edge handling for the geometric
ops. The exceptions:

- Geometric ops (rotate, shear, translate) interpolate bilinearly or with nearest neighbours.
  torchvision's tensor affine has no bicubic mode, and timm's default picks bilinear or bicubic
  at random.
- ``GaussianBlur`` (``t3a`` / ``t3aw`` sets) is a true Gaussian with ``sigma`` = PIL's radius.
  PIL approximates it with box blurs, so the two differ by about 1 level on average.
- ``Posterize`` to 0 bits (``PosterizeIncreasing`` at magnitude 10) gives a black frame. That is
  what older Pillow did; Pillow 13 raises instead, so timm's own op crashes there.
- Random draws come from a ``torch.Generator`` (or torch's global RNG), not Python's
  ``random`` / numpy, so seeds do not reproduce timm's draws, only their distribution.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torchvision.transforms.v2.functional as TF
from timm.data.auto_augment import _LEVEL_DENOM, rand_augment_choices
from torchvision.transforms import InterpolationMode

from .._choices import ERASE_MODES

__all__ = ["RandAugmentConfig", "parse_rand_augment", "level_to_arg", "VideoRandAugment", "VideoRandomErasing",
           "RAND_AUGMENT_SETS", "ERASE_MODES"]

# Values of the config string's ``t`` key that timm's ``rand_augment_choices`` knows; any other
# value makes timm fall back to the default set silently, here it is an error.
RAND_AUGMENT_SETS = ("weights", "3a", "3aw")

_INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST}


# --------------------------------------------------------------------------------------------------
# config strings


@dataclass(frozen=True)
class RandAugmentConfig:
    """A parsed RandAugment config string (timm's grammar and defaults).

    Attributes:
        magnitude: ``m``, the op strength on timm's 0..10 scale (default 10).
        num_layers: ``n``, ops drawn per clip (default 2).
        prob: ``p``, probability that each drawn op is applied (default 0.5).
        magnitude_std: ``mstd``, std of the Gaussian noise added to the magnitude at each
            application; ``inf`` (written as a value > 100) draws it uniformly in ``[0, m]``.
        magnitude_max: ``mmax``, upper clip of the drawn magnitude (None: timm's 10).
        increasing: ``inc``, use the op variants whose severity increases with the magnitude.
        transforms: ``t``, a named op set (one of :data:`RAND_AUGMENT_SETS`) or None.
    """

    magnitude: int = int(_LEVEL_DENOM)
    num_layers: int = 2
    prob: float = 0.5
    magnitude_std: float = 0.0
    magnitude_max: int | None = None
    increasing: bool = False
    transforms: str | None = None

    def ops(self) -> tuple[list[str], list[float] | None]:
        """Op names and, for a weighted set, their choice weights (normalised), as timm picks them."""
        choices = rand_augment_choices(self.transforms or "", increasing=self.increasing)
        if isinstance(choices, dict):
            total = float(sum(choices.values()))
            return list(choices), [float(w) / total for w in choices.values()]
        return list(choices), None


def parse_rand_augment(config_str: str) -> RandAugmentConfig:
    """Parse a timm RandAugment config string such as ``"rand-m7-n4-mstd0.5-inc1"``.

    The grammar is timm's (``rand_augment_transform``): dash-separated sections after ``rand``,
    in any order: ``m<int>``, ``n<int>``, ``p<float>``, ``mstd<float>``, ``mmax<int>``,
    ``inc<0|1>``, ``t<set>``. Unlike timm, a section it does not know is an error, not an
    assertion or a silent no-op.

    Raises:
        ValueError: not a ``rand-...`` string, an unknown or malformed section, or a value out of
            its range.
    """
    if not isinstance(config_str, str) or config_str.split("-")[0] != "rand":
        raise ValueError(f"a RandAugment config string starts with 'rand' (e.g. 'rand-m9-n2-mstd0.5-inc1'), "
                         f"got {config_str!r}")
    values: dict[str, object] = {}
    for section in config_str.split("-")[1:]:
        if section.startswith("t"):  # timm checks 't' before the numeric keys
            name = section[1:]
            if name not in RAND_AUGMENT_SETS:
                raise ValueError(f"unknown RandAugment op set 't{name}' in {config_str!r}; "
                                 f"expected one of {', '.join('t' + s for s in RAND_AUGMENT_SETS)}")
            values["transforms"] = name
            continue
        match = re.fullmatch(r"(mstd|mmax|inc|m|n|p)(\d.*)", section)
        if match is None:
            raise ValueError(f"unknown RandAugment section {section!r} in {config_str!r}; expected "
                             f"m<int>, n<int>, p<float>, mstd<float>, mmax<int>, inc<0|1> or t<set>")
        key, val = match.groups()
        try:
            if key == "mstd":
                mstd = float(val)
                values["magnitude_std"] = float("inf") if mstd > 100 else mstd  # timm: > 100 means uniform
            elif key == "mmax":
                values["magnitude_max"] = int(val)
            elif key == "inc":
                values["increasing"] = bool(int(val))
            elif key == "m":
                values["magnitude"] = int(val)
            elif key == "n":
                values["num_layers"] = int(val)
            else:
                values["prob"] = float(val)
        except ValueError:
            kind = "a float" if key in ("mstd", "p") else "an integer"
            raise ValueError(f"RandAugment section {section!r} in {config_str!r}: "
                             f"{key} takes {kind}, got {val!r}") from None
    cfg = RandAugmentConfig(**values)  # type: ignore[arg-type]
    if not 0.0 <= cfg.prob <= 1.0:
        raise ValueError(f"RandAugment p must be in [0, 1], got {cfg.prob} in {config_str!r}")
    if cfg.magnitude_max is not None and cfg.magnitude_max <= 0:
        raise ValueError(f"RandAugment mmax must be > 0, got {cfg.magnitude_max} in {config_str!r}")
    names, weights = cfg.ops()
    if weights is not None and cfg.num_layers > sum(w > 0 for w in weights):
        # timm draws a weighted set without replacement
        raise ValueError(f"RandAugment n={cfg.num_layers} exceeds the {len(names)} ops of set "
                         f"'t{cfg.transforms}' (drawn without replacement) in {config_str!r}")
    return cfg


# --------------------------------------------------------------------------------------------------
# magnitude -> op arguments: timm's LEVEL_TO_ARG formulas, with the random sign passed in

def _level(m: float) -> float:
    return m / _LEVEL_DENOM


def _signed(scale: float) -> Callable[[float, float], tuple]:
    return lambda m, sign: (sign * _level(m) * scale,)


def _minmax(lo: float, hi: float) -> Callable[[float, float], tuple]:
    return lambda m, sign: (max(lo, min(hi, lo + (hi - lo) * _level(m))),)


def _enhance(m: float, sign: float) -> tuple:
    return (_level(m) * 1.8 + 0.1,)


def _enhance_increasing(m: float, sign: float) -> tuple:
    return (max(0.1, 1.0 + sign * _level(m) * 0.9),)


def _posterize_level(m: float, sign: float) -> tuple:
    return (int(_level(m) * 4),)


def _solarize_level(m: float, sign: float) -> tuple:
    return (min(256, int(_level(m) * 256)),)


# name -> (level function, whether it draws a random sign)
_LEVEL_TO_ARG: dict[str, tuple[Callable[[float, float], tuple] | None, bool]] = {
    "AutoContrast": (None, False),
    "Equalize": (None, False),
    "Invert": (None, False),
    "Rotate": (_signed(30.0), True),
    "Posterize": (_posterize_level, False),
    "PosterizeIncreasing": (lambda m, s: (4 - _posterize_level(m, s)[0],), False),
    "PosterizeOriginal": (lambda m, s: (_posterize_level(m, s)[0] + 4,), False),
    "Solarize": (_solarize_level, False),
    "SolarizeIncreasing": (lambda m, s: (256 - _solarize_level(m, s)[0],), False),
    "SolarizeAdd": (lambda m, s: (min(128, int(_level(m) * 110)),), False),
    "Color": (_enhance, False),
    "ColorIncreasing": (_enhance_increasing, True),
    "Contrast": (_enhance, False),
    "ContrastIncreasing": (_enhance_increasing, True),
    "Brightness": (_enhance, False),
    "BrightnessIncreasing": (_enhance_increasing, True),
    "Sharpness": (_enhance, False),
    "SharpnessIncreasing": (_enhance_increasing, True),
    "ShearX": (_signed(0.3), True),
    "ShearY": (_signed(0.3), True),
    "TranslateXRel": (_signed(0.45), True),  # timm's default translate_pct
    "TranslateYRel": (_signed(0.45), True),
    "Desaturate": (_minmax(0.5, 1.0), False),
    "GaussianBlur": (_minmax(0.1, 2.0), False),
}


def level_to_arg(name: str, magnitude: float, sign: float = 1.0) -> tuple:
    """timm's argument for op ``name`` at ``magnitude`` (0..10 scale), ``sign`` in {1, -1}.

    Ops whose argument timm negates at random take ``sign``; the others ignore it.
    """
    fn = _LEVEL_TO_ARG[name][0]
    return () if fn is None else fn(magnitude, sign)


# --------------------------------------------------------------------------------------------------
# ops on (T, C, H, W) uint8; each acts on every frame the same way (per-frame statistics for
# autocontrast / equalize / contrast, as timm's PIL ops compute them on each frame).


def _affine(x: torch.Tensor, interp: InterpolationMode, fill: list[float], *, shear=(0.0, 0.0),
            translate=(0.0, 0.0)) -> torch.Tensor:
    # PIL's affine maps about the top-left corner, hence center=[0, 0]; shear in degrees = atan(factor).
    return TF.affine(x, angle=0.0, translate=list(translate), scale=1.0,
                     shear=[math.degrees(math.atan(s)) for s in shear], interpolation=interp,
                     fill=fill, center=[0.0, 0.0])


# Masks times values instead of torch.where, which is about 7x slower on uint8 (measured, 1 thread).
def _solarize(x: torch.Tensor, thresh: int) -> torch.Tensor:
    if thresh >= 256:
        return x
    return x ^ (x >= thresh).to(torch.uint8).mul_(255)  # x ^ 255 == 255 - x, PIL's invert


def _solarize_add(x: torch.Tensor, add: int, thresh: int = 128) -> torch.Tensor:
    if add + thresh - 1 <= 255:  # timm's range (add <= 128 below 128) cannot overflow uint8
        return x + (x < thresh).to(torch.uint8).mul_(add)
    return torch.where(x < thresh, (x.to(torch.int16) + add).clamp_(max=255).to(torch.uint8), x)


def _sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    # torchvision's adjust_sharpness (PIL's 3x3 smoothing kernel, borders kept), with the depthwise
    # convolution run once over all frames' channels as (1, T * C, H, W): with T as the batch
    # axis torch's CPU depthwise convolution took ~5x longer on a 16x224x224 clip.
    t, c, h, w = x.shape
    if h <= 2 or w <= 2:
        return x
    out = x.to(torch.float32).reshape(1, t * c, h, w)
    kernel = torch.ones(3, 3, dtype=torch.float32, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(t * c, 1, 3, 3)
    blurred = torch.nn.functional.conv2d(out, kernel, groups=t * c).round_()
    inner = out[..., 1:-1, 1:-1]
    inner.add_(blurred.sub_(inner), alpha=1.0 - factor)
    return out.clamp_(0, 255).to(torch.uint8).reshape(t, c, h, w)


def _gaussian_blur(x: torch.Tensor, radius: float) -> torch.Tensor:
    k = 2 * math.ceil(3 * radius) + 1
    k = min(k, 2 * (min(x.shape[-2:]) - 1) + 1)  # reflect padding needs pad < side
    if k <= 1:
        return x
    # frames folded into channels: one depthwise convolution over the clip (see _sharpness)
    return TF.gaussian_blur(x.reshape(1, -1, *x.shape[-2:]), [k, k], [radius, radius]).reshape(x.shape)


_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "AutoContrast": lambda x, i, f: TF.autocontrast(x),
    "Equalize": lambda x, i, f: TF.equalize(x),
    "Invert": lambda x, i, f: TF.invert(x),
    # PIL and torchvision both turn counter-clockwise for positive angles, about the centre.
    "Rotate": lambda x, i, f, deg: TF.rotate(x, deg, interpolation=i, fill=f),
    # bits < 0 comes from PosterizeIncreasing beyond m=10 (mmax > 10): as dark as it gets, 0 bits
    "Posterize": lambda x, i, f, bits: x if bits >= 8 else TF.posterize(x, max(0, bits)),
    "Solarize": lambda x, i, f, t: _solarize(x, t),
    "SolarizeAdd": lambda x, i, f, add: _solarize_add(x, add),
    "Color": lambda x, i, f, v: TF.adjust_saturation(x, v),
    "Contrast": lambda x, i, f, v: TF.adjust_contrast(x, v),
    "Brightness": lambda x, i, f, v: TF.adjust_brightness(x, v),
    "Sharpness": lambda x, i, f, v: _sharpness(x, v),
    "ShearX": lambda x, i, f, s: _affine(x, i, f, shear=(s, 0.0)),
    "ShearY": lambda x, i, f, s: _affine(x, i, f, shear=(0.0, s)),
    # PIL's (1, 0, p, 0, 1, 0) samples x + p: the content moves by -p.
    "TranslateXRel": lambda x, i, f, pct: _affine(x, i, f, translate=(-pct * x.shape[-1], 0.0)),
    "TranslateYRel": lambda x, i, f, pct: _affine(x, i, f, translate=(0.0, -pct * x.shape[-2])),
    "Desaturate": lambda x, i, f, v: TF.adjust_saturation(x, min(1.0, max(0.0, 1.0 - v))),
    "GaussianBlur": lambda x, i, f, r: _gaussian_blur(x, r),
}
for _base in ("Posterize", "Solarize", "Color", "Contrast", "Brightness", "Sharpness"):
    _OPS[_base + "Increasing"] = _OPS[_base]
_OPS["PosterizeOriginal"] = _OPS["Posterize"]
del _base

Op = tuple[str, tuple]


def _check_clip(x: object, name: str, ndims: tuple[int, ...], what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim not in ndims:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} expects {what}, got {shape}")


class VideoRandAugment:
    """RandAugment on a ``uint8`` clip ``(C, T, H, W)``, one draw of ops and magnitudes per clip.

    Each call draws ``n`` ops from the config's set (uniformly with replacement, or by the set's
    weights without replacement, as timm). Each drawn op is applied with probability ``p``, at a
    magnitude drawn around ``m`` (``mstd``), with a random sign for the signed ops. The same
    ops and arguments go to every frame. :meth:`sample` returns such a draw and :meth:`apply`
    applies a given draw, so a draw can be inspected or replayed.

    Args:
        config_str: timm config string, e.g. ``"rand-m7-n4-mstd0.5-inc1"`` (VideoMAE's
            fine-tuning) or ``"rand-m9-n2-mstd0.5-inc1"``; see :func:`parse_rand_augment`.
        interpolation: ``"bilinear"`` or ``"nearest"`` for rotate / shear / translate.
        fill: value of pixels uncovered by a geometric op, an int or one value per channel.
            128 is timm's default, kept by the SlowFast / VideoMAE video copies; timm's image
            pipeline passes the dataset mean x 255 instead.
        generator: random source (torch's global RNG when None).

    Raises:
        ValueError: a bad config string, interpolation or fill.
    """

    def __init__(self, config_str: str, interpolation: str = "bilinear",
                 fill: int | Sequence[int] = 128, generator: torch.Generator | None = None) -> None:
        self.config_str = config_str
        self.config = parse_rand_augment(config_str)
        self.op_names, weights = self.config.ops()
        self._weights = None if weights is None else torch.tensor(weights, dtype=torch.float64)
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(map(repr, _INTERPOLATIONS))}, "
                             f"got {interpolation!r}")
        self.interpolation = interpolation
        fill_t = (fill,) if isinstance(fill, (int, float)) else tuple(fill)
        if not fill_t or any(not 0 <= v <= 255 for v in fill_t):
            raise ValueError(f"fill must be an int or one int per channel in [0, 255], got {fill!r}")
        self.fill = fill_t
        self.generator = generator

    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def sample(self) -> list[Op]:
        """Draw one clip's ops: ``[(name, args), ...]`` in order, skipped ops left out."""
        cfg, g = self.config, self.generator
        n = cfg.num_layers
        if self._weights is None:
            idx = torch.randint(len(self.op_names), (n,), generator=g).tolist()
        else:
            idx = torch.multinomial(self._weights, n, replacement=False, generator=g).tolist() if n else []
        upper = cfg.magnitude_max or _LEVEL_DENOM
        ops: list[Op] = []
        for i in idx:
            name = self.op_names[i]
            if cfg.prob < 1.0 and not self._rand() < cfg.prob:
                continue
            m = float(cfg.magnitude)
            if cfg.magnitude_std == float("inf"):
                m = self._rand() * m
            elif cfg.magnitude_std > 0:
                m += cfg.magnitude_std * float(torch.randn((), generator=g, dtype=torch.float64))
            m = max(0.0, min(m, upper))
            sign = (-1.0 if self._rand() > 0.5 else 1.0) if _LEVEL_TO_ARG[name][1] else 1.0
            ops.append((name, level_to_arg(name, m, sign)))
        return ops

    def apply(self, x: torch.Tensor, ops: Sequence[Op]) -> torch.Tensor:
        """Apply a draw from :meth:`sample` to every frame of ``x`` ``(C, T, H, W)`` uint8."""
        _check_clip(x, type(self).__name__, (4,), "a uint8 clip (C, T, H, W)")
        if x.dtype != torch.uint8:
            raise ValueError(f"{type(self).__name__} expects a uint8 clip (C, T, H, W) (apply it before "
                             f"Normalize), got dtype {x.dtype}")
        c = x.shape[0]
        if c not in (1, 3):
            raise ValueError(f"{type(self).__name__} expects 1 or 3 channels, got a clip of shape {tuple(x.shape)}")
        if len(self.fill) not in (1, c):
            raise ValueError(f"fill has {len(self.fill)} values for a {c}-channel clip")
        fill = [float(v) for v in (self.fill * c if len(self.fill) == 1 else self.fill)]
        interp = _INTERPOLATIONS[self.interpolation]
        y = x.transpose(0, 1)  # (T, C, H, W): torchvision treats T as a batch of frames
        for name, args in ops:
            y = _OPS[name](y, interp, fill, *args)
        return y.transpose(0, 1).contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config_str!r}, interpolation={self.interpolation!r})"


# --------------------------------------------------------------------------------------------------
# random erasing


class VideoRandomErasing:
    """Random erasing of a normalised float clip: one box per clip, the same in every frame.

    V-JEPA's / VideoMAE's "cube" erasing with timm's box sampling. With probability
    ``probability`` it erases between ``min_count`` and ``max_count`` boxes. Each box covers
    ``U(min_area, max_area) / count`` of the frame, with a log-uniform aspect ratio in
    ``[min_aspect, max_aspect]``, from up to 10 attempts that must fit strictly inside the frame.
    The box spans every frame. What fills it depends on ``mode``:

    - ``"const"``: 0, the dataset mean after normalisation.
    - ``"rand"``: one N(0, 1) value per channel.
    - ``"pixel"``: N(0, 1) per pixel.

    The random values are drawn afresh for every frame, as SlowFast / VideoMAE / V-JEPA's cube
    erasing fills each frame (VideoMAE fine-tunes with ``pixel``). Noise is what the model learns
    to ignore, and the occluder's position is what stays fixed.

    Args:
        probability: chance that a clip is erased.
        min_area: smallest box area, as a fraction of the frame.
        max_area: largest box area, as a fraction of the frame.
        min_aspect: smallest aspect ratio (h / w) of the box.
        max_aspect: largest aspect ratio; ``1 / min_aspect`` when None.
        mode: ``"const"``, ``"rand"`` or ``"pixel"`` (above).
        min_count: fewest boxes per erased clip.
        max_count: most boxes per erased clip; ``min_count`` when None.
        generator: random source (torch's global RNG when None).

    Input ``(C, T, H, W)`` or a batch ``(B, C, T, H, W)`` (an independent draw per clip). The
    result is a new tensor when something is erased and the input itself otherwise.
    timm's ``num_splits`` and ``device`` are not taken: the fill is made on the clip's device.
    """

    def __init__(self, probability: float = 0.5, min_area: float = 0.02, max_area: float = 1 / 3,
                 min_aspect: float = 0.3, max_aspect: float | None = None, mode: str = "const",
                 min_count: int = 1, max_count: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if not 0.0 < min_area <= max_area <= 1.0:
            raise ValueError(f"areas must satisfy 0 < min_area <= max_area <= 1, got {min_area}, {max_area}")
        max_aspect = max_aspect or 1 / min_aspect
        if not 0.0 < min_aspect <= max_aspect:
            raise ValueError(f"aspect ratios must satisfy 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}")
        mode = mode.lower() if isinstance(mode, str) else mode
        if mode not in ERASE_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, ERASE_MODES))}, got {mode!r}")
        max_count = max_count or min_count
        if not 1 <= min_count <= max_count:
            raise ValueError(f"counts must satisfy 1 <= min_count <= max_count, got {min_count}, {max_count}")
        self.probability = float(probability)
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.min_aspect, self.max_aspect = float(min_aspect), float(max_aspect)
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.mode = mode
        self.min_count, self.max_count = int(min_count), int(max_count)
        self.generator = generator

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def _randint(self, lo: int, hi: int) -> int:  # inclusive, like random.randint
        return int(torch.randint(lo, hi + 1, (), generator=self.generator))

    def get_params(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Draw one clip's boxes ``[(top, left, h, w), ...]``; empty when the clip is not erased."""
        if not self._uniform(0.0, 1.0) < self.probability:
            return []
        area = height * width
        count = self.min_count if self.min_count == self.max_count else self._randint(self.min_count, self.max_count)
        boxes = []
        for _ in range(count):
            for _attempt in range(10):
                target_area = self._uniform(self.min_area, self.max_area) * area / count
                aspect = math.exp(self._uniform(*self.log_aspect_ratio))
                h = int(round(math.sqrt(target_area * aspect)))
                w = int(round(math.sqrt(target_area / aspect)))
                if w < width and h < height:
                    boxes.append((self._randint(0, height - h), self._randint(0, width - w), h, w))
                    break
        return boxes

    def _fill(self, c: int, t: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        if self.mode == "const":
            return torch.zeros((), dtype=like.dtype, device=like.device)
        size = (c, t, h, w) if self.mode == "pixel" else (c, t, 1, 1)
        dev = self.generator.device if self.generator is not None else like.device
        return torch.randn(size, generator=self.generator, device=dev).to(like.device, like.dtype)

    def erase(self, x: torch.Tensor, boxes: Sequence[tuple[int, int, int, int]]) -> torch.Tensor:
        """Erase ``boxes`` (from :meth:`get_params`) in every frame of one clip ``(C, T, H, W)``, in place."""
        c, t = x.shape[:2]
        for top, left, h, w in boxes:
            x[..., top:top + h, left:left + w] = self._fill(c, t, h, w, x)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        _check_clip(x, name, (4, 5), "a float clip (C, T, H, W) or a batch (B, C, T, H, W)")
        if not x.is_floating_point():
            raise ValueError(f"{name} expects a normalised float clip (apply it after Normalize), "
                             f"got dtype {x.dtype}")
        clips = x.unsqueeze(0) if x.ndim == 4 else x
        draws = [self.get_params(*x.shape[-2:]) for _ in range(clips.shape[0])]
        if not any(draws):
            return x
        out = clips.clone()
        for clip, boxes in zip(out, draws):
            self.erase(clip, boxes)
        return out[0] if x.ndim == 4 else out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(probability={self.probability}, mode={self.mode!r}, "
                f"count=({self.min_count}, {self.max_count}))")
