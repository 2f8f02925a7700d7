"""The schema of a training run: :class:`TrainConfig` (stored in ``train_config.json`` and in every
checkpoint).

Each field carries its command-line option (:mod:`vidzoo.engine.options`): ``vidzoo train``'s
parser, ``--help``, the field documentation below and the flag names in error messages all come
from it, so a field added here has its flag.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._choices import (AMP_MODES, AUGMENT_MODES, CLASS_WEIGHTS, ERASE_MODES, LR_SCHEDULES, MIXUP_MODES, ON_ERROR,
                        OPTIMIZERS, PROBE_HEADS)
from .errors import UserError
from .options import (AMP, BATCH_SIZE, COMPILE, DEVICE, IMG_SIZE, MODEL, NUM_FRAMES, ON_ERROR_OPTION, PRETRAINED,
                      PROGRESS, SAMPLING, SET, TRAIN_FRAME_STRIDE, WORKERS, Option, _plain_type, config_flag,
                      document_fields,
                      option_field)
from .run_layout import RunLayout
from .validation import validate_train_config

__all__ = ["TrainConfig", "OPTIMIZERS", "AMP_MODES", "ON_ERROR", "config_dict", "mixup_active", "augments_pixels",
           "pixel_augmentations", "load_train_config", "train_config_kwargs", "recipe_kwargs", "merge_train_kwargs", "CONFIG_SUFFIXES",
           "run_config", "RESUME_MAY_CHANGE", "resume_conflicts", "resume_refusal"]

_OPT = "optimisation"
_AUG = "augmentation"
_PROBE = "frozen backbone (probes)"


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
    lr: float = option_field(Option(
        "peak learning rate (reached after the warmup); with --lr-base-batch, the rate per that many videos",
        group=_OPT), default=5e-4)
    lr_base_batch: int | None = option_field(Option(
        "linear scaling rule (VideoMAE, timm): the peak learning rate is --lr x global batch / N, the global batch "
        "being --batch-size x --accum-steps x processes, in videos (default: --lr as given)", metavar="N",
        group=_OPT), default=None)
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
    sched: str = option_field(Option(
        "learning-rate schedule after the warmup: cosine (to --min-lr) or multistep (x --decay-rate at each of "
        "--decay-milestones)", choices=LR_SCHEDULES, group=_OPT), default="cosine")
    decay_milestones: tuple[float, ...] = option_field(Option(
        "epochs at which --sched multistep multiplies the learning rate by --decay-rate", nargs="+", type=float,
        metavar="EPOCH", group=_OPT), default=())
    decay_rate: float = option_field(Option("learning-rate factor at each milestone of --sched multistep",
                                            group=_OPT), default=0.1)
    label_smoothing: float = option_field(Option(
        "cross-entropy label smoothing (with --mixup / --cutmix it smooths the mixed targets)", group=_OPT),
        default=0.1)
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
    augment: str = option_field(Option(
        "training clips: random = a random clip, random-resized crop (--crop-scale) and flip (--hflip), new every "
        "epoch; none = every epoch the evaluation view (centre clip, resize and centre crop), the same pixels each "
        "time (what --cache-features needs; --hflip and --crop-scale then do nothing)", choices=AUGMENT_MODES,
        group="input"), default="random")
    hflip: float = option_field(Option(
        "horizontal flip probability of training clips (0 for direction-sensitive classes)", group="input"),
        default=0.5)
    crop_scale: tuple[float, float] = option_field(Option(
        "area range (min, max) of the training random-resized crop", metavar=("MIN", "MAX"), group="input"),
        default=(0.25, 1.0))
    randaug: str | None = option_field(Option(
        "RandAugment of each training clip, one draw of ops for all its frames (timm's config string, e.g. "
        "rand-m7-n4-mstd0.5-inc1, VideoMAE's; default: off)", metavar="CONFIG", group=_AUG), default=None)
    reprob: float = option_field(Option(
        "random-erasing probability of each training clip: one box through every frame (VideoMAE: 0.25)",
        group=_AUG), default=0.0)
    remode: str = option_field(Option(
        "random-erasing fill: const (0, the mean), rand (a colour per channel), pixel (noise per pixel)",
        choices=ERASE_MODES, group=_AUG), default="pixel")
    mixup: float = option_field(Option(
        "mixup alpha: blend clip pairs and their labels, lambda ~ Beta(alpha, alpha) (VideoMAE: 0.8; 0: off)",
        metavar="ALPHA", group=_AUG), default=0.0)
    cutmix: float = option_field(Option(
        "cutmix alpha: paste a box of another clip through every frame, labels by area (VideoMAE: 1.0; 0: off)",
        metavar="ALPHA", group=_AUG), default=0.0)
    mixup_prob: float = option_field(Option("probability of mixing a batch (--mixup / --cutmix)", group=_AUG),
                                     default=1.0)
    mixup_switch_prob: float = option_field(Option(
        "probability of cutmix instead of mixup when both are on", group=_AUG), default=0.5)
    mixup_mode: str = option_field(Option(
        "one mixup draw per batch, per mirrored pair or per clip (timm's modes)", choices=MIXUP_MODES,
        group=_AUG), default="batch")
    num_sample: int = option_field(Option(
        "repeated augmentation (VideoMAE): N augmented clips from one decode of each video per epoch; a step "
        "then holds --batch-size x N clips", metavar="N", group=_AUG), default=1)
    class_weights: str = option_field(Option(
        "loss weight of each class: none, or balanced (N / (K x n_k): every class weighs as much in total)",
        choices=CLASS_WEIGHTS, group=_OPT), default="none")
    balanced_sampler: bool = option_field(Option(
        "draw training videos with replacement, each class equally often (an epoch keeps its length)",
        group="input"), default=False)
    ema: float | None = option_field(Option(
        "keep an exponential moving average of the weights with this decay (timm ModelEmaV3, e.g. 0.999): "
        "validation runs on it and the saved model is the average (default: off)", metavar="DECAY", group=_OPT),
        default=None)
    ema_warmup: bool = option_field(Option(
        "ramp the --ema decay up from 0 over the first updates (timm's warmup: short runs on small data)",
        group=_OPT), default=False)
    freeze_backbone: bool = option_field(Option(
        "train a probe: only the head (attentive pooler, fc_norm, classifier) learns; the backbone is frozen "
        "(no gradients, no optimizer state, eval mode: no dropout or drop-path). The saved model is a complete "
        "classifier whose provenance names the backbone it was trained over", group=_PROBE), default=False)
    head: str | None = option_field(Option(
        "with --freeze-backbone: the head trained, freshly initialised for the data's classes: linear (a "
        "classifier on the pooled vector) or attentive (an attentive pooler over the tokens + a classifier). "
        "Default: the model's own kind (attentive for an attentive-pool model, else linear)", choices=PROBE_HEADS,
        group=_PROBE), default=None)
    cache_features: bool = option_field(Option(
        "with --freeze-backbone and --augment none: decode and encode every training and validation clip once "
        "(first epoch), keep the backbone's output in memory (a D-vector per clip; the token set per clip for an "
        "attentive head) and train the head from it every later epoch", group=_PROBE), default=False)
    probe_grid: str | None = option_field(Option(
        "with --freeze-backbone: train one head per (lr, weight decay) pair over the same frozen features, e.g. "
        "'lr=1e-3,3e-4;wd=0.05,0.01' (4 heads; a part left out takes --lr / --weight-decay); each head's "
        "validation figures go in every epoch's metrics ('heads'), the best (val top-1, then val loss) is saved "
        "as the model; needs validation data", metavar="'lr=A,B,...;wd=C,D,...'", group=_PROBE), default=None)
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
    tensorboard: bool = option_field(Option(
        "also write loss, learning rate and top-1 per update and per epoch to RUN/tensorboard (needs the "
        "tensorboard package: pip install 'vidzoo[tensorboard]')", group="runtime"), default=False)

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

    def peak_lr(self, world_size: int = 1) -> float:
        """The learning rate after the warmup: ``lr``, or with ``lr_base_batch`` the linear scaling
        rule ``lr x batch_size x accum_steps x world_size / lr_base_batch`` (videos per update)."""
        if self.lr_base_batch is None:
            return self.lr
        return self.lr * self.batch_size * self.accum_steps * world_size / self.lr_base_batch


TrainConfig.__doc__ += document_fields(TrainConfig)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as JSON-ready data."""
    d = dataclasses.asdict(cfg)
    d["crop_scale"] = list(d["crop_scale"])
    d["decay_milestones"] = list(d["decay_milestones"])
    return d


def mixup_active(cfg: TrainConfig) -> bool:
    """Whether training mixes clips (``--mixup`` or ``--cutmix``): the loss then takes soft targets."""
    return cfg.mixup > 0 or cfg.cutmix > 0


def pixel_augmentations(cfg: TrainConfig) -> list[str]:
    """The options of ``cfg`` that change a training clip's pixels from one epoch to the next, each as
    its flag and what it draws (``['--augment random: a random clip position', '--hflip 0.5: a random
    flip', ...]``): the random clip position, random-resized crop and flip of ``--augment random``
    (a crop of ``--crop-scale 1 1`` keeps the whole frame: not counted), RandAugment, random
    erasing, mixup / cutmix and repeated samples.

    Empty exactly when every epoch feeds each training video as the same pixels (``--augment none``
    and no clip augmentation), so that a frozen backbone's output can be computed once and reused
    (``--cache-features``). Every training option that draws anything random per clip or per batch
    must add itself here; :func:`augments_pixels` is the yes/no of the same list.
    """
    def flag(name: str) -> str:
        return config_flag(TrainConfig, name)

    out = []
    if cfg.augment != "none":
        out.append(f"{flag('augment')} {cfg.augment}: a random clip position")
        if tuple(cfg.crop_scale) != (1.0, 1.0):
            out.append(f"{flag('crop_scale')} {cfg.crop_scale[0]:g} {cfg.crop_scale[1]:g}: a random-resized crop")
        if cfg.hflip > 0:
            out.append(f"{flag('hflip')} {cfg.hflip:g}: a random flip")
    if cfg.randaug:
        out.append(f"{flag('randaug')} {cfg.randaug}: random ops")
    if cfg.reprob > 0:
        out.append(f"{flag('reprob')} {cfg.reprob:g}: random erasing")
    if cfg.mixup > 0:
        out.append(f"{flag('mixup')} {cfg.mixup:g}: clips mixed at random")
    if cfg.cutmix > 0:
        out.append(f"{flag('cutmix')} {cfg.cutmix:g}: boxes pasted at random")
    if cfg.num_sample > 1:
        out.append(f"{flag('num_sample')} {cfg.num_sample}: {cfg.num_sample} augmented clips per video")
    return out


def augments_pixels(cfg: TrainConfig) -> bool:
    """Whether the training clips' pixels change from one epoch to the next (:func:`pixel_augmentations`
    is not empty). Features computed once from such clips would not be what training sees."""
    return bool(pixel_augmentations(cfg))


# ------------------------------------------------------------------------------ config files
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def train_config_kwargs(data: Any, source: str) -> dict[str, Any]:
    """:class:`TrainConfig` keyword arguments from a mapping read from ``source`` (for messages).

    The mapping's keys are TrainConfig field names. A mapping with a ``"config"`` mapping in it is
    a run's ``train_config.json`` or a recipe: its ``"config"`` is read and the rest (classes,
    versions, sources...) is the record around it. Lists become tuples for tuple fields
    (``crop_scale``). Values are checked when the TrainConfig is made.

    Raises:
        UserError: Not a mapping, or keys that are not fields (each named with the closest fields).
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of TrainConfig fields (key: value), got a "
                        f"{type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if isinstance(data.get("config"), dict):
        outside = [k for k in data if k in fields]
        if outside:  # beside "config" is the record of a run or a recipe, never a setting
            raise UserError(f"{source}: {', '.join(map(repr, outside))} {'is' if len(outside) == 1 else 'are'} "
                            "outside \"config\"; put settings inside it")
        data = data["config"]
    unknown = [k for k in data if k not in fields]
    if unknown:
        names = sorted(fields)

        def hint(key: Any) -> str:
            close = difflib.get_close_matches(str(key).replace("-", "_"), names, n=3, cutoff=0.5)
            return f"{key!r} (closest: {', '.join(close)})" if close else repr(key)
        raise UserError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(hint, unknown))}; "
                        "the keys are TrainConfig field names, the flags of vidzoo train with _ for -")
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for key, value in data.items():
        if isinstance(value, list) and typing.get_origin(_plain_type(hints[key])) is tuple:
            value = tuple(value)
        out[key] = value
    return out


def load_train_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a config file (JSON, or YAML with PyYAML) into :class:`TrainConfig` keyword arguments.

    The file maps TrainConfig field names to values; a run's own ``train_config.json`` (its
    ``"config"``) and a recipe file are config files too. Relative paths in it are taken from the
    current folder, as on the command line.

    Raises:
        UserError: A missing or unreadable file, another suffix than .json / .yaml / .yml, a syntax
            error, no PyYAML for a YAML file, or keys that are not fields (see
            :func:`train_config_kwargs`).
    """
    p = Path(path)
    source = f"--config '{path}'"
    suffix = p.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise UserError(f"{source}: expected a {' / '.join(CONFIG_SUFFIXES)} file, got '{p.name}'")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{source} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{source} cannot be read: {getattr(e, 'strerror', None) or e}") from e
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{source} is not valid JSON: {e}") from e
    else:
        try:
            import yaml
        except ImportError as e:
            raise UserError(f"{source}: YAML config files need PyYAML: pip install 'vidzoo[yaml]' "
                            "(or give the config as .json)") from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UserError(f"{source} is not valid YAML: {' '.join(str(e).split())}") from e
    return train_config_kwargs(data, source)


def recipe_kwargs(name: str) -> dict[str, Any]:
    """The :class:`TrainConfig` keyword arguments of the named recipe (``vidzoo recipes NAME``).

    Raises:
        UserError: No recipe of that name (naming the closest).
    """
    from ..recipes import read_recipe
    try:
        recipe = read_recipe(name)
    except ValueError as e:
        raise UserError(f"--recipe: {e}") from e
    return train_config_kwargs(recipe, f"recipe '{name}'")


def merge_train_kwargs(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of several sources, a later one winning key by key (recipe < config file <
    command line); ``model_overrides`` (``--set``) merge argument by argument."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "model_overrides" and isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


# ------------------------------------------------------------------------------------------ resume
# What a resumed run may change: how long it trains and how it runs. Everything else (the data and
# its split, the seed, the model, the optimizer and its schedule, the augmentation) would make the
# continued run another run, so ``--resume`` refuses a change to it. ``output`` and ``resume`` /
# ``overwrite`` say where and how to continue, not what.
RESUME_MAY_CHANGE = ("epochs", "workers", "device", "progress", "cache_videos", "val_batch_size", "tensorboard",
                     "compile")
_NOT_COMPARED = ("output", "resume", "overwrite")
_PATHS = ("data", "val_data")
# Recorded resolved (train_config.json holds what the run chose); unset in a new config they are the
# model's (a probe's head: the model's own kind), which the comparison of the model and its arguments covers.
_RESOLVED_AT_RUN_TIME = ("sampling", "frame_stride", "num_frames", "img_size", "head")


def run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``RUN/train_config.json`` of a run folder: ``{"config": {field: value}, "classes": [...], ...}``
    (the whole record; :func:`load_train_config` reads any config file, this one included, into
    TrainConfig keyword arguments).

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
    if name == "model" and isinstance(value, str) and os.path.exists(os.path.expanduser(value)):
        value = os.path.realpath(os.path.expanduser(value))  # a run records a model path absolute
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
        if a is None and f.name in _RESOLVED_AT_RUN_TIME:
            continue
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
