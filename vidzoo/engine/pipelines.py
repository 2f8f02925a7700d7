"""From a model's input spec to the datasets it reads: each dataset is built here with its
temporal sampler and transforms (a new dataset over a listing; nothing is changed in place),
then checked against the model."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import (ClipDataset, Compose, FrameSampler, InputSpec, Normalize, NpzVolumeDataset, Resize,
                    UnreadableVideoError, eval_pipeline, train_transforms)
from ..data.unreadable import reason_of
from .data_sources import data_channels
from .errors import UserError

__all__ = ["input_spec", "build_dataset", "check_input_fits", "align_classes", "RemapLabels"]


def input_spec(model: nn.Module, sampling: str | None = None, frame_stride: int | None = None) -> InputSpec:
    """The :class:`~vidzoo.data.InputSpec` of ``model`` (its ``pretrained_cfg``), sampling overridden.

    Raises:
        UserError: A bad ``--sampling`` / ``--frame-stride``.
    """
    try:
        return InputSpec.from_pretrained_cfg(model.pretrained_cfg, sampling, frame_stride)
    except ValueError as e:
        raise UserError(str(e)) from e


def build_dataset(listing: Dataset, spec: InputSpec, train: bool, views: tuple[int, int] = (1, 1),
                  hflip: float = 0.5, crop_scale: tuple[float, float] = (0.25, 1.0), randaug: str | None = None,
                  reprob: float = 0.0, remode: str = "pixel", repeats: int = 1) -> Dataset:
    """A new dataset over ``listing`` with the temporal sampler and spatial transforms for ``spec``.

    Videos: training draws one random clip (dense at ``frame_stride`` or uniform segments) and
    applies random-resized-crop + flip (+ RandAugment on the crop, random erasing after
    normalisation; ``repeats`` augmented clips per read, stacked ``(repeats, C, T, H, W)``);
    evaluation takes ``views = (clips, crops)`` deterministic views (short-side resize, centre or
    three crops), stacked as ``(V, C, T, H, W)``.
    Volumes (npz): depth is resampled to ``num_frames`` (uniform segments) only when it differs,
    slices are resized to ``img_size`` only when they differ; no augmentation; crops are ignored.
    The new dataset raises :class:`~vidzoo.data.UnreadableVideoError` on an unreadable sample (the
    loaders wrap the policy of their use).

    Datasets that are not :mod:`vidzoo.data` datasets are returned untouched.

    Raises:
        UserError: Clip augmentation (``randaug``, ``reprob``, ``repeats``) asked of data it cannot
            apply to: npz volumes, or a dataset vidzoo did not build.
    """
    asked = [name for name, on in (("--randaug", bool(randaug)), ("--reprob", reprob > 0),
                                   ("--num-sample", repeats > 1)) if on]
    if asked and (not isinstance(listing, ClipDataset) or isinstance(listing, NpzVolumeDataset)):
        what = ("npz volumes, which are not augmented (no crop or flip either)" if isinstance(listing, NpzVolumeDataset)
                else f"a {type(listing).__name__}, whose transforms are its own")
        raise UserError(f"{' / '.join(asked)} augment the video clips vidzoo decodes; the training data is {what}")
    if not isinstance(listing, ClipDataset):
        return listing
    clips, crops = views
    if crops not in (1, 3):
        raise UserError(f"--views CLIPSxCROPS: crops must be 1 or 3, got {crops}")
    if isinstance(listing, NpzVolumeDataset):
        depth, h, w = listing.images.shape[1:]
        sampler = FrameSampler("uniform", num_frames=spec.num_frames, num_clips=clips) \
            if depth != spec.num_frames or clips > 1 else None
        steps = [] if (h, w) == spec.img_size else [Resize(spec.img_size)]
        return listing.with_pipeline(sampler, Compose(steps + [Normalize(spec.mean, spec.std)]), train)
    if train:
        sampler = FrameSampler(spec.sampling, num_frames=spec.num_frames, stride=spec.frame_stride, num_clips=1)
        transform = train_transforms(spec.img_size, spec.mean, spec.std, hflip=hflip, scale=crop_scale,
                                     randaug=randaug, reprob=reprob, remode=remode)
        return listing.with_pipeline(sampler, transform, train, repeats=repeats)
    else:
        try:
            sampler, transform = eval_pipeline(spec, views)  # what vidzoo.data.load_clip reads, too
        except ValueError as e:
            raise UserError(str(e)) from e
    return listing.with_pipeline(sampler, transform, train)


def check_input_fits(ds: Dataset, spec: InputSpec, model_name: str = "the model", flag: str = "--data") -> None:
    """Read the first readable sample and check it has the model's input shape.

    Raises:
        UserError: The sample is not ``spec.shape``, or no sample can be read.
    """
    if isinstance(ds, ClipDataset) and data_channels(ds) != spec.in_chans:
        raise UserError(f"{model_name} takes {spec.in_chans}-channel clips but {flag} has {data_channels(ds)} "
                        f"channels; drop --set in_chans or pick a {data_channels(ds)}-channel model")
    first_error = None
    for i in range(len(ds)):  # type: ignore[arg-type]
        try:
            x = ds[i][0]
            break
        except UnreadableVideoError as e:
            first_error = first_error or (ds.source(i) if isinstance(ds, ClipDataset) else str(i), reason_of(e))
        except ValueError as e:  # a transform refusing the clip (sizes, channels)
            raise UserError(f"{flag}: the clips do not fit {model_name}: {str(e).splitlines()[0]}") from e
    else:
        src, why = first_error or ("?", "empty")
        raise UserError(f"{flag}: none of its {len(ds)} videos can be read (e.g. '{src}': {why})")  # type: ignore
    got = tuple(x.shape[-4:]) if x.ndim in (4, 5) else tuple(x.shape)
    if got != spec.shape:
        raise UserError(f"{model_name} takes clips (C, T, H, W) = {spec.shape} but {flag} gives {got}; "
                        f"match them with --num-frames / --img-size / --set in_chans=N")


class RemapLabels(Dataset):
    """A view of a dataset that is not a :class:`~vidzoo.data.ClipDataset` whose labels go
    through ``mapping[label]``; ``ClipDataset`` s are relabelled with their ``relabel``."""

    def __init__(self, dataset: Dataset, mapping: Sequence[int]) -> None:
        self.dataset = dataset
        self.mapping = list(mapping)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.dataset[index][:2]
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
    mapping = [index[c] for c in data_classes]
    if isinstance(ds, ClipDataset):
        return ds.relabel(mapping, model_classes)
    return RemapLabels(ds, mapping)
