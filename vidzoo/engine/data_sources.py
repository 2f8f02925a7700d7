"""From ``--data`` arguments to dataset listings and the facts the model is built from.

``--data`` may be:

* a folder ``root/<class>/<video or frame folder>`` (:class:`~vidzoo.data.VideoFolder`); a folder
  holding ``train/`` and ``val/`` (and optionally ``test/``) class folders is used split-wise;
* a ``.csv`` / ``.tsv`` / ``.txt`` list of ``path,label`` lines (:class:`~vidzoo.data.VideoListDataset`);
* a MedMNIST-style ``.npz`` with ``{train,val,test}_images/_labels``
  (:class:`~vidzoo.data.NpzVolumeDataset`, one-channel volumes, depth as time).

The data path flows one way: these functions open *listings* (samples, classes, channels, no
sampler or transform); the model is built for those facts; :mod:`vidzoo.engine.pipelines` then
builds each dataset with the sampler and transforms of the model's input spec. A ``--val-split``
opens the data once and splits the listing (each part holds its own samples).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._choices import SPLITS
from ..data import (CachedVideoFolder, CachedVideoListDataset, ClipDataset, NpzVolumeDataset, VideoFolder,
                    VideoListDataset, split_indices)
from .errors import UserError

PathLike = str | os.PathLike
LIST_SUFFIXES = (".csv", ".tsv", ".txt")
SPLIT_NAMES = SPLITS


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


def open_dataset(path: PathLike, split: str | None = None, classes: Sequence[str] | None = None,
                 flag: str = "--data", cache: bool = False) -> tuple[ClipDataset, list[str]]:
    """Open ``path`` as a dataset listing (no sampler or transform; reading raises
    :class:`~vidzoo.data.UnreadableVideoError` on an unreadable sample, the engine decides what to do
    with it).

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
        # labels outside the known classes (names) are refused by the dataset itself
        ds = _user_errors(f"{flag} '{path}' split {split!r}",
                          lambda: NpzVolumeDataset(path, split=split, label_names=names))
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


def data_channels(ds: Any) -> int:
    """Channels of the clips a dataset yields: 1 for npz volumes, 3 for decoded videos."""
    return 1 if isinstance(ds, NpzVolumeDataset) else 3


def check_output_outside_data(output: PathLike, data: PathLike | None, flag: str = "--data",
                              why: str = "the run folder would be read as a class of the data") -> None:
    """Refuse an output folder inside a data folder (the next run would read what is written there
    as data: a run folder as a class, a folder of pictures as a video).

    Args:
        output: The output folder.
        data: The data folder (anything else is not checked).
        flag: How the data was given, for the message.
        why: What would go wrong, for the message.

    Raises:
        UserError: ``output`` is ``data`` or lies below it.
    """
    if data is None or not Path(data).is_dir():
        return
    out, root = Path(output).resolve(), Path(data).resolve()
    if out == root or root in out.parents:
        raise UserError(f"--output '{output}' is inside {flag} '{data}': {why}; write it elsewhere")


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
    """Train/val dataset listings (no sampler or transform yet) and their classes.

    Attributes:
        train: Training listing (its own samples with ``--val-split``).
        val: Validation listing, or None.
        classes: Class names in label order.
        in_chans: Channels of the data.
        val_source: Where the validation samples come from, for the log.
        notes: What the user should know about how the data is used (a ``test/`` folder that training
            does not read).
    """

    train: ClipDataset
    val: ClipDataset | None
    classes: list[str]
    in_chans: int
    val_source: str = ""
    notes: list[str] = field(default_factory=list)


def open_train_val(data: PathLike, val_data: PathLike | None = None, val_split: float | None = None,
                   seed: int = 0, cache: bool = False, output: PathLike | None = None) -> DataSplits:
    """Open the training data and its validation data (listings).

    Validation comes from, in order: ``val_data``; a stratified ``val_split`` fraction of
    ``data`` (opened once, split into two listings); the ``val`` split of ``data`` when it has one
    (npz, or a folder with ``train/`` and ``val/``); none. A folder with ``train/`` and ``test/`` but no
    ``val/`` is not validated on its ``test/`` (it stays the held-out test set; :attr:`DataSplits.notes`
    says how to evaluate on it, naming the run folder ``output``). ``cache``: see :func:`open_dataset`.

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
    val_ds: ClipDataset | None = None
    source = ""
    if val_data is not None:
        vkind = data_kind(val_data, "--val-data")
        split = "val" if vkind == "npz" or (vkind == "folder" and split_subfolders(val_data)) else None
        mapped = classes if vkind in ("list", "npz") else None
        val_ds, val_classes = open_dataset(val_data, split=split, classes=mapped, flag="--val-data", cache=cache)
        check_same_classes(classes, val_classes)
        source = f"{val_data}" + (f" [{split}]" if split else "")
    elif val_split:
        train_idx, val_idx = split_indices(train_ds.targets, val_split, seed=seed)
        source = describe_val_split(train_ds.targets, val_idx, classes, val_split, data, seed)
        if not val_idx:
            raise UserError(f"--val-split {val_split} of {len(train_ds)} samples holds none out; raise it or pass "
                            "--val-data")
        train_ds, val_ds = train_ds.subset(train_idx), train_ds.subset(val_idx)
    elif "val" in splits:
        val_ds, val_classes = open_dataset(data, split="val", flag="--data [val]",
                                           classes=classes if kind == "npz" else None, cache=cache)
        check_same_classes(classes, val_classes, "--data [train]", "--data [val]")
        source = f"{data} [val]"
    notes = []
    if kind == "folder" and "test" in splits:
        # test/ stays the held-out test set: never read for choosing the best epoch
        notes.append(f"'{Path(data) / 'test'}' is not used in training or validation (it stays the held-out test "
                     f"set): after training, `vidzoo eval --model {output or 'RUN'} --data {data}` evaluates on it"
                     + ("" if val_ds is not None else
                        "; for validation during training pass --val-split 0.2 or add a val/ folder of classes"))
    return DataSplits(train_ds, val_ds, classes, data_channels(train_ds), source, notes)


def describe_val_split(targets: Sequence[int], val_idx: Sequence[int], classes: Sequence[str], val_split: float,
                       data: PathLike, seed: int) -> str:
    """What a ``--val-split`` really held out, overall and per class (a stratified split rounds per
    class and keeps one video on each side of a class that has two, so 0.2 of 2 videos is 50%).

    Raises:
        UserError: A class is left with no training video.
    """
    total = [0] * len(classes)
    held = [0] * len(classes)
    for t in targets:
        total[t] += 1
    for i in val_idx:
        held[targets[i]] += 1
    empty = [f"'{c}' ({total[k]} video{'s' if total[k] != 1 else ''})" for k, c in enumerate(classes)
             if total[k] and held[k] == total[k]]
    if empty:
        raise UserError(f"--val-split {val_split:g} leaves no training video for class {', '.join(empty)}: every "
                        f"one would be held out; lower --val-split, add videos, or pass --val-data")
    per_class = ", ".join(f"{c} {held[k]}/{total[k]}" for k, c in enumerate(classes[:10]))
    more = ", ..." if len(classes) > 10 else ""
    n = len(val_idx)
    return (f"--val-split {val_split:g} of {data}: {n} of {len(targets)} videos held out ({n / len(targets):.0%}; "
            f"per class {per_class}{more}), stratified, seed {seed}")


def open_eval(data: PathLike, split: str | None = None,
              classes: Sequence[str] | None = None) -> tuple[ClipDataset, list[str]]:
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
