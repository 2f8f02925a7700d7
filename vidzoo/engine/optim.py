"""Optimizer and learning-rate schedule factories (timm's), from a :class:`TrainConfig`."""
from __future__ import annotations

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn

from .config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "current_lr"]


def build_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """timm's optimizer factory; no weight decay on biases, norms and ``model.no_weight_decay()``;
    with ``cfg.layer_decay`` per-layer ``lr_scale`` groups (applied by the timm scheduler).

    Args:
        model: The model.
        cfg: The run.
        lr: The peak learning rate (default ``cfg.lr``; see :meth:`TrainConfig.peak_lr`).
    """
    return create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr if lr is None else lr,
                               weight_decay=cfg.resolved_weight_decay(), momentum=cfg.momentum,
                               filter_bias_and_bn=True, layer_decay=cfg.layer_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int,
                    lr: float | None = None) -> Scheduler:
    """Per-update schedule after a linear warmup from ``lr / 100``: cosine decay from ``lr`` to
    ``min_lr`` (``sched="cosine"``), or ``lr`` times ``decay_rate`` at each of ``decay_milestones``
    (epochs from the start of the run, ``sched="multistep"``).

    When the warmup fills the run (``epochs <= warmup_epochs``, or a run of one or two updates) no
    update is left for a cosine decay: the schedule is then the warmup followed by a constant
    ``lr`` (a cosine over a single update would do nothing, and timm warns about it).

    Args:
        optimizer: The optimizer, built with the peak rate (its groups' rates are the schedule's
            peaks, their ``lr_scale`` applied).
        cfg: The run.
        updates_per_epoch: Optimizer updates per epoch.
        lr: The peak learning rate the optimizer was built with (default ``cfg.lr``): the warmup
            starts at a hundredth of it.
    """
    lr = cfg.lr if lr is None else lr
    total = cfg.epochs * updates_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * updates_per_epoch)), max(total - 1, 0))
    if cfg.sched == "multistep":
        # timm applies milestone d from step_update(d - 1) on, and step_update(t) sets the rate of update
        # t + 1: epoch e's milestone acts from its first update, step_update(e * updates_per_epoch).
        decay_t = [int(round(m * updates_per_epoch)) + 1 for m in cfg.decay_milestones]
        return MultiStepLRScheduler(optimizer, decay_t=decay_t, decay_rate=cfg.decay_rate, warmup_t=warmup,
                                    warmup_lr_init=lr / 100, warmup_prefix=False, t_in_epochs=False)
    decay = total - warmup
    if decay < 2:
        return StepLRScheduler(optimizer, decay_t=total + 1, decay_rate=1.0, warmup_t=warmup,
                               warmup_lr_init=lr / 100, warmup_prefix=True, t_in_epochs=False)
    return CosineLRScheduler(optimizer, t_initial=decay, lr_min=min(cfg.min_lr, lr),
                             warmup_t=warmup, warmup_lr_init=lr / 100, warmup_prefix=True, t_in_epochs=False)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The largest learning rate over the parameter groups."""
    return max(g["lr"] for g in optimizer.param_groups)
