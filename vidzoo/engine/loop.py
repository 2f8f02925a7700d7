"""The training loop over one epoch: gradient accumulation, clipping, autocast, DDP no-sync."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from timm.scheduler.scheduler import Scheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .distributed import all_gather_object, all_reduce_sum
from .errors import UserError
from .metrics import ClassificationMeter
from .optim import current_lr
from .precision import autocast_context

__all__ = ["EpochContext", "EpochOutput", "train_one_epoch"]


@dataclass
class EpochContext:
    """What stays the same from one training epoch to the next.

    Attributes:
        model: The model (wrapped in :class:`DistributedDataParallel` under DDP).
        optimizer: Its optimizer.
        loss_fn: Loss on ``(logits, labels)``.
        device: Compute device.
        num_classes: ``K``.
        scheduler: Per-update LR schedule (``step_update``), or None.
        accum_steps: Batches per optimizer update.
        clip_grad: Gradient-norm clip, or None.
        amp_dtype: Autocast dtype, or None for full precision.
        scaler: fp16 loss scaler, or None.
        progress: Show a tqdm bar.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    num_classes: int
    scheduler: Scheduler | None = None
    accum_steps: int = 1
    clip_grad: float | None = None
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    progress: bool = True


@dataclass
class EpochOutput:
    """What one epoch did.

    Attributes:
        metrics: loss/top1/top{k}/num_samples summed over ranks, and ``unreadable``: the training
            videos found unreadable (and substituted) in this epoch over all ranks, each counted
            once however often it was drawn.
        num_updates: The optimizer-update counter after the epoch (drives the LR schedule).
        skipped: ``(source, reason)`` of each of those videos, once, in the order met.
    """

    metrics: dict[str, Any]
    num_updates: int
    skipped: list[tuple[str, str]]


def _skips(flags: Any) -> list[tuple[str, str]]:
    """``(source, reason)`` pairs from a batch's ``skipped`` strings (see SubstituteUnreadable)."""
    out = []
    for text in flags:
        for line in str(text).splitlines():
            source, _, reason = line.partition("\t")
            out.append((source, reason))
    return out


def train_one_epoch(ctx: EpochContext, loader: DataLoader, num_updates: int = 0, desc: str = "train") -> EpochOutput:
    """One pass over ``loader`` (``(x, y)`` or ``(x, y, skipped)`` batches).

    Under DDP gradients are only all-reduced on the last micro-batch of each accumulation group.
    """
    model, optimizer = ctx.model, ctx.optimizer
    model.train()
    meter = ClassificationMeter(ctx.num_classes, ctx.device)
    skipped: dict[str, str] = {}  # source -> reason, each unreadable source once
    n = len(loader)
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, desc=desc, disable=None if ctx.progress else True, leave=False, dynamic_ncols=True)
    for i, (x, y, *flags) in enumerate(bar):
        if flags:
            for source, reason in _skips(flags[0]):
                skipped.setdefault(source, reason)
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        group_start = i - i % ctx.accum_steps
        group_size = min(ctx.accum_steps, n - group_start)
        step_now = i - group_start == group_size - 1
        no_sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not step_now \
            else contextlib.nullcontext()
        with no_sync:
            with autocast_context(ctx.device, ctx.amp_dtype):
                logits = model(x)
                loss = ctx.loss_fn(logits.float(), y)
            if not torch.isfinite(loss):
                raise UserError(f"the training loss became {loss.item()} (batch {i}); lower --lr, set "
                                f"--clip-grad 1.0, or use --amp none")
            scaled = loss / group_size
            (ctx.scaler.scale(scaled) if ctx.scaler is not None else scaled).backward()
        if step_now:
            if ctx.clip_grad is not None:
                if ctx.scaler is not None:
                    ctx.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), ctx.clip_grad)
            if ctx.scaler is not None:
                ctx.scaler.step(optimizer)
                ctx.scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            if ctx.scheduler is not None:
                ctx.scheduler.step_update(num_updates)
        meter.update(logits.float(), y, loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{current_lr(optimizer):.2e}")
    metrics = meter.compute()
    count = torch.tensor([len(skipped)], dtype=torch.int64, device=ctx.device)
    all_skipped: dict[str, str] = {}
    if all_reduce_sum(count).item():  # a source may be met on several ranks: union, not sum
        for part in all_gather_object(list(skipped.items())):
            for source, reason in part:
                all_skipped.setdefault(source, reason)
    metrics["unreadable"] = len(all_skipped)
    return EpochOutput(metrics, num_updates, list(all_skipped.items()))
