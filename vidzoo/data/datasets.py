"""Datasets of video clips: class folders, list files, and ``.npz`` volumes.

Every dataset returns ``(clip, label)`` with ``clip`` a float tensor ``(C, T, H, W)``; with several
views (``FrameSampler(num_clips=K)`` at evaluation and/or a multi-crop transform such as
``ThreeCrop``) the views are stacked as ``(V, C, T, H, W)``, ``V = clips x crops``, clip-major.

Unreadable videos: a dataset never substitutes a sample. Reading one that is missing, not a video
or not decodable raises :class:`~vidzoo.data.UnreadableVideoError` naming it, so
``DataLoader(VideoFolder(...))`` fails loudly rather than scoring another video in its place. What
to do instead is the caller's policy, applied by wrapping the dataset
(:mod:`vidzoo.data.unreadable`): :class:`~vidzoo.data.SubstituteUnreadable` for training (counted
and named), :class:`~vidzoo.data.ExcludeUnreadable` for evaluation (excluded from every figure and
listed).

A dataset is built once with its sampler and transform. :meth:`ClipDataset.with_pipeline`,
:meth:`~ClipDataset.subset` and :meth:`~ClipDataset.relabel` return new datasets over the same
listing (nothing is changed in place), so a train/val split holds its own samples and no code has
to walk :class:`~torch.utils.data.Subset` chains.
"""
from __future__ import annotations

import copy
import errno
import logging
import math
import os
import stat
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .._choices import SPLITS
from .._validation import MAX_CLASSES
from .decode import UnreadableVideoError, _natural_key, frame_count, is_frame_folder, read_video_clips
from .sampling import FrameSampler
from .transforms import ToFloat

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClipDataset",
    "VideoFolder",
    "VideoListDataset",
    "NpzVolumeDataset",
    "CachedVideoFolder",
    "CachedVideoListDataset",
    "VideoPathDataset",
    "split_indices",
    "train_val_split",
]

PathLike = Union[str, os.PathLike]
Transform = Callable[[torch.Tensor], torch.Tensor]
OnError = Literal["raise"]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov")

_logger = logging.getLogger(__name__)


def _check_on_error(on_error: str) -> None:
    if on_error != "raise":
        raise ValueError(f"on_error: a dataset raises UnreadableVideoError on an unreadable sample (on_error='raise'), "
                         f"got {on_error!r}; to skip such samples wrap the dataset in "
                         "vidzoo.data.SubstituteUnreadable (training) or ExcludeUnreadable (evaluation)")


class ClipDataset(Dataset):
    """Base class: sampling, transforms and multi-view stacking.

    Subclasses fill ``self.samples`` (``(source, label)`` pairs) and implement
    :meth:`read_clips`.

    Args:
        sampler: temporal sampler called as ``sampler(num_frames, train, generator)`` and
            returning a list of index tensors (a :class:`FrameSampler`); ``None`` takes every frame.
        transform: applied to each clip (``uint8`` ``(C, T, H, W)`` for videos); may return
            ``(C, T, H, W)`` or stacked crops ``(V, C, T, H, W)``. Output is made float in 0..1
            when still ``uint8``.
        train: random temporal sampling (one clip) instead of deterministic (``num_clips`` clips).
        on_error: only ``"raise"``: an unreadable sample raises :class:`~vidzoo.data.UnreadableVideoError`
            (skipping is a policy of the caller, see :mod:`vidzoo.data.unreadable`).
        generator: random source for temporal sampling (torch's global RNG when None).
    """

    def __init__(self, sampler: FrameSampler | Callable | None = None, transform: Transform | None = None,
                 train: bool = False, on_error: OnError = "raise",
                 generator: torch.Generator | None = None) -> None:
        _check_on_error(on_error)
        self.sampler = sampler
        self.transform = transform
        self.train = train
        self.generator = generator
        self.repeats = 1
        self.samples: list[tuple[Any, int]] = []
        self.classes: list[str] = []

    # -- to implement --------------------------------------------------------------------------
    def read_clips(self, index: int) -> list[torch.Tensor]:
        """The raw clips (before transform) of sample ``index``."""
        raise NotImplementedError

    # -- common --------------------------------------------------------------------------------
    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> label index."""
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        """Label of every sample, in order (used for stratified splits)."""
        return [label for _, label in self.samples]

    def source(self, index: int) -> str:
        """Where sample ``index`` comes from (a path, or ``file[key][i]`` for npz volumes)."""
        return str(self.samples[index][0])

    def __len__(self) -> int:
        return len(self.samples)

    # -- new datasets over the same listing (nothing changes in place) ---------------------------
    def _copy(self) -> "ClipDataset":
        return copy.copy(self)

    def with_pipeline(self, sampler: FrameSampler | Callable | None, transform: Transform | None,
                      train: bool, repeats: int = 1) -> "ClipDataset":
        """A new dataset over the same samples with this sampler, transform and mode.

        Args:
            sampler: See :class:`ClipDataset`.
            transform: See :class:`ClipDataset`.
            train: See :class:`ClipDataset`.
            repeats: Repeated augmentation (VideoMAE's ``num_sample``, training only): each item
                is ``repeats`` clips made by ``transform`` from one read of the video, stacked
                ``(repeats, C, T, H, W)``, with one label.

        Raises:
            ValueError: ``repeats`` < 1, or > 1 outside training.
        """
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
        if repeats > 1 and not train:
            raise ValueError("repeats > 1 is repeated augmentation of training clips; evaluation takes views")
        new = self._copy()
        new.sampler, new.transform, new.train, new.repeats = sampler, transform, train, repeats
        return new

    def subset(self, indices: Sequence[int]) -> "ClipDataset":
        """A new dataset holding samples ``indices`` (in that order), with the same classes."""
        new = self._copy()
        new.samples = [self.samples[i] for i in indices]
        return new

    def relabel(self, mapping: Sequence[int], classes: Sequence[str]) -> "ClipDataset":
        """A new dataset whose label ``y`` becomes ``mapping[y]`` and whose classes are ``classes``
        (e.g. the data's class order -> a model's label order)."""
        new = self._copy()
        new.samples = [(src, int(mapping[label])) for src, label in self.samples]
        new.classes = list(classes)
        return new

    def sampled_length(self, index: int) -> int:
        """Frames of sample ``index`` as the sampler sees them (the length of its time axis)."""
        raise NotImplementedError

    def clip_frame_indices(self, index: int) -> list[list[int]] | None:
        """The source frame indices of each clip sample ``index`` gives in evaluation mode (its sampler is
        deterministic then), from the sample's frame count; None without a sampler or in training mode
        (random clips).

        Raises:
            UnreadableVideoError: The sample cannot be read.
        """
        if self.sampler is None or self.train:
            return None
        clips = self.sampler(self.sampled_length(index), False, None)
        if isinstance(clips, torch.Tensor) and clips.ndim == 1:
            clips = [clips]
        return [torch.as_tensor(c).tolist() for c in clips]

    def _indices_fn(self) -> Callable[[int], list[torch.Tensor]] | None:
        if self.sampler is None:
            return None
        return lambda n: self.sampler(n, self.train, self.generator)

    def _to_output(self, clips: list[torch.Tensor]) -> torch.Tensor:
        views: list[torch.Tensor] = []
        multi = len(clips) > 1
        for clip in clips:
            out = self.transform(clip) if self.transform is not None else clip
            out = ToFloat()(out)
            if out.ndim == 5:  # a multi-crop transform: (crops, C, T, H, W)
                views.extend(out.unbind(0))
                multi = True
            elif out.ndim == 4:
                views.append(out)
            else:
                raise ValueError(f"transform must return (C, T, H, W) or (V, C, T, H, W), got {tuple(out.shape)}")
        return torch.stack(views) if multi else views[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(clip, label)`` of sample ``index``.

        Raises:
            UnreadableVideoError: The sample cannot be read (naming it); never substituted.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for dataset of size {n}")
        index %= n
        source, label = self.samples[index]
        try:
            clips = self.read_clips(index)
        except UnreadableVideoError:
            raise
        except OSError as e:  # permission denied, an I/O error: this sample cannot be read
            raise UnreadableVideoError(source, e.strerror or str(e)) from e
        if self.repeats > 1:  # one read, several augmented clips (the transform does not change its input)
            outs = [self._to_output(clips) for _ in range(self.repeats)]
            if outs[0].ndim != 4:
                raise ValueError(f"repeated augmentation needs one (C, T, H, W) clip per draw, the pipeline "
                                 f"gives {tuple(outs[0].shape)}")
            return torch.stack(outs), int(label)
        return self._to_output(clips), int(label)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_samples={len(self)}, num_classes={self.num_classes}, "
                f"train={self.train}, sampler={self.sampler!r}, transform={self.transform!r})")


class _VideoSourceDataset(ClipDataset):
    """Samples are paths to video files or frame folders.

    Frames are decoded at the transform's ``decode_size`` when it has one (its first step shrinks
    the frame, see :mod:`vidzoo.data.transforms`): the decoder scales them while converting to RGB.
    Set ``scale_at_decode = False`` on a dataset to decode at full size and let the transform resize.
    """

    seek_threshold: int = 32
    scale_at_decode: bool = True

    def _decode_size(self):
        return getattr(self.transform, "decode_size", None) if self.scale_at_decode else None

    def read_clips(self, index: int) -> list[torch.Tensor]:
        path = self.samples[index][0]
        return read_video_clips(path, self._indices_fn(), seek_threshold=self.seek_threshold,
                                size=self._decode_size())

    def sampled_length(self, index: int) -> int:
        # What reading samples from: the header's count, or the stream's when the header overstated it.
        path = self.samples[index][0]
        return min(frame_count(path), frame_count(path, exact=True))


class VideoFolder(_VideoSourceDataset):
    """Videos arranged as ``root/<class>/<video file or frame folder>``.

    Classes are the sub-folder names, sorted; samples are sorted naturally within each class. A
    frame folder is any directory holding jpg/png images.

    Args:
        root: dataset root.
        sampler: see :class:`ClipDataset`.
        transform: see :class:`ClipDataset`.
        extensions: video file extensions to accept (case-insensitive).
        on_error: see :class:`ClipDataset`.
        train: see :class:`ClipDataset`.
        generator: see :class:`ClipDataset`.

    Attributes:
        classes: class names; ``class_to_idx`` maps them to labels.
        samples: ``(path, label)`` pairs.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` holds no class folders or no videos.
    """

    def __init__(self, root: PathLike, sampler: FrameSampler | Callable | None = None,
                 transform: Transform | None = None, extensions: Sequence[str] = VIDEO_EXTENSIONS,
                 on_error: OnError = "raise", train: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(sampler, transform, train, on_error, generator)
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(errno.ENOENT, "dataset root not found", str(self.root))
        if not self.root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "dataset root is not a folder", str(self.root))
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        self.extensions = exts
        class_dirs = sorted((d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                            key=lambda d: d.name)
        if not class_dirs:
            raise ValueError(f"no class folders in '{self.root}': expected root/<class>/<video file or frame folder>")
        self.classes = [d.name for d in class_dirs]
        self.ignored: list[tuple[str, str]] = []
        empty: list[str] = []
        for label, d in enumerate(class_dirs):
            before = len(self.samples)
            for entry in sorted(d.iterdir(), key=lambda p: _natural_key(p.name)):
                if entry.name.startswith("."):
                    continue
                kind = _entry_kind(entry, exts)
                if kind == "video":
                    self.samples.append((str(entry), label))
                elif kind is not None:
                    self.ignored.append((str(entry), kind))
            if len(self.samples) == before:
                empty.append(d.name)
        if not self.samples:
            raise ValueError(f"no videos in '{self.root}': expected root/<class>/<file with extension "
                             f"{'/'.join(exts)} or folder of jpg/png frames>")
        if empty:
            raise ValueError(f"class folder(s) without videos in '{self.root}': {', '.join(empty[:8])}"
                             f"{' ...' if len(empty) > 8 else ''}; every class needs at least one video "
                             f"(remove the folder, or move the data so that root/<class>/<video>)")
        for path, why in self.ignored:
            _logger.warning("ignoring '%s': %s", path, why)


def _entry_kind(entry: Path, exts: tuple[str, ...]) -> str | None:
    """``'video'`` for a usable sample; a reason for an entry that looks like one but is not used
    (a FIFO or device named like a video, videos in a nested folder); None for anything else."""
    try:
        mode = entry.stat().st_mode
    except OSError as e:  # a dangling symlink
        return f"cannot stat it ({e.strerror})" if entry.suffix.lower() in exts else None
    if stat.S_ISREG(mode):
        return "video" if entry.suffix.lower() in exts else None
    if stat.S_ISDIR(mode):
        if is_frame_folder(entry):
            return "video"
        nested = [p for p in entry.rglob("*") if p.suffix.lower() in exts or is_frame_folder(p)]
        if nested:
            return (f"a nested folder holding {len(nested)} video(s), which are not used "
                    f"(expected root/<class>/<video file or frame folder>)")
        return None
    if entry.suffix.lower() in exts:
        return "not a regular file (FIFO, socket or device); only files and frame folders are read"
    return None


_HEADER_LABELS = {"label", "labels", "class", "class_name", "classname", "category", "target", "y"}
_HEADER_PATHS = {"path", "paths", "video", "video_path", "filename", "file", "name"}


class VideoListDataset(_VideoSourceDataset):
    """Videos listed in a text file, one ``path<sep>label`` per line.

    The separator is a tab, a comma, or whitespace, detected per line (the label is the last field,
    so paths may contain the separator). A header line (``path,label``, ``video,class`` ...) is
    skipped, as are blank lines and ``#`` comments. Labels are all integers, or all class names
    (mapped through ``classes`` when given, else sorted names). Relative paths are resolved against
    ``root``, or the list file's folder when ``root`` is None. Missing files are not checked up front
    (large lists): reading one raises :class:`~vidzoo.data.UnreadableVideoError`.

    Args:
        list_file: the CSV/TSV/space-separated list.
        root: base folder of relative paths.
        sampler: see :class:`ClipDataset`.
        transform: see :class:`ClipDataset`.
        classes: class names in label order (optional).
        on_error: see :class:`ClipDataset`.
        train: see :class:`ClipDataset`.
        generator: see :class:`ClipDataset`.

    Raises:
        FileNotFoundError: ``list_file`` does not exist.
        ValueError: a malformed line (named by file and line number), or an empty list.
    """

    def __init__(self, list_file: PathLike, root: PathLike | None = None,
                 sampler: FrameSampler | Callable | None = None, transform: Transform | None = None,
                 classes: Sequence[str] | None = None, on_error: OnError = "raise", train: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(sampler, transform, train, on_error, generator)
        self.list_file = Path(list_file)
        if not self.list_file.is_file():
            raise FileNotFoundError(errno.ENOENT, "video list file not found", str(self.list_file))
        self.root = Path(root) if root is not None else self.list_file.parent
        rows = self._parse(self.list_file)
        if not rows:
            raise ValueError(f"no samples in '{self.list_file}': expected lines 'path,label'")
        labels = [lab for _, lab, _ in rows]
        is_int = all(_is_int(lab) for lab in labels)
        if is_int:
            ints = [int(lab) for lab in labels]
            bad = [(ln, v) for (_, _, ln), v in zip(rows, ints) if v < 0 or (classes is not None and v >= len(classes))]
            if bad:
                ln, v = bad[0]
                raise ValueError(f"{self.list_file}:{ln}: label {v} out of range "
                                 f"[0, {len(classes) if classes is not None else 'inf'})")
            self.classes = list(classes) if classes is not None else [str(i) for i in range(max(ints) + 1)]
        else:
            self.classes = list(classes) if classes is not None else sorted(set(labels))
            lookup = {c: i for i, c in enumerate(self.classes)}
            ints = []
            for _, lab, ln in rows:
                if lab not in lookup:
                    raise ValueError(f"{self.list_file}:{ln}: unknown class {lab!r} (classes: {self.classes})")
                ints.append(lookup[lab])
        for (rel, _, _), label in zip(rows, ints):
            p = Path(rel).expanduser()
            self.samples.append((str(p if p.is_absolute() else self.root / p), label))

    @staticmethod
    def _parse(list_file: Path) -> list[tuple[str, str, int]]:
        rows: list[tuple[str, str, int]] = []
        with open(list_file, encoding="utf-8") as f:
            for ln, line in enumerate(f, start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                sep = "\t" if "\t" in line else ("," if "," in line else None)
                parts = line.rsplit(sep, 1)
                if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                    raise ValueError(f"{list_file}:{ln}: expected 'path,label' (comma, tab or space "
                                     f"separated), got {line!r}")
                path, label = parts[0].strip(), parts[1].strip()
                if not rows and (label.lower() in _HEADER_LABELS or path.lower() in _HEADER_PATHS) \
                        and not _is_int(label):
                    continue  # header line
                rows.append((path, label, ln))
        return rows


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


NPZ_MAX_BYTES = 1 << 30
"""Largest split an npz may decompress to (images + labels, 1 GiB; OrganMNIST3D's train split at 64^3
is 0.25 GiB). The arrays are read whole into memory, so their declared shapes are checked against
this before anything is read; ``VIDZOO_NPZ_MAX_BYTES`` (bytes) or ``max_bytes=`` raise it."""


def _npz_header(data: "np.lib.npyio.NpzFile", key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an npz member declares in its ``.npy`` header (nothing else is read)."""
    member = f"{key}.npy" if f"{key}.npy" in data.zip.namelist() else key
    with data.zip.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version} (numpy writes 1.0 and 2.0)")
    return tuple(int(n) for n in shape), np.dtype(dtype)


class NpzVolumeDataset(ClipDataset):
    """3-D volumes from a MedMNIST-style ``.npz`` (e.g. OrganMNIST3D) as one-channel clips.

    The file holds ``{split}_images`` shaped ``(N, D, H, W)`` (``uint8`` 0..255 or float 0..1) and
    ``{split}_labels`` shaped ``(N,)`` or ``(N, 1)`` for ``split`` in train/val/test. Depth plays
    the role of time: a sample is ``(1, D, H, W)`` (or ``(1, T, H, W)`` with a ``sampler`` over
    depth). Labels are whole numbers from 0 to the number of classes - 1 (below ``len(label_names)``
    when given, else below ``vidzoo._validation.MAX_CLASSES``); the split's arrays may decompress
    to at most ``max_bytes`` (:data:`NPZ_MAX_BYTES`), checked from their headers before they are read.

    Args:
        path: the ``.npz`` file.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: applied to the ``(1, D, H, W)`` tensor (``uint8`` or float as stored).
        sampler: optional sampler over the depth axis.
        label_names: class names in label order (default: ``"0"``, ``"1"``, ...).
        train: random depth sampling; defaults to ``split == "train"``.
        generator: see :class:`ClipDataset`.
        max_bytes: Largest decompressed size of the split's arrays (default :data:`NPZ_MAX_BYTES`,
            or the environment variable ``VIDZOO_NPZ_MAX_BYTES``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not an npz, missing keys, wrong shapes or types, labels that are not class
            indices, arrays larger than ``max_bytes`` (naming the file and what was expected).
    """

    SPLITS = SPLITS

    def __init__(self, path: PathLike, split: str = "train", transform: Transform | None = None,
                 sampler: FrameSampler | Callable | None = None, label_names: Sequence[str] | None = None,
                 train: bool | None = None, generator: torch.Generator | None = None,
                 max_bytes: int | None = None) -> None:
        super().__init__(sampler, transform, split == "train" if train is None else train, generator=generator)
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        self.path = Path(path)
        self.split = split
        if not self.path.is_file():
            raise FileNotFoundError(errno.ENOENT, "npz file not found", str(self.path))
        ikey, lkey = f"{split}_images", f"{split}_labels"
        try:
            data = np.load(self.path, allow_pickle=False)
        except Exception as e:  # zipfile.BadZipFile, OSError, pickle refusal...
            raise ValueError(f"'{self.path}' is not a readable .npz file ({e})") from e
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"'{self.path}' holds a single array, expected an .npz archive with keys "
                             f"{{train,val,test}}_images and _labels")
        with data:
            keys = set(data.files)
            if ikey not in keys or lkey not in keys:
                raise ValueError(f"'{self.path}' lacks keys {sorted({ikey, lkey} - keys)} for split "
                                 f"{split!r}: expected {{train,val,test}}_images and _labels, "
                                 f"found {sorted(keys)}")
            self._check_declared_sizes(data, ikey, lkey, max_bytes)
            try:
                images, labels = data[ikey], data[lkey]
            except Exception as e:
                raise ValueError(f"'{self.path}': cannot read {ikey}/{lkey} ({e})") from e
        if images.ndim != 4:
            raise ValueError(f"'{self.path}': {ikey} must be (N, D, H, W), got shape {images.shape}")
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"'{self.path}': {lkey} must be (N,) or (N, 1) with N = {len(images)}, "
                             f"got shape {labels.shape}")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise ValueError(f"'{self.path}': {ikey} must be uint8 or float, got {images.dtype}")
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            images = images.astype(np.float32) / 255.0  # other integer types: assume 0..255
        self.images = images
        self.labels = self._class_indices(labels, lkey, label_names)
        num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.classes = list(label_names) if label_names is not None else [str(i) for i in range(num_classes)]
        self.samples = [(f"{self.path}[{ikey}][{i}]", int(lab)) for i, lab in enumerate(self.labels)]
        self.rows = list(range(len(self.samples)))  # sample -> row of ``images``

    def _check_declared_sizes(self, data: "np.lib.npyio.NpzFile", ikey: str, lkey: str,
                              max_bytes: int | None) -> None:
        """Refuse, from the ``.npy`` headers alone, arrays whose decompressed size is over the limit."""
        if max_bytes is None:
            env = os.environ.get("VIDZOO_NPZ_MAX_BYTES")
            if env and not env.strip().isdigit():
                raise ValueError(f"VIDZOO_NPZ_MAX_BYTES must be a number of bytes, got {env!r}")
            max_bytes = int(env) if env else NPZ_MAX_BYTES
        sizes = {}
        for key in (ikey, lkey):
            try:
                shape, dtype = _npz_header(data, key)
            except Exception as e:  # a member that is not a plain .npy array (or a damaged one)
                raise ValueError(f"'{self.path}': cannot read the header of {key} ({e})") from e
            sizes[key] = (shape, dtype, math.prod(shape) * dtype.itemsize)
        total = sum(n for _, _, n in sizes.values())
        if total > max_bytes:
            what = ", ".join(f"{k} {s} {d} = {n / 2**20:,.0f} MiB" for k, (s, d, n) in sizes.items())
            raise ValueError(f"'{self.path}' declares arrays of {total / 2**30:.2f} GiB decompressed ({what}), more "
                             f"than the {max_bytes / 2**30:.2f} GiB limit for one split (vidzoo reads them whole into "
                             "memory); set VIDZOO_NPZ_MAX_BYTES to a larger number of bytes if this is intended")

    def _class_indices(self, labels: np.ndarray, key: str, label_names: Sequence[str] | None) -> np.ndarray:
        """``labels`` as int64 class indices, or a ValueError naming the first label that is not one."""
        limit = len(label_names) if label_names is not None else MAX_CLASSES
        bound = (f"below {limit}, the number of classes ({', '.join(label_names[:8])}"
                 f"{', ...' if limit > 8 else ''})" if label_names is not None
                 else f"below {limit} (vidzoo._validation.MAX_CLASSES)")
        if labels.dtype.kind == "f":
            bad = ~np.isfinite(labels) | (labels != np.round(labels))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"'{self.path}': {key}[{i}] is {labels[i].item()!r}; labels must be whole class "
                                 "indices 0, 1, ... (float labels are not rounded)")
        elif labels.dtype.kind not in "iu":
            raise ValueError(f"'{self.path}': {key} must hold integer class indices, got dtype {labels.dtype}")
        if len(labels):
            low, high = int(np.argmin(labels)), int(np.argmax(labels))
            if labels[low] < 0:
                raise ValueError(f"'{self.path}': {key}[{low}] is {labels[low]}; labels must be class indices >= 0")
            if labels[high] >= limit:
                raise ValueError(f"'{self.path}': {key}[{high}] is {labels[high]}; labels must be class indices "
                                 f"{bound}")
        return labels.astype(np.int64)

    def subset(self, indices: Sequence[int]) -> "NpzVolumeDataset":
        new = super().subset(indices)
        new.rows = [self.rows[i] for i in indices]
        return new

    def sampled_length(self, index: int) -> int:
        return int(self.images.shape[1])

    def read_clips(self, index: int) -> list[torch.Tensor]:
        vol = torch.from_numpy(self.images[self.rows[index]]).unsqueeze(0)  # (1, D, H, W)
        if vol.is_floating_point():
            vol = vol.float()
        fn = self._indices_fn()
        if fn is None:
            return [vol]
        return [vol[:, idx] for idx in fn(vol.shape[1])]


# --------------------------------------------------------------------------------------------------
# frame cache and path lists


class _FrameCache:
    """Mixin for video datasets: decode each video once (every frame, ``uint8``, at the transform's
    ``decode_size``) and cut later clips from memory. For small datasets of short clips; memory grows
    with the data. The cache is keyed by path and decode size, so datasets derived with ``subset`` /
    ``with_pipeline`` share it safely."""

    def read_clips(self, index: int) -> list[torch.Tensor]:
        cache = self.__dict__.setdefault("_frame_cache", {})
        path = self.samples[index][0]
        size = self._decode_size()
        # The transform's repr names its geometry (sizes, scale, ratio): one decode size per key.
        key = (path, repr(getattr(size, "__self__", size)) if size is not None else None)
        full = cache.get(key)
        if full is None:
            full = cache[key] = read_video_clips(path, None, size=size)[0]
        fn = self._indices_fn()
        if fn is None:
            return [full]
        clips = fn(full.shape[1])
        if isinstance(clips, torch.Tensor) and clips.ndim == 1:
            clips = [clips]
        return [full[:, torch.as_tensor(c, dtype=torch.long)] for c in clips]


class CachedVideoFolder(_FrameCache, VideoFolder):
    """:class:`VideoFolder` that decodes each video once and keeps its frames."""


class CachedVideoListDataset(_FrameCache, VideoListDataset):
    """:class:`VideoListDataset` that decodes each video once and keeps its frames."""


class VideoPathDataset(_VideoSourceDataset):
    """Unlabelled videos (files or frame folders) given by path, for prediction (label ``-1``).

    Paths are not checked here: a missing or unreadable one raises
    :class:`~vidzoo.data.UnreadableVideoError` when read, so a caller can answer every readable
    video and name the others.
    """

    def __init__(self, paths: Sequence[PathLike], sampler: FrameSampler | Callable | None = None,
                 transform: Transform | None = None, on_error: OnError = "raise") -> None:
        super().__init__(sampler, transform, train=False, on_error=on_error)
        self.samples = [(str(p), -1) for p in paths]


# --------------------------------------------------------------------------------------------------
# splitting


def split_indices(labels: Sequence[int] | int, val_fraction: float = 0.2, seed: int = 0,
                  stratify: bool = True) -> tuple[list[int], list[int]]:
    """Reproducible train/val index split, stratified by label.

    Args:
        labels: per-sample labels, or a sample count (no stratification).
        val_fraction: fraction of each class (or of all samples) put in val.
        seed: random seed; the same inputs give the same split.
        stratify: split each class separately. A class with at least two samples keeps at least
            one in each part when ``0 < val_fraction < 1``.

    Returns:
        ``(train_indices, val_indices)``, each sorted.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    if isinstance(labels, int):
        labels, stratify = [0] * labels, False
    labels = [int(x) for x in labels]
    groups = {}
    if stratify:
        for i, lab in enumerate(labels):
            groups.setdefault(lab, []).append(i)
    else:
        groups[0] = list(range(len(labels)))
    train, val = [], []
    for key in sorted(groups):
        idx = groups[key]
        n = len(idx)
        n_val = int(round(n * val_fraction))
        if n >= 2 and 0 < val_fraction < 1:
            n_val = min(max(n_val, 1), n - 1)
        perm = torch.randperm(n, generator=g).tolist()
        val += [idx[p] for p in perm[:n_val]]
        train += [idx[p] for p in perm[n_val:]]
    return sorted(train), sorted(val)


def train_val_split(dataset: Dataset, val_fraction: float = 0.2, seed: int = 0,
                    stratify: bool = True) -> tuple[Subset, Subset]:
    """Split a dataset into train/val :class:`~torch.utils.data.Subset` s, reproducibly.

    Both subsets share ``dataset`` (and its transform). For different train/eval transforms, build
    two datasets and apply the same :func:`split_indices` to each.

    Args:
        dataset: any dataset; stratified when it has ``targets``.
        val_fraction: see :func:`split_indices`.
        seed: see :func:`split_indices`.
        stratify: see :func:`split_indices`.

    Returns:
        ``(train_subset, val_subset)``.
    """
    targets = getattr(dataset, "targets", None)
    labels = list(targets) if (stratify and targets is not None) else len(dataset)
    train_idx, val_idx = split_indices(labels, val_fraction, seed, stratify and targets is not None)
    return Subset(dataset, train_idx), Subset(dataset, val_idx)
