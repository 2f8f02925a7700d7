"""Optimizer and learning-rate schedule factories (timm's), from a :class:`TrainConfig`."""
from __future__ import annotations

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn

from .config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "current_lr"]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """timm's optimizer factory; no weight decay on biases, norms and ``model.no_weight_decay()``;
    with ``cfg.layer_decay`` per-layer ``lr_scale`` groups (applied by the timm scheduler)."""
    return create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.resolved_weight_decay(),
                               momentum=cfg.momentum, filter_bias_and_bn=True, layer_decay=cfg.layer_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int) -> Scheduler:
    """Per-update cosine decay from ``lr`` to ``min_lr`` after a linear warmup from ``lr / 100``.

    When the warmup fills the run (``epochs <= warmup_epochs``, or a run of one or two updates) no
    update is left for a cosine decay: the schedule is then the warmup followed by a constant
    ``lr`` (a cosine over a single update would do nothing, and timm warns about it).
    """
    total = cfg.epochs * updates_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * updates_per_epoch)), max(total - 1, 0))
    decay = total - warmup
    if decay < 2:
        return StepLRScheduler(optimizer, decay_t=total + 1, decay_rate=1.0, warmup_t=warmup,
                               warmup_lr_init=cfg.lr / 100, warmup_prefix=True, t_in_epochs=False)
    return CosineLRScheduler(optimizer, t_initial=decay, lr_min=min(cfg.min_lr, cfg.lr),
                             warmup_t=warmup, warmup_lr_init=cfg.lr / 100, warmup_prefix=True, t_in_epochs=False)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The largest learning rate over the parameter groups."""
    return max(g["lr"] for g in optimizer.param_groups)
