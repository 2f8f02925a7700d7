"""The training loop over one epoch: repeated samples, mixup / cutmix, gradient accumulation,
clipping, autocast, DDP no-sync, the weight average (EMA)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

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

__all__ = ["EpochContext", "EpochOutput", "UpdateRecord", "train_one_epoch"]


@dataclass
class UpdateRecord:
    """One optimizer update, for per-update logging (``EpochContext.on_update``).

    Attributes:
        step: The update counter after this update (1-based over the run).
        loss: Mean training loss over the update's clips.
        lr: The largest learning rate of this update.
        top1: Top-1 (percent) of the update's clips against their labels; None when clips are
            mixed (mixup / cutmix), where a clip has no single label.
    """

    step: int
    loss: float
    lr: float
    top1: float | None


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
        repeats: Clips per video in a batch (repeated augmentation): batches of
            ``(B, repeats, C, T, H, W)`` are flattened to ``B x repeats`` clips.
        mixup: A :class:`~vidzoo.data.VideoMixup` applied to each batch (``loss_fn`` then takes
            soft targets ``(B, K)``), or None. Training top-1 / top-5 are then not reported (None).
        ema: A ``timm.utils.ModelEmaV3`` of the unwrapped model, updated after every optimizer
            update, or None.
        on_update: Called with an :class:`UpdateRecord` after every optimizer update (rank 0
            decides whether to write it).
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
    repeats: int = 1
    mixup: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    ema: nn.Module | None = None
    on_update: Callable[[UpdateRecord], None] | None = None


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
    With ``ctx.mixup`` the batch is mixed after it reaches the device and the loss takes the soft
    targets; the reported loss is then the soft-target loss, and top-1 / top-5 are None.
    """
    model, optimizer = ctx.model, ctx.optimizer
    unwrapped = model.module if isinstance(model, DistributedDataParallel) else model
    model.train()
    meter = ClassificationMeter(ctx.num_classes, ctx.device)
    skipped: dict[str, str] = {}  # source -> reason, each unreadable source once
    n = len(loader)
    optimizer.zero_grad(set_to_none=True)
    group_loss, group_clips, group_correct = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, disable=None if ctx.progress else True, leave=False, dynamic_ncols=True)
    for i, (x, y, *flags) in enumerate(bar):
        if flags:
            for source, reason in _skips(flags[0]):
                skipped.setdefault(source, reason)
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if ctx.repeats > 1:  # (B, N, C, T, H, W): N augmented clips of each video, video-major
            if x.ndim != 6 or x.shape[1] != ctx.repeats:
                raise ValueError(f"repeats={ctx.repeats}: expected batches (B, {ctx.repeats}, C, T, H, W), "
                                 f"got {tuple(x.shape)}")
            x, y = x.flatten(0, 1), y.repeat_interleave(ctx.repeats)
        target = y
        if ctx.mixup is not None:
            x, target = ctx.mixup(x, y)
        group_start = i - i % ctx.accum_steps
        group_size = min(ctx.accum_steps, n - group_start)
        step_now = i - group_start == group_size - 1
        no_sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not step_now \
            else contextlib.nullcontext()
        with no_sync:
            with autocast_context(ctx.device, ctx.amp_dtype):
                logits = model(x)
                loss = ctx.loss_fn(logits.float(), target)
            if not torch.isfinite(loss):
                raise UserError(f"the training loss became {loss.item()} (batch {i}); lower --lr, set "
                                f"--clip-grad 1.0, or use --amp none")
            scaled = loss / group_size
            (ctx.scaler.scale(scaled) if ctx.scaler is not None else scaled).backward()
        group_loss += loss.item() * len(y)
        group_clips += len(y)
        if ctx.mixup is None and ctx.on_update is not None:
            group_correct += int((logits.detach().argmax(1) == y).sum())
        if step_now:
            lr = current_lr(optimizer)
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
            if ctx.ema is not None:
                ctx.ema.update(unwrapped, step=num_updates)
            if ctx.scheduler is not None:
                ctx.scheduler.step_update(num_updates)
            if ctx.on_update is not None:
                ctx.on_update(UpdateRecord(num_updates, group_loss / group_clips, lr,
                                           None if ctx.mixup is not None else 100.0 * group_correct / group_clips))
            group_loss, group_clips, group_correct = 0.0, 0, 0
        meter.update(logits.float(), y, loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{current_lr(optimizer):.2e}")
    metrics = meter.compute()
    if ctx.mixup is not None:  # a mixed clip has no single label to be right about
        metrics["top1"] = metrics["top5"] = None
    count = torch.tensor([len(skipped)], dtype=torch.int64, device=ctx.device)
    all_skipped: dict[str, str] = {}
    if all_reduce_sum(count).item():  # a source may be met on several ranks: union, not sum
        for part in all_gather_object(list(skipped.items())):
            for source, reason in part:
                all_skipped.setdefault(source, reason)
    metrics["unreadable"] = len(all_skipped)
    return EpochOutput(metrics, num_updates, list(all_skipped.items()))
