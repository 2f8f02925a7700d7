"""The Trainer: one training run from a :class:`~vidzoo.engine.config.TrainConfig` to a saved model.

The data path flows one way: the data's listings and facts (classes, channels) -> the model ->
its input spec -> the datasets, built with their sampler and transforms. The run folder is
:class:`~vidzoo.engine.run_layout.RunLayout`, locked while the run writes into it
(:class:`~vidzoo.engine.run_lock.RunLock`, rank 0). Unreadable training videos are substituted
(each unreadable file counted once per epoch, named once in ``train.log``; more than
:data:`MAX_UNREADABLE_FRACTION` of them stops the run); unreadable validation videos are never
substituted: they are excluded from every validation figure, counted per epoch
(``val_unreadable``) and named once in ``train.log``.

A resumed run is the same run: only the options of
:data:`~vidzoo.engine.config.RESUME_MAY_CHANGE` may differ from its checkpoint's. Ctrl-C stops at
once; ``last.pth`` holds the last completed epoch and the message names the command that continues.

Reproducibility: the model is initialised from ``seed``; each rank's global RNG is seeded with
``seed + rank`` and saved in every checkpoint; the shuffling order is a function of
``(seed, epoch)`` (``DistributedSampler.set_epoch``) and DataLoader workers are seeded from
``(seed, epoch, rank)``. A run resumed from ``last.pth`` therefore continues exactly where it
stopped: on CPU with ``num_workers=0`` its weights equal those of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import timm
import torch
from timm.loss import SoftTargetCrossEntropy
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from .._hub import CONFIG_NAME, WEIGHTS_NAME, output_error
from .._weights import CheckpointMismatchError, apply_state_dict
from ..data import ClipDataset, NpzVolumeDataset, SubstituteUnreadable, VideoMixup
from ..version import __version__
from .balance import BalancedDistributedSampler, balanced_class_weights, dataset_labels
from .checkpoint import (atomic_copy, atomic_write_json, capture_rng_state, load_checkpoint, optimizer_mismatch,
                         restore_rng_state, save_checkpoint, seed_everything)
from .clip_span import SpanCheck, check_span, clip_span, count_frames, largest_fitting_stride
from .config import TrainConfig, config_dict, mixup_active, resume_conflicts, resume_refusal
from .data_sources import check_output_outside_data, open_train_val
from .compile import maybe_compile
from .distributed import (DistInfo, all_gather_object, barrier, broadcast_object, cleanup_distributed,
                          init_distributed, is_distributed)
from .errors import UserError
from .evaluation import EvalResult, evaluate, make_eval_loader
from .history import epoch_line, write_metrics
from .loop import EpochContext, UpdateRecord, train_one_epoch
from .complexity import count_params
from .model_io import build_model, describe_architecture, looks_like_path, save_model_folder
from .options import FRAME_STRIDE_AUTO
from .optim import build_optimizer, build_scheduler, current_lr
from .pipelines import build_dataset, check_input_fits, input_spec
from .precision import choose_amp
from .run_layout import RunLayout
from .run_lock import RunLock

__all__ = ["Trainer", "TrainResult", "train", "EpochCallback", "MAX_UNREADABLE_FRACTION"]

EpochCallback = Callable[[int, dict[str, Any]], None]

# A run stops when more than this fraction of its training videos cannot be read: it would
# otherwise train on substitutes of a few videos and report their accuracy.
MAX_UNREADABLE_FRACTION = 0.5


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())


def _command_line() -> str:
    """This process's command line (shown to a second run that finds the folder locked)."""
    text = shlex.join(sys.argv)
    return text if len(text) <= 300 else text[:297] + "..."


def _weights(loss_fn: nn.Module) -> list[float]:
    weight = getattr(loss_fn, "weight", None)
    return weight.tolist() if weight is not None else []


def _summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a :class:`UserError` saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'vidzoo[tensorboard]' "
                        "(metrics.json and metrics.csv are written without it)") from e
    return SummaryWriter


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
        is_main: Whether this process is rank 0 (the one that prints the run summary).
        model_epoch: The epoch whose weights ``model`` (and ``model_dir``) holds: ``best_epoch``,
            unless the best epoch's checkpoint was lost (then the last epoch).
        model_top1: That epoch's validation top-1 (None without validation).
    """

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_top1: float | None
    output: Path
    model_dir: Path | None
    classes: list[str]
    is_main: bool = True
    model_epoch: int | None = None
    model_top1: float | None = None


# ------------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run (see :func:`train`). It holds the run folder's lock from construction to
    :meth:`close` (which :func:`train` calls; a Trainer made directly must be closed too)."""

    def __init__(self, cfg: TrainConfig, dist_info: DistInfo, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None, classes: Sequence[str] | None = None,
                 callbacks: Sequence[EpochCallback] = ()) -> None:
        cfg.validate()
        self.cfg = cfg
        self.dist = dist_info
        self.device = dist_info.device
        self.callbacks = list(callbacks)
        self.layout = RunLayout(cfg.output)
        self.out = self.layout.root
        self.ckpt_dir = self.layout.checkpoints
        self.progress = cfg.progress and dist_info.is_main
        self._summary_writer_cls = _summary_writer_class() if cfg.tensorboard else None  # before anything
        self._writer: Any = None
        self._log_file: Any = None
        self._lock: RunLock | None = None
        self._created_output = False
        self._notes: list[str] = []  # what preparing the folder did, logged once train.log is open
        self._named: set[tuple[str, str]] = set()  # (kind, source) already named in train.log
        self._bad_sources: dict[str, str] = {}  # training videos found unreadable: source -> reason
        self.resume_path: Path | None = None
        self._run_notes: list[tuple[str, bool]] = []  # (line, on the console too): logged with the description
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.num_updates = 0
        self.best_epoch: int | None = None
        self.best_top1: float | None = None
        self.best_loss: float | None = None
        self.saved_epoch = 0  # the epoch checkpoints/last.pth holds (0: none yet)
        self.weights_epoch = 0  # the epoch whose weights the model holds
        try:
            check_output_outside_data(cfg.output, cfg.data)
            check_output_outside_data(cfg.output, cfg.val_data, "--val-data")
            self._on_main(self._take_lock)
            self.resume_path = self._on_main(self._prepare_output)
            for note in self._notes:
                self.log(f"note: {note}", console=False)
            ckpt = self._read_resume_checkpoint()
            self._cleanup_stale_files()
            self._setup_data(train_dataset, val_dataset, classes)
            self._setup_model()
            self.run_config = self._resolved_config()  # what train_config.json and the checkpoints record
            self._setup_optim()
            if ckpt is not None:
                self._resume(ckpt)
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------------------------- logging
    def log(self, msg: str, console: bool = True) -> None:
        """Print on rank 0 (above any progress bar) and append to ``train.log`` (``console=False``:
        the log file only)."""
        if not self.dist.is_main:
            return
        if console:
            tqdm.write(msg)
        try:
            if self._log_file is None:
                self.out.mkdir(parents=True, exist_ok=True)
                self._log_file = open(self.layout.train_log, "a" if self.resume_path else "w", encoding="utf-8")
            self._log_file.write(msg + "\n")
            self._log_file.flush()
        except OSError as e:  # a full disk: one line, as for every other output
            raise output_error(e, self.layout.train_log, "log") from e

    def close(self) -> None:
        """Close ``train.log`` and release the run folder's lock (removing the folder when this run
        created it and wrote nothing into it)."""
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            if self._created_output:  # a run that stopped while setting up leaves no folder behind
                try:
                    if list(self.out.iterdir()) == [self.layout.marker]:
                        self.layout.marker.unlink()
                    self.out.rmdir()  # only when empty
                except OSError:
                    pass

    def _tensorboard(self) -> Any:
        """The run's ``SummaryWriter`` (rank 0 with ``--tensorboard``; None otherwise)."""
        if self._writer is None and self._summary_writer_cls is not None and self.dist.is_main:
            self._writer = self._summary_writer_cls(log_dir=str(self.layout.tensorboard))
        return self._writer

    def _log_update(self, u: UpdateRecord) -> None:
        writer = self._tensorboard()
        if writer is None:
            return
        writer.add_scalar("train/loss", u.loss, u.step)
        writer.add_scalar("train/lr", u.lr, u.step)
        if u.top1 is not None:
            writer.add_scalar("train/top1", u.top1, u.step)

    def _log_epoch(self, record: dict[str, Any]) -> None:
        writer = self._tensorboard()
        if writer is None:
            return
        for key in ("lr", "train_loss", "train_top1", "train_top5", "val_loss", "val_top1", "val_top5"):
            if record.get(key) is not None:
                writer.add_scalar(f"epoch/{key}", record[key], record["epoch"])
        writer.flush()

    # ---------------------------------------------------------------------------- run folder
    def _on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0, its result (or its one-line error) on every rank."""
        result, error = None, None
        if self.dist.is_main:
            try:
                result = fn()
            except (UserError, OSError) as e:
                if not self.dist.distributed:
                    raise
                error = e
        if self.dist.distributed:
            result, message = broadcast_object((result, None if error is None else _one_line(error)))
            if error is not None:
                raise error
            if message is not None:
                raise UserError(message)
        return result

    def _take_lock(self) -> None:
        """Lock the run folder (rank 0)."""
        self._created_output = not self.out.exists()
        lock = RunLock(self.layout.lock, f"run folder '{self.out}'", command=_command_line())
        note = lock.acquire()
        self._lock = lock
        if note:  # said at once (train.log is opened once the folder is known to be this run's)
            tqdm.write(f"note: {note}")
            self._notes.append(note)

    def _prepare_output(self) -> Path | None:
        """Decide (rank 0) what this run does with what the output folder holds; returns the
        checkpoint to resume from.

        vidzoo replaces only a run's own files: a folder holding a trained model (``model/``,
        ``checkpoints/``) is a run whatever else is missing, and is replaced only with
        ``--overwrite``; run files without the marker were not written by a vidzoo run and are
        replaced only with ``--overwrite`` too.
        """
        cfg, layout = self.cfg, self.layout
        resume = None
        if cfg.resume:
            resume = layout.last if cfg.resume is True else Path(cfg.resume)
            if not resume.is_file():
                raise UserError(f"--resume: no checkpoint at '{resume}' (nothing to resume)")
            if resume.resolve().is_relative_to(self.out.resolve()):  # this folder's own run, continued
                if cfg.overwrite:
                    raise UserError(f"--resume continues the run in '{self.out}' and --overwrite would start it "
                                    "afresh: give one of them")
                if not layout.marker.exists():  # a run of a vidzoo before the marker
                    self._write_marker()
                return resume
        # A new run here, or one continued from another folder's checkpoint
        trained = layout.trained()
        present = layout.present()
        if not cfg.overwrite:
            if layout.last in trained:
                raise UserError(f"'{self.out}' already holds a training run ({layout.last}); pass --resume to "
                                f"continue it, --overwrite to start afresh, or another --output")
            if trained:
                raise UserError(f"'{self.out}' holds a trained model ({', '.join(map(self._rel, trained))}) and "
                                f"no {self._rel(layout.last)} to resume from; pass --overwrite to replace it, or "
                                f"another --output")
            if present and not layout.marker.is_file():
                raise UserError(f"'{self.out}' holds {', '.join(map(self._rel, present))}, not written by a vidzoo "
                                f"run (no {layout.marker.name}); pass --overwrite to replace them, or another "
                                f"--output")
        if present or layout.marker.exists():
            removed = [p for p in layout.remove_outputs((CONFIG_NAME, WEIGHTS_NAME)) if p != layout.marker]
            if removed:
                why = "" if cfg.overwrite else " (it saved no checkpoint)"
                tops = dict.fromkeys(p.relative_to(self.out).parts[0] for p in removed)  # model/x -> model/
                note = f"removed the earlier run's files{why}: " + ", ".join(
                    t + ("/" if (self.out / t) in (layout.model_dir, layout.checkpoints) else "") for t in tops)
                tqdm.write(f"note: {note}")
                self._notes.append(note)
        self._write_marker()
        return resume

    def _write_marker(self) -> None:
        """The marker that says this folder is a vidzoo run (written before any other run file)."""
        atomic_write_json({"vidzoo_run": 1, "version": __version__, "started": time.time()}, self.layout.marker)

    def _rel(self, path: Path) -> str:
        """``path`` relative to the run folder (``checkpoints/last.pth``, ``model/``)."""
        return str(path.relative_to(self.out)) + ("/" if path.is_dir() and not path.is_symlink() else "")

    def _cleanup_stale_files(self) -> None:
        """Remove the temporary files of atomic writes that a crash left behind (rank 0)."""
        if not self.dist.is_main:
            return
        removed = self.layout.remove_stale_temp_files()
        if removed:
            self.log(f"removed {len(removed)} temporary file(s) left by an interrupted write: "
                     + ", ".join(str(p) for p in removed))

    def _name_once(self, kind: str, source: str, msg: str, console: bool = True) -> None:
        """Log ``msg`` the first time ``(kind, source)`` is met in this run."""
        if (kind, source) not in self._named:
            self._named.add((kind, source))
            self.log(msg, console)

    def _setup_data(self, train_dataset: Dataset | None, val_dataset: Dataset | None,
                    classes: Sequence[str] | None) -> None:
        cfg = self.cfg
        self.data_channels: int | None = None
        self.val_source = "given dataset" if val_dataset is not None else ""
        if train_dataset is None:
            if cfg.data is None:
                raise UserError("no training data: pass --data")
            splits = open_train_val(cfg.data, cfg.val_data, cfg.val_split, cfg.seed, cache=cfg.cache_videos,
                                    output=cfg.output)
            train_dataset, val_dataset, classes = splits.train, splits.val, splits.classes
            self.data_channels, self.val_source = splits.in_chans, splits.val_source
            self._run_notes += [(f"note: {n}", True) for n in splits.notes]
        classes = list(classes) if classes is not None else getattr(train_dataset, "classes", None)
        if classes is None:
            raise ValueError("pass classes= with a dataset that has no .classes attribute")
        if len(train_dataset) == 0:  # type: ignore[arg-type]
            raise UserError("the training dataset is empty")
        self.train_dataset, self.val_dataset, self.classes = train_dataset, val_dataset, list(classes)
        for ds in (train_dataset, val_dataset):  # entries of the data folders that are not used, by name
            for path, why in getattr(ds, "ignored", ()):
                self._name_once("ignored", path, f"ignoring '{path}': {why}", console=False)

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
        self._fit_head(model)
        seed_everything(cfg.seed + self.dist.rank)
        spec = input_spec(model, cfg.sampling, self._frame_stride(model))
        model.pretrained_cfg = dict(model.pretrained_cfg, label_names=list(self.classes), sampling=spec.sampling,
                                    frame_sample_rate=spec.frame_stride, num_classes=len(self.classes))
        self.spec = spec
        self._check_clip_spans(spec)
        # --augment none: every epoch the evaluation view (centre clip, resize + centre crop) of each video
        self.train_dataset = build_dataset(self.train_dataset, spec, train=cfg.augment != "none", hflip=cfg.hflip,
                                           crop_scale=cfg.crop_scale, randaug=cfg.randaug, reprob=cfg.reprob,
                                           remode=cfg.remode, repeats=cfg.num_sample)
        check_input_fits(self.train_dataset, spec, f"model '{cfg.model}'")
        if self.val_dataset is not None:
            self.val_dataset = build_dataset(self.val_dataset, spec, train=False)
            check_input_fits(self.val_dataset, spec, f"model '{cfg.model}'", "--val-data")
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = model.to(self.device)
        # The weight average: validated and saved in place of the trained weights (timm's ModelEmaV3).
        self.ema = ModelEmaV3(self.model, decay=cfg.ema, use_warmup=cfg.ema_warmup) if cfg.ema else None
        # what training and validation call (the model itself unless --compile); checkpoints save self.model
        self.run_model = maybe_compile(self.model, cfg.compile, device=self.device, log=self.log)
        self.ddp_model: nn.Module = self._wrap_model(self.run_model)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """What the training loop calls: under DDP the model in :class:`DistributedDataParallel`."""
        return self._distributed(model)

    def _distributed(self, module: nn.Module) -> nn.Module:
        """``module`` in :class:`DistributedDataParallel` when the run is distributed, else as it is."""
        if not self.dist.distributed:
            return module
        return DistributedDataParallel(module, device_ids=[self.device] if self.device.type == "cuda" else None)

    def _fit_head(self, model: nn.Module) -> None:
        """A model that knows its classes keeps its classifier only for the classes of the data: the same
        classes in another order get their rows reordered; other classes (of the same count too) get a fresh
        classifier (the loader already gave one for another count). Said in the log either way."""
        old = list(model.pretrained_cfg.get("label_names") or [])
        new = self.classes
        if not old or old == new or not hasattr(model, "reset_classifier"):
            return
        names = lambda c: ", ".join(c[:6]) + (", ..." if len(c) > 6 else "")  # noqa: E731
        if sorted(old) == sorted(new):
            head = model.get_classifier()
            order = torch.tensor([old.index(c) for c in new])
            with torch.no_grad():
                head.weight.copy_(head.weight[order])
                if head.bias is not None:
                    head.bias.copy_(head.bias[order])
            self._run_notes.append((f"note: '{self.cfg.model}' knows the classes of --data in another order: its "
                                    "classifier's rows are reordered to match", True))
            return
        if len(old) == len(new):
            model.reset_classifier(len(new))  # same count, other classes: the loader kept the old head
        self._run_notes.append((f"note: '{self.cfg.model}' was trained on other classes ({len(old)}: {names(old)}) "
                                f"than --data ({len(new)}: {names(new)}): its classifier is replaced by a fresh one",
                                True))

    def _frame_stride(self, model: nn.Module) -> int | None:
        """``--frame-stride``, or with ``auto`` the largest stride whose clip fits the median training
        video (logged, and saved with the model as its ``frame_sample_rate``)."""
        cfg = self.cfg
        self._train_counts = count_frames(self.train_dataset)
        if cfg.frame_stride != FRAME_STRIDE_AUTO:
            return cfg.frame_stride
        spec = input_spec(model, cfg.sampling)
        counts = [n for n in self._train_counts or () if n is not None]
        if spec.sampling != "dense" or isinstance(self.train_dataset, NpzVolumeDataset):
            raise UserError("--frame-stride auto picks the stride of dense sampling; these clips are sampled "
                            "uniformly (--sampling uniform, or volumes), which has no stride")
        if not counts:
            raise UserError("--frame-stride auto: no training video could be counted (it needs vidzoo's video "
                            "datasets: a folder or list file)")
        median = int(statistics.median_low(counts))
        stride = largest_fitting_stride(median, spec.num_frames)
        self._run_notes.append((f"--frame-stride auto: {stride} ({spec.num_frames} frames {stride} apart span "
                                f"{clip_span('dense', spec.num_frames, stride)} frames; the median training video "
                                f"has {median})", True))
        return stride

    def _check_clip_spans(self, spec) -> None:
        """Count the videos shorter than a clip's span (their clips repeat frames) and say so once, on the
        console and in train.log (each such video by name in train.log); the counts go into every epoch
        record (``train_short_videos``, ``val_short_videos``)."""
        self.span_checks: dict[str, SpanCheck] = {}
        fix = True
        for what, ds, counts in (("training", self.train_dataset, self._train_counts),
                                 ("validation", self.val_dataset, None)):
            check = check_span(ds, spec, counts) if ds is not None else None
            if check is None:
                continue
            self.span_checks["train" if what == "training" else "val"] = check
            msg = check.message(what, auto=self.cfg.frame_stride != FRAME_STRIDE_AUTO, fix=fix)
            if msg:
                fix = False  # said once
                self._run_notes.append((f"warning: {msg}", True))
                self._run_notes += [(f"short {what} video '{source}': {frames} frames, a clip spans {check.span}",
                                     False) for source, frames in check.short]

    def _setup_optim(self) -> None:
        self._setup_loaders()
        self._setup_optimizer()

    def _setup_loaders(self) -> None:
        """The training and validation loaders, the loss and the precision (what a probe shares)."""
        cfg, d = self.cfg, self.dist
        pin = self.device.type == "cuda"
        if cfg.balanced_sampler:
            self.train_sampler: Any = BalancedDistributedSampler(
                dataset_labels(self.train_dataset, "--balanced-sampler"), d.world_size, d.rank, cfg.seed)
        else:
            self.train_sampler = DistributedSampler(self.train_dataset, num_replicas=d.world_size, rank=d.rank,
                                                    shuffle=True, seed=cfg.seed, drop_last=False)
        mixing = mixup_active(cfg)
        self.loader_generator = torch.Generator()
        # Workers are re-created (and re-seeded from (seed, epoch, rank)) every epoch, except with the
        # frame cache, which lives in the workers.
        persistent = cfg.cache_videos and cfg.workers > 0
        # Training substitutes an unreadable sample (and names it); with --on-error raise it stops the run.
        train_view = SubstituteUnreadable(self.train_dataset) if cfg.on_error == "skip" else self.train_dataset
        # Mixing pairs clip i with clip B-1-i: an incomplete (maybe odd) last batch is dropped, as in timm.
        self.train_loader = DataLoader(train_view, batch_size=cfg.batch_size,
                                       sampler=self.train_sampler,
                                       num_workers=cfg.workers, pin_memory=pin, drop_last=mixing,
                                       generator=self.loader_generator, persistent_workers=persistent)
        if mixing and len(self.train_loader) == 0:
            raise UserError(f"--mixup / --cutmix drop the last incomplete batch, and the {len(self.train_sampler)} "
                            f"training videos of each process make no full batch of --batch-size {cfg.batch_size}; "
                            f"lower --batch-size")
        self.val_loader = None
        if self.val_dataset is not None:
            self.val_loader = make_eval_loader(self.val_dataset, cfg.val_batch_size or cfg.batch_size, cfg.workers,
                                               pin_memory=pin, persistent_workers=persistent, on_error=cfg.on_error)
        self.updates_per_epoch = math.ceil(len(self.train_loader) / cfg.accum_steps)
        self.peak_lr = cfg.peak_lr(d.world_size)
        # rank 0's choice: one precision for every rank (a probe runs its backbone forward only)
        self.amp = broadcast_object(choose_amp(cfg.amp, self.device, model=self.model, batch=cfg.batch_size,
                                               train=not cfg.freeze_backbone))
        self.amp_dtype = self.amp.dtype
        self.mixup = None
        if mixing:  # label smoothing moves into the mixed targets, and the loss takes soft targets (timm's train.py)
            self.mixup = VideoMixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                                    switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode,
                                    label_smoothing=cfg.label_smoothing, num_classes=len(self.classes))
            self.loss_fn: nn.Module = SoftTargetCrossEntropy()
        else:
            weight = None
            if cfg.class_weights == "balanced":
                weight = balanced_class_weights(dataset_labels(self.train_dataset, "--class-weights balanced"),
                                                len(self.classes)).to(self.device)
            self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)

    def _setup_optimizer(self) -> None:
        cfg = self.cfg
        self.optimizer = build_optimizer(self.model, cfg, lr=self.peak_lr)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.updates_per_epoch, lr=self.peak_lr)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.epoch_ctx = EpochContext(self.ddp_model, self.optimizer, self.loss_fn, self.device, len(self.classes),
                                      self.scheduler, cfg.accum_steps, cfg.clip_grad, self.amp_dtype, self.scaler,
                                      self.progress, repeats=cfg.num_sample, mixup=self.mixup, ema=self.ema,
                                      on_update=self._log_update if cfg.tensorboard else None)

    # ------------------------------------------------------------------------------ checkpoints
    def _optim_state(self) -> dict[str, Any]:
        """The optimizer, schedule and loss-scaler state of a checkpoint."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def _load_optim_state(self, ckpt: dict[str, Any], replan: bool) -> None:
        """Restore :meth:`_optim_state` from ``ckpt``; ``replan``: the run now has another number of
        epochs or updates per epoch, so the schedule follows the new plan instead of the saved one."""
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise UserError(f"--resume: the optimizer state in '{self.resume_path}' does not fit this run's "
                            f"optimizer: {optimizer_mismatch(ckpt['optimizer'], self.optimizer.state_dict())}") from e
        if not replan:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scheduler.step_update(int(ckpt["num_updates"]))
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])

    def _checkpoint(self, epoch: int, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "model_ema": self.ema.module.state_dict() if self.ema is not None else None,
            **self._optim_state(),
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
            "config": config_dict(self.run_config),
        }

    def _read_resume_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, once its run's options are known to agree with this one's."""
        if self.resume_path is None:
            return None
        ckpt = load_checkpoint(self.resume_path)
        conflicts = resume_conflicts(ckpt.get("config") or {}, self.cfg)
        if conflicts:
            raise resume_refusal(conflicts, f"checkpoint {self.resume_path}")
        if int(ckpt["epoch"]) > self.cfg.epochs:
            raise UserError(f"--resume: the run has trained {ckpt['epoch']} epochs already; --epochs "
                            f"{self.cfg.epochs} cannot shorten it")
        return ckpt

    def _resume(self, ckpt: dict[str, Any]) -> None:
        path = self.resume_path
        if list(ckpt["classes"]) != self.classes:
            raise UserError(f"--resume: the checkpoint was trained on other classes ({len(ckpt['classes'])}: "
                            f"{', '.join(ckpt['classes'][:6])}...) than --data ({len(self.classes)})")
        try:
            apply_state_dict(self.model, ckpt["model"], source=f"--resume: checkpoint '{path}'")
        except CheckpointMismatchError as e:
            raise UserError(str(e).split(". Nothing was loaded")[0]) from e
        if self.ema is not None:
            if ckpt.get("model_ema") is not None:
                self.ema.module.load_state_dict(ckpt["model_ema"])
            else:  # a run without --ema continued with it: the average starts from the resumed weights
                self.ema.module.load_state_dict(self.model.state_dict())
                self.log("note: the checkpoint has no weight average (--ema); it starts from the resumed weights")
        old = ckpt.get("config") or {}
        replan = (old.get("epochs"), ckpt.get("updates_per_epoch")) != (self.cfg.epochs, self.updates_per_epoch)
        if replan:  # more epochs (or another batch size) than planned: the schedule follows the new plan
            self.log(f"note: the learning-rate schedule is re-planned for {self.cfg.epochs} epochs x "
                     f"{self.updates_per_epoch} updates")
        self._load_optim_state(ckpt, replan)
        self.start_epoch = self.saved_epoch = self.weights_epoch = int(ckpt["epoch"])
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
        self._check_best_checkpoint()

    def _best_checkpoint_epoch(self) -> tuple[int | None, str]:
        """The epoch ``checkpoints/best.pth`` holds, or None and why it holds none."""
        best = self.layout.best
        if not best.is_file():
            return None, "is missing"
        try:
            return int(load_checkpoint(best, mmap=True)["epoch"]), ""
        except (UserError, KeyError, TypeError, ValueError) as e:
            return None, f"cannot be read ({_one_line(e)})"

    def _check_best_checkpoint(self) -> None:
        """On resume: ``best.pth`` must hold the best epoch that ``last.pth`` records. When the best
        epoch is the last saved one (the copy to ``best.pth`` failed: a full disk, an interruption)
        it is restored from ``last.pth``; otherwise the best weights are lost, which is said now and
        again when the final model is saved."""
        if self.val_loader is None or self.best_epoch is None or not self.dist.is_main:
            return
        epoch, why = self._best_checkpoint_epoch()
        if epoch == self.best_epoch:
            return
        what = f"{self._rel(self.layout.best)} {why or f'holds epoch {epoch}'}"
        if self.best_epoch == self.saved_epoch:
            atomic_copy(self.resume_path, self.layout.best)
            self.log(f"note: {what}, not the best epoch {self.best_epoch}: restored from {self.resume_path}, which "
                     f"holds that epoch")
            return
        self.log(f"warning: {what}, not the best epoch {self.best_epoch} ({self._val_text(self.best_epoch)}): "
                 f"its weights are lost; unless a later epoch beats it, the final model will be the last epoch's")

    def _val_text(self, epoch: int) -> str:
        """``val top-1 53.33%`` of ``epoch`` (from the history)."""
        rec = next((r for r in self.history if r.get("epoch") == epoch), {})
        top1 = rec.get("val_top1")
        return f"val top-1 {top1:.2f}%" if isinstance(top1, (int, float)) else "no validation"

    def _save_epoch(self, epoch: int, is_best: bool) -> None:
        rng_states = all_gather_object(capture_rng_state())
        if not self.dist.is_main:
            self.saved_epoch = epoch
            return
        # last.pth first, then its copy: when the copy fails, last.pth records the best epoch it
        # holds itself, and a resume restores best.pth from it.
        last = save_checkpoint(self._checkpoint(epoch, rng_states), self.layout.last)
        self.saved_epoch = epoch
        if is_best:
            atomic_copy(last, self.layout.best)
        write_metrics(self.history, self.layout)

    def _is_best(self, val: EvalResult | None) -> bool:
        """Higher validation top-1 wins, lower validation loss breaks ties; without validation
        the latest epoch is the best."""
        if val is None or self.best_top1 is None:
            return True
        return val.top1 > self.best_top1 or (val.top1 == self.best_top1 and val.loss < self.best_loss)

    # -------------------------------------------------------------------------------------- fit
    def _resolved_config(self) -> TrainConfig:
        """The config with the defaults this run chose filled in (weight decay, sampling, the stride of
        dense sampling, clip size, validation batch) and data paths made absolute: fed back (``--config
        RUN/train_config.json``) it makes the same run, also from another folder."""
        cfg, spec = self.cfg, self.spec
        h, w = spec.img_size

        def absolute(path: str | None) -> str | None:
            return os.path.abspath(path) if path is not None and os.path.exists(path) else path

        model = cfg.model
        if looks_like_path(model) and os.path.exists(os.path.expanduser(model)):
            model = os.path.abspath(os.path.expanduser(model))
        return dataclasses.replace(
            cfg, model=model, data=absolute(cfg.data), val_data=absolute(cfg.val_data),
            weight_decay=cfg.resolved_weight_decay(), sampling=spec.sampling,
            frame_stride=spec.frame_stride if spec.sampling == "dense" else cfg.frame_stride,
            num_frames=spec.num_frames, img_size=h if h == w else cfg.img_size,
            val_batch_size=cfg.val_batch_size or cfg.batch_size)

    def _describe(self) -> None:
        cfg, d = self.cfg, self.dist
        n_params = count_params(self.model)
        spec = self.spec
        self.log(f"model {cfg.model}: {describe_architecture(self.model)}; {n_params / 1e6:.2f}M params; input "
                 f"(C, T, H, W) = {spec.shape}, {spec.sampling} sampling"
                 + (f", {spec.num_frames} frames {spec.frame_stride} apart" if spec.sampling == "dense" else ""))
        self.log(f"data: {len(self.train_dataset)} train clips, "  # type: ignore[arg-type]
                 + (f"{len(self.val_dataset)} val clips ({self.val_source}), "  # type: ignore[arg-type]
                    if self.val_dataset is not None else "no validation, ")
                 + f"{len(self.classes)} classes: {', '.join(self.classes[:10])}{' ...' if len(self.classes) > 10 else ''}")
        for line, console in self._run_notes:
            self.log(line, console)
        self.log(self.amp.line())
        self.log(f"training on {self.device} x {d.world_size} process(es), {self.amp.name}"
                 f"{', --compile' if cfg.compile else ''}; {cfg.epochs} epochs x "
                 f"{self.updates_per_epoch} updates, batch {cfg.batch_size}"
                 + (f" videos x {cfg.num_sample} samples" if cfg.num_sample > 1 else "")
                 + f" x {cfg.accum_steps} accum x {d.world_size}; {self._optimizer_text()}; output {self.out}")
        extras = []
        if cfg.randaug:
            extras.append(f"randaug {cfg.randaug}")
        if cfg.reprob > 0:
            extras.append(f"erasing {cfg.reprob:g} ({cfg.remode})")
        if self.mixup is not None:
            extras.append(f"mixup {cfg.mixup:g} cutmix {cfg.cutmix:g} (soft-target loss; training top-1 not reported)")
        if cfg.balanced_sampler:
            extras.append("class-balanced sampling")
        if cfg.class_weights != "none":
            extras.append("class weights " + ", ".join(f"{c} {w:.3g}" for c, w in zip(self.classes,
                                                                                      _weights(self.loss_fn))))
        if self.ema is not None:
            extras.append(f"weight average (EMA {cfg.ema:g}) validated and saved")
        if extras:
            self.log("recipe: " + "; ".join(extras))
        if d.is_main and (self.resume_path is None or not self.layout.train_config.exists()):
            # Beside "config" only what the run found (a config file reads "config" and nothing else).
            atomic_write_json({"config": config_dict(self.run_config), "classes": self.classes,
                               "val_source": self.val_source, "world_size": d.world_size,
                               "resolved": {"device": str(self.device), "peak_lr": self.peak_lr,
                                            "updates_per_epoch": self.updates_per_epoch,
                                            **({"frame_stride_auto": True} if cfg.frame_stride == FRAME_STRIDE_AUTO
                                               else {}),
                                            **{f"{k}_short_videos": len(c.short) for k, c in self.span_checks.items()}},
                               "precision": self.amp.record(),
                               "model_args": self.model.model_args,
                               "architecture": self.model.architecture, "params": n_params,
                               "versions": {"vidzoo": __version__, "torch": torch.__version__,
                                            "timm": timm.__version__}},
                              self.layout.train_config)

    def _optimizer_text(self) -> str:
        """The optimizer, peak learning rate and weight decay, as the run's description says them."""
        cfg = self.cfg
        lr = f"lr {self.peak_lr:g}" + (f" (= {cfg.lr:g} x {cfg.batch_size * cfg.accum_steps * self.dist.world_size} / "
                                       f"{cfg.lr_base_batch})" if cfg.lr_base_batch else "")
        return (f"{cfg.opt} {lr} wd {cfg.resolved_weight_decay():g}"
                + (f" layer-decay {cfg.layer_decay:g}" if cfg.layer_decay else ""))

    def fit(self) -> TrainResult:
        """Train from ``start_epoch`` to ``epochs``, then save the final model."""
        cfg, d = self.cfg, self.dist
        self._describe()
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            self.train_sampler.set_epoch(epoch)
            self.loader_generator.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + d.rank)
            record, val = self._run_epoch(epoch)
            record.update({f"{k}_short_videos": len(c.short) for k, c in self.span_checks.items()})
            record["time_s"] = round(time.perf_counter() - t0, 4)  # an epoch from cached features takes ms
            record["world_size"] = d.world_size
            self.history.append(record)
            self.weights_epoch = epoch + 1
            is_best = self._is_best(val)
            if is_best:
                self.best_epoch = epoch + 1
                self.best_top1, self.best_loss = (val.top1, val.loss) if val is not None else (None, None)
            self._save_epoch(epoch + 1, is_best)
            self.log(epoch_line(record, is_best and val is not None))
            self._log_epoch(record)
            for cb in self.callbacks:
                cb(epoch + 1, record)
        return self._finish()

    def _run_epoch(self, epoch: int) -> tuple[dict[str, Any], EvalResult | None]:
        """Train one epoch and validate: the epoch's metrics record (``epoch``, ``lr``, ``train_*``,
        ``val_*``) and the validation result (None without validation data)."""
        cfg = self.cfg
        out = train_one_epoch(self.epoch_ctx, self.train_loader, self.num_updates,
                              desc=f"epoch {epoch + 1}/{cfg.epochs}")
        self.num_updates = out.num_updates
        self._name_unreadable_train(out.skipped)
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": current_lr(self.optimizer)}
        record.update({f"train_{k}": v for k, v in out.metrics.items()})
        val: EvalResult | None = None
        if self.val_loader is not None:
            val_model = self.ema.module if self.ema is not None else self.run_model
            val = evaluate(val_model, self.val_loader, self.device, len(self.classes), self.amp_dtype,
                           progress=self.progress, desc="val (EMA)" if self.ema is not None else "val")
            record.update(self._val_record(val))
        return record, val

    def _name_unreadable_train(self, skipped: Sequence[tuple[str, str]]) -> None:
        """Name each substituted training video once in ``train.log``; stop when too many are unreadable."""
        for source, reason in skipped:
            self._name_once("train", source, f"unreadable training video '{source}' ({reason}): another "
                                             f"sample is used in its place")
        self._check_readable(skipped)

    def _val_record(self, val: EvalResult) -> dict[str, Any]:
        """The ``val_*`` entries of an epoch's record; each unreadable validation video named once in
        ``train.log``; a stop when none can be read."""
        for u in val.unreadable:
            self._name_once("val", u["path"], f"unreadable validation video '{u['path']}' ({u['reason']}): "
                                              f"excluded from validation")
        if val.num_samples == 0:
            raise UserError(f"none of the {len(val.unreadable)} validation videos can be read "
                            f"(e.g. '{val.unreadable[0]['path']}': {val.unreadable[0]['reason']})")
        record = {f"val_{k}": v for k, v in val.summary().items()}
        if val.single_prediction is not None and val.num_samples > 1:
            record["val_single_prediction"] = self.classes[val.single_prediction]
        return record

    def _check_readable(self, skipped: Sequence[tuple[str, str]]) -> None:
        """Stop when more than :data:`MAX_UNREADABLE_FRACTION` of the training videos, or every
        training video of a class, cannot be read (each is counted once, however often it is drawn)."""
        for source, reason in skipped:
            self._bad_sources.setdefault(source, reason)
        n, total = len(self._bad_sources), len(self.train_dataset)  # type: ignore[arg-type]
        if n > MAX_UNREADABLE_FRACTION * total:
            source, reason = next(iter(self._bad_sources.items()))
            raise UserError(f"{n} of the {total} training videos ({100 * n / total:.0f}%) cannot be read, more than "
                            f"{MAX_UNREADABLE_FRACTION:.0%}: the run stops rather than train on substitutes (e.g. "
                            f"'{source}': {reason}; each one is named in {self.layout.train_log})")
        ds = self.train_dataset
        if not self._bad_sources or not isinstance(ds, ClipDataset):
            return
        for k, name in enumerate(self.classes):
            sources = [str(src) for src, label in ds.samples if label == k]
            if sources and all(src in self._bad_sources for src in sources):
                raise UserError(f"class '{name}': none of its {len(sources)} training videos can be read "
                                f"(e.g. '{sources[0]}'); see {self.layout.train_log}")

    def _finish(self) -> TrainResult:
        """Save the final model: the best epoch's weights (from ``best.pth``) when there is
        validation, else the last epoch's. When ``best.pth`` does not hold the best epoch (deleted,
        or lost to a full disk) the model saved is the last epoch's, and the message says so."""
        model_dir = None
        model_epoch = self.weights_epoch
        if self.ema is not None:  # with --ema the weight average is the model: validated, chosen and saved
            self.model.load_state_dict(self.ema.module.state_dict())
        if self.val_loader is not None and self.best_epoch is not None and self.best_epoch != self.weights_epoch:
            epoch, why = self._on_main(self._best_checkpoint_epoch)
            if epoch == self.best_epoch:
                ckpt = load_checkpoint(self.layout.best)
                self.model.load_state_dict(ckpt["model_ema"] if self.ema is not None else ckpt["model"])
                model_epoch = epoch
            else:
                self.log(f"warning: {self._rel(self.layout.best)} {why or f'holds epoch {epoch}'}, not the best "
                         f"epoch {self.best_epoch} ({self._val_text(self.best_epoch)}): the final model is the last "
                         f"epoch's ({model_epoch}, {self._val_text(model_epoch)})")
        if self.dist.is_main:
            model_dir = save_model_folder(self.model, self.layout.model_dir)
            which = (f"epoch {model_epoch}" + ("" if self.val_loader is None else f", {self._val_text(model_epoch)}")
                     + (", weight average (EMA)" if self.ema is not None else ""))
            self.log(f"final model ({which}) saved to {model_dir}")
        barrier()
        top1 = next((r.get("val_top1") for r in self.history if r.get("epoch") == model_epoch), None)
        return TrainResult(self.model, self.history, self.best_epoch, self.best_top1, self.out, model_dir,
                           self.classes, is_main=self.dist.is_main, model_epoch=model_epoch, model_top1=top1)

    def interrupted_message(self) -> str:
        """What a Ctrl-C leaves and how to continue: the run resumes from the last completed epoch."""
        cmd = f"vidzoo train --output {shlex.quote(str(self.out))} --resume"
        try:  # what the file holds, not what this process last wrote (the interrupt may fall in between)
            self.saved_epoch = int(load_checkpoint(self.layout.last, mmap=True)["epoch"])
        except (UserError, KeyError, TypeError, ValueError):
            pass
        if self.saved_epoch == 0:
            return (f"training stopped in epoch 1/{self.cfg.epochs}, before any epoch was saved: nothing to resume; "
                    f"the same command starts afresh in '{self.out}'")
        if self.saved_epoch >= self.cfg.epochs:
            now = f"after its last epoch, before the final model was saved ({self._rel(self.layout.last)} holds " \
                  f"epoch {self.saved_epoch})"
        else:
            now = (f"in epoch {self.saved_epoch + 1}/{self.cfg.epochs}; {self._rel(self.layout.last)} holds epoch "
                   f"{self.saved_epoch}, saved when it ended (the interrupted epoch is redone)")
        return f"training stopped {now}. Continue with: {cmd}"


def train(cfg: TrainConfig, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
          classes: Sequence[str] | None = None, callbacks: Sequence[EpochCallback] = ()) -> TrainResult:
    """Train a model as ``cfg`` says (also under ``torchrun``: DDP over all processes).

    Args:
        cfg: The run.
        train_dataset: Use this dataset instead of opening ``cfg.data`` (any dataset of
            ``(clip (C, T, H, W) float, label)``; a :mod:`vidzoo.data` dataset is taken as a
            listing, and the training dataset is built from it with the model's sampler and
            transforms).
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
    cls = Trainer
    if cfg.freeze_backbone:  # a probe: the frozen backbone's features, one or several heads
        from .probe import ProbeTrainer
        cls = ProbeTrainer
    try:
        trainer = cls(cfg, dist_info, train_dataset, val_dataset, classes, callbacks)
        try:
            return trainer.fit()
        except KeyboardInterrupt:
            message = trainer.interrupted_message()
            try:
                trainer.log(f"interrupted: {message}", console=False)
            except OSError:  # the message matters more than the log line
                pass
            raise KeyboardInterrupt(message) from None
    finally:
        if trainer is not None:
            trainer.close()
        if started_here and is_distributed():
            cleanup_distributed()
