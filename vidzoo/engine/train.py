"""Training (the names people import; each job lives in its own module): AdamW/Adam/SGD, cosine schedule with warmup, label smoothing, gradient clipping and
accumulation, bf16/fp16 autocast, gradient checkpointing, DDP, atomic per-epoch checkpoints and
exact resume.

Output folder of a run::

    train_config.json     the resolved run config, classes, data sources
    train.log             what was printed, and every unreadable/ignored file by name
    metrics.json / .csv   one record per epoch: lr, train/val loss, top-1, top-5, samples, time
    curves.png            loss / accuracy / lr curves
    checkpoints/last.pth  model, optimizer, scheduler, scaler, epoch, history, RNG states (atomic)
    checkpoints/best.pth  the checkpoint of the best validation top-1 epoch
    model/                the final model (best-by-validation weights, or last without
                          validation) in vidzoo's safetensors folder format, label names included

Reproducibility: the model is initialised from ``seed``; each rank's global RNG is seeded with
``seed + rank`` and saved in every checkpoint; the shuffling order is a function of
``(seed, epoch)`` (``DistributedSampler.set_epoch``) and DataLoader workers are seeded from
``(seed, epoch, rank)``. A run resumed from ``last.pth`` therefore continues exactly where it
stopped: on CPU with ``num_workers=0`` its weights equal those of an uninterrupted run.

Modules: :mod:`~vidzoo.engine.config` (the :class:`TrainConfig` schema),
:mod:`~vidzoo.engine.precision` (``--amp``), :mod:`~vidzoo.engine.optim` (optimizer and schedule),
:mod:`~vidzoo.engine.loop` (one epoch), :mod:`~vidzoo.engine.history` (metrics files),
:mod:`~vidzoo.engine.run_layout` (the run folder) and :mod:`~vidzoo.engine.trainer` (the run).
"""
from __future__ import annotations

from .config import AMP_MODES, OPTIMIZERS, TrainConfig, config_dict
from .loop import EpochContext, EpochOutput, train_one_epoch
from .history import epoch_line, write_metrics
from .optim import build_optimizer, build_scheduler, current_lr
from .precision import autocast_context, resolve_amp
from .run_layout import RunLayout
from .trainer import EpochCallback, Trainer, TrainResult, train

__all__ = [
    "TrainConfig", "TrainResult", "Trainer", "train", "train_one_epoch", "EpochContext", "EpochOutput",
    "build_optimizer", "build_scheduler", "current_lr", "resolve_amp", "autocast_context", "write_metrics",
    "epoch_line", "config_dict", "RunLayout", "EpochCallback", "OPTIMIZERS", "AMP_MODES",
]
