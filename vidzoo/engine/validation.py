"""Domains of the engine's numeric options (training config and the eval/predict flags).

Each rule names the CLI flag, what it must be and what it got, so a bad value stops the run at
once as ``vidzoo: error: --clip-grad must be > 0, got -1.0`` (exit 2) and as a ``ValueError`` in
the Python API, instead of training with a negative gradient scale or being silently ignored.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

OPTIMIZERS = ("adamw", "adam", "sgd", "momentum")
AMP_MODES = ("auto", "bf16", "fp16", "none")
VIEW_MERGES = ("probs", "tokens")  # eval --view-merge: softmax averaged over views / clip tokens merged


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
    check_int("--num-frames", num_frames, 1, optional=True)
    check_int("--img-size", img_size, 1, optional=True)
    for flag, key, value in (("--num-frames", "num_frames", num_frames), ("--img-size", "img_size", img_size)):
        if value is not None and isinstance(overrides, dict) and key in overrides and overrides[key] != value:
            raise ValueError(f"{flag} {value} and --set {key}={overrides[key]!r} disagree; give the size once")


def validate_train_config(cfg: Any) -> None:
    """Check every option of a :class:`vidzoo.engine.train.TrainConfig` that has a domain.

    Raises:
        ValueError: Naming the flag (``--clip-grad``, ...), its domain and the value given.
    """
    check_int("--epochs", cfg.epochs, 1)
    check_int("--batch-size", cfg.batch_size, 1)
    check_int("--val-batch-size", cfg.val_batch_size, 1, optional=True)
    check_int("--accum-steps", cfg.accum_steps, 1)
    check_int("--workers", cfg.workers, 0)
    if not _int(cfg.seed):
        raise ValueError(f"--seed must be an integer, got {cfg.seed!r}")
    check_int("--frame-stride", cfg.frame_stride, 1, optional=True)
    check_model_size_flags(cfg.num_frames, cfg.img_size, cfg.model_overrides)
    check_number("--lr", cfg.lr, 0, lo_open=True)
    check_number("--min-lr", cfg.min_lr, 0)
    check_number("--weight-decay", cfg.weight_decay, 0, optional=True)
    check_number("--momentum", cfg.momentum, 0, 1, hi_open=True)
    check_number("--layer-decay", getattr(cfg, "layer_decay", None), 0, 1, lo_open=True, optional=True)
    check_number("--warmup-epochs", cfg.warmup_epochs, 0)
    check_number("--label-smoothing", cfg.label_smoothing, 0, 1, hi_open=True)
    check_number("--clip-grad", cfg.clip_grad, 0, lo_open=True, optional=True)
    check_number("--hflip", cfg.hflip, 0, 1)
    if cfg.val_split is not None:
        check_number("--val-split", cfg.val_split, 0, 1, lo_open=True, hi_open=True)
    scale = cfg.crop_scale
    if (not isinstance(scale, (tuple, list)) or len(scale) != 2 or not all(_num(s) for s in scale)
            or not 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"crop_scale must be (min, max) with 0 < min <= max <= 1, got {scale!r}")
    check_choice("--opt", cfg.opt, OPTIMIZERS)
    check_choice("--amp", cfg.amp, AMP_MODES)
    check_choice("--sampling", cfg.sampling, ("dense", "uniform"), optional=True)
    check_choice("--on-error", cfg.on_error, ("skip", "raise"))
    if not isinstance(cfg.model_overrides, dict):
        raise ValueError(f"model_overrides must be a dict of model arguments, got {cfg.model_overrides!r}")
    if "num_classes" in cfg.model_overrides:
        raise ValueError(f"--set num_classes={cfg.model_overrides['num_classes']!r}: training takes the number of "
                         "classes from --data; leave num_classes out")


def validate_eval_options(batch_size: Any = None, workers: Any = None, frame_stride: Any = None,
                          num_frames: Any = None, img_size: Any = None, top_k: Any = None,
                          num_samples: Any = None, overrides: Any = None) -> None:
    """The numeric flags of ``vidzoo eval`` / ``predict`` (None: not given); ``overrides``: the
    ``--set`` arguments, which must not give a size differently from ``--num-frames`` / ``--img-size``."""
    check_int("--batch-size", batch_size, 1, optional=True)
    check_int("--workers", workers, 0, optional=True)
    check_int("--frame-stride", frame_stride, 1, optional=True)
    check_int("--top-k", top_k, 1, optional=True)
    check_int("--num-samples", num_samples, 0, optional=True)
    check_model_size_flags(num_frames, img_size, overrides)
