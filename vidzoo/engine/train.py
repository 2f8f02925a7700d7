"""Training: AdamW/Adam/SGD, cosine schedule with warmup, label smoothing, gradient clipping and
accumulation, bf16/fp16 autocast, gradient checkpointing, DDP, atomic per-epoch checkpoints and
exact resume.

Output folder of a run::

    train_config.json     the resolved run config, classes, data sources
    train.log             what was printed
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
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from .checkpoint import (atomic_copy, atomic_write_json, atomic_write_text, capture_rng_state, load_checkpoint,
                         restore_rng_state, save_checkpoint, seed_everything)
from .data_setup import FlagUnreadable
from .distributed import (DistInfo, all_gather_object, all_reduce_sum, barrier, cleanup_distributed, init_distributed,
                          is_distributed)
from .errors import UserError
from .evaluate import EvalResult, autocast_context, evaluate, make_eval_loader
from .metrics import ClassificationMeter
from .model_io import build_model, count_params, save_model_folder
from .plots import plot_training_curves

EpochCallback = Callable[[int, dict[str, Any]], None]
OPTIMIZERS = ("adamw", "adam", "sgd", "momentum")
AMP_MODES = ("auto", "bf16", "fp16", "none")


@dataclass
class TrainConfig:
    """Everything a training run needs; stored in ``config.json`` and in every checkpoint.

    Attributes:
        model: Registry name or alias (``vidzoo list``), or a saved model (folder,
            ``local-dir:DIR``, ``hf-hub:org/repo``) to fine-tune.
        data: Training data (folder, list file or npz; see :mod:`vidzoo.engine.data_setup`).
        val_data: Validation data (an npz means its ``val`` split).
        val_split: Fraction of ``data`` held out for validation (stratified, from ``seed``).
        output: Output folder.
        epochs: Epochs to train in total.
        batch_size: Clips per batch per process.
        lr: Peak learning rate (reached after warmup).
        opt: ``adamw``, ``adam`` (the Keras OrganMNIST3D recipe), ``sgd`` or ``momentum``.
        weight_decay: Decoupled (AdamW) or L2 weight decay; None: 0.05 for AdamW, else 0.
            Biases, norms, position embeddings and class tokens are never decayed.
        momentum: SGD momentum.
        layer_decay: Layer-wise learning-rate decay (BEiT / VideoMAE fine-tuning; 0.75 for
            VideoMAE ViT-B): the head keeps ``lr``, block ``i`` of ``L`` gets
            ``lr * layer_decay ** (L - i)``, the embeddings ``lr * layer_decay ** (L + 1)``
            (groups from ``model.group_matcher``). None: one learning rate for all.
        warmup_epochs: Linear warmup length (may be fractional).
        min_lr: Learning rate at the end of the cosine schedule.
        label_smoothing: Cross-entropy label smoothing.
        clip_grad: Clip the gradient norm to this value (None: no clipping).
        accum_steps: Batches per optimizer update (gradient accumulation).
        amp: ``auto`` (bf16 on CUDA when supported, fp16 on older GPUs, fp32 on CPU), ``bf16``,
            ``fp16`` (CUDA, with loss scaling) or ``none``.
        grad_checkpointing: Recompute block activations in backward to save memory.
        seed: Random seed.
        deterministic: ``torch.use_deterministic_algorithms(True)`` (slower on GPU).
        pretrained: Start from the model's pretrained weights (head replaced for the data's classes).
        num_frames: Frames per clip (overrides the model and the sampler).
        img_size: Frame size (overrides the model and the transforms).
        model_overrides: More model arguments (``--set key=value``).
        sampling: ``dense`` or ``uniform`` (default: the model's ``pretrained_cfg``).
        frame_stride: Dense sampling stride (default: the model's ``frame_sample_rate``).
        hflip: Horizontal-flip probability (0 for direction-sensitive classes).
        crop_scale: Area range of the training random-resized crop.
        workers: DataLoader worker processes per rank.
        cache_videos: Decode each video once and keep its frames in memory (small datasets of
            short clips; with workers, each persistent worker holds its own cache and resume is
            exact only with ``workers=0``).
        on_error: Unreadable videos: ``skip`` (warn naming the file, substitute another sample,
            count them in the epoch summary) or ``raise`` (stop at the first, naming it).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: True: continue from ``output/checkpoints/last.pth``; a path: from that checkpoint.
        overwrite: Start afresh in an output folder that already holds a run.
        val_batch_size: Evaluation batch size (default ``batch_size``).
        progress: tqdm progress bars (shown on rank 0 when writing to a terminal).
    """

    model: str = "vivit_joint_tiny_patch16x2_224"
    data: str | None = None
    val_data: str | None = None
    val_split: float | None = None
    output: str = "output/train"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    opt: str = "adamw"
    weight_decay: float | None = None
    momentum: float = 0.9
    layer_decay: float | None = None
    warmup_epochs: float = 1.0
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    clip_grad: float | None = None
    accum_steps: int = 1
    amp: str = "auto"
    grad_checkpointing: bool = False
    seed: int = 0
    deterministic: bool = False
    pretrained: bool = False
    num_frames: int | None = None
    img_size: int | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    sampling: str | None = None
    frame_stride: int | None = None
    hflip: float = 0.5
    crop_scale: tuple[float, float] = (0.25, 1.0)
    workers: int = 0
    cache_videos: bool = False
    on_error: str = "skip"
    device: str = "auto"
    resume: bool | str = False
    overwrite: bool = False
    val_batch_size: int | None = None
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`UserError` for values that cannot work."""
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.accum_steps >= 1, f"--accum-steps must be >= 1, got {self.accum_steps}"),
            (self.opt in OPTIMIZERS, f"--opt must be one of {', '.join(OPTIMIZERS)}, got {self.opt!r}"),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}"),
            (0.0 <= self.label_smoothing < 1.0, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {self.warmup_epochs}"),
            (self.layer_decay is None or 0.0 < self.layer_decay <= 1.0,
             f"--layer-decay must be in (0, 1], got {self.layer_decay}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (0.0 <= self.hflip <= 1.0, f"--hflip must be in [0, 1], got {self.hflip}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)

    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.05 if self.opt == "adamw" else 0.0


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: The trained model (unwrapped), holding the final weights (see ``model_dir``).
        history: Per-epoch metric records.
        best_epoch: Epoch (1-based) of the best validation top-1 (last epoch without validation).
        best_top1: That top-1 (None without validation).
        output: Output folder.
        model_dir: The saved final model folder, or None when not saved (not rank 0, or no
            ``vidzoo.save_pretrained`` in this build).
        classes: Class names in label order.
    """

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_top1: float | None
    output: Path
    model_dir: Path | None
    classes: list[str]


# ------------------------------------------------------------------------------------- pieces
def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``--amp`` on ``device`` (None: full precision)."""
    if amp == "none":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None  # CPU autocast is slower than fp32 for these models on most CPUs
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 or none on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """timm's optimizer factory; no weight decay on biases, norms and ``model.no_weight_decay()``;
    with ``cfg.layer_decay`` per-layer ``lr_scale`` groups (applied by the timm scheduler)."""
    return create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.resolved_weight_decay(),
                               momentum=cfg.momentum, filter_bias_and_bn=True, layer_decay=cfg.layer_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int) -> CosineLRScheduler:
    """Per-update cosine decay from ``lr`` to ``min_lr`` after a linear warmup from ``lr / 100``."""
    total = cfg.epochs * updates_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * updates_per_epoch)), max(total - 1, 0))
    return CosineLRScheduler(optimizer, t_initial=max(total - warmup, 1), lr_min=min(cfg.min_lr, cfg.lr),
                             warmup_t=warmup, warmup_lr_init=cfg.lr / 100, warmup_prefix=True, t_in_epochs=False)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return max(g["lr"] for g in optimizer.param_groups)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                    device: torch.device, num_classes: int, scheduler: CosineLRScheduler | None = None,
                    num_updates: int = 0, accum_steps: int = 1, clip_grad: float | None = None,
                    amp_dtype: torch.dtype | None = None, scaler: torch.amp.GradScaler | None = None,
                    progress: bool = True, desc: str = "train") -> tuple[dict[str, float], int]:
    """One pass over ``loader`` with gradient accumulation, clipping and autocast.

    Under DDP (``model`` wrapped in :class:`DistributedDataParallel`) gradients are only
    all-reduced on the last micro-batch of each accumulation group.

    Returns:
        ``(metrics, num_updates)``: loss/top-1/top-5/num_samples summed over ranks, ``unreadable``
        (samples found unreadable and substituted, summed over ranks; batches from
        :class:`FlagUnreadable` carry the flags), and the optimizer-update counter after this
        epoch (drives the per-update LR schedule).
    """
    model.train()
    meter = ClassificationMeter(num_classes, device)
    unreadable = torch.zeros(1, dtype=torch.int64, device=device)
    n = len(loader)
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, desc=desc, disable=None if progress else True, leave=False, dynamic_ncols=True)
    for i, (x, y, *flags) in enumerate(bar):
        if flags:
            unreadable += flags[0].sum().to(device)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        group_start = i - i % accum_steps
        group_size = min(accum_steps, n - group_start)
        step_now = i - group_start == group_size - 1
        no_sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not step_now \
            else contextlib.nullcontext()
        with no_sync:
            with autocast_context(device, amp_dtype):
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            if not torch.isfinite(loss):
                raise UserError(f"the training loss became {loss.item()} (batch {i}); lower --lr, set "
                                f"--clip-grad 1.0, or use --amp none")
            scaled = loss / group_size
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if step_now:
            if clip_grad is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            if scheduler is not None:
                scheduler.step_update(num_updates)
        meter.update(logits.float(), y, loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{current_lr(optimizer):.2e}")
    metrics = meter.compute()
    metrics["unreadable"] = int(all_reduce_sum(unreadable).item())
    return metrics, num_updates


def _csv_text(history: Sequence[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in history:
        keys += [k for k, v in r.items() if k not in keys and not isinstance(v, (list, dict))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    return buf.getvalue()


def write_metrics(history: Sequence[dict[str, Any]], out_dir: Path) -> None:
    """``metrics.json``, ``metrics.csv`` and ``curves.png`` of the epochs so far."""
    atomic_write_json(list(history), out_dir / "metrics.json")
    atomic_write_text(_csv_text(history), out_dir / "metrics.csv")
    plot_training_curves(history, out_dir / "curves.png")


# ------------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run (see :func:`train`)."""

    def __init__(self, cfg: TrainConfig, dist_info: DistInfo, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None, classes: Sequence[str] | None = None,
                 callbacks: Sequence[EpochCallback] = ()) -> None:
        cfg.validate()
        self.cfg = cfg
        self.dist = dist_info
        self.device = dist_info.device
        self.callbacks = list(callbacks)
        self.out = Path(cfg.output)
        self.ckpt_dir = self.out / "checkpoints"
        self.progress = cfg.progress and dist_info.is_main
        self.resume_path = self._resume_path()
        self._log_file: Any = None
        self._setup_data(train_dataset, val_dataset, classes)
        self._setup_model()
        self._setup_optim()
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.num_updates = 0
        self.best_epoch: int | None = None
        self.best_top1: float | None = None
        self.best_loss: float | None = None
        if self.resume_path is not None:
            self._resume(self.resume_path)

    # -------------------------------------------------------------------------------- logging
    def log(self, msg: str) -> None:
        """Print on rank 0 (above any progress bar) and append to ``train.log``."""
        if not self.dist.is_main:
            return
        tqdm.write(msg)
        if self._log_file is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.out / "train.log", "a" if self.resume_path else "w", encoding="utf-8")
        self._log_file.write(msg + "\n")
        self._log_file.flush()

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ---------------------------------------------------------------------------------- setup
    def _resume_path(self) -> Path | None:
        cfg = self.cfg
        last = self.ckpt_dir / "last.pth"
        if cfg.resume:
            path = last if cfg.resume is True else Path(cfg.resume)
            if not path.is_file():
                raise UserError(f"--resume: no checkpoint at '{path}' (nothing to resume)")
            return path
        if last.exists() and not cfg.overwrite:
            raise UserError(f"'{self.out}' already holds a training run ({last}); pass --resume to continue it, "
                            f"--overwrite to start afresh, or another --output")
        return None

    def _setup_data(self, train_dataset: Dataset | None, val_dataset: Dataset | None,
                    classes: Sequence[str] | None) -> None:
        cfg = self.cfg
        self.data_channels: int | None = None
        self.val_source = "given dataset" if val_dataset is not None else ""
        if train_dataset is None:
            if cfg.data is None:
                raise UserError("no training data: pass --data")
            from .data_setup import open_train_val
            splits = open_train_val(cfg.data, cfg.val_data, cfg.val_split, cfg.seed, cache=cfg.cache_videos,
                                    on_error=cfg.on_error)
            train_dataset, val_dataset, classes = splits.train, splits.val, splits.classes
            self.data_channels, self.val_source = splits.in_chans, splits.val_source
        classes = list(classes) if classes is not None else getattr(train_dataset, "classes", None)
        if classes is None:
            raise ValueError("pass classes= with a dataset that has no .classes attribute")
        if len(train_dataset) == 0:  # type: ignore[arg-type]
            raise UserError("the training dataset is empty")
        self.train_dataset, self.val_dataset, self.classes = train_dataset, val_dataset, list(classes)

    def _setup_model(self) -> None:
        cfg = self.cfg
        overrides = dict(cfg.model_overrides)
        if cfg.num_frames is not None:
            overrides["num_frames"] = cfg.num_frames
        if cfg.img_size is not None:
            overrides["img_size"] = cfg.img_size
        if self.data_channels is not None and "in_chans" not in overrides:
            overrides["in_chans"] = self.data_channels
        name = cfg.model
        if Path(name).is_dir() and (Path(name) / "config.json").is_file():
            name = f"local-dir:{name}"  # fine-tune a saved model (its head is replaced if classes differ)
        seed_everything(cfg.seed)
        model = build_model(name, num_classes=len(self.classes), pretrained=cfg.pretrained or None, **overrides)
        seed_everything(cfg.seed + self.dist.rank)
        from .data_setup import InputSpec, check_input_fits, configure_dataset
        spec = InputSpec.from_model(model, cfg.sampling, cfg.frame_stride)
        model.pretrained_cfg = dict(model.pretrained_cfg, label_names=list(self.classes), sampling=spec.sampling,
                                    frame_sample_rate=spec.frame_stride, num_classes=len(self.classes))
        self.spec = spec
        configure_dataset(self.train_dataset, spec, train=True, hflip=cfg.hflip, crop_scale=cfg.crop_scale)
        check_input_fits(self.train_dataset, spec, f"model '{cfg.model}'")
        if self.val_dataset is not None:
            configure_dataset(self.val_dataset, spec, train=False)
            check_input_fits(self.val_dataset, spec, f"model '{cfg.model}'", "--val-data")
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = model.to(self.device)
        self.ddp_model: nn.Module = self.model
        if self.dist.distributed:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def _setup_optim(self) -> None:
        cfg, d = self.cfg, self.dist
        pin = self.device.type == "cuda"
        self.train_sampler = DistributedSampler(self.train_dataset, num_replicas=d.world_size, rank=d.rank,
                                                shuffle=True, seed=cfg.seed, drop_last=False)
        self.loader_generator = torch.Generator()
        # Workers are re-created (and re-seeded from (seed, epoch, rank)) every epoch, except with the
        # frame cache, which lives in the workers.
        persistent = cfg.cache_videos and cfg.workers > 0
        self.train_loader = DataLoader(FlagUnreadable(self.train_dataset), batch_size=cfg.batch_size,
                                       sampler=self.train_sampler,
                                       num_workers=cfg.workers, pin_memory=pin, drop_last=False,
                                       generator=self.loader_generator, persistent_workers=persistent)
        self.val_loader = None
        if self.val_dataset is not None:
            self.val_loader = make_eval_loader(self.val_dataset, cfg.val_batch_size or cfg.batch_size, cfg.workers,
                                               pin_memory=pin, persistent_workers=persistent)
        self.updates_per_epoch = math.ceil(len(self.train_loader) / cfg.accum_steps)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.updates_per_epoch)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    # ------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self, epoch: int, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": epoch,
            "num_updates": self.num_updates,
            "updates_per_epoch": self.updates_per_epoch,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_top1": self.best_top1,
            "best_loss": self.best_loss,
            "rng": rng_states,
            "world_size": self.dist.world_size,
            "classes": self.classes,
            "model_name": self.cfg.model,
            "architecture": self.model.architecture,
            "model_args": dict(self.model.model_args),
            "pretrained_cfg": dict(self.model.pretrained_cfg),
            "config": _config_dict(self.cfg),
        }

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        if list(ckpt["classes"]) != self.classes:
            raise UserError(f"--resume: the checkpoint was trained on other classes ({len(ckpt['classes'])}: "
                            f"{', '.join(ckpt['classes'][:6])}...) than --data ({len(self.classes)})")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise UserError(f"--resume: checkpoint '{path}' does not fit model '{self.cfg.model}' with these "
                            f"options: {str(e).splitlines()[0]}") from e
        self.optimizer.load_state_dict(ckpt["optimizer"])
        old = ckpt.get("config") or {}
        if (old.get("epochs"), ckpt.get("updates_per_epoch")) == (self.cfg.epochs, self.updates_per_epoch):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        else:  # more epochs (or another batch size) than planned: the schedule follows the new plan
            self.log(f"note: the learning-rate schedule is re-planned for {self.cfg.epochs} epochs x "
                     f"{self.updates_per_epoch} updates")
        self.scheduler.step_update(int(ckpt["num_updates"]))
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = int(ckpt["epoch"])
        self.num_updates = int(ckpt["num_updates"])
        self.history = list(ckpt["history"])
        self.best_epoch, self.best_top1, self.best_loss = ckpt["best_epoch"], ckpt["best_top1"], ckpt["best_loss"]
        rng = ckpt.get("rng") or []
        if len(rng) == self.dist.world_size:
            restore_rng_state(rng[self.dist.rank])
        else:
            self.log(f"note: checkpoint from {len(rng)} process(es), resuming on {self.dist.world_size}: "
                     f"RNG streams restart from the seed")
            seed_everything(self.cfg.seed + self.dist.rank + 1000 * self.start_epoch)
        self.log(f"resumed from {path} after epoch {self.start_epoch}/{self.cfg.epochs}")

    def _save_epoch(self, epoch: int, is_best: bool) -> None:
        rng_states = all_gather_object(capture_rng_state())
        if not self.dist.is_main:
            return
        last = save_checkpoint(self._checkpoint(epoch, rng_states), self.ckpt_dir / "last.pth")
        if is_best:
            atomic_copy(last, self.ckpt_dir / "best.pth")
        write_metrics(self.history, self.out)

    def _is_best(self, val: EvalResult | None) -> bool:
        """Higher validation top-1 wins, lower validation loss breaks ties; without validation
        the latest epoch is the best."""
        if val is None or self.best_top1 is None:
            return True
        return val.top1 > self.best_top1 or (val.top1 == self.best_top1 and val.loss < self.best_loss)

    # -------------------------------------------------------------------------------------- fit
    def _describe(self) -> None:
        cfg, d = self.cfg, self.dist
        n_params = count_params(self.model)
        self.log(f"model {cfg.model} ({self.model.architecture}): {n_params / 1e6:.2f}M params, input "
                 f"(C, T, H, W) = {self.spec.shape}, {self.spec.sampling} sampling"
                 + (f" stride {self.spec.frame_stride}" if self.spec.sampling == "dense" else ""))
        self.log(f"data: {len(self.train_dataset)} train clips, "  # type: ignore[arg-type]
                 + (f"{len(self.val_dataset)} val clips ({self.val_source}), "  # type: ignore[arg-type]
                    if self.val_dataset is not None else "no validation, ")
                 + f"{len(self.classes)} classes: {', '.join(self.classes[:10])}{' ...' if len(self.classes) > 10 else ''}")
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        self.log(f"training on {self.device} x {d.world_size} process(es), {amp}; {cfg.epochs} epochs x "
                 f"{self.updates_per_epoch} updates, batch {cfg.batch_size} x {cfg.accum_steps} accum x "
                 f"{d.world_size}; {cfg.opt} lr {cfg.lr:g} wd {cfg.resolved_weight_decay():g}"
                 + (f" layer-decay {cfg.layer_decay:g}" if cfg.layer_decay else "") + f"; output {self.out}")
        if d.is_main and self.resume_path is None:
            atomic_write_json({"config": _config_dict(cfg), "classes": self.classes, "val_source": self.val_source,
                               "world_size": d.world_size, "model_args": self.model.model_args,
                               "architecture": self.model.architecture, "params": n_params},
                              self.out / "train_config.json")

    def fit(self) -> TrainResult:
        """Train from ``start_epoch`` to ``epochs``, then save the final model."""
        cfg, d = self.cfg, self.dist
        self._describe()
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.time()
            self.train_sampler.set_epoch(epoch)
            self.loader_generator.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + d.rank)
            train_m, self.num_updates = train_one_epoch(
                self.ddp_model, self.train_loader, self.optimizer, self.loss_fn, self.device, len(self.classes),
                self.scheduler, self.num_updates, cfg.accum_steps, cfg.clip_grad, self.amp_dtype, self.scaler,
                self.progress, desc=f"epoch {epoch + 1}/{cfg.epochs}")
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": current_lr(self.optimizer)}
            record.update({f"train_{k}": v for k, v in train_m.items()})
            val: EvalResult | None = None
            if self.val_loader is not None:
                val = evaluate(self.model, self.val_loader, self.device, len(self.classes), self.amp_dtype,
                               progress=self.progress, desc="val")
                record.update({f"val_{k}": v for k, v in val.summary().items()})
            record["time_s"] = round(time.time() - t0, 2)
            record["world_size"] = d.world_size
            self.history.append(record)
            is_best = self._is_best(val)
            if is_best:
                self.best_epoch = epoch + 1
                self.best_top1, self.best_loss = (val.top1, val.loss) if val is not None else (None, None)
            self._save_epoch(epoch + 1, is_best)
            self.log(_epoch_line(record, is_best and val is not None))
            for cb in self.callbacks:
                cb(epoch + 1, record)
        return self._finish()

    def _finish(self) -> TrainResult:
        model_dir = None
        best = self.ckpt_dir / "best.pth"
        if self.val_loader is not None and self.best_epoch is not None and best.is_file():
            self.model.load_state_dict(load_checkpoint(best)["model"])
        if self.dist.is_main:
            model_dir = save_model_folder(self.model, self.out / "model")
            which = f"epoch {self.best_epoch}" + (f", val top-1 {self.best_top1:.2f}%" if self.best_top1 is not None
                                                  else "")
            self.log(f"final model ({which}) saved to {model_dir}")
        barrier()
        return TrainResult(self.model, self.history, self.best_epoch, self.best_top1, self.out, model_dir,
                           self.classes)


def _epoch_line(r: dict[str, Any], best: bool) -> str:
    line = (f"epoch {r['epoch']:>3}  lr {r['lr']:.2e}  train loss {r['train_loss']:.4f} top1 {r['train_top1']:5.1f}%"
            f" top5 {r['train_top5']:5.1f}%")
    if "val_loss" in r:
        line += f" | val loss {r['val_loss']:.4f} top1 {r['val_top1']:5.1f}% top5 {r['val_top5']:5.1f}%"
    if r.get("train_unreadable"):
        line += f"  [{r['train_unreadable']} unreadable training sample(s) skipped, see warnings]"
    return line + f"  ({r['time_s']:.1f}s){'  *best' if best else ''}"


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["crop_scale"] = list(d["crop_scale"])
    return d


def train(cfg: TrainConfig, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
          classes: Sequence[str] | None = None, callbacks: Sequence[EpochCallback] = ()) -> TrainResult:
    """Train a model as ``cfg`` says (also under ``torchrun``: DDP over all processes).

    Args:
        cfg: The run.
        train_dataset: Use this dataset instead of opening ``cfg.data`` (any dataset of
            ``(clip (C, T, H, W) float, label)``; :mod:`vidzoo.data` datasets get the model's
            sampler/transforms attached).
        val_dataset: Validation dataset to go with ``train_dataset``.
        classes: Class names (default: ``train_dataset.classes``).
        callbacks: Called as ``cb(epoch, record)`` on every rank after each epoch's checkpoint
            is written (an exception stops the run; ``resume`` continues it).

    Returns:
        A :class:`TrainResult`.

    Raises:
        UserError: Bad paths, data, options or model/data mismatch.
    """
    was_up = is_distributed()
    dist_info = init_distributed(cfg.device)
    started_here = not was_up and is_distributed()
    trainer = None
    try:
        trainer = Trainer(cfg, dist_info, train_dataset, val_dataset, classes, callbacks)
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        if started_here and is_distributed():
            cleanup_distributed()
