"""The folder of a training run, defined once (training, model loading, the CLI and the demo read it;
``tests/test_docs.py`` checks that the documentation names only these files)::

    RUN/train_config.json     the resolved run config, classes, data sources
    RUN/train.log             what was printed, plus every skipped or excluded file by name
    RUN/metrics.json / .csv   one record per epoch
    RUN/curves.png            loss / accuracy / lr curves
    RUN/checkpoints/last.pth  the latest epoch (atomic)
    RUN/checkpoints/best.pth  the best validation epoch
    RUN/model/                the final model (vidzoo's safetensors folder)
    RUN/tensorboard/          TensorBoard event files (``--tensorboard``)
    RUN/eval/                 the default report folder of ``vidzoo eval --model RUN``
    RUN/.vidzoo-run.json      the marker: this folder is a vidzoo training run (written first)
    RUN/.vidzoo.lock          held while a run writes here (pid and host; removed on exit)

A folder is a run when it has the marker, ``checkpoints/`` or ``model/`` (runs written before the
marker existed have no marker but always one of those folders): vidzoo replaces the files of a run
(``--overwrite``) and refuses to write into a run that holds a trained model unless told to.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .._run_files import BEST_CHECKPOINT, LAST_CHECKPOINT, RUN_CHECKPOINTS, RUN_MODEL_DIR, run_model_candidates

PathLike = str | os.PathLike

__all__ = ["RunLayout", "EVAL_LOG", "RUN_MARKER", "LOCK_NAME"]

EVAL_LOG = "eval.log"  # in an evaluation's output folder: the files it excluded, by name
RUN_MARKER = ".vidzoo-run.json"
LOCK_NAME = ".vidzoo.lock"
TENSORBOARD_EVENTS = "events.out.tfevents.*"  # what SummaryWriter writes into RUN/tensorboard/


@dataclass(frozen=True)
class RunLayout:
    """Paths of the run folder ``root``."""

    root: Path

    def __init__(self, root: PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def train_config(self) -> Path:
        return self.root / "train_config.json"

    @property
    def train_log(self) -> Path:
        return self.root / "train.log"

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics.json"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def checkpoints(self) -> Path:
        return self.root / RUN_CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    @property
    def model_dir(self) -> Path:
        return self.root / RUN_MODEL_DIR

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def marker(self) -> Path:
        return self.root / RUN_MARKER

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    def outputs(self) -> list[Path]:
        """The files and folders a run writes, in the order the docs list them."""
        return [self.train_config, self.train_log, self.metrics_json, self.metrics_csv, self.curves, self.last,
                self.best, self.model_dir, self.tensorboard]

    def is_run(self) -> bool:
        """Whether ``root`` is a training run: it has the marker, ``checkpoints/`` or ``model/``."""
        return self.root.is_dir() and (self.marker.is_file() or self.checkpoints.is_dir()
                                       or self.model_dir.is_dir())

    def trained(self) -> list[Path]:
        """What of a trained model the folder holds (``checkpoints/last.pth``, ``best.pth``, ``model/``)."""
        return [p for p in (self.last, self.best, self.model_dir) if p.exists() or p.is_symlink()]

    def holds_previous_run(self) -> bool:
        """Whether starting a run here would replace a trained model."""
        return bool(self.trained())

    def present(self) -> list[Path]:
        """The run files (:meth:`outputs`) that exist in the folder."""
        return [p for p in self.outputs() if p.exists() or p.is_symlink()]

    def remove_outputs(self, model_files: Sequence[str]) -> list[Path]:
        """Delete the run's own files (:meth:`outputs`; in ``model/`` only ``model_files``, the names
        ``save_pretrained`` writes, in ``tensorboard/`` only event files, then the folders left
        empty) and the marker; anything else stays. Returns what was removed."""
        removed = []
        folders = (self.model_dir, self.checkpoints, self.tensorboard)
        for folder in folders:
            if folder.is_symlink():  # a link in place of the folder goes, never what it points to
                folder.unlink()
                removed.append(folder)
        model_files = [self.model_dir / n for n in model_files]
        events = sorted(self.tensorboard.glob(TENSORBOARD_EVENTS)) if self.tensorboard.is_dir() else []
        for p in [*self.outputs(), *model_files, *events, self.marker]:
            if p in folders or p.parent.is_symlink():
                continue
            if p.is_symlink() or p.is_file():
                p.unlink()
                removed.append(p)
        for folder in folders:
            try:
                folder.rmdir()  # only when empty: files vidzoo did not write stay
                removed.append(folder)
            except OSError:
                pass
        return removed

    def model_candidates(self) -> list[Path]:
        """What ``--model RUN`` (and ``create_model(RUN)``) loads, in order: the saved model, then the best
        and last checkpoints."""
        return run_model_candidates(self.root)

    def stale_temp_files(self) -> list[Path]:
        """Temporary files of atomic writes (``.last.pth.*.tmp``...) left behind by a crash."""
        found: list[Path] = []
        for folder, names in ((self.checkpoints, (self.last.name, self.best.name)),
                              (self.root, (self.metrics_json.name, self.metrics_csv.name, self.curves.name,
                                           self.train_config.name))):
            if folder.is_dir():
                for name in names:
                    found += sorted(p for p in folder.glob(f".{name}.*.tmp") if p.is_file())
        return found

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete :meth:`stale_temp_files`; returns what was removed."""
        removed = []
        for p in self.stale_temp_files():
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
        return removed
