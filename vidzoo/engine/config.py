"""The schema of a training run: :class:`TrainConfig` (stored in ``train_config.json`` and in every
checkpoint).

Each field carries its command-line option (:mod:`vidzoo.engine.options`): ``vidzoo train``'s
parser, ``--help``, the field documentation below and the flag names in error messages all come
from it, so a field added here has its flag.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._choices import AMP_MODES, ON_ERROR, OPTIMIZERS
from .errors import UserError
from .options import (AMP, BATCH_SIZE, COMPILE, DEVICE, IMG_SIZE, MODEL, NUM_FRAMES, ON_ERROR_OPTION, PRETRAINED,
                      PROGRESS, SAMPLING, SET, TRAIN_FRAME_STRIDE, WORKERS, Option, config_flag, document_fields,
                      option_field)
from .run_layout import RunLayout
from .validation import validate_train_config

__all__ = ["TrainConfig", "OPTIMIZERS", "AMP_MODES", "ON_ERROR", "config_dict", "run_config", "RESUME_MAY_CHANGE",
           "resume_conflicts", "resume_refusal"]

_OPT = "optimisation"


@dataclass
class TrainConfig:
    """Everything a training run needs; stored in ``train_config.json`` and in every checkpoint.

    Built with bad values (a negative learning rate, an unknown optimizer...) it raises a
    ``ValueError`` naming the flag.
    """

    model: str = option_field(MODEL, default="vivit_joint_tiny_patch16x2_224")
    data: str | None = option_field(Option(
        "training data: a folder root/<class>/<video> (or root/{train,val}/...), a .csv/.tsv/.txt list of "
        "'path,label', or an .npz of volumes", required=True), default=None)
    val_data: str | None = option_field(Option(
        "validation data (an npz means its val split)", exclusive="validation"), default=None)
    val_split: float | None = option_field(Option(
        "hold out this fraction of --data for validation (stratified, from --seed)", exclusive="validation"),
        default=None)
    output: str = option_field(Option(
        "output folder (checkpoints, metrics, plots, final model)", required=True), default="output/train")
    epochs: int = option_field(Option("epochs to train in total"), default=10)
    batch_size: int = option_field(BATCH_SIZE)
    lr: float = option_field(Option("peak learning rate (reached after the warmup)", group=_OPT), default=5e-4)
    opt: str = option_field(Option(
        "optimizer (timm's create_optimizer_v2): adamw, adam (the Keras OrganMNIST3D recipe), sgd or momentum",
        aliases=("--optimizer",), choices=OPTIMIZERS, group=_OPT), default="adamw")
    weight_decay: float | None = option_field(Option(
        "decoupled (AdamW) or L2 weight decay; default 0.05 for adamw, 0 otherwise. Biases, norms, position "
        "embeddings and class tokens are never decayed", group=_OPT), default=None)
    momentum: float = option_field(Option("SGD momentum (sgd, momentum)", group=_OPT), default=0.9)
    layer_decay: float | None = option_field(Option(
        "layer-wise lr decay (BEiT / VideoMAE fine-tuning; 0.75 for VideoMAE ViT-B): the head trains at lr, block "
        "i of L at lr * decay**(L - i), the embeddings at lr * decay**(L + 1); default: one lr for all",
        group=_OPT), default=None)
    warmup_epochs: float = option_field(Option("linear warmup length (may be fractional)", group=_OPT), default=1.0)
    min_lr: float = option_field(Option("learning rate at the end of the cosine schedule", group=_OPT),
                                 default=1e-6)
    label_smoothing: float = option_field(Option("cross-entropy label smoothing", group=_OPT), default=0.1)
    clip_grad: float | None = option_field(Option(
        "clip the gradient norm to this value (default: no clipping)", group=_OPT), default=None)
    accum_steps: int = option_field(Option("batches per optimizer step (gradient accumulation)", group=_OPT),
                                    default=1)
    amp: str = option_field(AMP)
    compile: bool = option_field(COMPILE)
    grad_checkpointing: bool = option_field(Option(
        "recompute block activations in backward: trade compute for memory", group=_OPT), default=False)
    seed: int = option_field(Option("seed of the split, the initialisation and the data order", group=_OPT),
                             default=0)
    deterministic: bool = option_field(Option(
        "torch.use_deterministic_algorithms(True) (slower on GPU)", group=_OPT), default=False)
    pretrained: bool = option_field(PRETRAINED, default=False)
    num_frames: int | None = option_field(NUM_FRAMES)
    img_size: int | None = option_field(IMG_SIZE)
    model_overrides: dict[str, Any] = option_field(SET, default_factory=dict)
    sampling: str | None = option_field(SAMPLING)
    frame_stride: int | str | None = option_field(TRAIN_FRAME_STRIDE)
    hflip: float = option_field(Option(
        "horizontal flip probability of training clips (0 for direction-sensitive classes)", group="input"),
        default=0.5)
    crop_scale: tuple[float, float] = option_field(Option(
        "area range (min, max) of the training random-resized crop", metavar=("MIN", "MAX"), group="input"),
        default=(0.25, 1.0))
    workers: int = option_field(WORKERS)
    cache_videos: bool = option_field(Option(
        "decode each video once and keep its frames in memory (small datasets of short clips; with --workers "
        "each worker holds its own cache, and resume is exact only with --workers 0)"), default=False)
    on_error: str = option_field(ON_ERROR_OPTION)
    device: str = option_field(DEVICE)
    resume: bool | str = option_field(Option(
        "continue the run in --output (its checkpoints/last.pth), or from CKPT, exactly where it stopped",
        nargs="?", const=True, metavar="CKPT", type=str), default=False)
    overwrite: bool = option_field(Option("start afresh in an --output that holds a run"), default=False)
    val_batch_size: int | None = option_field(Option(
        "validation clips per batch per process (default: --batch-size)", group="runtime"), default=None)
    progress: bool = option_field(PROGRESS)

    def __post_init__(self) -> None:
        validate_train_config(self)  # ValueError naming the flag (vidzoo/engine/validation.py)

    def validate(self) -> None:
        """Check the options again (a config changed after it was made) with the rules of
        :func:`~vidzoo.engine.validation.validate_train_config`, as a :class:`UserError`."""
        try:
            validate_train_config(self)
        except ValueError as e:
            raise UserError(str(e)) from e

    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.05 if self.opt == "adamw" else 0.0


TrainConfig.__doc__ += document_fields(TrainConfig)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as JSON-ready data."""
    d = dataclasses.asdict(cfg)
    d["crop_scale"] = list(d["crop_scale"])
    return d


# ------------------------------------------------------------------------------------------ resume
# What a resumed run may change: how long it trains and how it runs. Everything else (the data and
# its split, the seed, the model, the optimizer and its schedule, the augmentation) would make the
# continued run another run, so ``--resume`` refuses a change to it. ``output`` and ``resume`` /
# ``overwrite`` say where and how to continue, not what.
RESUME_MAY_CHANGE = ("epochs", "workers", "device", "progress", "cache_videos", "val_batch_size", "compile")
_NOT_COMPARED = ("output", "resume", "overwrite")
_PATHS = ("data", "val_data")


def run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``RUN/train_config.json`` of a run folder: ``{"config": {field: value}, "classes": [...], ...}``.

    Raises:
        UserError: The file is missing, unreadable or not a run's config.
    """
    path = RunLayout(run_dir).train_config
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UserError(f"'{run_dir}' has no {path.name} (not a training run folder?)") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"cannot read '{path}': {e}") from e
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise UserError(f"'{path}' is not a training run's config (no \"config\" object)")
    return saved


def _comparable(name: str, config: Mapping[str, Any]) -> Any:
    """The value of field ``name`` in a config dict as JSON would hold it; the default when absent
    (a config of an older vidzoo); the resolved weight decay."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if name in config:
        value = config[name]
    else:
        f = fields[name]
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if name == "weight_decay" and value is None:
        opt = config.get("opt", fields["opt"].default)
        value = 0.05 if opt == "adamw" else 0.0
    if name in _PATHS and isinstance(value, str):  # data/ and ./data are the same data
        value = os.path.realpath(os.path.expanduser(value))
    return json.loads(json.dumps(value, default=str))


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "{}"
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return "unset" if value is None else str(value)


def resume_conflicts(stored: Mapping[str, Any], cfg: TrainConfig | Mapping[str, Any],
                     names: Iterable[str] | None = None) -> list[str]:
    """The options of ``cfg`` that differ from the run's ``stored`` config, as ``"--flag NEW (the
    run: OLD)"``, for the fields ``names`` (default: every field but :data:`RESUME_MAY_CHANGE`)."""
    new = config_dict(cfg) if isinstance(cfg, TrainConfig) else dict(cfg)
    out = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in _NOT_COMPARED or f.name in RESUME_MAY_CHANGE or (names is not None and f.name not in names):
            continue
        a, b = _comparable(f.name, new), _comparable(f.name, stored)
        if a != b:
            out.append(f"{config_flag(TrainConfig, f.name)} {_show(a)} (the run: {_show(b)})")
    return out


def resume_refusal(conflicts: list[str], source: str) -> UserError:
    """The one-line refusal of a ``--resume`` whose options differ from the run's (``source``: where
    the run's options were read)."""
    may = ", ".join(config_flag(TrainConfig, n) for n in RESUME_MAY_CHANGE)
    return UserError(f"--resume: {'this option differs' if len(conflicts) == 1 else 'these options differ'} from "
                     f"the run's ({source}): " + "; ".join(conflicts) + f"; a resumed run is the same run, only "
                     f"{may} and --threads may change (for other options start a new run in another --output)")
