"""From ``--data`` arguments to configured :mod:`vidzoo.data` datasets for a given model.

The model's ``pretrained_cfg`` (input size, mean/std, sampling, frame stride) decides the frame
sampler and transforms, so a dataset is opened first (to learn its classes), the model is built
for those classes, then :func:`configure_dataset` attaches the sampler and transforms.

``--data`` may be:

* a folder ``root/<class>/<video or frame folder>`` (:class:`~vidzoo.data.VideoFolder`); a folder
  holding ``train/`` and ``val/`` (and optionally ``test/``) class folders is used split-wise;
* a ``.csv`` / ``.tsv`` / ``.txt`` list of ``path,label`` lines (:class:`~vidzoo.data.VideoListDataset`);
* a MedMNIST-style ``.npz`` with ``{train,val,test}_images/_labels``
  (:class:`~vidzoo.data.NpzVolumeDataset`, one-channel volumes, depth as time).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from ..data import (ClipDataset, Compose, FrameSampler, Normalize, NpzVolumeDataset, Resize, VideoDecodeError,
                    VideoFolder, VideoListDataset, eval_transforms, read_video_clips, split_indices,
                    train_transforms)
from .errors import UserError

PathLike = str | os.PathLike
LIST_SUFFIXES = (".csv", ".tsv", ".txt")
SPLIT_NAMES = ("train", "val", "test")


# ----------------------------------------------------------------------------- input description
@dataclass(frozen=True)
class InputSpec:
    """What a model takes in and how to sample it from a video.

    Attributes:
        in_chans: Channels ``C``.
        num_frames: Frames per clip ``T``.
        img_size: Frame size ``(H, W)``.
        mean: Normalisation mean per channel.
        std: Normalisation std per channel.
        crop_pct: Evaluation centre-crop fraction.
        sampling: ``'dense'`` (``num_frames`` frames ``frame_stride`` apart) or ``'uniform'``
            (one frame per equal segment of the video).
        frame_stride: Stride of dense sampling.
    """

    in_chans: int
    num_frames: int
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    sampling: str = "dense"
    frame_stride: int = 1

    @classmethod
    def from_model(cls, model: nn.Module, sampling: str | None = None, frame_stride: int | None = None
                   ) -> "InputSpec":
        """The spec of ``model`` (its ``pretrained_cfg``), with sampling choices overridden."""
        cfg = model.pretrained_cfg
        c, t, h, w = cfg["input_size"]
        sampling = sampling or cfg.get("sampling") or "dense"
        if sampling not in ("dense", "uniform"):
            raise UserError(f"--sampling must be 'dense' or 'uniform', got {sampling!r}")
        stride = frame_stride or cfg.get("frame_sample_rate") or 1
        if stride < 1:
            raise UserError(f"--frame-stride must be >= 1, got {stride}")
        return cls(in_chans=int(c), num_frames=int(t), img_size=(int(h), int(w)), mean=tuple(cfg["mean"]),
                   std=tuple(cfg["std"]), crop_pct=float(cfg.get("crop_pct") or 1.0), sampling=sampling,
                   frame_stride=int(stride))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, T, H, W)``."""
        return (self.in_chans, self.num_frames, *self.img_size)


# ----------------------------------------------------------------------------------- opening
def data_kind(path: PathLike, flag: str = "--data") -> str:
    """``'folder'``, ``'list'`` or ``'npz'`` for a ``--data`` path.

    Raises:
        UserError: The path does not exist or has an unsupported type.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{flag} '{path}' does not exist")
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in LIST_SUFFIXES:
        return "list"
    raise UserError(f"{flag} '{path}' is neither a folder of class sub-folders, a list file "
                    f"({'/'.join(LIST_SUFFIXES)}) nor an .npz of volumes")


def split_subfolders(root: PathLike) -> dict[str, Path]:
    """``{'train': root/train, 'val': root/val, ...}`` when ``root`` is split into train/val(/test)
    folders of classes, else ``{}``."""
    root = Path(root)
    if not root.is_dir():
        return {}
    subdirs = {d.name: d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if "train" in subdirs and ("val" in subdirs or "test" in subdirs) and set(subdirs) <= set(SPLIT_NAMES):
        return {k: subdirs[k] for k in SPLIT_NAMES if k in subdirs}
    return {}


def _user_errors(what: str, fn: Callable[[], Any]) -> Any:
    """Run a dataset constructor, turning its input-validation errors into :class:`UserError`."""
    try:
        return fn()
    except UserError:
        raise
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        msg = e.strerror + f": '{e.filename}'" if isinstance(e, OSError) and e.filename else str(e)
        raise UserError(f"{what}: {msg}") from e


def npz_splits(path: PathLike) -> list[str]:
    """Splits (``train``/``val``/``test``) present in a MedMNIST-style npz."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
    except Exception as e:
        raise UserError(f"'{path}' is not a readable .npz file ({e})") from e
    return [s for s in SPLIT_NAMES if f"{s}_images" in keys and f"{s}_labels" in keys]


class _FrameCache:
    """Mixin for video datasets: decode each video once (every frame, ``uint8``) and cut later
    clips from memory. For small datasets of short clips (the demo); memory grows with the data."""

    def read_clips(self, index: int) -> list[torch.Tensor]:
        cache = self.__dict__.setdefault("_frame_cache", {})
        full = cache.get(index)
        if full is None:
            full = cache[index] = read_video_clips(self.samples[index][0], None)[0]
        fn = self._indices_fn()
        if fn is None:
            return [full]
        clips = fn(full.shape[1])
        if isinstance(clips, torch.Tensor) and clips.ndim == 1:
            clips = [clips]
        return [full[:, torch.as_tensor(c, dtype=torch.long)] for c in clips]


class CachedVideoFolder(_FrameCache, VideoFolder):
    """:class:`~vidzoo.data.VideoFolder` that decodes each video once and keeps its frames."""


class CachedVideoListDataset(_FrameCache, VideoListDataset):
    """:class:`~vidzoo.data.VideoListDataset` that decodes each video once and keeps its frames."""


def open_dataset(path: PathLike, split: str | None = None, classes: Sequence[str] | None = None,
                 flag: str = "--data", cache: bool = False) -> tuple[ClipDataset, list[str]]:
    """Open ``path`` as an (unconfigured) dataset.

    Args:
        path: Folder, list file or npz.
        split: npz split (default ``train``) or, for a folder split into train/val/test
            sub-folders, which one to use (default ``train``).
        classes: Class names in label order to map a list file's labels through (for a
            validation list that must use the training classes).
        flag: The option name, for messages.
        cache: Decode each video once and keep its frames in memory (small datasets).

    Returns:
        ``(dataset, class_names)``.

    Raises:
        UserError: Missing path, unsupported or malformed file, empty dataset.
    """
    kind = data_kind(path, flag)
    if kind == "npz":
        split = split or "train"
        names = list(classes) if classes is not None else None
        ds = _user_errors(f"{flag} '{path}'", lambda: NpzVolumeDataset(path, split=split, label_names=names))
        if names is not None and len(ds.labels) and int(ds.labels.max()) >= len(names):
            raise UserError(f"classes differ: {flag} '{path}' split {split!r} has label {int(ds.labels.max())} "
                            f"but only {len(names)} classes are known ({', '.join(names[:8])})")
    elif kind == "list":
        cls = CachedVideoListDataset if cache else VideoListDataset
        ds = _user_errors(f"{flag} '{path}'", lambda: cls(path, classes=classes))
    else:
        parts = split_subfolders(path)
        if parts:
            split = split or "train"
            if split not in parts:
                raise UserError(f"{flag} '{path}' has no '{split}' sub-folder (found {', '.join(parts)})")
            path = parts[split]
        cls = CachedVideoFolder if cache else VideoFolder
        ds = _user_errors(f"{flag} '{path}'", lambda: cls(path))
    if len(ds) == 0:
        raise UserError(f"{flag} '{path}'{f' split {split!r}' if kind == 'npz' else ''} holds no samples")
    return ds, list(ds.classes)


def data_channels(ds: Dataset) -> int:
    """Channels of the clips a dataset yields: 1 for npz volumes, 3 for decoded videos."""
    base = ds.dataset if isinstance(ds, Subset) else ds
    return 1 if isinstance(base, NpzVolumeDataset) else 3


def check_same_classes(train_classes: Sequence[str], val_classes: Sequence[str], train_flag: str = "--data",
                       val_flag: str = "--val-data") -> None:
    """Raise a :class:`UserError` naming the difference when two datasets' classes differ."""
    if list(train_classes) == list(val_classes):
        return
    a, b = set(train_classes), set(val_classes)
    detail = []
    if b - a:
        detail.append(f"only in {val_flag}: {', '.join(sorted(b - a))}")
    if a - b:
        detail.append(f"only in {train_flag}: {', '.join(sorted(a - b))}")
    if not detail:
        detail.append("same names in a different order")
    raise UserError(f"classes differ between {train_flag} ({len(a)}) and {val_flag} ({len(b)}): {'; '.join(detail)}")


@dataclass
class DataSplits:
    """Unconfigured train/val datasets and their classes.

    Attributes:
        train: Training dataset (a :class:`~torch.utils.data.Subset` with ``--val-split``).
        val: Validation dataset, or None.
        classes: Class names in label order.
        in_chans: Channels of the data.
        val_source: Where the validation samples come from, for the log.
    """

    train: Dataset
    val: Dataset | None
    classes: list[str]
    in_chans: int
    val_source: str = ""


def open_train_val(data: PathLike, val_data: PathLike | None = None, val_split: float | None = None,
                   seed: int = 0, cache: bool = False) -> DataSplits:
    """Open the training data and its validation data.

    Validation comes from, in order: ``val_data``; a stratified ``val_split`` fraction of
    ``data``; the ``val`` split of ``data`` when it has one (npz, or a folder with ``train/`` and
    ``val/``); none. ``cache``: see :func:`open_dataset`.

    Raises:
        UserError: Missing/empty data, classes differing between train and val, a bad split.
    """
    if val_data is not None and val_split:
        raise UserError("pass either --val-data or --val-split, not both")
    if val_split is not None and not 0.0 <= val_split < 1.0:
        raise UserError(f"--val-split must be in [0, 1), got {val_split}")
    train_ds, classes = open_dataset(data, cache=cache)
    if len(classes) < 2:
        raise UserError(f"--data '{data}' has {len(classes)} class ({', '.join(classes)}); training a "
                        f"classifier needs at least 2")
    kind = data_kind(data)
    splits = npz_splits(data) if kind == "npz" else list(split_subfolders(data))
    val_ds: Dataset | None = None
    source = ""
    if val_data is not None:
        vkind = data_kind(val_data, "--val-data")
        split = "val" if vkind == "npz" or (vkind == "folder" and split_subfolders(val_data)) else None
        mapped = classes if vkind in ("list", "npz") else None
        val_ds, val_classes = open_dataset(val_data, split=split, classes=mapped, flag="--val-data", cache=cache)
        check_same_classes(classes, val_classes)
        source = f"{val_data}" + (f" [{split}]" if split else "")
    elif val_split:
        other, _ = open_dataset(data, classes=classes if kind in ("list", "npz") else None, cache=cache)
        train_idx, val_idx = split_indices(train_ds.targets, val_split, seed=seed)
        if not train_idx or not val_idx:
            raise UserError(f"--val-split {val_split} of {len(train_ds)} samples leaves an empty split")
        train_ds, val_ds = Subset(train_ds, train_idx), Subset(other, val_idx)
        source = f"{val_split:.0%} of {data} ({len(val_idx)} samples, stratified, seed {seed})"
    elif "val" in splits:
        val_ds, val_classes = open_dataset(data, split="val", flag="--data [val]",
                                           classes=classes if kind == "npz" else None, cache=cache)
        check_same_classes(classes, val_classes, "--data [train]", "--data [val]")
        source = f"{data} [val]"
    return DataSplits(train_ds, val_ds, classes, data_channels(train_ds), source)


def open_eval(data: PathLike, split: str | None = None, classes: Sequence[str] | None = None
              ) -> tuple[Dataset, list[str]]:
    """Open evaluation data: an npz's ``test`` split (or ``split``), a split folder's ``test``
    (else ``val``) sub-folder, or the whole folder / list file.

    Args:
        data: Folder, list or npz.
        split: Explicit split name.
        classes: The model's class names, to map a list file's or npz's labels through.
    """
    kind = data_kind(data)
    if split is None:
        if kind == "npz":
            present = npz_splits(data)
            split = "test" if "test" in present else ("val" if "val" in present else "train")
        elif kind == "folder":
            parts = split_subfolders(data)
            split = ("test" if "test" in parts else "val") if parts else None
    mapped = classes if kind in ("list", "npz") else None
    return open_dataset(data, split=split, classes=mapped)


# --------------------------------------------------------------------------------- configuring
def _base(ds: Dataset) -> Dataset:
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds


def configure_dataset(ds: Dataset, spec: InputSpec, train: bool, views: tuple[int, int] = (1, 1),
                      hflip: float = 0.5, crop_scale: tuple[float, float] = (0.25, 1.0)) -> Dataset:
    """Attach the temporal sampler and spatial transforms for ``spec`` (in place; returned).

    Videos: training draws one random clip (dense at ``frame_stride`` or uniform segments) and
    applies random-resized-crop + flip; evaluation takes ``views = (clips, crops)`` deterministic
    views (short-side resize, centre or three crops), stacked as ``(V, C, T, H, W)``.
    Volumes (npz): depth is resampled to ``num_frames`` (uniform segments) only when it differs,
    slices are resized to ``img_size`` only when they differ; no augmentation; crops are ignored.

    Datasets that are not :mod:`vidzoo.data` datasets are returned untouched.
    """
    base = _base(ds)
    if not isinstance(base, ClipDataset):
        return ds
    clips, crops = views
    if crops not in (1, 3):
        raise UserError(f"--views CLIPSxCROPS: crops must be 1 or 3, got {crops}")
    base.train = train
    if isinstance(base, NpzVolumeDataset):
        depth, h, w = base.images.shape[1:]
        if depth != spec.num_frames or clips > 1:
            base.sampler = FrameSampler("uniform", num_frames=spec.num_frames, num_clips=clips)
        else:
            base.sampler = None
        steps = [] if (h, w) == spec.img_size else [Resize(spec.img_size)]
        base.transform = Compose(steps + [Normalize(spec.mean, spec.std)])
        return ds
    base.sampler = FrameSampler(spec.sampling, num_frames=spec.num_frames, stride=spec.frame_stride,
                                num_clips=1 if train else clips)
    if train:
        base.transform = train_transforms(spec.img_size, spec.mean, spec.std, hflip=hflip, scale=crop_scale)
    else:
        if crops == 3 and spec.img_size[0] != spec.img_size[1]:
            raise UserError(f"3 spatial crops need a square input, the model takes {spec.img_size}")
        base.transform = eval_transforms(spec.img_size, spec.mean, spec.std, crop_pct=spec.crop_pct,
                                         num_crops=crops)
    return ds


def check_input_fits(ds: Dataset, spec: InputSpec, model_name: str = "the model", flag: str = "--data") -> None:
    """Read one sample and check it has the model's input shape.

    Raises:
        UserError: The sample is not ``spec.shape`` or no sample can be read.
    """
    base = _base(ds)
    if isinstance(base, ClipDataset) and data_channels(base) != spec.in_chans:
        raise UserError(f"{model_name} takes {spec.in_chans}-channel clips but {flag} has {data_channels(base)} "
                        f"channels; drop --set in_chans or pick a {data_channels(base)}-channel model")
    try:
        x, _ = ds[0][:2]
    except (RuntimeError, VideoDecodeError, FileNotFoundError) as e:
        raise UserError(f"{flag}: cannot read a sample: {str(e).splitlines()[0]}") from e
    except ValueError as e:  # a transform refusing the clip (sizes, channels)
        raise UserError(f"{flag}: the clips do not fit {model_name}: {str(e).splitlines()[0]}") from e
    got = tuple(x.shape[-4:]) if x.ndim in (4, 5) else tuple(x.shape)
    if got != spec.shape:
        raise UserError(f"{model_name} takes clips (C, T, H, W) = {spec.shape} but {flag} gives {got}; "
                        f"match them with --num-frames / --img-size / --set in_chans=N")


class RemapLabels(Dataset):
    """A dataset view whose labels go through ``mapping[label]`` (data order -> model order)."""

    def __init__(self, dataset: Dataset, mapping: Sequence[int]) -> None:
        self.dataset = dataset
        self.mapping = list(mapping)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.dataset[index]
        return x, self.mapping[y]


def align_classes(ds: Dataset, data_classes: Sequence[str], model_classes: Sequence[str] | None,
                  num_classes: int) -> Dataset:
    """Make ``ds``'s labels index the model's classes.

    Args:
        ds: Evaluation dataset.
        data_classes: Its class names.
        model_classes: The model's ``label_names`` (None: the model has none; labels are used as is).
        num_classes: The model's number of outputs.

    Raises:
        UserError: The data has classes the model does not know.
    """
    if model_classes is None:
        if len(data_classes) > num_classes:
            raise UserError(f"the data has {len(data_classes)} classes but the model predicts {num_classes}")
        return ds
    if list(data_classes) == list(model_classes):
        return ds
    unknown = sorted(set(data_classes) - set(model_classes))
    if unknown:
        raise UserError(f"classes differ between the model ({len(model_classes)}: "
                        f"{', '.join(list(model_classes)[:8])}{', ...' if len(model_classes) > 8 else ''}) and the "
                        f"data: unknown to the model: {', '.join(unknown[:8])}")
    index = {c: i for i, c in enumerate(model_classes)}
    return RemapLabels(ds, [index[c] for c in data_classes])


# ------------------------------------------------------------------------------------- predict
class VideoPaths(ClipDataset):
    """Unlabelled videos (files or frame folders) given by path, for prediction (label ``-1``)."""

    def __init__(self, paths: Sequence[PathLike], sampler: FrameSampler | None = None,
                 transform: Callable | None = None) -> None:
        super().__init__(sampler, transform, train=False, on_error="raise")
        for p in paths:
            if not Path(p).exists():
                raise UserError(f"video '{p}' does not exist")
        self.samples = [(str(p), -1) for p in paths]

    def read_clips(self, index: int) -> list[torch.Tensor]:
        return read_video_clips(self.samples[index][0], self._indices_fn())
