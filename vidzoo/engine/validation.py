"""Domains of the engine's numeric options (training config and the eval/predict flags).

Each rule names the CLI flag, what it must be and what it got, so a bad value stops the run at
once as ``vidzoo: error: --clip-grad must be > 0, got -1.0`` (exit 2) and as a ``ValueError`` in
the Python API, instead of training with a negative gradient scale or being silently ignored.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from .._choices import (AMP_MODES, AUGMENT_MODES, CLASS_WEIGHTS, ERASE_MODES, LR_SCHEDULES, MIXUP_MODES, ON_ERROR,
                        OPTIMIZERS, PROBE_HEADS, SAMPLING_MODES)
from .options import BATCH_SIZE, FRAME_STRIDE, FRAME_STRIDE_AUTO, IMG_SIZE, NUM_FRAMES, WORKERS, config_flag


def _num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_int(flag: str, v: Any, lo: int, optional: bool = False) -> None:
    """``v`` is an integer >= ``lo`` (or None when ``optional``)."""
    if v is None and optional:
        return
    if not _int(v) or v < lo:
        raise ValueError(f"{flag} must be an integer >= {lo}, got {v!r}")


def check_number(flag: str, v: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hi_open: bool = False, optional: bool = False) -> None:
    """``v`` is a finite number in the interval given (open or closed at each end)."""
    if v is None and optional:
        return
    ok = _num(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        if lo is not None and hi is not None:
            want = f"in {left}{lo:g}, {hi:g}{right}"
        elif lo is not None:
            want = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            want = f"{'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"{flag} must be a number {want}, got {v!r}")


def check_choice(flag: str, v: Any, choices: Iterable[str], optional: bool = False) -> None:
    choices = tuple(choices)
    if v is None and optional:
        return
    if v not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}, got {v!r}")


def check_model_size_flags(num_frames: Any = None, img_size: Any = None, overrides: Any = None) -> None:
    """``--num-frames`` / ``--img-size`` (None: the model's); when ``--set`` (``overrides``) names
    the same size differently, neither silently wins."""
    check_int(NUM_FRAMES.flag, num_frames, 1, optional=True)
    check_int(IMG_SIZE.flag, img_size, 1, optional=True)
    for flag, key, value in ((NUM_FRAMES.flag, "num_frames", num_frames), (IMG_SIZE.flag, "img_size", img_size)):
        if value is not None and isinstance(overrides, dict) and key in overrides and overrides[key] != value:
            raise ValueError(f"{flag} {value} and --set {key}={overrides[key]!r} disagree; give the size once")


def validate_train_config(cfg: Any) -> None:
    """Check every option of a :class:`vidzoo.engine.config.TrainConfig` that has a domain.

    Raises:
        ValueError: Naming the flag (``--clip-grad``, ...), its domain and the value given.
    """
    def flag(name: str) -> str:
        return config_flag(type(cfg), name)

    for name, lo, optional in (("epochs", 1, False), ("batch_size", 1, False), ("val_batch_size", 1, True),
                               ("accum_steps", 1, False), ("workers", 0, False)):
        check_int(flag(name), getattr(cfg, name), lo, optional=optional)
    if cfg.frame_stride != FRAME_STRIDE_AUTO:
        try:
            check_int(flag("frame_stride"), cfg.frame_stride, 1, optional=True)
        except ValueError:
            raise ValueError(f"{flag('frame_stride')} must be an integer >= 1 or '{FRAME_STRIDE_AUTO}', "
                             f"got {cfg.frame_stride!r}") from None
    if not _int(cfg.seed):
        raise ValueError(f"{flag('seed')} must be an integer, got {cfg.seed!r}")
    check_model_size_flags(cfg.num_frames, cfg.img_size, cfg.model_overrides)
    check_number(flag("lr"), cfg.lr, 0, lo_open=True)
    check_number(flag("min_lr"), cfg.min_lr, 0)
    check_number(flag("weight_decay"), cfg.weight_decay, 0, optional=True)
    check_number(flag("momentum"), cfg.momentum, 0, 1, hi_open=True)
    check_number(flag("layer_decay"), cfg.layer_decay, 0, 1, lo_open=True, optional=True)
    check_number(flag("warmup_epochs"), cfg.warmup_epochs, 0)
    check_number(flag("label_smoothing"), cfg.label_smoothing, 0, 1, hi_open=True)
    check_number(flag("clip_grad"), cfg.clip_grad, 0, lo_open=True, optional=True)
    check_number(flag("hflip"), cfg.hflip, 0, 1)
    if cfg.val_split is not None:
        check_number(flag("val_split"), cfg.val_split, 0, 1, lo_open=True, hi_open=True)
    scale = cfg.crop_scale
    if (not isinstance(scale, (tuple, list)) or len(scale) != 2 or not all(_num(s) for s in scale)
            or not 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"{flag('crop_scale')} must be MIN MAX with 0 < MIN <= MAX <= 1, got {scale!r}")
    check_choice(flag("opt"), cfg.opt, OPTIMIZERS)
    check_choice(flag("amp"), cfg.amp, AMP_MODES)
    check_choice(flag("sampling"), cfg.sampling, SAMPLING_MODES, optional=True)
    check_choice(flag("on_error"), cfg.on_error, ON_ERROR)
    if not isinstance(cfg.model_overrides, dict):
        raise ValueError(f"model_overrides must be a dict of model arguments, got {cfg.model_overrides!r}")
    if "num_classes" in cfg.model_overrides:
        raise ValueError(f"--set num_classes={cfg.model_overrides['num_classes']!r}: training takes the number of "
                         "classes from --data; leave num_classes out")
    _validate_recipe_options(cfg, flag)
    check_choice(flag("augment"), cfg.augment, AUGMENT_MODES)
    if cfg.augment == "none":
        _validate_no_augmentation(cfg, flag)
    validate_probe_options(cfg)


def _validate_recipe_options(cfg: Any, flag: Any) -> None:
    """The schedule, augmentation, mixing, weighting and averaging options."""
    check_int(flag("lr_base_batch"), cfg.lr_base_batch, 1, optional=True)
    check_choice(flag("sched"), cfg.sched, LR_SCHEDULES)
    milestones = cfg.decay_milestones
    if (not isinstance(milestones, (tuple, list)) or not all(_num(m) and m > 0 for m in milestones)
            or list(milestones) != sorted(milestones)):
        raise ValueError(f"{flag('decay_milestones')} must be increasing epochs > 0, got {milestones!r}")
    if cfg.sched == "multistep" and not milestones:
        raise ValueError(f"{flag('sched')} multistep needs {flag('decay_milestones')} EPOCH ...")
    if cfg.sched != "multistep" and milestones:
        raise ValueError(f"{flag('decay_milestones')} applies to {flag('sched')} multistep, not {cfg.sched!r}")
    check_number(flag("decay_rate"), cfg.decay_rate, 0, 1, lo_open=True)
    if cfg.randaug is not None:
        if not isinstance(cfg.randaug, str):
            raise ValueError(f"{flag('randaug')} must be a RandAugment config string, got {cfg.randaug!r}")
        from ..data.augment import parse_rand_augment  # torch and timm: only when RandAugment is asked for
        try:
            parse_rand_augment(cfg.randaug)
        except ValueError as e:
            raise ValueError(f"{flag('randaug')}: {e}") from None
    check_number(flag("reprob"), cfg.reprob, 0, 1)
    check_choice(flag("remode"), cfg.remode, ERASE_MODES)
    check_number(flag("mixup"), cfg.mixup, 0)
    check_number(flag("cutmix"), cfg.cutmix, 0)
    check_number(flag("mixup_prob"), cfg.mixup_prob, 0, 1)
    check_number(flag("mixup_switch_prob"), cfg.mixup_switch_prob, 0, 1)
    check_choice(flag("mixup_mode"), cfg.mixup_mode, MIXUP_MODES)
    check_int(flag("num_sample"), cfg.num_sample, 1)
    check_choice(flag("class_weights"), cfg.class_weights, CLASS_WEIGHTS)
    check_number(flag("ema"), cfg.ema, 0, 1, lo_open=True, hi_open=True, optional=True)
    for name in ("balanced_sampler", "ema_warmup", "tensorboard"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"{flag(name)} is a switch (true or false), got {getattr(cfg, name)!r}")
    if cfg.ema_warmup and cfg.ema is None:
        raise ValueError(f"{flag('ema_warmup')} ramps up the decay of {flag('ema')}, which is off; "
                         f"give {flag('ema')} DECAY")
    mixing = cfg.mixup > 0 or cfg.cutmix > 0
    clips = cfg.batch_size * cfg.num_sample
    if mixing and clips % 2:
        raise ValueError(f"{flag('mixup')} / {flag('cutmix')} mix clip i with clip B-1-i of a batch and need an even "
                         f"number of clips per batch; got {flag('batch_size')} {cfg.batch_size} x "
                         f"{flag('num_sample')} {cfg.num_sample} = {clips}")
    if cfg.class_weights != "none" and cfg.balanced_sampler:
        raise ValueError(f"{flag('class_weights')} {cfg.class_weights} and {flag('balanced_sampler')} both correct "
                         "the class imbalance (together they over-correct it); use one")
    if cfg.class_weights != "none" and mixing:
        raise ValueError(f"{flag('class_weights')} {cfg.class_weights} weighs hard labels; with "
                         f"{flag('mixup')} / {flag('cutmix')} the targets are mixed: use {flag('balanced_sampler')}")


def _validate_no_augmentation(cfg: Any, flag: Any) -> None:
    """``--augment none`` feeds every epoch each video's evaluation view: a clip augmentation asked
    beside it contradicts it (it would not be applied)."""
    asked = [flag(name) for name, on in (("randaug", bool(cfg.randaug)), ("reprob", cfg.reprob > 0),
                                         ("mixup", cfg.mixup > 0), ("cutmix", cfg.cutmix > 0),
                                         ("num_sample", cfg.num_sample > 1)) if on]
    if asked:
        raise ValueError(f"{flag('augment')} none trains on each video's evaluation view, unaugmented; "
                         f"{' / '.join(asked)} augment(s) training clips: drop {flag('augment')} none or "
                         f"{' / '.join(asked)}")


MAX_PROBE_HEADS = 64


def parse_probe_grid(text: str | None, lr: float, weight_decay: float) -> list[tuple[float, float]]:
    """``'lr=1e-3,3e-4;wd=0.05,0'`` -> every ``(lr, weight decay)`` pair, lr-major; a part left out takes
    ``lr`` / ``weight_decay``; None -> ``[(lr, weight_decay)]``.

    Raises:
        ValueError: Naming ``--probe-grid``, what it expects and what came.
    """
    if text is None:
        return [(lr, weight_decay)]
    want = "'lr=A,B,...;wd=C,D,...' (learning rates > 0, weight decays >= 0)"
    values: dict[str, list[float]] = {}
    for part in str(text).split(";"):
        if not part.strip():
            continue
        key, sep, rest = part.partition("=")
        key = {"lr": "lr", "wd": "wd", "weight_decay": "wd"}.get(key.strip().lower().replace("-", "_"))
        if not sep or key is None or key in values:
            raise ValueError(f"--probe-grid expects {want}, got {text!r}")
        try:
            nums = [float(v) for v in rest.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--probe-grid expects {want}, got {text!r}") from None
        if not nums or not all(_num(v) for v in nums) or len(set(nums)) != len(nums):
            raise ValueError(f"--probe-grid {key}= needs distinct finite numbers, got {rest!r}")
        if key == "lr" and min(nums) <= 0 or key == "wd" and min(nums) < 0:
            raise ValueError(f"--probe-grid expects {want}, got {text!r}")
        values[key] = nums
    if not values:
        raise ValueError(f"--probe-grid expects {want}, got {text!r}")
    grid = [(a, b) for a in values.get("lr", [lr]) for b in values.get("wd", [weight_decay])]
    if len(grid) > MAX_PROBE_HEADS:
        raise ValueError(f"--probe-grid gives {len(grid)} heads; at most {MAX_PROBE_HEADS} are trained at once")
    return grid


def validate_probe_options(cfg: Any) -> None:
    """``--head``, ``--cache-features`` and ``--probe-grid`` belong to ``--freeze-backbone``; the cache needs
    training clips that are the same every epoch
    (:func:`~vidzoo.engine.config.pixel_augmentations` empty); what trains the whole model
    (``--layer-decay``, ``--ema``, ``--mixup`` / ``--cutmix``, ``--compile``) is refused with a probe."""
    def flag(name: str) -> str:
        return config_flag(type(cfg), name)

    check_choice(flag("head"), cfg.head, PROBE_HEADS, optional=True)
    if not cfg.freeze_backbone:
        for name in ("head", "cache_features", "probe_grid"):
            if getattr(cfg, name) not in (None, False):
                raise ValueError(f"{flag(name)} trains a probe: it needs {flag('freeze_backbone')}")
        return
    fb = flag("freeze_backbone")
    if cfg.layer_decay is not None:
        raise ValueError(f"{flag('layer_decay')} scales the learning rate of the backbone's blocks; {fb} trains the "
                         "head alone")
    if cfg.ema is not None:
        raise ValueError(f"{flag('ema')} averages the weights of a whole model's training; {fb} trains heads "
                         f"alone: drop {flag('ema')}")
    if cfg.mixup > 0 or cfg.cutmix > 0:
        raise ValueError(f"{flag('mixup')} / {flag('cutmix')} train on mixed targets, which a probe's heads do not "
                         f"take; {fb} trains without them (--randaug / --reprob augment a probe's clips)")
    if cfg.compile:
        raise ValueError(f"{flag('compile')} compiles the model's training step; {fb} runs the frozen backbone "
                         "forward only (once per clip with --cache-features) and a small head: drop "
                         f"{flag('compile')}")
    parse_probe_grid(cfg.probe_grid, cfg.lr, cfg.resolved_weight_decay())
    if cfg.cache_features:
        from .config import pixel_augmentations  # config imports this module
        varying = pixel_augmentations(cfg)
        if varying:
            raise ValueError(f"{flag('cache_features')} stores each clip's features once, but training clips change "
                             f"every epoch with {'; '.join(varying)}: use {flag('augment')} none (each video's "
                             "evaluation view, every epoch, no clip augmentation) or drop the cache")


def validate_eval_options(batch_size: Any = None, workers: Any = None, frame_stride: Any = None,
                          num_frames: Any = None, img_size: Any = None, top_k: Any = None,
                          num_samples: Any = None, overrides: Any = None) -> None:
    """The numeric flags of ``vidzoo eval`` / ``predict`` (None: not given); ``overrides``: the
    ``--set`` arguments, which must not give a size differently from ``--num-frames`` / ``--img-size``."""
    check_int(BATCH_SIZE.flag, batch_size, 1, optional=True)
    check_int(WORKERS.flag, workers, 0, optional=True)
    check_int(FRAME_STRIDE.flag, frame_stride, 1, optional=True)
    check_int("--top-k", top_k, 1, optional=True)
    check_int("--num-samples", num_samples, 0, optional=True)
    check_model_size_flags(num_frames, img_size, overrides)
