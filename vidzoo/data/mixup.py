"""Mixup / CutMix on batches of clips ``(B, C, T, H, W)``.

timm's :class:`~timm.data.mixup.Mixup` sizes the CutMix box from the last two axes (H, W) but
pastes ``x[:, :, y0:y1, x0:x1]``, which on a 5-D batch slices T and H: it swaps a band of frames
and rows, not a box. The label weights then no longer match what was pasted. VideoMAE's copy of
the class has the same slicing in its default ``batch`` mode. :class:`VideoMixup` keeps timm's
sampling of lambda, of the mode (mixup or cutmix) and of the box, and timm's soft targets. It
changes only where the box goes: ``x[..., y0:y1, x0:x1]``, the same box in every frame of a
clip. The label mass is corrected to the area really pasted after the box is clipped to the
frame (timm's ``correct_lam``, always on here).
"""
from __future__ import annotations

import numpy as np
import torch
from timm.data.mixup import Mixup, cutmix_bbox_and_lam

from .._choices import MIXUP_MODES

__all__ = ["VideoMixup", "MIXUP_MODES"]


class VideoMixup(Mixup):
    """timm's Mixup / CutMix with the CutMix box pasted on every frame of a clip.

    Clip ``i`` is mixed with clip ``B - 1 - i`` (``x.flip(0)``), as in timm. Random draws use
    numpy's global RNG, as timm's do, so a seeded run gives the same lambdas and boxes as
    ``timm.data.Mixup``. Set ``mixup_enabled = False`` to switch mixing off (timm's attribute).

    Args:
        mixup_alpha: mixup is active when > 0; lambda ~ Beta(alpha, alpha).
        cutmix_alpha: cutmix is active when > 0; lambda ~ Beta(alpha, alpha).
        cutmix_minmax: ``(min, max)`` box side as a fraction of H and W; when given, the box is
            drawn from it instead of from lambda (and cutmix is active).
        prob: probability of mixing a batch (``batch``), a pair or an element.
        switch_prob: probability of cutmix instead of mixup when both are active.
        mode: ``"batch"`` (one draw per batch), ``"pair"`` (one per mirrored pair) or
            ``"elem"`` (one per clip).
        label_smoothing: smoothing of the one-hot targets before mixing.
        num_classes: number of classes; targets must be class indices below it.

    Raises:
        ValueError: a bad argument, e.g. an unknown mode (timm silently treats it as ``batch``).
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0,
                 cutmix_minmax: tuple[float, float] | None = None, prob: float = 1.0,
                 switch_prob: float = 0.5, mode: str = "batch", label_smoothing: float = 0.1,
                 num_classes: int = 1000) -> None:
        if mode not in MIXUP_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MIXUP_MODES))}, got {mode!r}")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
        if cutmix_minmax is not None:
            lo_hi = tuple(cutmix_minmax)
            if len(lo_hi) != 2 or not 0.0 < lo_hi[0] < lo_hi[1] <= 1.0:
                raise ValueError(f"cutmix_minmax must be (min, max) with 0 < min < max <= 1, got {cutmix_minmax}")
            cutmix_minmax = lo_hi
        elif mixup_alpha == 0 and cutmix_alpha == 0:
            raise ValueError("VideoMixup needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax; all are off")
        for name, p in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        super().__init__(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, cutmix_minmax=cutmix_minmax,
                         prob=prob, switch_prob=switch_prob, mode=mode, correct_lam=True,
                         label_smoothing=label_smoothing, num_classes=num_classes)

    def _box(self, shape: torch.Size, lam: float) -> tuple[tuple[int, int, int, int], float]:
        return cutmix_bbox_and_lam(shape, lam, ratio_minmax=self.cutmix_minmax, correct_lam=self.correct_lam)

    def _mix_elem(self, x: torch.Tensor) -> torch.Tensor:
        batch_size = len(x)
        lam_batch, use_cutmix = self._params_per_elem(batch_size)
        x_orig = x.clone()  # the unmixed source of every pair
        for i in range(batch_size):
            j = batch_size - i - 1
            lam = lam_batch[i]
            if lam != 1.0:
                if use_cutmix[i]:
                    (yl, yh, xl, xh), lam = self._box(x[i].shape, lam)
                    x[i][..., yl:yh, xl:xh] = x_orig[j][..., yl:yh, xl:xh]
                    lam_batch[i] = lam
                else:
                    x[i] = x[i] * lam + x_orig[j] * (1 - lam)
        return torch.tensor(lam_batch, device=x.device, dtype=x.dtype).unsqueeze(1)

    def _mix_pair(self, x: torch.Tensor) -> torch.Tensor:
        batch_size = len(x)
        lam_batch, use_cutmix = self._params_per_elem(batch_size // 2)
        x_orig = x.clone()
        for i in range(batch_size // 2):
            j = batch_size - i - 1
            lam = lam_batch[i]
            if lam != 1.0:
                if use_cutmix[i]:
                    (yl, yh, xl, xh), lam = self._box(x[i].shape, lam)
                    x[i][..., yl:yh, xl:xh] = x_orig[j][..., yl:yh, xl:xh]
                    x[j][..., yl:yh, xl:xh] = x_orig[i][..., yl:yh, xl:xh]
                    lam_batch[i] = lam
                else:
                    x[i] = x[i] * lam + x_orig[j] * (1 - lam)
                    x[j] = x[j] * lam + x_orig[i] * (1 - lam)
        lam_batch = np.concatenate((lam_batch, lam_batch[::-1]))
        return torch.tensor(lam_batch, device=x.device, dtype=x.dtype).unsqueeze(1)

    def _mix_batch(self, x: torch.Tensor) -> float:
        lam, use_cutmix = self._params_per_batch()
        if lam == 1.0:
            return 1.0
        if use_cutmix:
            (yl, yh, xl, xh), lam = self._box(x.shape, lam)
            x[..., yl:yh, xl:xh] = x[..., yl:yh, xl:xh].flip(0)  # flip() copies, so no aliasing
        else:
            x_flipped = x.flip(0).mul_(1.0 - lam)
            x.mul_(lam).add_(x_flipped)
        return lam

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch in place.

        Args:
            x: float clips ``(B, C, T, H, W)`` with an even ``B``; modified in place (as timm).
            target: class indices ``(B,)``.

        Returns:
            ``(x, soft_target)``, ``soft_target`` float ``(B, num_classes)`` rows summing to 1.

        Raises:
            ValueError: ``x`` is not a float 5-D batch, ``B`` is odd, ``target`` does not match,
                or a class index is out of range.
        """
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or not x.is_floating_point():
            got = (f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, torch.Tensor)
                   else type(x).__name__)
            raise ValueError(f"{name} expects a float batch of clips (B, C, T, H, W), got {got}")
        b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        if b % 2:
            raise ValueError(f"{name} needs an even batch size (clip i is mixed with clip B-1-i), got {b}; "
                             f"drop the last incomplete batch (DataLoader(drop_last=True))")
        if (not isinstance(target, torch.Tensor) or target.shape != (b,)
                or target.is_floating_point() or target.is_complex() or target.dtype == torch.bool):
            got = (f"shape {tuple(target.shape)} dtype {target.dtype}" if isinstance(target, torch.Tensor)
                   else type(target).__name__)
            raise ValueError(f"{name} expects integer class indices of shape ({b},), got {got}")
        if b and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(f"{name}: class indices must be in [0, {self.num_classes}), got "
                             f"min {int(target.min())} max {int(target.max())}")
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            if int(h * lo) >= int(h * hi) or int(w * lo) >= int(w * hi):
                raise ValueError(f"cutmix_minmax {self.cutmix_minmax} leaves no box size to draw on "
                                 f"{h}x{w} frames")
        return super().__call__(x, target)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
                f"cutmix_minmax={self.cutmix_minmax}, prob={self.mix_prob}, switch_prob={self.switch_prob}, "
                f"mode={self.mode!r}, label_smoothing={self.label_smoothing}, num_classes={self.num_classes})")
